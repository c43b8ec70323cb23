"""Running-attempt records on a Dask worker, and the sweep that ends what a dead worker left.

Job: while a job (fleet/remote/job.py) runs, ``<cache>/running/<job>.json`` names the worker
process running it (its :class:`~speedrift.procs.ProcessIdentity`), the agent's process group once
it started (its leader's identity: pgid + start time), and the cache paths it uses (repository,
worktree, run dir). Dask does not end a job's subprocesses when the worker process dies:
at every job's start :func:`sweep` looks at every record whose worker process is gone, SIGKILLs the
agent's whole group when it still runs, removes a one-off worktree (a kept checkout stays: the next
job that takes its slot resets it, fleet/remote/slots.py) and the run dir, and drops the
record.

Invariants: a record whose worker process still runs is never touched (it may be another worker
process sharing the cache); a group is signalled only when its leader is exactly the recorded
process (pid and start time), or when its leader is gone but members of the group remain (a pgid
is not reused while its group exists); a hostile or torn record never raises.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout, procs, statehome
from speedrift.fleet.remote import repocache, slots
from speedrift.procs import ProcessIdentity

RUNNING_DIR = "running"
SWEEP_LOCK = "running.lock"


@dataclass(frozen=True)
class Running:
    key: str  # the job's key (JobSpec.key)
    job: str  # its safe name (file names in the cache)
    worker: ProcessIdentity  # the worker process running the job
    repo_key: str
    checkout: repocache.Checkout
    run_dir: Path
    agent: ProcessIdentity | None = None  # the agent's group leader, once it started

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "job": self.job,
            "worker": self.worker.to_dict(),
            "repo_key": self.repo_key,
            "repo": str(self.checkout.repo),
            "worktree": str(self.checkout.worktree),
            "kept": self.checkout.kept,
            "run_dir": str(self.run_dir),
            "agent": self.agent.to_dict() if self.agent is not None else None,
        }


def record_path(cache: Path, job: str) -> Path:
    return cache / RUNNING_DIR / f"{job}.json"


def write(cache: Path, record: Running) -> None:
    path = record_path(cache, record.job)
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, orjson.dumps(record.to_dict()), durable=False)


def drop(cache: Path, job: str) -> None:
    record_path(cache, job).unlink(missing_ok=True)


def read(cache: Path, path: Path) -> Running | None:
    """The record at ``path``, or None when torn, hostile, or naming paths outside the cache's
    worktree, run and repository folders (a sweep removes nothing else)."""
    data = layout.read_record(path)
    if data is None:
        return None
    worker = ProcessIdentity.from_dict(data.get("worker"))
    texts = [data.get(name) for name in ("key", "job", "repo_key", "repo", "worktree", "run_dir")]
    if worker is None or not all(isinstance(text, str) and text for text in texts):
        return None
    key, job, repo_key, repo, worktree, run_dir = (str(text) for text in texts)
    kept = data.get("kept") is True
    checkout = repocache.Checkout(Path(repo), Path(worktree), kept=kept)
    inside = (
        (checkout.repo, cache / repocache.REPOS_DIR),
        (checkout.worktree.parent, cache / (slots.SLOTS_DIR if kept else repocache.WORK_DIR)),
        (Path(run_dir), cache / repocache.RUNS_DIR),
    )
    if not all(_strictly_under(path, folder) for path, folder in inside):
        return None
    agent = ProcessIdentity.from_dict(data.get("agent"))
    return Running(key, job, worker, repo_key, checkout, Path(run_dir), agent)


def end_agent(agent: ProcessIdentity | None) -> bool:
    """SIGKILL the agent's whole group (see the module docstring for when); whether it was signalled."""
    if agent is None or not _agent_runs(agent):
        return False
    with contextlib.suppress(PermissionError):
        return procs.signal_group(agent.pid, signal.SIGKILL)
    return False


def agent_left_in(cache: Path, worktree: Path) -> bool:
    """An agent named by a running record still runs in ``worktree`` (its job's worker is gone and
    no sweep has ended it yet): a slot with such a checkout is not taken (fleet/remote/slots.py)."""
    folder = cache / RUNNING_DIR
    if not folder.is_dir():
        return False
    for path in folder.glob("*.json"):
        record = read(cache, path)
        if record is not None and record.checkout.worktree == worktree and _agent_runs(record.agent):
            return True
    return False


def _agent_runs(agent: ProcessIdentity | None) -> bool:
    if agent is None or agent.pid <= 1:
        return False
    return procs.identity_alive(agent) or (not procs.pid_alive(agent.pid) and procs.group_alive(agent.pid))


def sweep(cache: Path) -> list[str]:
    """End and clean up the jobs of worker processes that are gone; their keys."""
    folder = cache / RUNNING_DIR
    if not folder.is_dir():
        return []
    swept: list[str] = []
    with fsutil.flocked(cache / SWEEP_LOCK):
        for path in sorted(folder.glob("*.json")):
            record = read(cache, path)
            if record is None:
                path.unlink(missing_ok=True)  # torn or hostile: names nothing to end
                continue
            if procs.identity_alive(record.worker):
                continue
            end_agent(record.agent)
            with contextlib.suppress(Exception):  # the record goes even if its checkout cannot
                repocache.discard_worktree(cache, record.repo_key, record.checkout)
            shutil.rmtree(record.run_dir, ignore_errors=True)
            path.unlink(missing_ok=True)
            swept.append(record.key)
    return swept


def _strictly_under(path: Path, folder: Path) -> bool:
    resolved, base = path.resolve(), folder.resolve()
    return resolved != base and resolved.is_relative_to(base)


def dask_setup(worker: object) -> None:
    """Dask's preload hook (``dask worker --preload speedrift.fleet.remote.orphans``, as
    ``speedrift cluster up`` starts its workers): a worker that starts — a nanny's restart after a
    crash included — first ends the agents its dead predecessors left running on this machine."""
    sweep(statehome.worker_cache_dir())
