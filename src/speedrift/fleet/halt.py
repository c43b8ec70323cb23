"""Whether a repo's automatic retries are halted: too many of its recent attempts failed.

Every finished attempt (done or failed, by the service or by ``speedrift run``) appends one line
to ``.speedrift/outcomes.jsonl``. Retries halt while more than ``[recovery] halt_threshold`` of
the last ``halt_window`` counted attempts failed (counted only once ``halt_min_attempts`` exist);
they resume by themselves when the rate falls back, or at once when a human runs
``speedrift service resume-retries`` (outcomes before that moment stop counting). Usage-limit
failures and cancelled attempts are not counted: they say nothing about the work. :func:`halt_state` is
pure; the rest are thin file edges.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout
from speedrift.failure_class import FailureClass
from speedrift.fleet.config import RecoveryConfig
from speedrift.times import format_time, now_utc, parse_time

MAX_LEDGER_BYTES = 512 * 1024  # past this the ledger is compacted to its newest KEEP_LINES
KEEP_LINES = 2000
TAIL_BYTES = 64 * 1024  # enough for any window: a line is ~120 bytes
NOT_COUNTED = frozenset({FailureClass.USAGE_LIMIT})


@dataclass(frozen=True)
class HaltState:
    halted: bool
    rate: float  # failed / counted, over the window
    failed: int
    counted: int
    threshold: float
    window: int
    reason: str
    resumed_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def halt_state(
    outcomes: Sequence[Mapping[str, Any]], *, threshold: float, window: int, min_attempts: int
) -> HaltState:
    """The halt verdict over outcome records (oldest first). Pure."""
    counted = [
        o for o in outcomes if o.get("status") in ("done", "failed") and o.get("class") not in NOT_COUNTED
    ][-window:]
    failed = sum(1 for o in counted if o.get("status") == "failed")
    rate = failed / len(counted) if counted else 0.0
    share = f"{failed} of the last {len(counted)} attempts failed ({rate:.0%}; the limit is {threshold:.0%})"
    if len(counted) < min_attempts:
        reason = f"{len(counted)} attempt(s) counted; retries halt only from {min_attempts}"
        return HaltState(False, rate, failed, len(counted), threshold, window, reason)
    halted = rate > threshold
    return HaltState(halted, rate, failed, len(counted), threshold, window, share)


# --- the files ------------------------------------------------------------------------------------------
def ledger_path(repo: Path) -> Path:
    return layout.outcomes_path(repo)


def mark_path(repo: Path) -> Path:
    return layout.retries_resumed_path(repo)


def record_outcome(
    repo: Path, task_id: str, attempt: int, status: str, failure_class: FailureClass | None = None
) -> None:
    """Append one finished attempt (fsynced, under a lock shared with compaction)."""
    record: dict[str, Any] = {
        "at": format_time(now_utc()),
        "task": task_id,
        "attempt": attempt,
        "status": status,
    }
    if failure_class:
        record["class"] = failure_class
    path = ledger_path(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.flocked(layout.outcomes_lock_path(repo)):
        fsutil.append_synced(path, orjson.dumps(record) + b"\n")
        if path.stat().st_size > MAX_LEDGER_BYTES:
            _compact(path)


def _compact(path: Path) -> None:
    lines = path.read_bytes().splitlines()[-KEEP_LINES:]
    fsutil.write_atomic(path, b"\n".join(lines) + b"\n")


def recent_outcomes(repo: Path, since: datetime | None = None) -> list[dict[str, Any]]:
    """The newest outcome records (oldest first), those before ``since`` left out."""
    path = ledger_path(repo)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    if len(data) == TAIL_BYTES:
        data = data.split(b"\n", 1)[-1]  # the first line may be cut
    found: list[dict[str, Any]] = []
    for raw in data.splitlines():
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # a torn or foreign line never stops the count
        if not isinstance(record, dict):
            continue
        at = parse_time(record.get("at"))
        if since is not None and (at is None or at < since):
            continue
        found.append(record)
    return found


def resumed_at(repo: Path) -> datetime | None:
    try:
        return parse_time(mark_path(repo).read_text().strip())
    except OSError:
        return None


def resume_retries(repo: Path) -> datetime:
    """Outcomes up to now stop counting; returns the moment written."""
    now = now_utc()
    path = mark_path(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, format_time(now).encode())
    return now


def retries_halted(repo: Path, config: RecoveryConfig) -> HaltState:
    since = resumed_at(repo)
    state = halt_state(
        recent_outcomes(repo, since),
        threshold=config.halt_threshold,
        window=config.halt_window,
        min_attempts=config.halt_min_attempts,
    )
    return HaltState(**{**asdict(state), "resumed_at": format_time(since) if since else None})
