"""Per-attempt run records under ``<repo>/.speedrift/runs/<task>/<attempt>/``:
``prompt.md``, ``events.jsonl``, ``stderr.log``, ``result.json`` (the agent's), ``attempt.json``
(state as it changes) and ``evidence.json`` (what the attempt proved). Retention: the newest
``KEEP_ATTEMPTS`` attempts of a task are kept; older run directories are pruned.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, redact
from speedrift.fleet.prompt import EarlierAttempt
from speedrift.layout import CANCEL_FILE, read_record, runs_dir, safe_name, state_dir, task_runs_dir
from speedrift.times import format_time, now_utc

KEEP_ATTEMPTS = 20


def run_dir(repo: Path, task_id: str, attempt: int) -> Path:
    folder = task_runs_dir(repo, task_id) / str(attempt)
    folder.mkdir(parents=True, exist_ok=True)
    _prune(task_runs_dir(repo, task_id))
    return folder


def _prune(folder: Path) -> None:
    numbered = sorted((int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    for _, old in numbered[:-KEEP_ATTEMPTS]:
        shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    # run records never carry a credential: see speedrift/redact.py
    fsutil.write_atomic(path, orjson.dumps(redact.redact_value(value), option=orjson.OPT_INDENT_2))


def write_attempt(folder: Path, fields: dict[str, Any]) -> None:
    path = folder / "attempt.json"
    current = read_record(path) or {"pid": os.getpid(), "started": format_time(now_utc())}
    current.update(fields)
    current["updated"] = format_time(now_utc())
    _write_json(path, current)


def write_evidence(folder: Path, evidence: dict[str, Any]) -> None:
    _write_json(folder / "evidence.json", evidence)


def _tail_messages(events: Path, limit: int = 5) -> list[str]:
    if not events.exists():
        return []
    lines: list[str] = []
    with open(events, "rb") as handle:
        handle.seek(max(0, events.stat().st_size - 64_000))
        for raw in handle.read().splitlines():
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("kind") in ("message", "error") and event.get("text"):
                lines.append(str(event["text"])[:300])
    return lines[-limit:]


def earlier_attempts(repo: Path, task_id: str, current: int) -> list[EarlierAttempt]:
    folder = task_runs_dir(repo, task_id)
    if not folder.is_dir():
        return []
    found: list[EarlierAttempt] = []
    for path in sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        number = int(path.name)
        if number >= current:
            continue
        record = read_record(path / "attempt.json") or {}
        evidence = read_record(path / "evidence.json") or {}
        found.append(
            EarlierAttempt(
                attempt=number,
                outcome=str(record.get("state", "unknown")),
                reason=str(evidence.get("reason") or record.get("reason") or ""),
                tail=_tail_messages(path / "events.jsonl"),
            )
        )
    return found


def handoff_notes(repo: Path, task_id: str) -> str | None:
    path = state_dir(repo) / "handoffs" / f"{safe_name(task_id)}.md"
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:20_000]
    except OSError:
        return None


def running(repo: Path) -> list[dict[str, Any]]:
    """Attempts whose record says running, with task, attempt and pid."""
    rows: list[dict[str, Any]] = []
    base = runs_dir(repo)
    if not base.is_dir():
        return rows
    for task_dir in base.iterdir():
        for attempt_dir in task_dir.iterdir() if task_dir.is_dir() else []:
            record = read_record(attempt_dir / "attempt.json")
            if record and record.get("state") == "running":
                rows.append({**record, "run_dir": str(attempt_dir), "attempt": int(attempt_dir.name)})
    return rows


def request_cancel(folder: Path) -> None:
    (folder / CANCEL_FILE).write_text(format_time(now_utc()))


class CancelWatcher:
    """Turns a ``cancel`` file dropped into the run directory into the session's cancel event."""

    def __init__(self, folder: Path, event: threading.Event, interval: float = 0.25) -> None:
        self.path = folder / CANCEL_FILE
        self.event = event
        self.interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(self.interval):
            if self.path.exists():
                self.event.set()
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def latest_attempt_dir(repo: Path, task_id: str) -> Path | None:
    folder = task_runs_dir(repo, task_id)
    if not folder.is_dir():
        return None
    numbered = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(numbered, key=lambda p: int(p.name)) if numbered else None
