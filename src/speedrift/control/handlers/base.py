"""What every hub handler is given and gives back, and the few file helpers they share.

A handler gets a :class:`HandlerContext` (the repo, its registry entry, the clock, how to start
speedrift itself) and returns a :class:`HandlerResult`; ``handlers.execute`` turns that into the
ledger's :class:`~speedrift.register.record.Outcome`. Everything a handler writes in a repo lives
under ``.speedrift/``, which is git-excluded.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift import fsutil, hubdir, layout, procs
from speedrift.control.authority import HubGit
from speedrift.errors import SpeedriftError
from speedrift.fleet.remote.config import EXECUTOR_ENV, SCHEDULER_ENV, ExecutorConfig
from speedrift.fleet.supervisor import ECOSYSTEM_LIMIT_ENV, SLOT_ENV
from speedrift.graph.store import GraphStore
from speedrift.register.record import ControlState, OutcomeStatus, RepoEntry
from speedrift.times import now_utc


def _read_control(repo: Path) -> ControlState:
    from speedrift.control.controlfile import read_control

    return read_control(repo)


@dataclass(frozen=True)
class HandlerContext:
    repo: Path
    entry: RepoEntry
    now: Callable[[], datetime] = now_utc
    speedrift_argv: Sequence[str] = (sys.executable, "-m", "speedrift")
    log_dir: Path | None = None  # for detached processes' output; default <repo>/.speedrift/logs
    read_control: Callable[[Path], ControlState] = _read_control
    cycle_id: str | None = None
    env: Mapping[str, str] | None = None  # for the processes handlers start; default os.environ
    timeout_s: float = 60.0  # git calls, service start
    scan_timeout_s: float = 900.0  # a whole gate scan
    # An operator's approval (`hub approve`) carries that operator's authority: the mode/lease
    # check is theirs, and processes start without --hub. The git contract still holds.
    approved_by: str | None = None
    # [policy] max_agents: the ecosystem-wide cap on live attempts, handed to every process started
    # here ($SPEEDRIFT_MAX_AGENTS), which counts it at admission (fleet/supervisor.py)
    max_agents: int | None = None
    # a long-lived hub (`hub up`) keeps a warm worker ready for its next dispatch (handlers/warm.py)
    warm_workers: bool = False
    # the hub's ecosystem.toml, handed to the processes it starts ($SPEEDRIFT_ECOSYSTEM) so that
    # their claims resolve `after` entries REPO:TASK as the hub's plan did
    ecosystem_path: Path | None = None
    # the ecosystem's [executor] (fleet/remote/config.py): where the attempts it starts develop,
    # handed to them ($SPEEDRIFT_EXECUTOR, $SPEEDRIFT_DASK_SCHEDULER); None: as the environment says
    executor: ExecutorConfig | None = None

    def git(self) -> HubGit:
        return HubGit(self.repo, timeout=self.timeout_s)

    def process_env(self) -> dict[str, str]:
        env = dict(self.env if self.env is not None else os.environ)
        env.pop("WG_DIR", None)  # every command gets --dir; an inherited WG_DIR must not redirect it
        env.pop(ECOSYSTEM_LIMIT_ENV, None)
        env.pop(SLOT_ENV, None)  # a slot is handed to one worker by name, never inherited
        if self.max_agents is not None:
            env[ECOSYSTEM_LIMIT_ENV] = str(self.max_agents)
        if self.ecosystem_path is not None:
            env[hubdir.ECOSYSTEM_ENV] = str(self.ecosystem_path)
        if self.executor is not None:
            env.pop(EXECUTOR_ENV, None)
            env.pop(SCHEDULER_ENV, None)
            env |= self.executor.child_env()
        return env

    def logs(self) -> Path:
        folder = self.log_dir or layout.logs_dir(self.repo)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@dataclass(frozen=True)
class HandlerResult:
    status: OutcomeStatus
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


class HandlerFailed(SpeedriftError):
    """A handler could not do its job (not a refusal): becomes a ``failed`` outcome."""

    def __init__(self, detail: str, **evidence: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.evidence = evidence


def graph_store(repo: Path) -> GraphStore:
    """The repo's own graph (never $WG_DIR, never a parent directory's)."""
    store = GraphStore.of_repo(repo)
    if store is not None:
        return store
    raise HandlerFailed(f"{repo} has no .wg/ or .workgraph/ task graph", rule="no_graph")


def ensure_dir(folder: Path) -> Path:
    """``folder`` (a :mod:`speedrift.layout` path under ``.speedrift/``), created if missing."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fresh_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2.suffix`` … when that name is taken (never overwrite)."""
    candidate = folder / f"{stem}{suffix}"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate


def ensure_excluded(hub_git: HubGit) -> None:
    """Keep ``.speedrift/`` out of git (the handlers' files must never show as a user's changes)."""
    exclude = Path(hub_git.out("rev-parse", "--git-path", "info/exclude"))
    if not exclude.is_absolute():
        exclude = hub_git.repo / exclude
    pattern = layout.STATE_PREFIX
    current = exclude.read_text() if exclude.exists() else ""
    if pattern in current.splitlines():
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    line = ("" if current.endswith("\n") or not current else "\n") + pattern + "\n"
    fsutil.append_synced(exclude, line.encode())


def run_bounded(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a command in its own process group (:func:`speedrift.procs.run`); past ``timeout`` the
    whole group is killed and the handler fails."""
    try:
        return procs.run(argv, cwd=cwd, env=env, timeout=timeout, text=True)
    except procs.ProcessTimeout:
        raise HandlerFailed(
            f"{' '.join(argv[-6:])} timed out after {timeout:g}s", timeout_s=timeout
        ) from None


def tail(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def prune(folder: Path, pattern: str, keep: int) -> None:
    """Retention: keep the ``keep`` newest files matching ``pattern`` (by modification time)."""
    entries: list[tuple[float, Path]] = []
    for path in folder.glob(pattern):
        with contextlib.suppress(OSError):
            entries.append((path.stat().st_mtime, path))
    for _mtime, old in sorted(entries, reverse=True)[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()
