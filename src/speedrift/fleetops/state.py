"""The standing agents' durable state: what must survive a hub restart.

One JSON file in the hub directory (:func:`speedrift.hubdir.agents_state_path`), holding per agent
the last cron slot fired (so a slot fires exactly once across restarts), a safety agent's restarts
and when its last run ended (cooldown and cap), the nightwatch's level, score and lowered
concurrency, and a pause (who, why, since when, until when) — plus the nightwatch's levels per
runtime×model and named schedule marks (``slots``: the nightwatch's last evaluation, each repo's
last compound review).

Writers go through :meth:`StateStore.update`: an exclusive ``flock`` on the lock file, read,
change, atomic replace (:mod:`speedrift.fsutil`), so two writers never lose each other's change
and a crash never leaves half a file. A missing file is an empty state; an unreadable or foreign
one raises :class:`StateError` naming the file and the fix rather than silently forgetting pauses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import orjson

from speedrift import fsutil, hubdir
from speedrift.errors import SpeedriftError
from speedrift.times import format_time, parse_time

VERSION = 1
KEEP_RUNS = 20  # the newest run tasks remembered per agent
T = TypeVar("T")


class StateError(SpeedriftError):
    pass


class DriftLevel(StrEnum):
    NORMAL = "normal"
    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"
    CRITICAL = "critical"


@dataclass
class Pause:
    """Why an agent may not run: set by the nightwatch (Critical), a safety agent's restart cap,
    or a person; lifted by ``speedrift agents resume`` or, when ``until`` is set, after it."""

    since: datetime
    by: str  # "nightwatch" | "restart-cap" | "operator:<name>"
    reason: str
    until: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclass
class Drift:
    """The nightwatch's last verdict on one subject (an agent or a runtime×model)."""

    level: DriftLevel = DriftLevel.NORMAL
    score: float = 0.0
    samples: int = 0
    evaluated_at: datetime | None = None
    changed_at: datetime | None = None


@dataclass
class AgentState:
    name: str
    last_slot: datetime | None = None  # the newest cron slot fired (core agents)
    last_run_at: datetime | None = None  # when its newest run task was created
    runs: list[str] = field(default_factory=list)  # "repo:task" of its newest runs, newest last
    restarts: list[datetime] = field(default_factory=list)  # safety restarts inside the window
    exited_at: datetime | None = None  # when its last run ended (a safety agent's cooldown)
    drift: Drift = field(default_factory=Drift)
    concurrency: int | None = None  # lowered by the nightwatch; None: the configured max_concurrent
    pause: Pause | None = None

    def paused(self, now: datetime) -> bool:
        return self.pause is not None and self.pause.active(now)

    def remember_run(self, ref: str, now: datetime) -> None:
        self.runs = [*[r for r in self.runs if r != ref], ref][-KEEP_RUNS:]
        self.last_run_at = now


@dataclass
class FleetState:
    agents: dict[str, AgentState] = field(default_factory=dict)
    models: dict[str, Drift] = field(default_factory=dict)  # "runtime:model" → drift
    slots: dict[str, datetime] = field(default_factory=dict)  # named marks: "nightwatch", "compound:<repo>"

    def agent(self, name: str) -> AgentState:
        """The agent's state, created empty on first use."""
        return self.agents.setdefault(name, AgentState(name))


