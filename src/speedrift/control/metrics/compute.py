"""Flow metrics from plain records (model.py) and ``now``: pure, every number with its formula.

Each metric is a dict with ``formula`` (text), ``inputs`` (the counts it was computed from, the
denominator among them) and its value(s). No data is explicit: a rate or a cost over a zero
denominator is ``None`` (never 0 or 100), a percentile of no samples is ``None`` with ``count`` 0.
The ecosystem's metrics are computed over all repos' records together (not averaged per repo).

Times and windows:

- the window is ``[now - since, now]``; an attempt belongs to it by its *time* — when it ended, or
  when it started while it has not ended;
- a task *landed* when an attempt of it ended ``done`` (its ``attempt.json`` last change); landed
  tasks are counted once, at their latest done attempt;
- a task became *ready* at the latest of: its ``created_at``, the completion of each of its
  blockers (``after``) that is done, and each ``not_before``/``ready_after`` that is not after its
  first attempt started (a later one is a retry's backoff, set after the first attempt failed) —
  never after its first attempt started (a task is ready when it is dispatched, whatever its
  record says);
- percentiles are nearest-rank: the smallest sample with at least q% of the samples at or below it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from speedrift.control.metrics.model import (
    ENDED,
    AttemptRun,
    EscalationRecord,
    EscalationState,
    GateStatus,
    RepoRecords,
    RunState,
    TaskTimes,
)
from speedrift.times import FAR_PAST, format_time

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HOURLY_SPAN = timedelta(hours=24)  # landed per hour: the last 24 hours at most
MAX_DAYS = 366  # day buckets at most (a longer window keeps its newest days)
MERGE_CONFLICT = "merge_conflict"
UNCLASSIFIED = "unclassified"

FORMULAS = {
    "landed": "tasks with an attempt that ended done (landed) within the window",
    "landed_per_hour": "landed tasks per UTC hour, the last 24 hours (or the window if shorter)",
    "landed_per_day": "landed tasks per UTC day over the window",
    "lead_time": "landed − ready, over tasks landed in the window; ready = latest of created_at, "
    "blockers' completion and not_before/ready_after, at most the first attempt's start; "
    "p50/p95 nearest-rank",
    "dispatch_latency": "first attempt started − ready, over tasks whose first attempt started "
    "in the window; p50/p95 nearest-rank",
    "first_attempt_success": "100 × first attempts that landed / first attempts that ended "
    "(done, failed or waiting) in the window",
    "merge_success": "100 × landing attempts that merged / landing attempts in the window; a landing "
    "attempt reached the merge: landed a commit, failed merge_conflict, or waits merge-pending",
    "gate_failure_rates": "per gate: 100 × attempts it blocked / attempts it ran in (not skipped), "
    "attempts of the window",
    "failure_classes": "failed attempts per failure class per UTC day of the window",
    "escalations": "human_escalation records opened in the window or still open; time to answer = "
    "answered − opened over the answered ones, p50/p95 nearest-rank",
    "cost_per_landed": "sum of cost_usd (and input+output tokens) of every recorded attempt of the tasks "
    "landed in the window / landed tasks",
}
LABELS = {
    "landed": "tasks landed",
    "landed_per_hour": "landed per hour",
    "landed_per_day": "landed per day",
    "lead_time": "lead time (ready → landed)",
    "dispatch_latency": "dispatch latency (ready → first attempt)",
    "first_attempt_success": "first-attempt success",
    "merge_success": "merge success",
    "gate_failure_rates": "gate failure rates",
    "failure_classes": "failure classes over time",
    "escalations": "human escalations",
    "cost_per_landed": "cost per landed change",
}


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment <= self.end


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0–100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ready_time(task: TaskTimes, first_start: datetime | None) -> datetime | None:
    """When ``task`` became ready (see the module docstring); None when nothing says."""
    moments = [m for m in (task.created, *task.blockers_completed) if m is not None]
    moments += [g for g in task.time_gates if first_start is None or g <= first_start]
    if not moments:
        return None
    ready = max(moments)
    return min(ready, first_start) if first_start is not None else ready


def attempt_time(run: AttemptRun) -> datetime | None:
    """When an attempt counts: its end, or its start while it has not ended."""
    return run.ended if run.state in ENDED and run.ended is not None else run.started


def _rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole > 0 else None


def _spread(key: str, samples: Sequence[float], inputs: dict[str, Any]) -> dict[str, Any]:
    p50, p95 = percentile(samples, 50), percentile(samples, 95)
    return {
        "label": LABELS[key],
        "unit": "s",
        "p50": None if p50 is None else round(p50, 1),
        "p95": None if p95 is None else round(p95, 1),
        "count": len(samples),
        "formula": FORMULAS[key],
        "inputs": inputs,
    }


def _floor(moment: datetime, step: timedelta) -> datetime:
    if step == DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _bucket_starts(window: Window, step: timedelta, span: timedelta | None, limit: int) -> list[datetime]:
    start = window.start if span is None else max(window.start, window.end - span)
    first, last = _floor(start, step), _floor(window.end, step)
    count = min(limit, int((last - first) / step) + 1)
    return [last - step * (count - 1 - i) for i in range(count)]


def _landings(attempts: Iterable[AttemptRun], window: Window) -> dict[tuple[str, str], AttemptRun]:
    """Each task's latest done attempt, for the tasks whose landing is in the window."""
    latest: dict[tuple[str, str], AttemptRun] = {}
    for run in attempts:
        if run.state is RunState.DONE and run.ended is not None:
            key = (run.repo, run.task)
            if key not in latest or run.number > latest[key].number:
                latest[key] = run
    return {key: run for key, run in latest.items() if window.holds(run.ended)}


