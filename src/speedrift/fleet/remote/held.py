"""What the hub knows each Dask worker's cache holds of a repository: the newest base commit its
last job there reported (fleet/remote/repocache.py ``newest_base``: it keeps that commit, and so
everything before it).

Job: let the hub ship a *thin* bundle — only the history after a commit every worker that may take
the job holds (fleet/remote/source.py) — instead of the branch's whole history with every job.
Kept per repository in ``.speedrift/cache/remote/held.json`` as ``{scheduler: {worker: commit}}``,
written by whichever of the hub's attempt processes received a job's result.

Invariants: a hint, never a promise — a worker that lacks what it was counted on to hold says so
and runs nothing (``JobResult.missing_base``), the hub then forgets it and sends the whole history,
so a wrong or stale entry costs one more round trip and never a wrong result. Reads never raise
(a torn or hostile file is no knowledge); writes are atomic under the file's lock.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson

from speedrift import fsutil, layout
from speedrift.repo import git

HELD_FILE = "held.json"
MAX_WORKERS = 1000  # entries kept per scheduler (workers come and go under new addresses)


def held_path(repo: Path) -> Path:
    return layout.cache_dir(repo, "remote", HELD_FILE)


def _load(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    clean: dict[str, dict[str, str]] = {}
    for scheduler, workers in data.items():
        if isinstance(scheduler, str) and isinstance(workers, dict):
            clean[scheduler] = {
                str(worker): commit
                for worker, commit in workers.items()
                if isinstance(commit, str) and git.is_object_id(commit)
            }
    return clean


def read(repo: Path, scheduler: str) -> dict[str, str]:
    """Worker address -> the newest base commit its cache was last seen to hold of ``repo``."""
    return _load(held_path(repo)).get(scheduler, {})


def of_all(known: dict[str, str], workers: list[str]) -> tuple[str, ...]:
    """The commits ``workers`` are known to hold (one each, repeats dropped); empty when one of
    them is not known — a bundle for them must then carry the whole history."""
    if not workers or any(worker not in known for worker in workers):
        return ()
    return tuple(dict.fromkeys(known[worker] for worker in workers))


def _update(repo: Path, scheduler: str, worker: str, commit: str | None) -> None:
    path = held_path(repo)
    with contextlib.suppress(OSError), fsutil.flocked(path.with_suffix(".lock")):
        data = _load(path)
        workers = data.setdefault(scheduler, {})
        workers.pop(worker, None)
        if commit is not None:
            workers[worker] = commit  # the newest last
        data[scheduler] = dict(list(workers.items())[-MAX_WORKERS:])
        fsutil.write_atomic(path, orjson.dumps(data), durable=False)


def record(repo: Path, scheduler: str, worker: str, commit: str) -> None:
    """A job of ``repo`` on ``worker`` reported its cache holds ``commit``."""
    if worker and git.is_object_id(commit):
        _update(repo, scheduler, worker, commit)


def forget(repo: Path, scheduler: str, worker: str) -> None:
    """``worker`` lacked what it was counted on to hold: nothing is assumed of it until its next job."""
    if worker:
        _update(repo, scheduler, worker, None)
