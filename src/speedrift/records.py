"""The typed records of ``<repo>/.speedrift/``: one reader and one writer for each.

- ``attempt.json`` — one attempt's state as it changes (:class:`AttemptRecord`, :class:`AttemptState`);
- ``evidence.json`` — what the attempt proved (:class:`EvidenceRecord`);
- ``service/heartbeat.json`` — the per-repo service's pulse, written every tick (:class:`Heartbeat`);
- ``events.jsonl`` — the agent's events, one JSON line each (:class:`Event`), stamped under ``ts``
  (:data:`EVENT_TIME_KEY`), the one key every reader of the log uses.

Invariant: these records are written only here and read only here, in one shape each. Writes go
through :mod:`speedrift.fsutil` (atomic replace; events are appended one flushed line at a time)
and run records (attempt, evidence, events) through :func:`speedrift.redact.redact_value`, so none
carries a credential. A reader never raises on a missing, torn, foreign or hostile file: it answers
None (or skips the line); a typed field of the wrong type reads as None (or its default), and the
record's ``raw`` keeps every key as it is on disk. Paths come from :mod:`speedrift.layout`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson

from speedrift import fsutil, layout, redact, safejson
from speedrift.procs import identity_of
from speedrift.times import format_time, iso_utc, now_utc, parse_time

EVENT_TIME_KEY = "ts"  # the event line's timestamp (ISO 8601, UTC, milliseconds)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _write_run_record(path: Path, value: Mapping[str, Any], *, durable: bool = True) -> None:
    # run records never carry a credential: see speedrift/redact.py
    data = orjson.dumps(redact.redact_value(dict(value)), option=orjson.OPT_INDENT_2)
    fsutil.write_atomic(path, data, durable=durable)


# --- attempt.json -------------------------------------------------------------------------------------
class AttemptState(StrEnum):
    """``attempt.json``'s ``state``: running until the attempt is done, failed, or waits to land."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    MERGE_PENDING = "merge-pending"
    # ended without landing and without failing: it waits (a failure already on the target
    # branch, or the target moved outside the merge queue); the task is open, paused, needs-human
    WAITING = "waiting"


FINISHED_STATES = frozenset({AttemptState.DONE, AttemptState.FAILED})


@dataclass(frozen=True)
class AttemptRecord:
    """``attempt.json`` as read. ``raw`` is the record as on disk (every key: ``pid``, ``started``,
    ``updated``, ``state``, ``runtime``, ``model``, ``failure``, ``reason``, ``landed_commit``,
    ``outside_writes``, ``agent_pgid`` …), for display and ``--json``; the properties are typed."""

    raw: dict[str, Any]

    @property
    def state(self) -> AttemptState | None:
        """The state, None when absent or not one speedrift writes."""
        value = self.raw.get("state")
        if not isinstance(value, str):
            return None
        try:
            return AttemptState(value)
        except ValueError:
            return None

    @property
    def state_text(self) -> str:
        """The state as the record says it (for display), ``unknown`` when it says none."""
        return _text(self.raw.get("state")) or "unknown"

    @property
    def pid(self) -> int | None:
        return _int(self.raw.get("pid"))

    @property
    def started(self) -> str | None:
        return _text(self.raw.get("started"))

    @property
    def updated(self) -> str | None:
        return _text(self.raw.get("updated"))

    @property
    def runtime(self) -> str | None:
        return _text(self.raw.get("runtime"))

    @property
    def failure(self) -> str | None:
        return _text(self.raw.get("failure"))

    @property
    def reason(self) -> str | None:
        return _text(self.raw.get("reason"))

    @property
    def last_change(self) -> datetime | None:
        """When the record last changed (``updated``, else ``started``)."""
        return parse_time(self.updated) or parse_time(self.started)


def read_attempt(run_dir: Path) -> AttemptRecord | None:
    raw = layout.read_record(layout.attempt_record_path(run_dir))
    return None if raw is None else AttemptRecord(raw)