# --- (de)serialisation ---------------------------------------------------------------------------------
def _t(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _drift_out(drift: Drift) -> dict[str, Any]:
    return {
        "level": drift.level.value,
        "score": round(drift.score, 4),
        "samples": drift.samples,
        "evaluated_at": _t(drift.evaluated_at),
        "changed_at": _t(drift.changed_at),
    }


def _drift_in(raw: Any) -> Drift:
    if not isinstance(raw, dict):
        return Drift()
    try:
        level = DriftLevel(raw.get("level", "normal"))
    except ValueError:
        level = DriftLevel.NORMAL
    score = raw.get("score")
    samples = raw.get("samples")
    return Drift(
        level=level,
        score=float(score) if isinstance(score, (int, float)) else 0.0,
        samples=samples if isinstance(samples, int) else 0,
        evaluated_at=parse_time(raw.get("evaluated_at")),
        changed_at=parse_time(raw.get("changed_at")),
    )


def to_json(state: FleetState) -> dict[str, Any]:
    agents: dict[str, Any] = {}
    for name, agent in sorted(state.agents.items()):
        pause = agent.pause
        agents[name] = {
            "last_slot": _t(agent.last_slot),
            "last_run_at": _t(agent.last_run_at),
            "runs": agent.runs,
            "restarts": [format_time(t) for t in agent.restarts],
            "exited_at": _t(agent.exited_at),
            "drift": _drift_out(agent.drift),
            "concurrency": agent.concurrency,
            "pause": None
            if pause is None
            else {
                "since": format_time(pause.since),
                "by": pause.by,
                "reason": pause.reason,
                "until": _t(pause.until),
            },
        }
    return {
        "version": VERSION,
        "agents": agents,
        "models": {key: _drift_out(d) for key, d in sorted(state.models.items())},
        "slots": {key: format_time(t) for key, t in sorted(state.slots.items())},
    }


def from_json(raw: Any) -> FleetState:
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} agents state")
    state = FleetState()
    agents = raw.get("agents")
    for name, data in (agents if isinstance(agents, dict) else {}).items():
        if not isinstance(data, dict):
            continue
        agent = AgentState(str(name))
        agent.last_slot = parse_time(data.get("last_slot"))
        agent.last_run_at = parse_time(data.get("last_run_at"))
        runs = data.get("runs")
        agent.runs = [r for r in runs if isinstance(r, str)] if isinstance(runs, list) else []
        restarts = data.get("restarts")
        agent.restarts = [t for t in map(parse_time, restarts if isinstance(restarts, list) else []) if t]
        agent.exited_at = parse_time(data.get("exited_at"))
        agent.drift = _drift_in(data.get("drift"))
        concurrency = data.get("concurrency")
        agent.concurrency = concurrency if isinstance(concurrency, int) and concurrency >= 1 else None
        pause = data.get("pause")
        if isinstance(pause, dict) and (since := parse_time(pause.get("since"))) is not None:
            agent.pause = Pause(
                since=since,
                by=str(pause.get("by") or "unknown"),
                reason=str(pause.get("reason") or ""),
                until=parse_time(pause.get("until")),
            )
        state.agents[agent.name] = agent
    models = raw.get("models")
    for key, data in (models if isinstance(models, dict) else {}).items():
        state.models[str(key)] = _drift_in(data)
    slots = raw.get("slots")
    for key, value in (slots if isinstance(slots, dict) else {}).items():
        moment = parse_time(value)
        if moment is not None:
            state.slots[str(key)] = moment
    return state


# --- the store -------------------------------------------------------------------------------------------
class StateStore:
    """The hub's agents state file. ``read`` is lock-free (replacement is atomic)."""

    def __init__(self, hub: Path) -> None:
        self.path = hubdir.agents_state_path(hub)
        self.lock = hubdir.agents_state_lock_path(hub)

    def read(self) -> FleetState:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return FleetState()
        except OSError as exc:
            raise StateError(
                f"cannot read {self.path}: {exc.strerror or exc}", hint="make it readable"
            ) from None
        try:
            return from_json(orjson.loads(data))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise StateError(
                f"{self.path} is not speedrift's agents state ({exc})",
                hint="move it aside; the hub starts afresh (its agent pauses and fired slots are then lost)",
            ) from None

    def update(self, change: Callable[[FleetState], T]) -> T:
        """Apply ``change`` to the state under the lock and write it back atomically."""
        with fsutil.flocked(self.lock):
            state = self.read()
            result = change(state)
            fsutil.write_atomic(
                self.path,
                orjson.dumps(to_json(state), option=orjson.OPT_INDENT_2),
                mode=0o600,
                keep_mode=False,
            )
            return result