def _series(key: str, moments: Sequence[datetime], starts: list[datetime], step: timedelta) -> dict[str, Any]:
    counts = Counter(_floor(m, step) for m in moments)
    buckets: list[dict[str, Any]] = [{"start": format_time(s), "count": counts.get(s, 0)} for s in starts]
    shown = sum(counts.get(s, 0) for s in starts)
    return {
        "label": LABELS[key],
        "unit": "tasks",
        "buckets": buckets,
        "formula": FORMULAS[key],
        "inputs": {"landed": shown, "buckets": len(buckets)},
    }


def scope_metrics(
    attempts: Sequence[AttemptRun],
    tasks: Sequence[TaskTimes],
    escalations: Sequence[EscalationRecord],
    window: Window,
) -> dict[str, Any]:
    """Every metric over one set of records (a repo's, or the ecosystem's)."""
    by_task: dict[tuple[str, str], list[AttemptRun]] = defaultdict(list)
    for run in attempts:
        by_task[(run.repo, run.task)].append(run)
    first = {key: min(runs, key=lambda r: r.number) for key, runs in by_task.items()}
    times = {(t.repo, t.task): t for t in tasks}
    landings = _landings(attempts, window)
    in_window = [r for r in attempts if window.holds(attempt_time(r))]
    landed_moments = [run.ended for run in landings.values() if run.ended is not None]
    return {
        "landed": {
            "label": LABELS["landed"],
            "value": len(landings),
            "unit": "tasks",
            "formula": FORMULAS["landed"],
            "inputs": {"landed": len(landings)},
        },
        "landed_per_hour": _series(
            "landed_per_hour", landed_moments, _bucket_starts(window, HOUR, HOURLY_SPAN, 24), HOUR
        ),
        "landed_per_day": _series(
            "landed_per_day", landed_moments, _bucket_starts(window, DAY, None, MAX_DAYS), DAY
        ),
        "lead_time": _lead_time(landings, first, times),
        "dispatch_latency": _dispatch_latency(first, times, window),
        "first_attempt_success": _first_success(in_window),
        "merge_success": _merge_success(in_window),
        "gate_failure_rates": _gate_rates(in_window),
        "failure_classes": _failure_classes(in_window, _bucket_starts(window, DAY, None, MAX_DAYS)),
        "escalations": _escalations(escalations, window),
        "cost_per_landed": _cost(landings, by_task),
    }


