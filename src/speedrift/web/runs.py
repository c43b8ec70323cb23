"""Run detail for the page: one attempt's record under ``<repo>/.speedrift/runs/<task>/<n>/``.

Reads what the worker plane wrote (fleet/attempts.py): ``attempt.json`` (state), ``evidence.json``
(gates, diff stats, usage and cost, where it ran), ``result.json`` (the agent's report), the tail of
``events.jsonl`` and ``stderr.log``, the head of ``prompt.md``. Every read is bounded, so a huge
log cannot make one click heavy. Task ids reach the disk only through ``safe_name``; paths come from
:mod:`speedrift.layout` and the records are read by :mod:`speedrift.records`.

Events are shown as :mod:`speedrift.eventview` renders them (the CLI's ``speedrift tail`` shows the
same lines). A running attempt is followed by byte position in ``events.jsonl``: the detail says
where its tail ends (``events_position``) and :func:`event_batch` reads on from any position in
bounded batches of complete lines, so a follower that resends its position after a reconnect gets
every event once — no duplicate, no gap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speedrift import attemptlog, eventview, layout, records
from speedrift.procs import record_alive

EVENTS_TAIL_BYTES = 256_000
EVENTS_LIMIT = 300
STDERR_TAIL_BYTES = 8_000
PROMPT_HEAD_BYTES = 20_000
EVENT_TEXT_LIMIT = 2_000


def _tail(path: Path, limit: int) -> tuple[bytes, bool]:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - limit))
            return handle.read(), size > limit
    except OSError:
        return b"", False


def _head(path: Path, limit: int) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


BATCH_BYTES = 64_000  # events.jsonl read per follow batch
MAX_LINE_BYTES = 4_000_000  # a longer line (none speedrift writes) is skipped, not read whole


def shown_event(event: records.Event, runtime: str | None) -> dict[str, Any]:
    """One event for the page: as written (text bounded) and as :mod:`speedrift.eventview` reads it."""
    shown = event.to_dict()
    if len(event.text) > EVENT_TEXT_LIMIT:
        shown["text"] = event.text[:EVENT_TEXT_LIMIT] + "…"
    shown["view"] = eventview.render(event, runtime).to_dict()
    return shown


def _complete_lines(handle: Any, start: int, limit: int) -> tuple[list[bytes], int]:
    """The complete lines from ``start`` within about ``limit`` bytes, and the position after them.
    A line longer than the batch is read on to its end; one past :data:`MAX_LINE_BYTES` is skipped."""
    handle.seek(start)
    chunk = handle.read(limit)
    end = chunk.rfind(b"\n")
    if end >= 0:
        return chunk[: end + 1].splitlines(), start + end + 1
    if len(chunk) < limit:
        return [], start  # the last line is still being written
    offset = start + len(chunk)
    while more := handle.read(limit):
        newline = more.find(b"\n")
        if newline >= 0:
            stop = offset + newline + 1
            if stop - start > MAX_LINE_BYTES:
                return [], stop
            return [chunk + more[:newline]], stop
        offset += len(more)
        chunk = chunk + more if offset - start <= MAX_LINE_BYTES else b""
    return [], start  # still being written


def read_batch(
    folder: Path, position: int, limit: int = BATCH_BYTES
) -> tuple[list[records.Event], int, bool]:
    """The events after byte ``position`` (complete lines only, about ``limit`` bytes of them), the
    position after them, and whether more may follow at once (the batch stopped at its limit)."""
    try:
        with open(layout.events_path(folder), "rb") as handle:
            size = handle.seek(0, 2)
            if position >= size:
                return [], position, False  # nothing new (a log is only appended to)
            lines, after = _complete_lines(handle, position, limit)
    except OSError:
        return [], position, False
    found = [e for e in map(records.parse_event, lines) if e is not None]
    return found, after, after < size and position + limit <= size  # cut by the limit, not the end


def attempt_running(record: records.AttemptRecord | None) -> bool:
    """Whether the attempt is still running: its record says so and the process that writes it lives."""
    return record is not None and record.state is records.AttemptState.RUNNING and record_alive(record.raw)


def event_batch(folder: Path, position: int, limit: int | None = None) -> dict[str, Any]:
    """One step of following an attempt: its events after ``position`` (each :func:`shown_event`),
    the next position, whether more is ready now (``more``), and — once it has ended and every line
    is read — ``end``: its final state, failure and reason."""
    record = records.read_attempt(folder)  # read before the log: an end seen here has all its lines
    running = attempt_running(record)
    runtime = record.runtime if record else None
    found, after, more = read_batch(folder, position, limit or BATCH_BYTES)
    end = None
    if not running and not more:
        end = {
            "state": record.state_text if record else "unknown",
            "failure": record.failure if record else None,
            "reason": record.reason if record else None,
        }
    return {
        "from": position,
        "position": after,
        "events": [shown_event(e, runtime) for e in found],
        "more": more,
        "end": end,
    }


def _events(folder: Path, runtime: str | None) -> tuple[list[dict[str, Any]], bool, int]:
    """The log's last events (bounded), whether older ones were left out, and the position its
    complete lines end at (where a follower goes on)."""
    try:
        with open(layout.events_path(folder), "rb") as handle:
            size = handle.seek(0, 2)
            start = max(0, size - EVENTS_TAIL_BYTES)
            handle.seek(start)
            data = handle.read(size - start)
    except OSError:
        return [], False, 0
    complete = data[: data.rfind(b"\n") + 1]
    lines = complete.split(b"\n")
    truncated = start > 0
    if truncated:
        lines = lines[1:]  # cut by the limit
    found = [e for e in map(records.parse_event, lines) if e is not None]
    truncated = truncated or len(found) > EVENTS_LIMIT
    return [shown_event(e, runtime) for e in found[-EVENTS_LIMIT:]], truncated, start + len(complete)


def list_attempts(repo: Path, task_id: str) -> list[dict[str, Any]]:
    """The task's attempts, newest first: number, state, runtime, started, failure, and the machine
    it ran on (the Dask worker's address, else the host: ``attempt.json``'s ``machine``)."""
    folder = layout.task_runs_dir(repo, task_id)
    if not folder.is_dir():
        return []
    rows: list[dict[str, Any]] = []
    for path in folder.iterdir():
        if not (path.is_dir() and path.name.isdigit()):
            continue
        record = records.read_attempt(path) or records.AttemptRecord({})
        rows.append(
            {
                "attempt": int(path.name),
                "state": record.state_text,
                "runtime": record.raw.get("runtime"),
                "started": record.raw.get("started"),
                "updated": record.raw.get("updated"),
                "failure": record.raw.get("failure"),
                "machine": attemptlog.machine_label(record.raw.get("machine")),
                "paused": layout.paused_path(path).exists(),
            }
        )
    return sorted(rows, key=lambda r: -int(r["attempt"]))


def _machine(record: records.AttemptRecord | None, evidence: records.EvidenceRecord) -> str | None:
    """Where the attempt ran: its ``attempt.json``'s ``machine``, else its evidence's."""
    found = attemptlog.machine_label(record.raw.get("machine")) if record is not None else None
    return found or attemptlog.machine_label(evidence.raw.get("machine"))


def attempt_detail(repo: Path, task_id: str, attempt: int) -> dict[str, Any] | None:
    folder = layout.attempt_dir(repo, task_id, attempt)
    if not folder.is_dir():
        return None
    found = records.read_evidence(folder)
    evidence = found or records.EvidenceRecord({})
    record = records.read_attempt(folder)
    events, events_truncated, events_position = _events(folder, record.runtime if record else None)
    stderr, _cut = _tail(layout.stderr_path(folder), STDERR_TAIL_BYTES)
    return {
        "task": task_id,
        "attempt": attempt,
        "record": record.raw if record else None,
        "machine": _machine(record, evidence),
        "evidence": found.raw if found else None,
        "result": layout.read_record(layout.result_path(folder)),
        "diff": evidence.diff,
        "gates": evidence.gates,
        "usage": evidence.usage,
        "cost_usd": evidence.usage.get("cost_usd"),
        "events": events,
        "events_truncated": events_truncated,
        "events_position": events_position,  # follow from here (ws ``follow``)
        "running": attempt_running(record),
        "stderr_tail": stderr.decode("utf-8", "replace"),
        "prompt": _head(layout.prompt_path(folder), PROMPT_HEAD_BYTES),
        "paused": layout.paused_path(folder).exists(),
    }
