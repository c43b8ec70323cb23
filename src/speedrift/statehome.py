"""The machine-wide state directory: what every speedrift process on this machine must agree on.

Per-repo state lives in ``<repo>/.speedrift/`` (see :mod:`speedrift.layout`) and the hub's in
``.speedrift-hub/`` (see :mod:`speedrift.hubdir`). Some facts belong to neither: an agent runtime
paused by a usage limit is paused for every repo and every supervisor on the machine, and the
ecosystem-wide cap on running agents counts attempts in all repos. Those live here.

Location: ``$SPEEDRIFT_STATE_DIR``, else ``$XDG_STATE_HOME/speedrift``, else
``~/.local/state/speedrift``; created private (0700) on first use. Invariant: nothing else spells
these paths, and every file here is written through :mod:`speedrift.fsutil` (atomic, locked). Two
hooks directories live here: the empty one git gets from speedrift (:func:`no_hooks_dir`), and the
hub fetch's guard (:func:`fetch_guard_dir`); and the checkouts lanes keep (:func:`kept_trees_dir`).
A Dask worker's repository cache (:func:`worker_cache_dir`) may be put elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

STATE_DIR_ENV = "SPEEDRIFT_STATE_DIR"
WORKER_CACHE_ENV = "SPEEDRIFT_WORKER_CACHE"


def state_home(*, create: bool = True) -> Path:
    """The machine-wide state directory (see the module docstring for how it is found)."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        path = Path(override).expanduser()
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
        path = base / "speedrift"
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def live_dir(*, create: bool = True) -> Path:
    """One small file per live attempt on this machine (the supervisor's admission counts them)."""
    path = state_home(create=create) / "live"
    if create:
        path.mkdir(exist_ok=True, mode=0o700)
    return path


def admission_lock_path() -> Path:
    """The flock every supervisor holds while it counts live attempts and registers a new one."""
    return state_home() / "admission.lock"


def ecosystem_limit_path() -> Path:
    """``[policy] max_agents`` as the running hub published it, for every supervisor's admission."""
    return state_home() / "ecosystem-limit.json"


def preflight_path() -> Path:
    """The agent runtimes' recent "ready" preflight verdicts (agents/preflight.py), shared by
    every process on the machine: each attempt's worker is a new process."""
    return state_home() / "preflight-verdicts.json"


def pauses_path() -> Path:
    """Runtime pauses (usage limits, rate limits, auth failures, failed preflights), machine-wide."""
    return state_home() / "runtime-pauses.json"


def pauses_lock_path() -> Path:
    return state_home() / "runtime-pauses.lock"


def fetch_guard_dir() -> Path:
    """The hooks directory of the hub's ``git fetch``: one ``reference-transaction`` hook, written by
    the hub (control/authority.py), that refuses any ref update outside ``refs/remotes/<remote>/``."""
    path = state_home() / "hub-fetch-hooks"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def no_hooks_dir() -> Path:
    """An empty directory speedrift owns: every git process speedrift runs gets it as
    ``core.hooksPath`` unless the repo opted in to its own hooks (:mod:`speedrift.gitcmd`), so no
    hook anyone wrote into a repository runs. Created read-only (0500): nothing belongs in it."""
    path = state_home() / "no-git-hooks"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o500)
    return path


def kept_trees_dir() -> Path:
    """Checkouts the drift lanes keep between runs (gates/basetree.py ``kept_tree``): one per repo
    and lane, so a run at a new commit rewrites only the files that changed. Outside the repo, so
    nothing run there (a test suite looking for its configuration) climbs into the user's checkout."""
    path = state_home() / "kept-trees"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def attempt_log_path() -> Path:
    """Every finished attempt on this machine, one JSON line each (attemptlog.py): what spend,
    budgets and the nightwatch read."""
    return state_home() / "attempts.jsonl"


def attempt_log_lock_path() -> Path:
    return state_home() / "attempts.lock"


def budgets_path() -> Path:
    """The ecosystems' budgets as their hubs published them, for every supervisor's admission."""
    return state_home() / "budgets.json"


def worker_cache_dir() -> Path:
    """A Dask worker's cache (fleet/remote/repocache.py): bare repositories, the attempts' worktrees
    and run dirs, kept result bundles. ``$SPEEDRIFT_WORKER_CACHE``, else ``worker-cache`` here;
    created private (0700)."""
    override = os.environ.get(WORKER_CACHE_ENV)
    path = Path(override).expanduser() if override else state_home() / "worker-cache"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
