"""Git lock files left behind by speedrift's own git steps, and clearing them once nobody holds them.

Job: a git command that writes takes lock files (``index.lock``, ``HEAD.lock``,
``packed-refs.lock``, ``refs/heads/<branch>.lock`` …) and removes them as it ends; killed in
between, it leaves them, and every later git command that needs one fails — the user's own
``git branch -d`` included. :func:`run_step` runs such a step with a marker in
``.speedrift/gitsteps/``: written before git starts (the step's name, the lock files it may take,
its owner — this process's :class:`~speedrift.procs.ProcessIdentity`), completed with the git
process's identity once it runs, removed when it ended. A marker is a short JSON-lines file: the
step's record on its first line, then what became known later (``{"git": …}``, ``{"ended": true}``)
appended, each line a patch over the lines before — one file created per step, never rewritten
(on a slow filesystem a file's creation is what costs). :func:`clear_stale` (crash recovery)
removes the lock files a marker names once the step is over for good.

Invariants: a lock file is removed only when a marker names it, the marker's owner is gone (or its
git was killed at the step's timeout), its git process and group are gone, and no live process has
the file open — so a lock the user's own git holds, or a live speedrift step, is never touched, and
a lock file no marker names is never touched at all. A marker whose first line is torn (its owner
was killed while writing it, before git started) names no lock; a torn later line is ignored.
Markers are not fsynced: they matter after a process dies, not after a power loss, which takes
git's lock files too.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, gitcmd, layout, procs
from speedrift.procs import ProcessIdentity, identity_alive, identity_of
from speedrift.repo import git
from speedrift.times import format_time, now_utc

# a checkout's own lock files (in its git dir): the index, HEAD, and what a merge or rebase writes
CHECKOUT_LOCKS = ("index.lock", "HEAD.lock", "ORIG_HEAD.lock", "AUTO_MERGE.lock")
PACKED_REFS_LOCK = "packed-refs.lock"

_sequence = itertools.count(1)


def checkout_locks(checkout: Path) -> list[Path]:
    """The lock files a write in ``checkout`` (the main checkout or a linked worktree) may take."""
    own = git.git_dir(checkout)
    return [own / name for name in CHECKOUT_LOCKS]


def new_worktree_locks(repo: Path, name: str) -> list[Path]:
    """The lock files ``git worktree add`` takes in the git dir of the worktree it creates."""
    own = git.common_dir(repo) / "worktrees" / name
    return [own / lock for lock in CHECKOUT_LOCKS]


def ref_locks(repo: Path, *branches: str) -> list[Path]:
    """The lock files moving (or deleting) ``branches`` may take: their ref locks and packed-refs'."""
    common = git.common_dir(repo)
    return [common / PACKED_REFS_LOCK, *(common / "refs" / "heads" / f"{branch}.lock" for branch in branches)]


@dataclass(frozen=True)
class StepMarker:
    """One git step speedrift runs, as its marker says."""

    path: Path  # the marker file
    step: str  # e.g. "rebase", "fast-forward", "delete-branch"
    cwd: str
    locks: tuple[str, ...]  # the lock files it may take (absolute paths)
    owner: ProcessIdentity | None  # the speedrift process that runs it
    git: ProcessIdentity | None  # the git process, once started
    ended: bool = False  # its git was killed at the timeout: over, though the owner lives on
    detail: dict[str, Any] = field(default_factory=dict)  # what recovery needs (a fast-forward's from/to)

    def over(self) -> bool:
        """Whether the step can never finish by itself any more: its owner is gone (or it ended at
        its timeout) and so is its git process, group included."""
        if not self.ended and identity_alive(self.owner):
            return False
        git_running = self.git is not None and (identity_alive(self.git) or procs.group_alive(self.git.pid))
        return not git_running


@dataclass(frozen=True)
class Cleared:
    """A step recovery found over: the lock files it left that were removed."""

    marker: StepMarker
    removed: tuple[str, ...]


