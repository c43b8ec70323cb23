"""Candidate actions per repo, before policy: what the hub would do if nothing held it back.

Pure: snapshots, healths, registry entries and ``now`` in; a list of :class:`Action` out, highest
priority first (ties by id). Ids are deterministic — ``<repo>:<kind>`` or
``<repo>:<kind>:<subject>`` — so dedup, cooldown and ``speedrift why`` can follow an action across
cycles. Corrective tasks get deterministic task ids ``speedrift-fix-<kind>-<slug>`` in ``subject``.
Every action carries a Claude and a Codex prompt (prompts.py). Retired repos get no actions;
``daemon_posture = "never"`` repos get no restart or dispatch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from speedrift.control.assess.score import aged_in_progress, in_progress_count
from speedrift.control.plan.prompts import action_prompts
from speedrift.errors import InvalidValue
from speedrift.graph import cron
from speedrift.register.actions import (
    NO_PARAMS,
    Action,
    ActionKind,
    ActionParams,
    CorrectiveParams,
    DispatchParams,
    LaneParams,
    RepairParams,
    RetryParams,
    TaskCorrectiveParams,
    VerifyParams,
)
from speedrift.register.record import AUTOMATION_MODES, LaneRun, RepoEntry, RepoHealth, RepoSnapshot

DISPATCH_TASKS = 5  # ready ids offered to the dispatcher, in dispatch order
DISPATCH_MAX = 2  # of which at most this many are started per action
MAX_FAILING_CORRECTIVES = 3  # per repo per cycle, before policy caps apply
MAX_RETRIES = 20  # failed tasks one retry_failed action carries out
SLUG_MAX = 48


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: ActionKind
    priority: int
    when: str


TRIGGERS: dict[str, Trigger] = {
    "gate_critical": Trigger(ActionKind.RUN_GATE_SCAN, 98, "critical gate findings or a secret leak"),
    "restart": Trigger(
        ActionKind.RESTART_SERVICE,
        96,
        "ready work, no service running, and the hub started it or daemon_posture always-on",
    ),
    "dispatch": Trigger(ActionKind.DISPATCH_READY, 92, "ready work, no service running (otherwise)"),
    "dispatch_busy": Trigger(ActionKind.DISPATCH_READY, 89, "as above while other work is in progress"),
    "retry": Trigger(
        ActionKind.RETRY_FAILED,
        90,
        "failed tasks whose recorded recovery is an automatic retry, and no speedrift service runs to do it",
    ),
    "repair": Trigger(
        ActionKind.REPAIR_DEPENDENCIES, 88, "missing or failed blockers (delegated to a corrective task)"
    ),
    "gate_high": Trigger(ActionKind.RUN_GATE_SCAN, 84, "high gate findings"),
    "failing": Trigger(
        ActionKind.EMIT_CORRECTIVE_TASK, 80, "a task failed 2+ attempts in a row (one per task, up to 3)"
    ),
    "sync": Trigger(ActionKind.SYNC_UPSTREAM, 74, "behind its upstream (fetch only)"),
    "lanes": Trigger(
        ActionKind.RUN_LANES,
        70,
        "drift lanes are due: never run, the target branch moved since they judged it (or an attempt "
        "landed, per the policy's `[lanes] on`), or a lane's `cron` fired",
    ),
    "verify": Trigger(ActionKind.VERIFY_IN_PROGRESS, 62, "dead claims or in-progress work aging 3+ days"),
    "packet": Trigger(
        ActionKind.PREPARE_UPSTREAM_PACKET, 58, "commits ahead of its upstream (dry-run packet)"
    ),
    "stale_open": Trigger(ActionKind.EMIT_CORRECTIVE_TASK, 56, "open tasks untouched for 14+ days"),
}


def slug(text: str) -> str:
    """A task-id-safe slug; long or empty ones get a short hash so distinct inputs stay distinct."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:7]
    if not base:
        return digest
    if len(base) > SLUG_MAX:
        return f"{base[: SLUG_MAX - 8].rstrip('-')}-{digest}"
    return base


def corrective_id(kind: str, subject: str) -> str:
    return f"speedrift-fix-{kind}-{slug(subject)}"


def action_id(repo: str, kind: str, subject: str | None = None) -> str:
    return f"{repo}:{kind}" if subject is None else f"{repo}:{kind}:{subject}"