def _lead_time(
    landings: dict[tuple[str, str], AttemptRun],
    first: dict[tuple[str, str], AttemptRun],
    times: dict[tuple[str, str], TaskTimes],
) -> dict[str, Any]:
    samples: list[float] = []
    unknown = 0
    for key, run in landings.items():
        task = times.get(key)
        ready = ready_time(task, first[key].started) if task is not None else None
        if ready is None or run.ended is None:
            unknown += 1
            continue
        samples.append(max(0.0, (run.ended - ready).total_seconds()))
    return _spread("lead_time", samples, {"landed": len(landings), "without_ready_time": unknown})


def _dispatch_latency(
    first: dict[tuple[str, str], AttemptRun], times: dict[tuple[str, str], TaskTimes], window: Window
) -> dict[str, Any]:
    samples: list[float] = []
    dispatched = unknown = 0
    for key, run in first.items():
        if run.number != 1 or not window.holds(run.started) or run.started is None:
            continue
        dispatched += 1
        task = times.get(key)
        ready = ready_time(task, run.started) if task is not None else None
        if ready is None:
            unknown += 1
            continue
        samples.append((run.started - ready).total_seconds())
    return _spread("dispatch_latency", samples, {"first_attempts": dispatched, "without_ready_time": unknown})


def _first_success(in_window: Sequence[AttemptRun]) -> dict[str, Any]:
    ended = [r for r in in_window if r.number == 1 and r.state in ENDED]
    landed = sum(1 for r in ended if r.state is RunState.DONE)
    return {
        "label": LABELS["first_attempt_success"],
        "value": _rate(landed, len(ended)),
        "unit": "%",
        "formula": FORMULAS["first_attempt_success"],
        "inputs": {"landed": landed, "first_attempts_ended": len(ended)},
    }


def _merge_success(in_window: Sequence[AttemptRun]) -> dict[str, Any]:
    merged = sum(1 for r in in_window if r.state is RunState.DONE and r.landed_commit)
    conflicts = sum(1 for r in in_window if r.state is RunState.FAILED and r.failure == MERGE_CONFLICT)
    pending = sum(1 for r in in_window if r.state is RunState.MERGE_PENDING)
    landing = merged + conflicts + pending
    return {
        "label": LABELS["merge_success"],
        "value": _rate(merged, landing),
        "unit": "%",
        "formula": FORMULAS["merge_success"],
        "inputs": {
            "merged": merged,
            "merge_conflicts": conflicts,
            "merge_pending": pending,
            "landing_attempts": landing,
        },
    }


def _gate_rates(in_window: Sequence[AttemptRun]) -> dict[str, Any]:
    ran: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    for run in in_window:
        for gate, status in run.gates:
            if status is not GateStatus.SKIPPED:
                ran[gate] += 1
            if status is GateStatus.BLOCKED:
                blocked[gate] += 1
    gates = [
        {
            "gate": gate,
            "value": _rate(blocked[gate], ran[gate]),
            "inputs": {"blocked": blocked[gate], "ran": ran[gate]},
        }
        for gate in sorted(ran, key=lambda g: (-blocked[g], g))
    ]
    gated = sum(1 for r in in_window if any(s is not GateStatus.SKIPPED for _, s in r.gates))
    return {
        "label": LABELS["gate_failure_rates"],
        "unit": "%",
        "gates": gates,
        "formula": FORMULAS["gate_failure_rates"],
        "inputs": {"gated_attempts": gated, "attempts": len(in_window)},
    }