def run_step(
    repo: Path,
    step: str,
    args: Sequence[str],
    cwd: Path,
    locks: Sequence[Path],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = gitcmd.DEFAULT_TIMEOUT_S,
    input_text: str | None = None,
    detail: Mapping[str, Any] | None = None,
    worktree_admin: bool = False,
    hooks: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``git <args>`` in ``cwd`` (never raises for git's exit code), marked as ``step`` for as long
    as it runs (see the module docstring); ``worktree_admin``: a worktree write, run under the
    repo's worktree-admin lock (:func:`speedrift.repo.git.worktree_admin`); ``hooks``: the approved
    hooks directory, if any (:func:`speedrift.gitcmd.command`; none run otherwise). Raises GitError
    when git cannot be run, :class:`~speedrift.procs.ProcessTimeout` past ``timeout`` (the marker
    then stays, ended)."""
    if worktree_admin:
        with git.worktree_admin(repo, exclusive=True):
            return run_step(
                repo, step, args, cwd, locks, env=env, timeout=timeout, input_text=input_text, detail=detail,
                hooks=hooks,
            )  # fmt: skip
    folder = layout.git_steps_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    owner = identity_of()
    path = folder / f"{owner.pid}-{owner.started or 0}-{next(_sequence)}.json"
    record: dict[str, Any] = {
        "step": step,
        "cwd": str(cwd),
        "locks": [str(lock) for lock in locks],
        "owner": owner.to_dict(),
        "git": None,
        "at": format_time(now_utc()),
        "detail": dict(detail or {}),
    }
    _create(path, record)
    try:
        running = gitcmd.start(
            args,
            cwd,
            deadline=time.monotonic() + timeout,
            environ=gitcmd.environment(env),
            input_bytes=input_text.encode() if input_text else None,
            hooks=hooks,
        )
    except FileNotFoundError:
        path.unlink(missing_ok=True)
        reason = f"{cwd} does not exist" if not Path(cwd).is_dir() else "git is not installed"
        raise gitcmd.GitError(f"cannot run git {' '.join(args[:2])}: {reason}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    _append(path, {"git": identity_of(running.pid).to_dict()})
    try:
        done = running.finish()
    except BaseException:
        # killed at its timeout or interrupted: the group is gone, its locks may be left
        _append(path, {"ended": True})
        raise
    path.unlink(missing_ok=True)
    return subprocess.CompletedProcess(
        list(done.args), done.returncode, _text(done.stdout), _text(done.stderr)
    )


def markers(repo: Path) -> list[StepMarker]:
    """Every step marker of the repo (a torn or foreign file is skipped)."""
    folder = layout.git_steps_dir(repo)
    if not folder.is_dir():
        return []
    found: list[StepMarker] = []
    for path in sorted(folder.glob("*.json")):
        marker = _read(path)
        if marker is not None:
            found.append(marker)
    return found


def clear_stale(repo: Path) -> list[Cleared]:
    """Remove the lock files of every step that is over (see :meth:`StepMarker.over`) and no live
    process has open, then the step's marker. A step still running, or whose lock is held open, is
    left for the next call."""
    cleared: list[Cleared] = []
    for marker in markers(repo):
        if not marker.over():
            continue
        present = [lock for lock in marker.locks if os.path.lexists(lock)]
        if _held_open(present):
            continue
        removed: list[str] = []
        for lock in present:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                continue
            removed.append(lock)
        marker.path.unlink(missing_ok=True)
        cleared.append(Cleared(marker, tuple(removed)))
    _drop_torn(repo)
    return cleared


# --- the files --------------------------------------------------------------------------------------------
def _create(path: Path, record: Mapping[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, fsutil.DEFAULT_MODE)
    try:
        fsutil.write_all(fd, orjson.dumps(dict(record)) + b"\n")
    finally:
        os.close(fd)


def _append(path: Path, patch: Mapping[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        fsutil.write_all(fd, orjson.dumps(dict(patch)) + b"\n")
    finally:
        os.close(fd)


def _record(path: Path) -> dict[str, Any] | None:
    """The marker's first line patched by each later whole line; None when the first is torn."""
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError:
        return None
    merged: dict[str, Any] | None = None
    for line in lines:
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = None
        if merged is None:
            if not isinstance(value, dict):
                return None  # the first line is the step itself: without it, no marker
            merged = value
        elif isinstance(value, dict):
            merged.update(value)
    return merged


def _read(path: Path) -> StepMarker | None:
    raw = _record(path)
    if raw is None:
        return None
    locks = raw.get("locks")
    detail = raw.get("detail")
    return StepMarker(
        path=path,
        step=str(raw.get("step") or "?"),
        cwd=str(raw.get("cwd") or ""),
        locks=tuple(str(lock) for lock in locks) if isinstance(locks, list) else (),
        owner=ProcessIdentity.from_dict(raw.get("owner")),
        git=ProcessIdentity.from_dict(raw.get("git")),
        ended=raw.get("ended") is True,
        detail=detail if isinstance(detail, dict) else {},
    )


def _drop_torn(repo: Path) -> None:
    """A marker that cannot be read names no lock we could clear; once the process its name
    carries (``<pid>-<start>-<n>.json``) is gone it is only litter."""
    folder = layout.git_steps_dir(repo)
    if not folder.is_dir():
        return
    # an earlier version's marker write cut off by a kill: ".<name>.<pid>.<thread>.tmp"
    for path in folder.glob(".*.tmp"):
        parts = path.name.split(".")
        if len(parts) >= 4 and parts[-3].isdigit() and not procs.pid_alive(int(parts[-3])):
            path.unlink(missing_ok=True)
    for path in folder.glob("*.json"):
        if _record(path) is not None:
            continue
        pid, _, rest = path.name.partition("-")
        started = rest.partition("-")[0]
        if not pid.isdigit() or not started.isdigit():
            continue
        owner = ProcessIdentity(int(pid), int(started) or None)
        if not identity_alive(owner):
            path.unlink(missing_ok=True)


def _held_open(paths: Sequence[str]) -> bool:
    """Whether a live process has one of ``paths`` open (Linux: ``/proc/*/fd``; elsewhere there is
    no way to tell, and the owner's death is the only fact)."""
    if not paths or not Path("/proc").is_dir():
        return False
    wanted = {os.path.realpath(p) for p in paths}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        folder = f"/proc/{entry.name}/fd"
        try:
            descriptors = os.listdir(folder)
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(f"{folder}/{descriptor}") in wanted:
                    return True
            except OSError:
                continue
    return False


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
