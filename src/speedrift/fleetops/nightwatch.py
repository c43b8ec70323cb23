"""The nightwatch's judgment: how far an agent's or a runtime×model's recent behaviour has drifted.

From the machine-wide feed of finished attempts (:mod:`speedrift.attemptlog`) it builds, per
subject, a sliding window of the newest ``[nightwatch] window`` counted attempts — subjects are
``agent:<name>`` (attempts of a standing agent's runs) and ``model:<runtime>:<model>`` (every
attempt, by the runtime and model it ran on; ``default`` when the runtime's own default model ran).
An attempt counts as fleet/halt.py counts one (one rule, :data:`speedrift.fleet.halt.NOT_COUNTED`):
done or failed, and not failed by a usage limit — a provider's limit or a cancel says nothing about
the work. Over the window:

- error rate: failed / counted;
- gate success: gates passed / (passed + failed); a window in which no gate ran counts as 1.0, and
  the verdict says so;
- health: the share of attempts that were healthy — not stalled, not ended by a budget, not
  crashed, and with a first event within ``slow_first_event_s`` (an attempt that reported no
  first-event time, a shell task, is not held against it).

``drift = error_weight·error + success_weight·(1 − success) + health_weight·(1 − health)``; the
level is the highest threshold the score reaches (``≥``): minor, moderate, severe, critical.
A window with no counted attempt is Normal; one with fewer than ``min_samples`` is Normal too, and
says how many it had. (terraphim's nightwatch counted stderr lines whose text said "error", derived
success from the same number and never fed health; these metrics are three separate facts.)

Pure: no clock, no files. The hub step that acts on the verdicts is :mod:`.nightwatch_step`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from speedrift.attemptlog import AttemptEntry
from speedrift.fleet.halt import NOT_COUNTED
from speedrift.fleet.opsconfig import NightwatchConfig
from speedrift.fleetops.state import Drift, DriftLevel, FleetState
from speedrift.times import format_time

AGENT_PREFIX = "agent:"
MODEL_PREFIX = "model:"
DEFAULT_MODEL = "default"  # the model part of a subject whose attempts named none
COUNTED_STATUSES = ("done", "failed")  # as fleet/halt.py: waiting and cancelled attempts are not judged
RANK = {level: index for index, level in enumerate(DriftLevel)}  # normal 0 … critical 4


class SubjectKind(StrEnum):
    AGENT = "agent"
    MODEL = "model"


def agent_subject(name: str) -> str:
    return f"{AGENT_PREFIX}{name}"


FRESH = "nightwatch:"  # state.slots key prefix + subject: attempts before it no longer count


def judge_afresh(state: FleetState, name: str, now: datetime) -> None:
    """Agent ``name``'s attempts before ``now`` stop counting (a lifted Critical pause: without
    this it would stay Critical, and unpaused, forever)."""
    state.slots[FRESH + agent_subject(name)] = now


def model_key(runtime: str, model: str | None) -> str:
    """``runtime:model`` (the key of :attr:`FleetState.models`)."""
    return f"{runtime}:{model or DEFAULT_MODEL}"


def model_subject(runtime: str, model: str | None) -> str:
    return f"{MODEL_PREFIX}{model_key(runtime, model)}"


def split_subject(subject: str) -> tuple[SubjectKind, str]:
    """``agent:x`` → (AGENT, "x"); ``model:claude:sonnet`` → (MODEL, "claude:sonnet")."""
    if subject.startswith(AGENT_PREFIX):
        return SubjectKind.AGENT, subject[len(AGENT_PREFIX) :]
    if subject.startswith(MODEL_PREFIX):
        return SubjectKind.MODEL, subject[len(MODEL_PREFIX) :]
    raise ValueError(f"{subject!r} is not a nightwatch subject (agent:NAME or model:RUNTIME:MODEL)")


def counts(entry: AttemptEntry) -> bool:
    """Whether an attempt is judged: done or failed, and not by a class that says nothing about
    the work (fleet/halt.py's NOT_COUNTED: a usage limit)."""
    return entry.status in COUNTED_STATUSES and entry.failure not in NOT_COUNTED


def subjects_of(entry: AttemptEntry) -> list[str]:
    """The subjects an attempt belongs to: its runtime×model always, its agent when it has one."""
    found = [model_subject(entry.runtime, entry.model)]
    if entry.agent:
        found.append(agent_subject(entry.agent))
    return found


def windows(
    entries: Iterable[AttemptEntry], window: int, since: Mapping[str, datetime] | None = None
) -> dict[str, list[AttemptEntry]]:
    """Per subject, its newest ``window`` counted attempts, oldest first. ``since``: per subject,
    attempts that finished before it are left out (an agent judged afresh after a pause)."""
    marks = since or {}
    ordered = sorted((e for e in entries if counts(e)), key=lambda e: e.at)
    found: dict[str, list[AttemptEntry]] = {}
    for entry in ordered:
        for subject in subjects_of(entry):
            mark = marks.get(subject)
            if mark is None or entry.at >= mark:
                found.setdefault(subject, []).append(entry)
    return {subject: kept[-window:] for subject, kept in found.items()}


# --- the metrics ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metrics:
    counted: int
    failed: int
    gates_passed: int
    gates_failed: int
    stalled: int
    over_budget: int
    crashed: int
    slow_first_event: int
    unhealthy: int

    @property
    def error_rate(self) -> float:
        return self.failed / self.counted if self.counted else 0.0

    @property
    def gates_run(self) -> int:
        return self.gates_passed + self.gates_failed

    @property
    def success_rate(self) -> float:
        """Gates passed over gates run; 1.0 when no gate ran (see :attr:`gates_run`)."""
        return self.gates_passed / self.gates_run if self.gates_run else 1.0

    @property
    def health(self) -> float:
        return (self.counted - self.unhealthy) / self.counted if self.counted else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "error_rate": round(self.error_rate, 4),
            "success_rate": round(self.success_rate, 4),
            "health": round(self.health, 4),
            "counted": self.counted,
            "failed": self.failed,
            "gates_passed": self.gates_passed,
            "gates_failed": self.gates_failed,
            "gates_run": self.gates_run,
            "stalled": self.stalled,
            "over_budget": self.over_budget,
            "crashed": self.crashed,
            "slow_first_event": self.slow_first_event,
            "unhealthy": self.unhealthy,
        }


