"""Applying a Dask job's result to the hub's attempt: recognize it, keep its run files, take its
commits onto the attempt's branch.

Job: :func:`apply` checks that a :class:`~.spec.JobResult` answers exactly the job this process
submitted (key, task, attempt number) and that the task is still claimed by this process for that
attempt (the graph's ``speedrift.attempt`` and ``speedrift.worker.pid``); writes the run's files
into the hub's run dir; and fetches the result bundle into the attempt's worktree, fast-forwarding
the attempt's branch from the commit the job started on to the worker's tip.

Invariants: a result that is not for the attempt waiting on it (a late result from a worker
presumed dead, or one for an attempt recovery already ended) raises :class:`StaleResult` before
anything is written: it is recorded in the run dir (``remote-discarded.json``) and nothing of it
lands. Only the attempt's own branch moves, only by fast-forward, in its own worktree (the bundle's
objects are stored with ``git bundle unbundle``, which writes no ref); the hub's own records in the
run dir (``attempt.json``, ``evidence.json``, the prompts) are never overwritten by a worker's.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson

from speedrift import fsutil, layout, redact
from speedrift.errors import Refused, SpeedriftError
from speedrift.fleet.remote.spec import JobResult
from speedrift.graph.model import IN_PROGRESS, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.repo import git
from speedrift.times import format_time, now_utc

DISCARDED_FILE = layout.REMOTE_DISCARDED_FILE
MAX_DISCARDED = 50
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# the hub writes these itself; a worker's copy never replaces them
HUB_OWNED = frozenset(
    {layout.ATTEMPT_FILE, layout.EVIDENCE_FILE, layout.CANCEL_FILE, layout.PAUSED_FILE, DISCARDED_FILE}
)
# a revision round's lines follow the earlier ones
APPENDED = frozenset({layout.EVENTS_FILE, layout.STDERR_FILE})


class StaleResult(Refused):
    """A result not for the attempt waiting on it: discarded, nothing lands. ``claim_held``: this
    process still holds the task for that attempt (so the attempt itself must be released)."""

    def __init__(self, message: str, *, hint: str | None = None, claim_held: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.claim_held = claim_held


class IngestFailed(SpeedriftError):
    """The result is the attempt's, but its work could not be taken onto the attempt's branch."""


@dataclass(frozen=True)
class Expected:
    """What the waiting attempt submitted: the job's key, its task and attempt number, and the
    process that holds the task's claim."""

    key: str
    task_id: str
    attempt: int
    pid: int


@dataclass(frozen=True)
class Applied:
    tip: str  # the attempt's branch now (the commit the job started from, when it brought none)
    files: tuple[str, ...]  # the run-dir files written


def staleness(result: JobResult, expected: Expected, store: GraphStore) -> str | None:
    """Why ``result`` is not the waiting attempt's (None: it is)."""
    if result.key != expected.key:
        return f"it answers job {result.key!r}, not {expected.key!r}"
    if result.task_id != expected.task_id or result.attempt != expected.attempt:
        return (
            f"it is for {result.task_id!r} attempt {result.attempt}, not {expected.task_id!r} "
            f"attempt {expected.attempt}"
        )
    return claim_problem(expected, store)


def claim_problem(expected: Expected, store: GraphStore) -> str | None:
    """Why the task is no longer claimed by this process for the expected attempt (None: it is)."""
    task = store.load().get(expected.task_id)
    if task is None:
        return f"task {expected.task_id!r} no longer exists"
    if task.get("status") != IN_PROGRESS:
        return f"task {expected.task_id!r} is {task.get('status')} now, no longer in progress"
    data = speedrift_data(task)
    if data.get("attempt") != expected.attempt:
        return f"task {expected.task_id!r} is on attempt {data.get('attempt')} now, not {expected.attempt}"
    worker = data.get("worker")
    pid = worker.get("pid") if isinstance(worker, dict) else None
    if pid != expected.pid:
        return f"task {expected.task_id!r} is no longer claimed by this process ({os.getpid()})"
    return None


def discard(run_dir: Path, result: JobResult, why: str) -> None:
    """Record a discarded result in the run dir (the newest :data:`MAX_DISCARDED` are kept)."""
    path = run_dir / DISCARDED_FILE
    entries: list[Any] = []
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        loaded = orjson.loads(path.read_bytes())
        entries = loaded if isinstance(loaded, list) else []
    entries.append(
        {
            "at": format_time(now_utc()),
            "key": result.key,
            "task": result.task_id,
            "attempt": result.attempt,
            "worker": result.worker,
            "host": result.host,
            "tip": result.tip,
            "why": why,
        }
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, orjson.dumps(entries[-MAX_DISCARDED:], option=orjson.OPT_INDENT_2))


