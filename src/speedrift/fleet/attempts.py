"""Per-attempt run records under ``<repo>/.speedrift/runs/<task>/<attempt>/``:
``prompt.md``, ``events.jsonl``, ``stderr.log``, ``result.json`` (the agent's), ``attempt.json``
(state as it changes) and ``evidence.json`` (what the attempt proved). Retention: the newest
``KEEP_ATTEMPTS`` attempts of a task are kept; older run directories are pruned.

Paths come from :mod:`speedrift.layout` and the records are read and written by
:mod:`speedrift.records`; this module is the worker plane's view of them.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from speedrift import layout, records
from speedrift.agents.protocol import EventKind
from speedrift.fleet.prompt import EarlierAttempt
from speedrift.records import AttemptState
from speedrift.times import format_time, now_utc

KEEP_ATTEMPTS = 20


def run_dir(repo: Path, task_id: str, attempt: int) -> Path:
    folder = layout.attempt_dir(repo, task_id, attempt)
    folder.mkdir(parents=True, exist_ok=True)
    _prune(layout.task_runs_dir(repo, task_id))
    return folder


def _prune(folder: Path) -> None:
    prune_records(folder)


def prune_records(folder: Path, keep: int = KEEP_ATTEMPTS) -> None:
    """Keep the newest ``keep`` run records in ``folder``: its numbered directories by number
    (attempts, decompose runs), else its directories by name (``runs/_roles/<role>-<stamp>``)."""
    if not folder.is_dir():
        return
    folders = [p for p in folder.iterdir() if p.is_dir()]
    numbered = sorted((int(p.name), p) for p in folders if p.name.isdigit())
    ordered = [p for _, p in numbered] if numbered else sorted(folders, key=lambda p: p.name)
    for old in ordered[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def write_attempt(folder: Path, fields: dict[str, Any]) -> None:
    """Merge ``fields`` into the attempt's ``attempt.json`` (see :func:`speedrift.records.update_attempt`)."""
    records.update_attempt(folder, fields)


def write_evidence(folder: Path, evidence: dict[str, Any]) -> None:
    records.write_evidence(folder, evidence)


def _tail_messages(folder: Path, limit: int = 5) -> list[str]:
    """The last messages and errors of an attempt's event log, for the next attempt's prompt."""
    events, _truncated = records.tail_events(folder, 64_000)
    lines = [e.text[:300] for e in events if e.kind in (EventKind.MESSAGE, EventKind.ERROR) and e.text]
    return lines[-limit:]


def earlier_attempts(repo: Path, task_id: str, current: int) -> list[EarlierAttempt]:
    found: list[EarlierAttempt] = []
    for path in layout.attempt_dirs(repo, task_id):
        number = int(path.name)
        if number >= current:
            continue
        record = records.read_attempt(path) or records.AttemptRecord({})
        evidence = records.read_evidence(path) or records.EvidenceRecord({})
        found.append(
            EarlierAttempt(
                attempt=number,
                outcome=record.state_text,
                reason=evidence.reason or record.reason or "",
                tail=_tail_messages(path),
            )
        )
    return found


def handoff_notes(repo: Path, task_id: str) -> str | None:
    path = layout.handoffs_dir(repo) / f"{layout.safe_name(task_id)}.md"
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:20_000]
    except OSError:
        return None


def running(repo: Path) -> list[dict[str, Any]]:
    """Attempts whose record says running, with task, attempt and pid."""
    rows: list[dict[str, Any]] = []
    base = layout.runs_dir(repo)
    if not base.is_dir():
        return rows
    for task_dir in base.iterdir():
        for attempt_dir in task_dir.iterdir() if task_dir.is_dir() else []:
            record = records.read_attempt(attempt_dir)
            if record and record.state is AttemptState.RUNNING:
                rows.append({**record.raw, "run_dir": str(attempt_dir), "attempt": int(attempt_dir.name)})
    return rows


def request_cancel(folder: Path) -> None:
    layout.cancel_path(folder).write_text(format_time(now_utc()))


class CancelWatcher:
    """Turns a ``cancel`` file dropped into the run directory into the session's cancel event."""

    def __init__(self, folder: Path, event: threading.Event, interval: float = 0.25) -> None:
        self.path = layout.cancel_path(folder)
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
    numbered = layout.attempt_dirs(repo, task_id)
    return numbered[-1] if numbered else None