def update_attempt(run_dir: Path, changes: Mapping[str, Any], *, durable: bool | None = None) -> None:
    """Merge ``changes`` into the attempt's record and stamp ``updated``; a new record starts with
    this process's ``pid``, ``proc_start`` (its start time) and ``started``. A ``state`` outside
    :class:`AttemptState` is a bug (ValueError) — nothing is written then.

    ``durable`` (default: whether ``changes`` ends the attempt's run — a ``state`` other than
    running): fsynced, so it survives a power loss. What an attempt records on its way (its
    runtime, machine, sandbox, the hooks before it, its agent's process group) is atomic for every
    reader but not fsynced: after a power loss the attempt is judged from the graph's claim and the
    worktree manifest, which are, and a reader of a missing field fails closed (the hooks before
    the attempt missing: no hook runs). Markers that must not repeat after a crash pass True."""
    if "state" in changes:
        AttemptState(changes["state"])
    if durable is None:
        durable = changes.get("state", AttemptState.RUNNING) != AttemptState.RUNNING
    path = layout.attempt_record_path(run_dir)
    current = layout.read_record(path) or {
        "pid": os.getpid(),
        "proc_start": identity_of().started,  # with the pid: a reused pid or a zombie is not this process
        "started": format_time(now_utc()),
    }
    current.update(changes)
    current["updated"] = format_time(now_utc())
    _write_run_record(path, current, durable=durable)


# --- evidence.json ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvidenceRecord:
    """``evidence.json`` as read: what the attempt proved (gates, diff stats, usage and cost, the
    failure's class and recovery). ``raw`` is the record as on disk; the properties are typed."""

    raw: dict[str, Any]

    @property
    def task(self) -> str | None:
        return _text(self.raw.get("task"))

    @property
    def reason(self) -> str | None:
        return _text(self.raw.get("reason"))

    @property
    def usage(self) -> dict[str, Any]:
        """Token usage and cost (``cost_usd``); empty when not recorded."""
        return _dict(self.raw.get("usage")) or {}

    @property
    def diff(self) -> dict[str, Any] | None:
        return _dict(self.raw.get("diff"))

    @property
    def gates(self) -> list[dict[str, Any]]:
        """The gate verdicts (each an evidence bundle with ``passed`` and ``summary``)."""
        value = self.raw.get("gates")
        return [g for g in value if isinstance(g, dict)] if isinstance(value, list) else []


def read_evidence(run_dir: Path) -> EvidenceRecord | None:
    raw = layout.read_record(layout.evidence_path(run_dir))
    return None if raw is None else EvidenceRecord(raw)


def write_evidence(run_dir: Path, evidence: Mapping[str, Any]) -> None:
    _write_run_record(layout.evidence_path(run_dir), evidence)


