"""Run detail for the page: one attempt's record under ``<repo>/.speedrift/runs/<task>/<n>/``.

Reads what the worker plane wrote (fleet/attempts.py): ``attempt.json`` (state), ``evidence.json``
(gates, diff stats, usage and cost), ``result.json`` (the agent's report), the tail of
``events.jsonl`` and ``stderr.log``, the head of ``prompt.md``. Every read is bounded, so a huge
log cannot make one click heavy. Task ids reach the disk only through ``safe_name``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from speedrift import layout

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


def _events(path: Path) -> tuple[list[dict[str, Any]], bool]:
    data, truncated = _tail(path, EVENTS_TAIL_BYTES)
    lines = data.split(b"\n")
    if truncated and lines:
        lines = lines[1:]  # the first line is cut
    events: list[dict[str, Any]] = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            if isinstance(event.get("text"), str) and len(event["text"]) > EVENT_TEXT_LIMIT:
                event["text"] = event["text"][:EVENT_TEXT_LIMIT] + "…"
            events.append(event)
    truncated = truncated or len(events) > EVENTS_LIMIT
    return events[-EVENTS_LIMIT:], truncated


def list_attempts(repo: Path, task_id: str) -> list[dict[str, Any]]:
    """The task's attempts, newest first: number, state, runtime, started, failure."""
    folder = layout.task_runs_dir(repo, task_id)
    if not folder.is_dir():
        return []
    rows: list[dict[str, Any]] = []
    for path in folder.iterdir():
        if not (path.is_dir() and path.name.isdigit()):
            continue
        record = layout.read_record(path / "attempt.json") or {}
        rows.append(
            {
                "attempt": int(path.name),
                "state": record.get("state", "unknown"),
                "runtime": record.get("runtime"),
                "started": record.get("started"),
                "updated": record.get("updated"),
                "failure": record.get("failure"),
                "paused": (path / "paused").exists(),
            }
        )
    return sorted(rows, key=lambda r: -int(r["attempt"]))


def attempt_detail(repo: Path, task_id: str, attempt: int) -> dict[str, Any] | None:
    folder = layout.task_runs_dir(repo, task_id) / str(attempt)
    if not folder.is_dir():
        return None
    evidence = layout.read_record(folder / "evidence.json")
    events, events_truncated = _events(folder / "events.jsonl")
    stderr, _cut = _tail(folder / "stderr.log", STDERR_TAIL_BYTES)
    usage = (evidence or {}).get("usage") or {}
    return {
        "task": task_id,
        "attempt": attempt,
        "record": layout.read_record(folder / "attempt.json"),
        "evidence": evidence,
        "result": layout.read_record(folder / "result.json"),
        "diff": (evidence or {}).get("diff"),
        "gates": (evidence or {}).get("gates") or [],
        "usage": usage,
        "cost_usd": usage.get("cost_usd") if isinstance(usage, dict) else None,
        "events": events,
        "events_truncated": events_truncated,
        "stderr_tail": stderr.decode("utf-8", "replace"),
        "prompt": _head(folder / "prompt.md", PROMPT_HEAD_BYTES),
        "paused": (folder / "paused").exists(),
    }
