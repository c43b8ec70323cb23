"""Quality metrics of one wave attempt, computed from what its trace bundle holds and nothing else.

Each metric says how well the wave's coordination and closure went, not how fast the agents were:

- ``unresolved_requests`` — requests and clarification requests still open when it was judged;
- ``integration_contradictions`` — conflicting claims in the integration summary that counted;
- ``doc_drift`` — doc gaps still open;
- ``proof_completeness`` — the share of the wave's tasks done with speedrift's gates passed;
- ``relaunches_by_role`` / ``relaunches_by_runtime`` — attempts after a task's first, by the role
  and the runtime of the relaunch;
- ``fallback_rate`` — the share of attempts that ran on a fallback runtime;
- ``time_to_first_ack_s`` — mean seconds from a request to the first ack that depends on it;
- ``time_to_blocker_resolution_s`` — mean seconds from a blocker's post to its resolution;
- ``clarification_resolution_rate`` — resolved clarification requests over all of them;
- ``human_escalation_rate`` — human escalations per wave task;
- ``evaluator_reversals`` — Evaluator verdicts that turned the previous one round.

A metric with nothing to measure is ``None``, never a made-up 0 or 1. Pure: records in, numbers
out; the cumulative view (:func:`cumulative`) only sums and averages what each attempt reported.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from speedrift.coord.records import OPEN_STATUSES, Kind, Record, Status
from speedrift.plans.closure import Closure, GapKind, StageRecord
from speedrift.plans.spec import ClosureStage

RESOLVED = frozenset({Status.RESOLVED, Status.CLOSED})


@dataclass(frozen=True)
class AttemptTrace:
    """One attempt at a wave task: who ran it, on which runtime, and whether that was a fallback."""

    task: str
    attempt: int
    role: str
    runtime: str
    fallback: bool = False
    outcome: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "attempt": self.attempt,
            "role": self.role,
            "runtime": self.runtime,
            "fallback": self.fallback,
            "outcome": self.outcome,
        }


def measure(
    *,
    task_count: int,
    verified: int,
    attempts: Sequence[AttemptTrace],
    records: Mapping[str, Record],
    stages: Sequence[StageRecord],
    decision: Closure,
) -> dict[str, Any]:
    """Every metric of the module docstring for one wave attempt."""
    by_kind: dict[Kind, list[Record]] = {}
    for record in records.values():
        by_kind.setdefault(record.kind, []).append(record)
    asks = by_kind.get(Kind.REQUEST, []) + by_kind.get(Kind.CLARIFICATION_REQUEST, [])
    clarifications = by_kind.get(Kind.CLARIFICATION_REQUEST, [])
    relaunches = [item for item in attempts if item.attempt > 1]
    counted_integration = decision.records.get(ClosureStage.INTEGRATION)
    contradictions = 0
    for stage in stages:
        if stage.stage is ClosureStage.INTEGRATION and stage.record == counted_integration:
            claims = stage.output.get("conflicting_claims")
            contradictions = len(claims) if isinstance(claims, list) else 0
    return {
        "unresolved_requests": sum(1 for record in asks if record.status in OPEN_STATUSES),
        "integration_contradictions": contradictions,
        "doc_drift": sum(1 for gap in decision.open_gaps if gap.kind is GapKind.DOC),
        "proof_completeness": _ratio(verified, task_count),
        "relaunches_by_role": dict(sorted(Counter(item.role for item in relaunches).items())),
        "relaunches_by_runtime": dict(sorted(Counter(item.runtime for item in relaunches).items())),
        "fallback_rate": _ratio(sum(1 for item in attempts if item.fallback), len(attempts)),
        "time_to_first_ack_s": _mean(_ack_delays(by_kind)),
        "time_to_blocker_resolution_s": _mean(
            [
                (record.at - record.created_at).total_seconds()
                for record in by_kind.get(Kind.BLOCKER, [])
                if record.status in RESOLVED
            ]
        ),
        "clarification_resolution_rate": _ratio(
            sum(1 for record in clarifications if record.status in RESOLVED), len(clarifications)
        ),
        "human_escalation_rate": _ratio(len(by_kind.get(Kind.HUMAN_ESCALATION, [])), task_count),
        "evaluator_reversals": _reversals(stages),
    }


def _ack_delays(by_kind: Mapping[Kind, list[Record]]) -> list[float]:
    first: dict[str, float] = {}
    asked = {record.id: record for record in by_kind.get(Kind.REQUEST, [])}
    for ack in sorted(by_kind.get(Kind.ACK, []), key=lambda record: record.seq):
        for ident in ack.depends_on:
            request = asked.get(ident)
            if request is not None and ident not in first:
                first[ident] = (ack.created_at - request.created_at).total_seconds()
    return list(first.values())


def _reversals(stages: Sequence[StageRecord]) -> int:
    verdicts = [stage.output.get("overall") for stage in stages if stage.stage is ClosureStage.EVALUATION]
    return sum(1 for before, after in itertools.pairwise(verdicts) if before != after)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: Sequence[float]) -> float | None:
    return round(fmean(values), 3) if values else None


SUMMED = ("unresolved_requests", "integration_contradictions", "doc_drift", "evaluator_reversals")
AVERAGED = (
    "proof_completeness",
    "fallback_rate",
    "time_to_first_ack_s",
    "time_to_blocker_resolution_s",
    "clarification_resolution_rate",
    "human_escalation_rate",
)
COUNTED = ("relaunches_by_role", "relaunches_by_runtime")


def cumulative(per_wave: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Across waves: counts summed, rates averaged over the waves that measured them (None when
    none did), relaunch tables summed key by key."""
    out: dict[str, Any] = {"waves": len(per_wave)}
    for name in SUMMED:
        out[name] = sum(int(item.get(name) or 0) for item in per_wave)
    for name in AVERAGED:
        out[name] = _mean([float(item[name]) for item in per_wave if item.get(name) is not None])
    for name in COUNTED:
        total: Counter[str] = Counter()
        for item in per_wave:
            table = item.get(name)
            if isinstance(table, Mapping):
                total.update({str(key): int(value) for key, value in table.items()})
        out[name] = dict(sorted(total.items()))
    return out
