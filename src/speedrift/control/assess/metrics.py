"""Ecosystem metrics: four 0–100 numbers (higher is better for every one), each with its formula.

Tier and trend use the same thresholds as repo scores (healthy >= 80, watch 60–79, at-risk < 60;
improving >= +3, worsening <= -2). Each metric carries its formula as text and the inputs it was
computed from, so the dashboard can show the arithmetic, not just the number. A metric with no
data (nothing registered, nothing attempted) is 100 with inputs showing the zero denominators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from speedrift.control.assess.score import aged_in_progress, in_progress_count, tier_of, trend_of
from speedrift.register.record import ActionHistory, Metric, RepoHealth, RepoSnapshot

EXECUTION_WINDOW = timedelta(hours=24)
# hub actions: delegated counts as success (the corrective task was written); refused, skipped and
# unfinished ones were not attempted outcomes
HUB_SUCCEEDED = frozenset({"succeeded", "delegated"})
HUB_ATTEMPTED = frozenset({"succeeded", "delegated", "failed", "interrupted"})

FLOW_WEIGHTS = {"stall_rate": 0.5, "dependency_gap_rate": 0.25, "aging_pressure": 0.25}
QUALITY_WEIGHTS = {"findings_clear": 0.6, "plan_integrity": 0.4}
# weighted findings per repo; a repo at FINDING_SATURATION or more is under full pressure
FINDING_WEIGHTS = {"secret_leaks": 10.0, "critical": 10.0, "high": 5.0, "medium": 2.0, "low": 0.5}
FINDING_SATURATION = 10.0

LABELS = {
    "reporting_coverage": "reporting coverage",
    "flow_health": "flow health",
    "execution_reliability": "execution reliability",
    "quality_security_pressure": "quality & security",
}
FORMULAS = {
    "reporting_coverage": "100 × repos reporting / repos registered "
    "(reporting = the path exists, observed without errors, has a task graph)",
    "flow_health": "100 × (1 − (0.5 × stall_rate + 0.25 × dependency_gap_rate + 0.25 × aging_pressure)); "
    "stall_rate = stalled / tracked repos, dependency_gap_rate = repos with missing or failed blockers / "
    "tracked repos, aging_pressure = min(1, (in-progress 3+ days + open 14+ days) / open tasks)",
    "execution_reliability": "100 × succeeded / attempted, over hub actions in the last 24 h "
    "(succeeded or delegated / succeeded, delegated, failed or interrupted) plus the repos' recent task "
    "attempts; 100 when nothing was attempted",
    "quality_security_pressure": "quality & security, higher = less pressure: 100 × (0.6 × findings_clear + "
    "0.4 × plan_integrity); findings_clear = 1 − mean over reporting repos of min(1, weighted findings / 10) "
    "with weights secret 10, critical 10, high 5, medium 2, low 0.5; plan_integrity = share of tracked repos "
    "whose graph parses with no problems and no missing dependencies",
}


def ecosystem_metrics(
    snapshots: Iterable[RepoSnapshot],
    healths: Iterable[RepoHealth],
    action_history: ActionHistory,
    previous_metrics: Mapping[str, Metric] | None,
    registered: int,
    *,
    now: datetime | None = None,
    window: timedelta = EXECUTION_WINDOW,
) -> dict[str, Metric]:
    """``now`` defaults to the newest snapshot's time (the history window ends there)."""
    snaps = list(snapshots)
    health = list(healths)
    if now is None and snaps:
        now = max(s.observed_at for s in snaps)
    values = {
        "reporting_coverage": _coverage(snaps, registered),
        "flow_health": _flow(snaps, health, now),
        "execution_reliability": _reliability(snaps, action_history, now, window),
        "quality_security_pressure": _quality(snaps),
    }
    out: dict[str, Metric] = {}
    for key, (value, inputs) in values.items():
        value = round(max(0.0, min(100.0, value)), 1)
        before = previous_metrics.get(key) if previous_metrics else None
        delta = None if before is None else round(value - before.value, 1)
        out[key] = Metric(
            key=key,
            label=LABELS[key],
            value=value,
            tier=tier_of(value),
            trend=trend_of(delta),
            delta=delta,
            formula=FORMULAS[key],
            inputs=inputs,
        )
    return out


def _reporting(snapshot: RepoSnapshot) -> bool:
    return snapshot.exists and not snapshot.errors and snapshot.graph is not None


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _coverage(snaps: Sequence[RepoSnapshot], registered: int) -> tuple[float, dict[str, float]]:
    reporting = sum(1 for s in snaps if _reporting(s))
    value = 100.0 if registered <= 0 else 100.0 * min(reporting, registered) / registered
    return value, {"reporting": float(reporting), "registered": float(registered)}


