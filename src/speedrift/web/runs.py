"""Run detail for the page: one attempt's record under ``<repo>/.speedrift/runs/<task>/<n>/``.

Reads what the worker plane wrote (fleet/attempts.py): ``attempt.json`` (state), ``evidence.json``
(gates, diff stats, usage and cost, where it ran), ``result.json`` (the agent's report), the tail of
``events.jsonl`` and ``stderr.log``, the head of ``prompt.md``. Every read is bounded, so a huge
log cannot make one click heavy. Task ids reach the disk only through ``safe_name``; paths come from
:mod:`speedrift.layout` and the records are read by :mod:`speedrift.records`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speedrift import attemptlog, layout, records

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


def _events(folder: Path) -> tuple[list[dict[str, Any]], bool]:
    found, truncated = records.tail_events(folder, EVENTS_TAIL_BYTES)
    events: list[dict[str, Any]] = []
    for event in found:
        shown = event.to_dict()
        if len(event.text) > EVENT_TEXT_LIMIT:
            shown["text"] = event.text[:EVENT_TEXT_LIMIT] + "…"
        events.append(shown)
    truncated = truncated or len(events) > EVENTS_LIMIT
    return events[-EVENTS_LIMIT:], truncated


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
    events, events_truncated = _events(folder)
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
        "stderr_tail": stderr.decode("utf-8", "replace"),
        "prompt": _head(layout.prompt_path(folder), PROMPT_HEAD_BYTES),
        "paused": layout.paused_path(folder).exists(),
    }
