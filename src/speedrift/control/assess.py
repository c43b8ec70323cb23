"""The side-effect-free half of a cycle: observe, score, measure, plan, apply the policy — and
the record built from it. The hub (control/cycle.py) adds execution and recording; the
dashboard's hub-less view uses this alone, so both show exactly the same judgement.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from speedrift.control.edges import repo_edges
from speedrift.control.metrics import ecosystem_metrics
from speedrift.control.model import (
    Action,
    CycleRecord,
    Metric,
    Outcome,
    Plan,
    RepoEdge,
    RepoHealth,
    RepoReport,
    RepoSnapshot,
    Skipped,
)
from speedrift.control.narrative import narrate
from speedrift.control.observe import Observer
from speedrift.control.plan import plan_actions
from speedrift.control.policy import ActionHistory, apply_policy
from speedrift.control.policy_config import PolicyConfig
from speedrift.control.registry import Ecosystem
from speedrift.control.score import score_repo


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


def assess(
    ecosystem: Ecosystem,
    observer: Observer,
    policy: PolicyConfig,
    history: ActionHistory,
    previous_health: Mapping[str, RepoHealth],
    previous_metrics: Mapping[str, Metric] | None,
    now: datetime,
) -> Assessment:
    started = time.perf_counter()
    snapshots = observer.observe(now)
    healths = {name: score_repo(s, previous_health.get(name), now) for name, s in snapshots.items()}
    metrics = ecosystem_metrics(
        list(snapshots.values()),
        list(healths.values()),
        history,
        previous_metrics,
        len(ecosystem.repos),
        now=now,
    )
    candidates = plan_actions(snapshots, healths, ecosystem.repos, now)
    return Assessment(
        now=now,
        started=started,
        snapshots=snapshots,
        healths=healths,
        metrics=metrics,
        edges=repo_edges(ecosystem.repos, snapshots),
        candidates=tuple(candidates),
        plan=apply_policy(candidates, policy, snapshots, history, now),
    )


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
) -> CycleRecord:
    a = assessment
    final_plan = Plan(allowed=a.plan.allowed, skipped=tuple(skipped))
    inputs: dict[str, Any] = {
        "repos_total": len(ecosystem.repos),
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
            RepoReport(
                name=h.name,
                score=h.score,
                tier=h.tier,
                trend=h.trend,
                delta=h.delta,
                reasons=h.reasons,
                activity=h.activity,
                stall=h.stall,
                snapshot=a.snapshots[h.name],
            )
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
    )