def _slow(entry: AttemptEntry, limit: float) -> bool:
    return entry.first_event_s is not None and entry.first_event_s > limit


def measure(window: Sequence[AttemptEntry], slow_first_event_s: float) -> Metrics:
    """The metrics of one window (its entries are all counted ones; see :func:`windows`)."""
    return Metrics(
        counted=len(window),
        failed=sum(1 for e in window if e.status == "failed"),
        gates_passed=sum(max(0, e.gates_passed) for e in window),
        gates_failed=sum(max(0, e.gates_failed) for e in window),
        stalled=sum(1 for e in window if e.stalled),
        over_budget=sum(1 for e in window if e.over_budget),
        crashed=sum(1 for e in window if e.crashed),
        slow_first_event=sum(1 for e in window if _slow(e, slow_first_event_s)),
        unhealthy=sum(
            1 for e in window if e.stalled or e.over_budget or e.crashed or _slow(e, slow_first_event_s)
        ),
    )


def score_of(metrics: Metrics, config: NightwatchConfig) -> float:
    raw = (
        config.error_weight * metrics.error_rate
        + config.success_weight * (1 - metrics.success_rate)
        + config.health_weight * (1 - metrics.health)
    )
    return round(raw, 9)  # 0.4·0.25 is 0.1 on the threshold, not a hair below it


def level_of(score: float, config: NightwatchConfig) -> DriftLevel:
    """The highest level whose threshold the score reaches (``≥``)."""
    for level, floor in (
        (DriftLevel.CRITICAL, config.critical),
        (DriftLevel.SEVERE, config.severe),
        (DriftLevel.MODERATE, config.moderate),
        (DriftLevel.MINOR, config.minor),
    ):
        if score >= floor:
            return level
    return DriftLevel.NORMAL