def ensure_current(result: JobResult, expected: Expected, store: GraphStore, run_dir: Path) -> None:
    """Raise StaleResult (the discard recorded in ``run_dir``) unless ``result`` is the waiting
    attempt's and the task is still claimed for it by this process."""
    why = staleness(result, expected, store)
    if why is None:
        return
    discard(run_dir, result, why)
    raise StaleResult(
        f"discarded a Dask result for {result.task_id!r} attempt {result.attempt} from "
        f"{result.worker or 'an unknown worker'}: {why}",
        hint=f"nothing of it landed; the discard is recorded in {run_dir / DISCARDED_FILE}",
        claim_held=claim_problem(expected, store) is None,
    )


def apply(
    result: JobResult,
    expected: Expected,
    *,
    store: GraphStore,
    run_dir: Path,
    worktree: Path,
    branch: str,
    start: str,
) -> Applied:
    """Apply ``result`` to the waiting attempt (see the module docstring). ``start``: the commit
    the job started from (the attempt's branch now). Raises StaleResult (recorded, nothing
    written) or IngestFailed."""
    ensure_current(result, expected, store, run_dir)
    written = write_files(run_dir, result.files)
    tip = fetch_result(worktree, branch, start, result, run_dir)
    return Applied(tip, written)


def write_files(run_dir: Path, files: dict[str, bytes]) -> tuple[str, ...]:
    """The job's run-dir files, by plain name only; the hub's own records are kept."""
    written: list[str] = []
    for name, content in sorted(files.items()):
        if not _FILE_NAME.match(name) or name in HUB_OWNED or not isinstance(content, bytes):
            continue
        path = run_dir / name
        if name in APPENDED and path.exists():
            with path.open("ab") as handle:
                handle.write(content)
        else:
            fsutil.write_atomic(path, content, durable=False)
        written.append(name)
    if layout.RESULT_FILE in written:
        redact.redact_file(layout.result_path(run_dir))  # as the local run's copy is
    return tuple(written)


def fetch_result(worktree: Path, branch: str, start: str, result: JobResult, run_dir: Path) -> str:
    """Take the worker's commits onto ``branch`` in ``worktree``: unbundle (objects only, no ref),
    then ``merge --ff-only`` to the tip. Returns the branch's tip after (``start`` when the job
    brought nothing). The bundle waits in ``run_dir`` while it is read. Raises IngestFailed."""
    if result.bundle is None or not result.tip or result.tip == start:
        if result.tip not in (None, start):
            _refuse(f"it names tip {result.tip} but brings no bundle")
        return start
    if not git.is_object_id(result.tip):
        _refuse(f"its tip {result.tip!r} is not a commit id")
    head = git.rev_parse(worktree, "HEAD")
    on = git.current_branch(worktree)
    if head != start or on != branch:
        _refuse(f"the attempt's worktree is at {head} on {on}, not at {start} on {branch}")
    if git.status_porcelain(worktree):
        _refuse("the attempt's worktree has uncommitted changes")
    incoming = run_dir / f"incoming-{layout.safe_name(result.key)[:80]}.bundle"
    fsutil.write_atomic(incoming, result.bundle, durable=False)
    try:
        # unbundling reads every worktree's HEAD: under the worktree-admin lock, shared like any
        # lister, so no `worktree add` of another attempt is half-done meanwhile ("bad object")
        with git.worktree_admin(worktree, exclusive=False):
            unbundled = git.run(["bundle", "unbundle", str(incoming)], worktree, check=False)
    finally:
        incoming.unlink(missing_ok=True)
    if unbundled.returncode != 0:
        _refuse(f"git bundle unbundle failed: {(unbundled.stderr or unbundled.stdout).strip()[-500:]}")
    # --ff-only refuses a tip that does not descend from the branch, and leaves the branch where
    # it is for one it already contains: either way the branch is not at the tip afterwards
    merged = git.run(["merge", "--ff-only", "--quiet", result.tip], worktree, check=False)
    now = git.rev_parse(worktree, "HEAD")
    if merged.returncode != 0 or now != result.tip:
        said = (merged.stderr or merged.stdout).strip()[-500:]
        _refuse(
            f"its tip {result.tip[:12]} does not descend from {start[:12]}, the attempt's branch"
            + (f" (git: {said})" if said else "")
        )
    return result.tip


def _refuse(why: str) -> NoReturn:
    raise IngestFailed(f"the Dask result could not be taken onto the attempt's branch: {why}")