# --- service/heartbeat.json ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Heartbeat:
    """The service's heartbeat, written every tick. Read back, a field of the wrong type is its default."""

    pid: int | None = None
    host: str | None = None
    at: str | None = None  # when it was written (``format_time``)
    state: str | None = None  # running | paused: <why> | stopping | stopped
    running: tuple[str, ...] = ()  # the tasks with an attempt in progress
    max_agents: int | None = None
    paused_runtimes: dict[str, str] = field(default_factory=dict)  # runtime -> paused until
    retries: dict[str, Any] | None = None  # the retry halt's verdict (fleet/halt.py)
    hub: bool = False  # started with --hub: claims only under the hub's lease
    paused: str | None = None  # --hub without authority: why it is idle

    @property
    def at_time(self) -> datetime | None:
        return parse_time(self.at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "at": self.at,
            "state": self.state,
            "running": list(self.running),
            "max_agents": self.max_agents,
            "paused_runtimes": dict(self.paused_runtimes),
            "retries": self.retries,
            "hub": self.hub,
            "paused": self.paused,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Heartbeat:
        running = raw.get("running")
        runtimes = _dict(raw.get("paused_runtimes")) or {}
        return cls(
            pid=_int(raw.get("pid")),
            host=_text(raw.get("host")),
            at=_text(raw.get("at")),
            state=_text(raw.get("state")),
            running=tuple(str(task) for task in running) if isinstance(running, list) else (),
            max_agents=_int(raw.get("max_agents")),
            paused_runtimes={str(k): str(v) for k, v in runtimes.items()},
            retries=_dict(raw.get("retries")),
            hub=bool(raw.get("hub")),
            paused=_text(raw.get("paused")),
        )


def read_heartbeat(repo: Path) -> Heartbeat | None:
    raw = layout.read_record(layout.heartbeat_path(repo))
    return None if raw is None else Heartbeat.from_dict(raw)


def write_heartbeat(repo: Path, beat: Heartbeat) -> None:
    path = layout.heartbeat_path(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, orjson.dumps(beat.to_dict()))


# --- events.jsonl -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """One line of ``events.jsonl``: ``{"ts", "kind", "text"[, "data"][, "progress": false]}``."""

    kind: str
    text: str = ""
    ts: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    progress: bool = True  # counts as progress for stall detection

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {EVENT_TIME_KEY: self.ts, "kind": self.kind, "text": self.text}
        if self.data:
            record["data"] = self.data
        if not self.progress:
            record["progress"] = False
        return record


def event_stamp(moment: datetime | None = None) -> str:
    """An event's ``ts``: ISO 8601 in UTC to the millisecond, ``Z``-suffixed."""
    return iso_utc(moment or now_utc(), timespec="milliseconds")


def open_event_log(run_dir: Path) -> IO[str]:
    """The run's event log, opened to append (the caller closes it)."""
    return layout.events_path(run_dir).open("a", encoding="utf-8")


def append_event(log: IO[str], event: Event) -> None:
    """Write one event as one flushed JSON line, stamped now when it has no ``ts``.

    The log never carries a credential the agent printed: see speedrift/redact.py."""
    record = event.to_dict()
    if record[EVENT_TIME_KEY] is None:
        record[EVENT_TIME_KEY] = event_stamp()
    line = json.dumps(redact.redact_value(record), ensure_ascii=False, default=str)
    log.write(safejson.scrub_surrogates(line) + "\n")  # a UTF-8 log cannot hold a lone surrogate
    log.flush()


def parse_event(raw: bytes | str) -> Event | None:
    """One event line, or None when it is not a JSON object (torn, blank, foreign, hostile: invalid
    UTF-8, nested past 128 levels — see :mod:`speedrift.safejson`)."""
    try:
        value = safejson.loads(raw, replace_surrogates=True)
    except safejson.MalformedJson:
        return None
    if not isinstance(value, dict):
        return None
    return Event(
        kind=_text(value.get("kind")) or "",
        text=_text(value.get("text")) or "",
        ts=_text(value.get(EVENT_TIME_KEY)),
        data=_dict(value.get("data")) or {},
        progress=value.get("progress") is not False,
    )


def read_events(run_dir: Path) -> Iterator[Event]:
    """Every event of the run, oldest first (none when there is no log)."""
    try:
        handle = open(layout.events_path(run_dir), "rb")  # noqa: SIM115 - closed by the with below
    except OSError:
        return
    with handle:
        for raw in handle:
            event = parse_event(raw)
            if event is not None:
                yield event


def tail_events(run_dir: Path, limit_bytes: int) -> tuple[list[Event], bool]:
    """The events in the log's last ``limit_bytes`` (a line cut by that limit is dropped), and
    whether older ones were left out."""
    try:
        with open(layout.events_path(run_dir), "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit_bytes))
            data = handle.read()
    except OSError:
        return [], False
    truncated = size > limit_bytes
    lines = data.split(b"\n")
    if truncated:
        lines = lines[1:]
    return [e for e in map(parse_event, lines) if e is not None], truncated


def new_event_lines(run_dir: Path, position: int) -> tuple[list[bytes], int]:
    """The complete lines written after byte ``position`` (a line still being written waits for the
    next call), and the position after them — for following a live log."""
    try:
        with open(layout.events_path(run_dir), "rb") as handle:
            handle.seek(position)
            chunk = handle.read()
    except OSError:
        return [], position
    complete = chunk[: chunk.rfind(b"\n") + 1]
    return complete.splitlines(), position + len(complete)