def _flow(
    snaps: Sequence[RepoSnapshot], healths: Sequence[RepoHealth], now: datetime | None
) -> tuple[float, dict[str, float]]:
    tracked = [s for s in snaps if s.exists and s.graph is not None]
    names = {s.name for s in tracked}
    stalled = sum(1 for h in healths if h.name in names and h.activity == "stalled")
    gaps = sum(1 for s in tracked if s.graph and (s.graph.missing_dependencies or s.graph.failed_blockers))
    aging = 0
    open_tasks = 0
    for s in tracked:
        graph = s.graph
        assert graph is not None
        aged = len(aged_in_progress(s, now)) if now is not None else 0
        aging += max(graph.stale_in_progress, aged) + graph.stale_open
        open_tasks += graph.counts.get("open", 0) + in_progress_count(s)
    stall_rate = _ratio(stalled, len(tracked))
    gap_rate = _ratio(gaps, len(tracked))
    pressure = min(1.0, _ratio(aging, open_tasks)) if open_tasks else (1.0 if aging else 0.0)
    badness = (
        FLOW_WEIGHTS["stall_rate"] * stall_rate
        + FLOW_WEIGHTS["dependency_gap_rate"] * gap_rate
        + FLOW_WEIGHTS["aging_pressure"] * pressure
    )
    return 100.0 * (1.0 - badness), {
        "tracked_repos": float(len(tracked)),
        "stalled_repos": float(stalled),
        "dependency_gap_repos": float(gaps),
        "aging_tasks": float(aging),
        "open_tasks": float(open_tasks),
        "stall_rate": round(stall_rate, 4),
        "dependency_gap_rate": round(gap_rate, 4),
        "aging_pressure": round(pressure, 4),
    }


def _reliability(
    snaps: Sequence[RepoSnapshot], history: ActionHistory, now: datetime | None, window: timedelta
) -> tuple[float, dict[str, float]]:
    in_window = [p for p in history.executions if now is None or now - window < p.started_at <= now]
    hub_attempted = sum(1 for p in in_window if p.status in HUB_ATTEMPTED)
    hub_succeeded = sum(1 for p in in_window if p.status in HUB_SUCCEEDED)
    task_succeeded = sum(s.attempts.succeeded for s in snaps if s.exists)
    task_attempted = task_succeeded + sum(s.attempts.failed for s in snaps if s.exists)
    attempted = hub_attempted + task_attempted
    succeeded = hub_succeeded + task_succeeded
    value = 100.0 if attempted == 0 else 100.0 * succeeded / attempted
    return value, {
        "hub_attempted": float(hub_attempted),
        "hub_succeeded": float(hub_succeeded),
        "task_attempted": float(task_attempted),
        "task_succeeded": float(task_succeeded),
        "attempted": float(attempted),
        "succeeded": float(succeeded),
    }


def weighted_findings(snapshot: RepoSnapshot) -> float:
    g = snapshot.gates
    return (
        FINDING_WEIGHTS["secret_leaks"] * g.secret_leaks
        + FINDING_WEIGHTS["critical"] * g.critical
        + FINDING_WEIGHTS["high"] * g.high
        + FINDING_WEIGHTS["medium"] * g.medium
        + FINDING_WEIGHTS["low"] * g.low
    )


def _quality(snaps: Sequence[RepoSnapshot]) -> tuple[float, dict[str, float]]:
    reporting = [s for s in snaps if s.exists and not s.errors]
    tracked = [s for s in snaps if s.exists and s.graph is not None]
    pressures = [min(1.0, weighted_findings(s) / FINDING_SATURATION) for s in reporting]
    findings_clear = 1.0 - (sum(pressures) / len(pressures) if pressures else 0.0)
    intact = sum(1 for s in tracked if s.graph and not s.graph.problems and not s.graph.missing_dependencies)
    integrity = _ratio(intact, len(tracked)) if tracked else 1.0
    value = 100.0 * (
        QUALITY_WEIGHTS["findings_clear"] * findings_clear + QUALITY_WEIGHTS["plan_integrity"] * integrity
    )
    return value, {
        "weighted_findings": round(sum(weighted_findings(s) for s in reporting), 2),
        "findings_clear": round(findings_clear, 4),
        "repos_scanned": float(len(reporting)),
        "plan_intact_repos": float(intact),
        "tracked_repos": float(len(tracked)),
        "plan_integrity": round(integrity, 4),
    }


def formula_table_markdown() -> str:
    """The metrics with their formulas, as docs/scoring-and-policy.md shows them."""
    rows = ["| key | label | formula |", "|---|---|---|"]
    rows += [f"| `{key}` | {LABELS[key]} | {FORMULAS[key]} |" for key in LABELS]
    return "\n".join(rows)