def _failure_classes(in_window: Sequence[AttemptRun], starts: list[datetime]) -> dict[str, Any]:
    failed = [r for r in in_window if r.state is RunState.FAILED]
    per_day: dict[datetime, Counter[str]] = defaultdict(Counter)
    for run in failed:
        moment = attempt_time(run)
        if moment is not None:
            per_day[_floor(moment, DAY)][run.failure or UNCLASSIFIED] += 1
    totals: Counter[str] = Counter()
    for counts in per_day.values():
        totals.update(counts)
    days = [
        {
            "start": format_time(s),
            "counts": dict(sorted(per_day[s].items())),
            "total": sum(per_day[s].values()),
        }
        for s in starts
    ]
    return {
        "label": LABELS["failure_classes"],
        "unit": "attempts",
        "classes": [cls for cls, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))],
        "days": days,
        "totals": dict(sorted(totals.items())),
        "formula": FORMULAS["failure_classes"],
        "inputs": {"failed_attempts": len(failed), "days": len(days)},
    }


def _escalations(records: Sequence[EscalationRecord], window: Window) -> dict[str, Any]:
    shown = [e for e in records if window.holds(e.opened) or e.state is EscalationState.OPEN]
    counts = Counter(e.state for e in shown)
    waits = [
        max(0.0, (e.answered - e.opened).total_seconds())
        for e in shown
        if e.state is EscalationState.ANSWERED and e.answered is not None
    ]
    answer = _spread("escalations", waits, {"answered": len(waits)})
    return {
        "label": LABELS["escalations"],
        "open": counts.get(EscalationState.OPEN, 0),
        "answered": counts.get(EscalationState.ANSWERED, 0),
        "withdrawn": counts.get(EscalationState.WITHDRAWN, 0),
        "time_to_answer": {k: answer[k] for k in ("unit", "p50", "p95", "count")},
        "formula": FORMULAS["escalations"],
        "inputs": {"escalations": len(shown), "answered_with_time": len(waits)},
    }


def _cost(
    landings: dict[tuple[str, str], AttemptRun], by_task: dict[tuple[str, str], list[AttemptRun]]
) -> dict[str, Any]:
    runs = [run for key in landings for run in by_task[key]]
    costed = [r for r in runs if r.usage.cost_usd is not None]
    tokened = [r for r in runs if r.usage.tokens is not None]
    cost = sum(r.usage.cost_usd or 0.0 for r in costed)
    tokens = sum(r.usage.tokens or 0 for r in tokened)
    landed = len(landings)
    return {
        "label": LABELS["cost_per_landed"],
        "value": round(cost / landed, 4) if landed and costed else None,
        "unit": "USD",
        "tokens": round(tokens / landed, 1) if landed and tokened else None,
        "formula": FORMULAS["cost_per_landed"],
        "inputs": {
            "cost_usd": round(cost, 4),
            "tokens": tokens,
            "landed": landed,
            "attempts": len(runs),
            "attempts_with_usage": len(costed),
        },
    }


def flow_metrics(repos: Sequence[RepoRecords], now: datetime, since: timedelta) -> dict[str, Any]:
    """The metrics of each repo and of the ecosystem (all repos' records together) over the window
    ``[now - since, now]``, with the problems met reading the records."""
    try:
        window = Window(max(FAR_PAST, now - since), now)
    except OverflowError:  # a window longer than the calendar: everything
        window = Window(FAR_PAST, now)
    per_repo = {r.name: scope_metrics(r.attempts, r.tasks, r.escalations, window) for r in repos}
    everything = scope_metrics(
        [a for r in repos for a in r.attempts],
        [t for r in repos for t in r.tasks],
        [e for r in repos for e in r.escalations],
        window,
    )
    return {
        "generated_at": format_time(now),
        "window": {
            "start": format_time(window.start),
            "end": format_time(window.end),
            "seconds": since.total_seconds(),
        },
        "ecosystem": everything,
        "repos": per_repo,
        "problems": [{"repo": r.name, "problem": p} for r in repos for p in r.problems],
        "truncated": sorted(r.name for r in repos if r.truncated),
        "formulas": dict(FORMULAS),
    }