def plan_actions(
    snapshots: Mapping[str, RepoSnapshot] | Sequence[RepoSnapshot],
    healths: Mapping[str, RepoHealth] | Sequence[RepoHealth],
    entries: Sequence[RepoEntry],
    now: datetime,
    *,
    with_prompts: bool = True,
) -> list[Action]:
    """Candidate actions, highest priority first. ``with_prompts=False`` leaves ``prompts`` empty
    for a caller that adds them only when presenting (see control/assess/judgement.py: with_prompts)."""
    snaps = list(snapshots.values()) if isinstance(snapshots, Mapping) else list(snapshots)
    health_by = healths if isinstance(healths, Mapping) else {h.name: h for h in healths}
    entry_by = {e.name: e for e in entries}
    actions: list[Action] = []
    for snapshot in sorted(snaps, key=lambda s: s.name):
        entry = entry_by.get(snapshot.name) or RepoEntry(name=snapshot.name, path=Path(snapshot.path))
        if entry.lifecycle == "retired" or not snapshot.exists:
            continue
        health = health_by.get(snapshot.name)
        for action in _repo_actions(snapshot, entry, now):
            if with_prompts:
                action = dataclasses.replace(action, prompts=action_prompts(action, snapshot, health))
            actions.append(action)
    return sorted(actions, key=lambda a: (-a.priority, a.id))


def _action(
    repo: str, trigger: str, reason: str, subject: str | None = None, params: ActionParams = NO_PARAMS
) -> Action:
    t = TRIGGERS[trigger]
    return Action(
        id=action_id(repo, t.kind, subject),
        repo=repo,
        kind=t.kind,
        priority=t.priority,
        reason=reason,
        subject=subject,
        params=params,
    )


def _repo_actions(snapshot: RepoSnapshot, entry: RepoEntry, now: datetime) -> list[Action]:
    return [
        *_work_actions(snapshot, entry, now),
        *_gate_actions(snapshot),
        *_lane_actions(snapshot, now),
        *_git_actions(snapshot),
    ]


def _work_actions(snapshot: RepoSnapshot, entry: RepoEntry, now: datetime) -> list[Action]:
    graph, service, repo = snapshot.graph, snapshot.service, snapshot.name
    if graph is None:
        return []
    out: list[Action] = []
    ready = graph.ready_count
    if ready > 0 and not service.running and entry.daemon_posture != "never":
        waiting = f"{ready} ready task(s) wait and no service runs"
        if service.started_by_hub or entry.daemon_posture == "always-on":
            why = "the hub started it" if service.started_by_hub else "daemon_posture is always-on"
            out.append(_action(repo, "restart", f"service down while {ready} ready task(s) wait ({why})"))
        else:
            busy = in_progress_count(snapshot) > 0
            tasks = tuple(t.id for t in graph.ready[:DISPATCH_TASKS])
            out.append(
                _action(
                    repo,
                    "dispatch_busy" if busy else "dispatch",
                    waiting + ("; other work is in progress" if busy else ""),
                    params=DispatchParams(tasks=tasks, max=DISPATCH_MAX),
                )
            )
    due = graph.retries_due
    if due and not (service.running and service.kind == "speedrift"):  # a service carries out its own
        out.append(
            _action(
                repo,
                "retry",
                f"{len(due)} failed task(s) wait for their automatic retry; no service runs to carry it out",
                params=RetryParams(tasks=tuple(sorted(due))[:MAX_RETRIES]),
            )
        )
    if graph.missing_dependencies or graph.failed_blockers:
        missing = sorted(graph.missing_dependencies)
        subject = corrective_id(
            "dependencies", f"{missing[0][0]}-{missing[0][1]}" if missing else "failed-blockers"
        )
        parts = [f"{len(missing)} missing blocker reference(s)"] if missing else []
        if graph.failed_blockers:
            parts.append(f"{graph.failed_blockers} task(s) behind a failed blocker")
        out.append(
            _action(
                repo,
                "repair",
                "dependency chain broken: " + ", ".join(parts),
                subject=subject,
                params=RepairParams(
                    missing=tuple(missing),
                    failed_blockers=graph.failed_blockers,
                    corrective_kind="dependencies",
                    title=f"Repair the dependency chain ({', '.join(parts)})",
                ),
            )
        )
    aging = [t.id for t in aged_in_progress(snapshot, now)]
    dead = sorted(graph.dead_claims)
    if dead or aging or graph.stale_in_progress:
        verify = VerifyParams(
            tasks=tuple(sorted(set(dead) | set(aging))), dead=tuple(dead), aging=tuple(aging)
        )
        parts = []
        if dead:
            parts.append(f"{len(dead)} claim(s) held by a process that is gone")
        if aging or graph.stale_in_progress:
            parts.append(f"{max(len(aging), graph.stale_in_progress)} task(s) in progress for 3+ days")
        out.append(_action(repo, "verify", "; ".join(parts), params=verify))
    for task in sorted(snapshot.attempts.repeated_failures)[:MAX_FAILING_CORRECTIVES]:
        subject = corrective_id("failing", task)
        out.append(
            _action(
                repo,
                "failing",
                f"task {task} failed at least twice in a row; retrying alone will not fix it",
                subject=subject,
                params=TaskCorrectiveParams(
                    tasks=(task,), corrective_kind="failing", title=f"Find why {task} keeps failing"
                ),
            )
        )
    if graph.stale_open:
        subject = corrective_id("stale", "open-work")
        out.append(
            _action(
                repo,
                "stale_open",
                f"{graph.stale_open} open task(s) untouched for 14+ days",
                subject=subject,
                params=CorrectiveParams(
                    corrective_kind="stale", title=f"Triage {graph.stale_open} open task(s) aging 14+ days"
                ),
            )
        )
    return out


