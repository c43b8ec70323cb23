"""What the hub's foreground terminal says happened (`speedrift hub up`, `speedrift demo`).

Not a heartbeat: each attempt dispatched, landed or failed (with its class and reason), each
question for a person with the command that answers it, and what the hub itself did (corrective
tasks, retries, other actions it ran) — read from where each fact lives (see :class:`Happenings`).
A quiet line only after :data:`QUIET_S` seconds without news.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift import layout, records
from speedrift.cli.output import printable, say
from speedrift.graph.store import repo_graph_dir
from speedrift.textclip import clip
from speedrift.times import now_utc, parse_time

QUIET_S = 120.0  # seconds without news before one quiet line


class Happenings:
    """What changed since the last cycle, in words, read from where each fact lives: an attempt's
    own record (``<repo>/.speedrift/runs/<task>/<n>/attempt.json`` and ``evidence.json``, through
    records.py) for dispatches, landings, failures and questions — they change between cycles, in
    the workers — and the cycle record's ``executed`` outcomes for what the hub did itself.
    Attempts begun before the hub started (``since``) are history and are not told."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, since: datetime | None = None) -> None:
        self.clock = clock
        self.known: dict[Path, tuple[float, str]] = {}  # attempt.json -> (mtime, state told)
        # failed attempts whose question for a person is not told yet -> cycles waited: the
        # escalation record is posted just after the attempt fails
        self.asking: dict[Path, int] = {}
        self.primed = False
        self.since = since or now_utc()  # attempts begun before this are history, not news
        self.last_news = clock()

    def cycle(self, record: dict[str, Any]) -> None:
        lines = self.lines(record)
        for line in lines:
            say(printable(line))
        now = self.clock()
        if lines:
            self.last_news = now
        elif now - self.last_news >= QUIET_S:
            self.last_news = now
            say(f"{record.get('generated_at', '')} nothing new for {QUIET_S:.0f} s; the hub is watching.")

    def lines(self, record: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for repo in record.get("repos", []):
            snapshot = repo.get("snapshot") or {}
            where = snapshot.get("path")
            if isinstance(where, str):
                out += self._attempts(str(repo.get("name", "?")), Path(where))
        self.primed = True
        for outcome in record.get("executed", []):
            said = _outcome_line(outcome)
            if said:
                out.append(said)
        return out

    def _attempts(self, repo: str, root: Path) -> list[str]:
        out: list[str] = []
        try:
            task_dirs = [p for p in layout.runs_dir(root).iterdir() if p.is_dir()]
        except OSError:
            return out
        for task_dir in task_dirs:
            try:
                folders = [p for p in task_dir.iterdir() if p.name.isdigit()]
            except OSError:
                continue
            for folder in folders:
                record_path = layout.attempt_record_path(folder)
                try:
                    mtime = record_path.stat().st_mtime
                except OSError:
                    continue
                seen = self.known.get(record_path)
                name = f"{repo}:{task_dir.name}"
                if seen is not None and seen[0] == mtime and record_path not in self.asking:
                    continue
                attempt = records.read_attempt(folder)
                state = attempt.state_text if attempt else "unknown"
                self.known[record_path] = (mtime, state)
                if attempt is None or (not self.primed and not self._since_start(attempt)):
                    continue
                if record_path in self.asking:
                    said = self._escalation(name, root, attempt, folder, record_path)
                    out += [said] if said else []
                if seen is not None and seen[1] == state:
                    continue
                out += _attempt_lines(name, int(folder.name), attempt, seen)
                if state == "failed":
                    self.asking[record_path] = 0
                    said = self._escalation(name, root, attempt, folder, record_path)
                    out += [said] if said else []
        return out

    def _since_start(self, attempt: records.AttemptRecord) -> bool:
        """Whether an attempt first seen at the first cycle began after this hub started (news)
        rather than before it (history)."""
        started = parse_time(attempt.started)
        return started is not None and started >= self.since

    def _escalation(
        self, name: str, root: Path, attempt: records.AttemptRecord, folder: Path, key: Path
    ) -> str | None:
        """The question for a person a failed attempt left, once: the escalation record it posted
        (``clarifications`` in attempt.json, with the command that answers it), else the recovery's
        question from its evidence; None while an asking attempt's record is not posted yet."""
        for asked in attempt.raw.get("clarifications") or []:
            escalation = asked.get("escalation") if isinstance(asked, dict) else None
            if isinstance(escalation, str) and escalation:
                self.asking.pop(key, None)
                graph = repo_graph_dir(root) or root / ".workgraph"
                return _clip(
                    f"escalated  {name}: an agent asks a person ({escalation}); answer with "
                    f'`speedrift answer --dir {graph} {escalation} "…"`',
                    400,
                )
        evidence = records.read_evidence(folder)
        recovery = (evidence.raw.get("recovery") if evidence else None) or {}
        if not isinstance(recovery, dict) or recovery.get("recovery") != "escalate_human":
            self.asking.pop(key, None)
            return None
        waited = self.asking.get(key, 0)
        if attempt.failure == "spec_gap" and waited < 3:  # its question record is on its way
            self.asking[key] = waited + 1
            return None
        self.asking.pop(key, None)
        question = recovery.get("question") or "a person decides what happens next"
        return _clip(f"escalated  {name}: {question}", 400)


def _attempt_lines(
    name: str, number: int, attempt: records.AttemptRecord, seen: tuple[float, str] | None
) -> list[str]:
    raw = attempt.raw
    state = attempt.state_text
    head = f"{name} (attempt {number})"
    out: list[str] = []
    if seen is None:
        out.append(f"dispatched {head} -> {attempt.runtime or 'agent'}")
    if state == "done":
        commit = str(raw.get("landed_commit") or raw.get("commit") or "")[:10]
        out.append(f"landed     {head}" + (f": commit {commit} on the target branch" if commit else ""))
    elif state == "failed":
        reason = attempt.reason or "no reason given"
        out.append(f"failed     {head}: {attempt.failure or 'unclassified'} — {reason}")
    elif state == "waiting":
        out.append(f"waiting    {head}: {attempt.reason or 'needs a person'}")
    return [_clip(line) for line in out]


def _outcome_line(outcome: dict[str, Any]) -> str | None:
    """A hub action worth telling: dispatches are told by their attempts, and an action the
    hub held back or found already done is no news."""
    kind, status = str(outcome.get("kind", "")), str(outcome.get("status", "?"))
    detail = str(outcome.get("detail", ""))
    if kind == "dispatch_ready" or status == "skipped" or detail.startswith("existing"):
        return None
    repo = outcome.get("repo", "?")
    if kind in ("emit_corrective_task", "repair_dependencies") and status in ("succeeded", "delegated"):
        return _clip(f"corrective {repo}: {detail}")
    if kind == "retry_failed" and status == "succeeded":
        return _clip(f"retry      {repo}: {detail}")
    return _clip(f"hub        {repo}: {kind} {status} — {detail}")


def _clip(line: str, limit: int = 240) -> str:
    """One line of about ``limit`` characters; the middle goes, so the end (a commit, the command
    that answers, a trailing hint) stays whole."""
    return clip(line, limit, flatten=False)