# --- the verdict ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    subject: str  # "agent:<name>" | "model:<runtime>:<model>"
    level: DriftLevel
    score: float
    metrics: Metrics
    why: str  # one line a person reads

    @property
    def kind(self) -> SubjectKind:
        return split_subject(self.subject)[0]

    @property
    def name(self) -> str:
        """The agent's name, or the ``runtime:model`` key."""
        return split_subject(self.subject)[1]

    @property
    def samples(self) -> int:
        return self.metrics.counted

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "level": self.level.value,
            "score": round(self.score, 4),
            "samples": self.samples,
            "metrics": self.metrics.to_json(),
            "why": self.why,
        }


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _explain(subject: str, level: DriftLevel, score: float, m: Metrics, config: NightwatchConfig) -> str:
    if m.counted == 0:
        return f"{subject} normal: no counted attempt in its window"
    if m.counted < config.min_samples:
        return (
            f"{subject} normal: {m.counted} samples, judged from {config.min_samples} "
            f"(the score would be {score:.3f})"
        )
    gates = (
        f"gates {m.gates_passed}/{m.gates_run} passed ({_pct(m.success_rate)})"
        if m.gates_run
        else "no gate ran (success counted as 1.0)"
    )
    causes = [
        f"{n} {what}"
        for n, what in (
            (m.stalled, "stalled"),
            (m.over_budget, "over budget"),
            (m.crashed, "crashed"),
            (m.slow_first_event, f"first event after {config.slow_first_event_s:g}s"),
        )
        if n
    ]
    health = f"{m.counted - m.unhealthy} of {m.counted} healthy" + (
        f" ({', '.join(causes)})" if causes else ""
    )
    return (
        f"{subject} {level.value} (score {score:.3f} over {m.counted} attempts): "
        f"{m.failed} of {m.counted} failed ({_pct(m.error_rate)}), {gates}, {health}"
    )


def judge(subject: str, window: Sequence[AttemptEntry], config: NightwatchConfig) -> Verdict:
    """One subject's verdict over its window (already limited to counted attempts)."""
    metrics = measure(window, config.slow_first_event_s)
    score = score_of(metrics, config)
    level = level_of(score, config) if metrics.counted >= config.min_samples else DriftLevel.NORMAL
    return Verdict(subject, level, score, metrics, _explain(subject, level, score, metrics, config))


def evaluate(
    entries: Iterable[AttemptEntry],
    config: NightwatchConfig,
    *,
    subjects: Iterable[str] = (),
    since: Mapping[str, datetime] | None = None,
) -> dict[str, Verdict]:
    """Every subject's verdict: those with attempts in ``entries`` and those named in ``subjects``
    (known agents and earlier verdicts, judged Normal on an empty window)."""
    found = windows(entries, config.window, since)
    names = sorted({*found, *subjects})
    return {subject: judge(subject, found.get(subject, []), config) for subject in names}


# --- what the dashboard shows --------------------------------------------------------------------------
def drift_rows(state: FleetState, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per judged subject for the dashboard and ``why``: agents first, then runtime×models,
    worst level first. A pause is shown when set (``paused`` is whether it holds at ``now``; without
    ``now``, whether it is set)."""
    rows: list[dict[str, Any]] = []
    for name, agent in state.agents.items():
        pause = agent.pause
        rows.append(
            {
                "subject": agent_subject(name),
                "kind": SubjectKind.AGENT.value,
                "name": name,
                **_drift_json(agent.drift),
                "concurrency": agent.concurrency,
                "paused": pause is not None and (now is None or pause.active(now)),
                "pause": None
                if pause is None
                else {
                    "by": pause.by,
                    "reason": pause.reason,
                    "since": format_time(pause.since),
                    "until": format_time(pause.until) if pause.until else None,
                },
            }
        )
    for key, drift in state.models.items():
        rows.append(
            {
                "subject": f"{MODEL_PREFIX}{key}",
                "kind": SubjectKind.MODEL.value,
                "name": key,
                **_drift_json(drift),
                "concurrency": None,
                "paused": False,
                "pause": None,
            }
        )
    rows.sort(key=lambda r: (r["kind"] != SubjectKind.AGENT.value, -RANK[DriftLevel(r["level"])], r["name"]))
    return rows


def _drift_json(drift: Drift) -> dict[str, Any]:
    return {
        "level": drift.level.value,
        "score": round(drift.score, 4),
        "samples": drift.samples,
        "evaluated_at": format_time(drift.evaluated_at) if drift.evaluated_at else None,
        "changed_at": format_time(drift.changed_at) if drift.changed_at else None,
    }