def _gate_actions(snapshot: RepoSnapshot) -> list[Action]:
    gates = snapshot.gates
    if gates.critical or gates.secret_leaks:
        reason = (
            f"{gates.critical} critical finding(s), {gates.secret_leaks} secret leak(s) in the latest gates"
        )
        return [_action(snapshot.name, "gate_critical", reason)]
    if gates.high:
        return [_action(snapshot.name, "gate_high", f"{gates.high} high finding(s) in the latest gates")]
    return []


def _lane_actions(snapshot: RepoSnapshot, now: datetime) -> list[Action]:
    """One ``run_lanes`` when some lane is due; its params name the due lanes and the range.

    Only in a repo whose mode lets the hub act (supervise, autonomous): a lane run is routine
    upkeep, not a decision to put before a person every cycle of an observed repo — there the
    lanes run when someone runs ``speedrift drift check``, and what they found is scored and
    queued all the same."""
    lanes = snapshot.lanes
    if snapshot.control.mode not in AUTOMATION_MODES:
        return []
    if lanes.policy_error or not lanes.enabled or lanes.target_tip is None:
        return []
    due: dict[str, str] = {}
    for run in lanes.runs:
        why = _lane_due(run, lanes.triggers, lanes.target_tip, snapshot.attempts.last_finished_at, now)
        if why is not None:
            due[run.lane] = why
    if not due:
        return []
    heads = [run.head for run in lanes.runs if run.lane in due and run.head]
    base = max(set(heads), key=heads.count) if heads else None
    every = len(due) == len(lanes.enabled)
    trigger = sorted(set(due.values()))[0] if len(set(due.values())) == 1 else "mixed"
    named = "all lanes" if every else ", ".join(due)
    where = f"{lanes.target}@{lanes.target_tip[:12]}"
    return [
        _action(
            snapshot.name,
            "lanes",
            f"drift lanes due on {where}: {named} ({', '.join(sorted(set(due.values())))})",
            params=LaneParams(
                lanes=() if every else tuple(due), head=lanes.target_tip, base=base, trigger=trigger
            ),
        )
    ]


def _lane_due(
    run: LaneRun, triggers: Sequence[str], tip: str, landed_at: datetime | None, now: datetime
) -> str | None:
    if run.checked_at is None or run.head is None:
        return "first_run"
    if run.head != tip:
        if "target_change" in triggers:
            return "target_change"
        if "landed" in triggers and landed_at is not None and landed_at > run.checked_at:
            return "landed"
    if run.cron:
        try:
            following = cron.next_slot_after(run.cron, run.checked_at)
        except InvalidValue:
            return None  # the policy loader refuses a bad schedule; a stale snapshot is not planned on
        if following <= now:
            return "cron"
    return None


def _git_actions(snapshot: RepoSnapshot) -> list[Action]:
    git = snapshot.git
    if git is None:
        return []
    out: list[Action] = []
    upstream = git.upstream or "upstream"
    if git.behind:
        out.append(_action(snapshot.name, "sync", f"{git.behind} commit(s) behind {upstream}; fetch only"))
    if git.ahead:
        out.append(
            _action(
                snapshot.name, "packet", f"{git.ahead} commit(s) ahead of {upstream}; dry-run packet only"
            )
        )
    return out


def priority_table_markdown() -> str:
    """The action kinds with their priorities and triggers, as docs/scoring-and-policy.md shows them."""
    rows = ["| kind | priority | planned when |", "|---|---|---|"]
    for t in sorted(TRIGGERS.values(), key=lambda t: (-t.priority, t.kind)):
        rows.append(f"| `{t.kind}` | {t.priority} | {t.when} |")
    return "\n".join(rows)
