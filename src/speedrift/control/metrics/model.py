"""The plain records the flow metrics are computed from, one per attempt, task and escalation.

Invariant: these are facts as read from disk (``collect``) or built by hand (tests); nothing here
reads a file or the clock. Times are timezone-aware UTC or None when the record does not say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RunState(StrEnum):
    """An attempt's state as ``attempt.json`` records it (records.AttemptState), plus ``unknown``."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    MERGE_PENDING = "merge-pending"
    WAITING = "waiting"
    UNKNOWN = "unknown"


# the attempt came to an end: landed, failed, or left its task waiting without landing
ENDED = frozenset({RunState.DONE, RunState.FAILED, RunState.WAITING})


class GateStatus(StrEnum):
    """One gate's result in an attempt: it blocked in one of its verdicts, ran and did not block,
    or never ran (skipped in every verdict)."""

    BLOCKED = "blocked"
    RAN = "ran"
    SKIPPED = "skipped"


class EscalationState(StrEnum):
    """A human_escalation record's fate: still open, answered (resolved or closed), withdrawn
    (superseded or cancelled: no answer to time)."""

    OPEN = "open"
    ANSWERED = "answered"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Usage:
    """What one attempt consumed: ``cost_usd`` and ``tokens`` (input + output, as agents/protocol.py's
    ``total_tokens``); None when the attempt's evidence records no usage."""

    cost_usd: float | None = None
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptRun:
    """One attempt of a task (``runs/<task>/<n>/``): ``attempt.json`` and ``evidence.json`` read."""

    repo: str
    task: str
    number: int
    state: RunState
    started: datetime | None
    ended: datetime | None  # attempt.json's last change, for an attempt that ended; else None
    failure: str | None = None  # the failure class of a failed attempt
    landed_commit: str | None = None  # the commit it put on the target branch
    gates: tuple[tuple[str, GateStatus], ...] = ()  # (gate, status) over all its verdicts
    usage: Usage = Usage()


@dataclass(frozen=True, slots=True)
class TaskTimes:
    """A task's times from the graph: ``created_at``, its time gates (``not_before``/``ready_after``)
    and when each of its blockers (``after``) completed (None: the blocker is not done, or unknown)."""

    repo: str
    task: str
    created: datetime | None
    time_gates: tuple[datetime, ...] = ()
    blockers_completed: tuple[datetime | None, ...] = ()


@dataclass(frozen=True, slots=True)
class EscalationRecord:
    """A ``human_escalation`` coordination record: when it was opened, and answered if it was."""

    repo: str
    id: str
    opened: datetime
    state: EscalationState
    answered: datetime | None = None
    task: str | None = None


@dataclass(frozen=True, slots=True)
class RepoRecords:
    """Everything one repo contributes, and what could not be read (each a sentence)."""

    name: str
    attempts: tuple[AttemptRun, ...] = ()
    tasks: tuple[TaskTimes, ...] = ()
    escalations: tuple[EscalationRecord, ...] = ()
    problems: tuple[str, ...] = ()
    truncated: bool = False  # more run directories than the collector reads
