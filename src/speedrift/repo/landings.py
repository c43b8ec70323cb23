"""The landings log: every tip the merge queue put on a target branch, one JSON line each.

Job: ``.speedrift/landings.jsonl`` records each landing — the task and attempt, the target
branch, the tip it moved from (``old``) and the tip it moved to (``new``). The merge queue appends
the line (fsynced) right after the ref moved; recovery appends the line a crash cut off, from the
attempt's manifest. The log answers two questions: did an attempt's work land
(:func:`of_attempt`), and did a target branch move since a commit only through the merge queue
(:func:`foreign_commits`) — any other movement (a commit made directly on the target, a reset, a
pull) is a boundary violation the merge queue refuses to build on.

Invariants: lines are appended only while the merge lock (``.speedrift/merge.lock``) is held, at
most one per (target, new tip); a torn, foreign or hostile line is skipped, never fatal.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from speedrift import fsutil, layout
from speedrift.repo import git
from speedrift.times import format_time, now_utc

TAIL_BYTES = 256 * 1024  # the recent landings (~1,000): enough to cover any attempt's lifetime


@dataclass(frozen=True)
class Landing:
    task: str
    attempt: int
    target: str  # the branch, short name
    old: str  # the target's tip before the landing
    new: str  # the tip the merge queue produced (the attempt's own commits on top of ``old``)
    at: str = ""

    @classmethod
    def from_dict(cls, raw: object) -> Landing | None:
        if not isinstance(raw, dict):
            return None
        task, attempt, target = raw.get("task"), raw.get("attempt"), raw.get("target")
        old, new, at = raw.get("old"), raw.get("new"), raw.get("at")
        if not (isinstance(task, str) and isinstance(target, str) and isinstance(old, str)):
            return None
        if not isinstance(new, str) or not isinstance(attempt, int) or isinstance(attempt, bool):
            return None
        return cls(task, attempt, target, old, new, at if isinstance(at, str) else "")


def read(repo: Path, tail_bytes: int | None = TAIL_BYTES) -> list[Landing]:
    """The logged landings, oldest first: the last ``tail_bytes`` of the log (None: all of it)."""
    try:
        with open(layout.landings_path(repo), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = 0 if tail_bytes is None else max(0, size - tail_bytes)
            handle.seek(start)
            data = handle.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # cut by the tail
    found: list[Landing] = []
    for line in lines:
        try:
            landing = Landing.from_dict(orjson.loads(line)) if line.strip() else None
        except orjson.JSONDecodeError:
            continue
        if landing is not None:
            found.append(landing)
    return found


def record(repo: Path, landing: Landing) -> bool:
    """Append ``landing`` (fsynced) unless the log has it already. The caller holds the merge lock.
    Returns whether it was appended."""
    if any(seen.target == landing.target and seen.new == landing.new for seen in read(repo)):
        return False
    stamped = landing if landing.at else Landing(**{**asdict(landing), "at": format_time(now_utc())})
    path = layout.landings_path(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.append_synced(path, orjson.dumps(asdict(stamped)) + b"\n")
    return True


def of_attempt(repo: Path, task_id: str, attempt: int) -> Landing | None:
    """The attempt's landing, if the log has one."""
    for landing in reversed(read(repo, None)):
        if landing.task == task_id and landing.attempt == attempt:
            return landing
    return None


def on_target(repo: Path, commit: str, target: str) -> bool:
    """Whether ``commit`` is on ``target`` (its tip or an ancestor of it)."""
    found = git.run(["merge-base", "--is-ancestor", commit, f"refs/heads/{target}"], repo, check=False)
    return found.returncode == 0


def foreign_commits(
    repo: Path, target: str, since: str, tip: str, landings: list[Landing] | None = None
) -> list[str]:
    """The commits that brought ``target`` from ``since`` to ``tip`` other than through a logged
    landing, oldest first; empty when every step from ``since`` to ``tip`` is a landing. A target
    that no longer contains ``since`` (history rewritten) names ``tip`` itself at least."""
    if since == tip:
        return []
    known = read(repo) if landings is None else landings
    by_new = {landing.new: landing for landing in known if landing.target == target}
    current, seen = tip, set()
    while current != since and current in by_new and current not in seen:  # the usual case: no git
        seen.add(current)
        current = by_new[current].old
    if current == since:
        return []
    return _foreign_slow(repo, since, tip, by_new, known if landings is not None else read(repo, None))


def _foreign_slow(
    repo: Path, since: str, tip: str, by_new: dict[str, Landing], every: list[Landing]
) -> list[str]:
    listed = git.git(["rev-list", "--reverse", tip, f"^{since}"], repo, check=False).split()
    commits = set(listed)
    ours: set[str] = set()
    for landing in every:
        if landing.new in commits and landing.old != landing.new:
            ours.update(git.git(["rev-list", landing.new, f"^{landing.old}"], repo, check=False).split())
    foreign = [commit for commit in listed if commit not in ours]
    rewritten = git.run(["merge-base", "--is-ancestor", since, tip], repo, check=False).returncode != 0
    if rewritten and tip not in foreign:
        foreign.append(tip)
    return foreign


def describe(repo: Path, commits: list[str], limit: int = 5) -> str:
    """``abc123def456 "subject" (author)`` for the first ``limit`` commits, for a person to review."""
    shown: list[str] = []
    for commit in commits[:limit]:
        line = git.git(["log", "-1", "--format=%s%x00%an", commit], repo, check=False)
        subject, _, author = line.partition("\0")
        shown.append(f'{commit[:12]} "{subject[:80]}"' + (f" ({author})" if author else ""))
    more = len(commits) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
