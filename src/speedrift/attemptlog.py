"""The machine-wide log of finished attempts: one JSON line per attempt that ended, in any repo.

Spend (``speedrift spend``), budget admission (fleet/spend.py) and the nightwatch
(fleetops/nightwatch.py) all read this one feed, so what a task cost, what an agent spent today
and how often a runtime×model failed are counted from the same lines and never disagree. It is
written by the pipeline's outcome sites (fleet/merging.py, fleet/failures.py) beside the repo's
own ``outcomes.jsonl``, after the attempt's evidence is written, and by the role runner at the
end of each role's run (fleet/roles/runner.py).

The file is ``attempts.jsonl`` in the state home (:func:`speedrift.statehome.attempt_log_path`).
Writers append one whole line under an exclusive ``flock`` (fsynced); past :data:`ROTATE_BYTES`
the file becomes ``attempts.1.jsonl`` (one older generation is kept). Readers never raise on a
torn or foreign line: it is skipped. Nothing here decides anything; it only records and reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, statehome
from speedrift.times import format_time, parse_time

ROTATE_BYTES = 4 * 1024 * 1024
AGENT_TAG = "agent:"  # a task tagged `agent:<name>` is a run of the standing agent <name>


class CostSource(StrEnum):
    """Where an entry's ``cost_usd`` came from."""

    REPORTED = "reported"  # the runtime's own usage events carried a cost (claude)
    PRICED = "priced"  # tokens × the configured price table ([prices] in speedrift.toml)
    NONE = "none"  # no cost known: no tokens, or tokens with no price configured


@dataclass(frozen=True)
class AttemptEntry:
    """One finished attempt. ``status``: done | failed | cancelled | waiting (outcomes.jsonl's
    words); ``failure``: its failure class when it failed; ``agent``: the standing agent whose run
    it was (the task's ``agent:<name>`` tag), else None; ``role``: set for a role's run (its
    ``task`` is the task it ran for, ``_roles`` when none), whose cost counts like any other;
    ``machine``: where it ran (:func:`machine_label`), None on lines written before it was kept."""

    at: datetime
    repo: str  # the repo's absolute path
    task: str
    attempt: int
    status: str
    runtime: str
    model: str | None = None
    failure: str | None = None
    agent: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_source: CostSource = CostSource.NONE
    duration_s: float = 0.0
    first_event_s: float | None = None  # how long the agent took to say anything (its health)
    stalled: bool = False  # the stall watchdog ended it
    over_budget: bool = False  # a wall-clock, turn, token or cost budget ended it
    crashed: bool = False  # the agent's process died without a verdict
    gates_passed: int = 0
    gates_failed: int = 0
    role: str | None = None  # a role's run (fleet/roles): the Reviewer on an attempt, the Debugger, …
    machine: str | None = None  # where it ran: the Dask worker's address, else the host (machine_label)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def day(self) -> str:
        """The UTC day it finished on (``YYYY-MM-DD``): the unit of daily budgets."""
        return self.at.strftime("%Y-%m-%d")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = format_time(self.at)
        data["cost_source"] = self.cost_source.value
        return data


_FIELDS = {f.name for f in fields(AttemptEntry)}


def agent_of(tags: Iterable[object]) -> str | None:
    """The standing agent a task's tags name (``agent:<name>``), or None."""
    for tag in tags:
        if isinstance(tag, str) and tag.startswith(AGENT_TAG) and len(tag) > len(AGENT_TAG):
            return tag[len(AGENT_TAG) :]
    return None


def machine_label(machine: object) -> str | None:
    """One line naming where an attempt ran, from the ``machine`` dict its ``attempt.json`` and
    evidence carry (``{"executor", "worker", "host"}``): the Dask worker's address, else the host;
    None when neither is a non-empty string."""
    if not isinstance(machine, dict):
        return None
    for key in ("worker", "host"):
        value = machine.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def parse_entry(raw: bytes | str) -> AttemptEntry | None:
    """One line as an entry; None for a torn, foreign or mistyped line."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    at = parse_time(data.get("at"))
    if at is None:
        return None
    try:
        kept = {k: v for k, v in data.items() if k in _FIELDS}
        kept["at"] = at
        kept["cost_source"] = CostSource(kept.get("cost_source", "none"))
        entry = AttemptEntry(**kept)
    except (TypeError, ValueError):
        return None
    if not (isinstance(entry.repo, str) and isinstance(entry.task, str) and isinstance(entry.runtime, str)):
        return None
    if not isinstance(entry.attempt, int) or not isinstance(entry.status, str):
        return None
    if entry.machine is not None and not isinstance(entry.machine, str):
        entry = replace(entry, machine=None)  # where it ran is a label: never a reason to lose the cost
    for name in ("input_tokens", "output_tokens", "gates_passed", "gates_failed"):
        if not isinstance(getattr(entry, name), int):
            return None
    if not isinstance(entry.cost_usd, (int, float)) or not isinstance(entry.duration_s, (int, float)):
        return None
    return entry


def append(entry: AttemptEntry, *, path: Path | None = None) -> None:
    """Append one entry (one whole line, fsynced, under the log's lock; rotated past
    :data:`ROTATE_BYTES`)."""
    target = path or statehome.attempt_log_path()
    lock = target.with_suffix(".lock") if path is not None else statehome.attempt_log_lock_path()
    line = orjson.dumps(entry.to_json()) + b"\n"
    with fsutil.flocked(lock):
        with contextlib.suppress(FileNotFoundError):
            if target.stat().st_size + len(line) > ROTATE_BYTES:
                os.replace(target, _older(target))
        fsutil.append_synced(target, line, mode=0o600)


def _older(path: Path) -> Path:
    return path.with_name(path.stem + ".1" + path.suffix)


def _lines(path: Path) -> Iterator[bytes]:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    yield from data.splitlines()


def read(since: datetime | None = None, *, path: Path | None = None) -> list[AttemptEntry]:
    """Every readable entry finished at or after ``since`` (all when None), oldest first. The
    older generation is read only when the current file may not reach back to ``since``."""
    target = path or statehome.attempt_log_path()
    current = [e for e in map(parse_entry, _lines(target)) if e is not None]
    reaches_back = bool(current) and since is not None and current[0].at <= since
    older = [] if reaches_back else [e for e in map(parse_entry, _lines(_older(target))) if e is not None]
    entries = older + current
    if since is not None:
        entries = [e for e in entries if e.at >= since]
    entries.sort(key=lambda e: e.at)
    return entries
