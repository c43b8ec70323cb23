"""The side-effect-free half of a cycle: observe, score, measure, plan, apply the policy — and
the record built from it, with the attention queues (queues.py) computed from that same
judgement. The hub (control/cycle.py) adds execution and recording; the dashboard's hub-less
view uses this alone, so both show exactly the same judgement and the same queues.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.control.assess.conditions import RepoConditions, judge_conditions, ranked
from speedrift.control.assess.edges import repo_edges
from speedrift.control.assess.metrics import ecosystem_metrics
from speedrift.control.assess.narrative import narrate
from speedrift.control.assess.queues import attention_queues
from speedrift.control.assess.score import score_repo
from speedrift.control.assess.weights import HEARTBEAT_STALE_SECONDS
from speedrift.control.ecosystem.load import Ecosystem
from speedrift.control.observe.observer import Observer
from speedrift.control.plan.candidates import plan_actions
from speedrift.control.plan.config import PolicyConfig
from speedrift.control.plan.entry_prompts import entry_prompts
from speedrift.control.plan.policy import apply_policy
from speedrift.control.plan.prompts import action_prompts
from speedrift.errors import SpeedriftError
from speedrift.fleet.config import load_config
from speedrift.pausestore import RuntimePause
from speedrift.register.actions import Action
from speedrift.register.record import (
    ActionHistory,
    CycleRecord,
    Metric,
    Outcome,
    Plan,
    QueueEntry,
    RepoEdge,
    RepoHealth,
    RepoReport,
    RepoSnapshot,
    Skipped,
)


@dataclass(frozen=True)
class RepoMemo:
    """A repo's score and candidate actions, kept for the next cycle while nothing about it changes;
    and its attention-queue condition drafts, kept under their own key (conditions.py)."""

    key: tuple[object, ...]
    health: RepoHealth
    actions: tuple[Action, ...]
    conditions: RepoConditions | None = None


def memo_key(snapshot: RepoSnapshot, now: datetime) -> tuple[object, ...] | None:
    """What a reused snapshot's score and plan depend on besides the repo's files (which its
    fingerprint covers); None for a freshly read repo, which is always scored again."""
    if not snapshot.reused:
        return None
    service = snapshot.service
    beat = service.heartbeat_age_seconds
    return (
        snapshot.fingerprint,
        snapshot.errors,
        snapshot.control,
        snapshot.control.authority(now)[0],
        (service.running, service.kind, service.active_agents, service.started_by_hub),
        beat is not None and beat > HEARTBEAT_STALE_SECONDS,
    )


@dataclass(frozen=True)
class Assessment:
    now: datetime
    started: float  # perf_counter at the start, for the record's duration
    snapshots: dict[str, RepoSnapshot]
    healths: dict[str, RepoHealth]
    metrics: dict[str, Metric]
    edges: tuple[RepoEdge, ...]
    candidates: tuple[Action, ...]
    plan: Plan
    memo: dict[str, RepoMemo]
    pauses: tuple[RuntimePause, ...] = ()  # the machine's runtime pauses the plan was judged with
    # each repo's attention-queue condition drafts (conditions.py), for build_record
    conditions: dict[str, RepoConditions] = field(default_factory=dict)


def assess(
    ecosystem: Ecosystem,
    observer: Observer,
    policy: PolicyConfig,
    history: ActionHistory,
    previous_health: Mapping[str, RepoHealth],
    previous_metrics: Mapping[str, Metric] | None,
    now: datetime,
    memo: Mapping[str, RepoMemo] | None = None,
    *,
    with_prompts: bool = True,
    pauses: Sequence[RuntimePause] = (),
) -> Assessment:
    """Observe and judge. ``memo`` (the previous assessment's) lets a repo the observer reused keep
    its score (trend flat) and candidate actions instead of being scored and planned again — the
    same staleness bound as observation: time-only changes (a task crossing the aging threshold)
    show at the observer's next full rescan. The repo's attention-queue condition drafts are kept
    the same way, under their own key (conditions.judge_conditions), with what moves with the
    clock rendered at ``now`` when the queues are built."""
    started = time.perf_counter()
    snapshots = observer.observe(now)
    entries = observer.entries  # the registry plus autodiscovered repos, as observed
    memo = memo or {}
    kept: dict[str, RepoMemo] = {}
    for name, snapshot in snapshots.items():
        key = memo_key(snapshot, now)
        old = memo.get(name)
        if key is not None and old is not None and old.key == key:
            kept[name] = old
    healths: dict[str, RepoHealth] = {}
    for name, snapshot in snapshots.items():
        if name in kept:  # unchanged since the last cycle: the same score, so delta 0
            healths[name] = replace(kept[name].health, delta=0, trend="flat")
        else:
            healths[name] = score_repo(snapshot, previous_health.get(name), now)
    metrics = ecosystem_metrics(
        list(snapshots.values()),
        list(healths.values()),
        history,
        previous_metrics,
        len(entries),
        now=now,
    )
    fresh = [snapshot for name, snapshot in snapshots.items() if name not in kept]
    planned = plan_actions(fresh, healths, entries, now, with_prompts=with_prompts)
    by_repo: dict[str, list[Action]] = {}
    for action in planned:
        by_repo.setdefault(action.repo, []).append(action)
    conditions: dict[str, RepoConditions] = {}
    for name, snapshot in snapshots.items():
        old = memo.get(name)
        mine = kept[name].actions if name in kept else by_repo.get(name, ())
        conditions[name] = judge_conditions(
            snapshot, healths[name], ranked(mine), old.conditions if old is not None else None
        )
    next_memo = {
        name: RepoMemo(m.key, healths[name], m.actions, conditions[name]) for name, m in kept.items()
    }
    for snapshot in fresh:
        key = memo_key(replace(snapshot, reused=True), now)
        if key is not None:
            name = snapshot.name
            next_memo[name] = RepoMemo(key, healths[name], tuple(by_repo.get(name, ())), conditions[name])
    candidates = [*planned, *(a for m in kept.values() for a in m.actions)]
    return Assessment(
        now=now,
        started=started,
        snapshots=snapshots,
        healths=healths,
        metrics=metrics,
        edges=repo_edges(entries, snapshots),
        candidates=tuple(candidates),
        plan=apply_policy(
            candidates,
            policy,
            snapshots,
            history,
            now,
            pauses=pauses,
            default_runtimes=_default_runtimes(snapshots) if pauses else None,
        ),
        memo=next_memo,
        pauses=tuple(pauses),
        conditions=conditions,
    )


def _default_runtimes(snapshots: Mapping[str, RepoSnapshot]) -> dict[str, str]:
    """Each repo's ``default_runtime`` (speedrift.toml), for ready tasks that name no runtime; read
    only while some runtime is paused. A repo whose config cannot be read is left out, and so is
    one with a runtime fallback order or routing tiers: its worker picks the first usable runtime
    (fleet/choosing.py), so a pause holds nothing here."""
    found: dict[str, str] = {}
    for name, snapshot in snapshots.items():
        if snapshot.graph is None or not snapshot.graph.ready:
            continue
        try:
            config = load_config(Path(snapshot.path))
        except (SpeedriftError, OSError):
            continue
        if not (config.routing.fallback or config.routing.tiers):
            found[name] = config.default_runtime
    return found


def build_record(
    assessment: Assessment,
    *,
    cycle_id: str,
    finished_at: datetime,
    plan_only: bool,
    ecosystem: Ecosystem,
    previous_health: Mapping[str, RepoHealth],
    skipped: Sequence[Skipped],
    outcomes: Sequence[Outcome] = (),
    hints: Sequence[str] = (),
    queue_since: Mapping[str, datetime] | None = None,
) -> CycleRecord:
    """The cycle record. ``skipped`` is the final cut list (approvals promoted, hard stops added);
    ``queue_since`` the previous record's ``{entry id: since}`` (queues.carried_since), so an
    attention entry keeps how long it has waited across cycles."""
    a = assessment
    final_plan = Plan(allowed=a.plan.allowed, skipped=tuple(skipped))
    queues = attention_queues(
        a.snapshots,
        a.healths,
        a.candidates,
        final_plan.skipped,
        a.now,
        first_seen=queue_since,
        pauses=a.pauses,  # those only a person can lift wait in the human queue
        conditions=a.conditions,  # judged (or kept) with the score: only the assembly is done here
    )
    inputs: dict[str, Any] = {
        "repos_total": len(a.snapshots),
        "observed": sum(1 for s in a.snapshots.values() if not s.reused),
        "reused": sum(1 for s in a.snapshots.values() if s.reused),
        "errors": sum(1 for s in a.snapshots.values() if s.errors),
        "duration_ms": round((time.perf_counter() - a.started) * 1000, 1),
    }
    return CycleRecord(
        cycle_id=cycle_id,
        generated_at=a.now,
        finished_at=finished_at,
        plan_only=plan_only,
        ecosystem=str(ecosystem.path),
        repos=tuple(
            RepoReport(**_health_fields(h), snapshot=a.snapshots[h.name])
            for h in sorted(a.healths.values(), key=lambda h: (h.score, h.name))
        ),
        metrics=a.metrics,
        edges=a.edges,
        planned=a.candidates,
        skipped=final_plan.skipped,
        executed=tuple(outcomes),
        hints=tuple(hints),
        inputs=inputs,
        narrative=narrate(list(a.healths.values()), a.metrics, previous_health, final_plan),
        queues=queues,
        pauses=a.pauses,
    )


_HEALTH_FIELDS = tuple(f.name for f in fields(RepoHealth))


def _health_fields(value: RepoHealth | RepoReport) -> dict[str, Any]:
    """A report is a health plus its snapshot: the fields they share."""
    return {name: getattr(value, name) for name in _HEALTH_FIELDS}


def with_prompts(record: CycleRecord) -> CycleRecord:
    """The record as it is presented (``hub once --json``, the dashboard): every action and every
    attention entry with its Claude and Codex prompt. The hub's cycle plans without them — prompts
    are presentation, derived from the action and its repo's snapshot and health (an entry: its
    action's prompts, else its own brief), so the ledger keeps decisions only and a cycle does not
    spend its time writing prose nobody reads."""
    reports = {r.name: r for r in record.repos}

    def dress(action: Action) -> Action:
        if action.prompts:
            return action
        report = reports.get(action.repo)
        health = None if report is None else RepoHealth(**_health_fields(report))
        return replace(action, prompts=action_prompts(action, report.snapshot if report else None, health))

    dressed = {a.id: dress(a) for a in record.planned}
    for cut in record.skipped:
        dressed.setdefault(cut.action.id, dress(cut.action))

    def dress_entry(entry: QueueEntry) -> QueueEntry:
        if entry.prompts:
            return entry
        action = dressed.get(entry.action_id) if entry.action_id else None
        if action is not None and action.prompts:
            return replace(entry, prompts=action.prompts)
        report = reports.get(entry.repo)
        prompts = entry_prompts(
            entry.rule,
            entry.repo,
            report.snapshot.path if report else entry.repo,
            task=entry.task,
            what=entry.what,
            why=entry.why,
            detail=entry.detail,
            from_action=entry.id == f"action:{entry.action_id}",
        )
        return replace(entry, prompts=prompts)

    return replace(
        record,
        planned=tuple(dressed[a.id] for a in record.planned),
        skipped=tuple(replace(s, action=dressed[s.action.id]) for s in record.skipped),
        queues=tuple(replace(q, entries=tuple(dress_entry(e) for e in q.entries)) for q in record.queues),
    )
