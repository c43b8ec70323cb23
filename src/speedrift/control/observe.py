"""Observe every registered repo: one :class:`RepoSnapshot` each, incrementally, never changing a repo.

Each cycle, per repo, a cheap fingerprint is taken from ``stat`` alone (no process, no file
content) in three parts, and only the parts that changed are read again:

* **git** — the repo directory itself (top-level files added/removed), ``.git/HEAD``,
  ``.git/index``, ``.git/FETCH_HEAD``, ``packed-refs``, the current branch's ref and its
  remote-tracking ref. Unchanged: the previous :class:`GitState` is reused and no git process runs.
* **graph** — ``graph.jsonl`` of ``.wg/`` and ``.workgraph/``. Unchanged and before the reading's
  time horizon: ages are moved forward and claimant pids re-checked, the file is not read.
* **runs** — the graph (attempts end with a graph write), ``.speedrift/runs/`` and
  ``.speedrift/scans/``.

Service liveness, heartbeat and the control file are cheap and can change with no file event
(a service killed with -9 leaves every file as it was), so they are read fresh every cycle.

**Staleness bound.** Working-tree edits — a tracked file modified in place, or an untracked file
created below the top level — touch none of the git files above (``git status`` would refresh the
index, but observation runs with optional locks off, so it never does). They are picked up by
the full rescan that every ``full_rescan_every``-th cycle makes of every repo (default 10: at
the hub's 30 s interval, within 5 minutes), or as soon as anything else in the git part changes.
``full_rescan_every = 1`` rescans every cycle; ``0`` only on the first.

**Read-only.** git runs with ``--no-optional-locks`` and ``GIT_OPTIONAL_LOCKS=0``; the graph is
read without its lock; nothing under the repo is created, opened for writing or locked.

Per repo a timeout (``timeout_s``) bounds the work; a timeout or any error lands in
``snapshot.errors`` and never stops the cycle.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from speedrift.control import discover
from speedrift.control.controlfile import load_control
from speedrift.control.model import AttemptStats, GateStats, GitState, RepoEntry, RepoSnapshot
from speedrift.control.observe_git import (
    GitDirs,
    GitReadError,
    git_dirs,
    read_git_state,
    stat_key,
    watched_paths,
)
from speedrift.control.observe_graph import GraphReading, graph_file, read_graph, refresh
from speedrift.control.observe_runs import LockTable, read_lock_table, runs_state, service_state
from speedrift.control.registry import Ecosystem
from speedrift.graph.store import GRAPH_DIR_NAMES, GRAPH_FILE

StatKey = tuple[tuple[int, int, int] | None, ...]
WATCHDOG_GRACE_S = 5.0  # past timeout_s, a repo whose worker has not returned is given up on


@dataclass(frozen=True, slots=True)
class _Cache:
    """What one repo's last observation read, keyed by the fingerprint parts it was read under."""

    git_key: StatKey
    git: GitState | None
    git_errors: tuple[str, ...]
    graph_key: StatKey
    graph: GraphReading | None
    graph_errors: tuple[str, ...]
    runs_key: StatKey
    attempts: AttemptStats
    gates: GateStats


def _keys(paths: Sequence[Path]) -> StatKey:
    return tuple(stat_key(path) for path in paths)


def _fingerprint(*parts: StatKey) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=10).hexdigest()


class Observer:
    """Keeps the previous cycle's readings so an unchanged repo costs only a few ``stat`` calls."""

    def __init__(
        self,
        ecosystem: Ecosystem,
        *,
        full_rescan_every: int = 10,
        timeout_s: float = 15,
        workers: int = 4,
        entries: Sequence[RepoEntry] | None = None,
    ) -> None:
        self.ecosystem = ecosystem
        self.full_rescan_every = max(0, full_rescan_every)
        self.timeout_s = timeout_s
        self.workers = max(1, workers)
        self._fixed_entries = tuple(entries) if entries is not None else None
        self.entries: tuple[RepoEntry, ...] = self._fixed_entries or ecosystem.repos
        self.cycles = 0
        self._cache: dict[str, _Cache] = {}
        self._previous: dict[str, RepoSnapshot] = {}

    # ------------------------------------------------------------------ the cycle
    def is_full_rescan(self) -> bool:
        """Whether the next :meth:`observe` rereads every repo (the first cycle always does)."""
        if self.cycles == 0:
            return True
        return self.full_rescan_every > 0 and self.cycles % self.full_rescan_every == 0

    def observe(self, now: datetime) -> dict[str, RepoSnapshot]:
        full = self.is_full_rescan()
        if full and self._fixed_entries is None:
            eco = self.ecosystem
            self.entries = discover.with_discovered(eco.discovery, eco.repos, now, eco.workspace_root)
        self.cycles += 1
        names = frozenset(entry.name.lower() for entry in self.entries)
        locks = read_lock_table()
        started: dict[str, float] = {}
        results: dict[str, RepoSnapshot] = {}
        pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="observe")
        try:
            futures = {
                pool.submit(self._observe_one, entry, now, full, names, locks, started): entry
                for entry in self.entries
            }
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    self._collect(futures[future], future, now, results)
                for future in self._overdue(pending, futures, started):
                    pending.discard(future)
                    entry = futures[future]
                    results[entry.name] = self._failed(entry, now, f"timed out after {self.timeout_s:g}s")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        ordered = {entry.name: results[entry.name] for entry in self.entries if entry.name in results}
        self._previous = ordered
        return ordered

    def _collect(
        self,
        entry: RepoEntry,
        future: cf.Future[tuple[RepoSnapshot, _Cache | None]],
        now: datetime,
        results: dict[str, RepoSnapshot],
    ) -> None:
        try:
            snapshot, cache = future.result()
        except Exception as error:  # a bug in one repo's reading must not end the cycle
            results[entry.name] = self._failed(entry, now, f"{type(error).__name__}: {error}")
            return
        results[entry.name] = snapshot
        if cache is not None:
            self._cache[entry.name] = cache

    def _overdue(
        self,
        pending: set[cf.Future[tuple[RepoSnapshot, _Cache | None]]],
        futures: dict[cf.Future[tuple[RepoSnapshot, _Cache | None]], RepoEntry],
        started: dict[str, float],
    ) -> list[cf.Future[tuple[RepoSnapshot, _Cache | None]]]:
        """Workers past their timeout (plus grace): given up on, their thread left to finish alone."""
        limit = self.timeout_s + WATCHDOG_GRACE_S
        now = time.monotonic()
        return [
            f for f in pending if (began := started.get(futures[f].name)) is not None and now - began > limit
        ]

    def _failed(self, entry: RepoEntry, now: datetime, error: str) -> RepoSnapshot:
        previous = self._previous.get(entry.name)
        snapshot = RepoSnapshot(
            name=entry.name,
            path=str(entry.path),
            observed_at=now,
            exists=entry.path.is_dir(),
            errors=(f"observe: {error}",),
            git=previous.git if previous else None,
            graph=previous.graph if previous else None,
            tags=entry.tags,
        )
        self._cache.pop(entry.name, None)  # the next cycle reads this repo afresh
        return snapshot

    # ------------------------------------------------------------------ one repo (worker thread)
    def _observe_one(
        self,
        entry: RepoEntry,
        now: datetime,
        full: bool,
        names: frozenset[str],
        locks: LockTable | None,
        started: dict[str, float],
    ) -> tuple[RepoSnapshot, _Cache | None]:
        began = time.monotonic()
        started[entry.name] = began
        deadline = began + self.timeout_s
        repo = entry.path
        if not repo.is_dir():
            missing = RepoSnapshot(
                name=entry.name, path=str(repo), observed_at=now, exists=False, tags=entry.tags
            )
            return missing, None
        old = None if full else self._cache.get(entry.name)
        dirs = git_dirs(repo)
        git, git_errors, git_key, reused_git = self._git_part(repo, dirs, entry, old, deadline)
        graph_paths = [repo / name / GRAPH_FILE for name in GRAPH_DIR_NAMES]
        graph_key = _keys(graph_paths)
        others = names - {entry.name.lower()}
        reading, graph_errors, reused_graph = self._graph_part(repo, now, others, old, graph_key)
        runs_key = graph_key + _keys([repo / ".speedrift" / "runs", repo / ".speedrift" / "scans"])
        if old is not None and old.runs_key == runs_key:
            attempts, gates = old.attempts, old.gates
        else:
            attempts, gates = runs_state(repo, now)
        found_graph = graph_file(repo)
        service = service_state(repo, found_graph.parent if found_graph else None, locks, now)
        control, control_problem = load_control(repo)
        errors = [*git_errors, *graph_errors]
        if control_problem:
            errors.append(control_problem)
        cache = _Cache(
            git_key,
            git,
            tuple(git_errors),
            graph_key,
            reading,
            tuple(graph_errors),
            runs_key,
            attempts,
            gates,
        )
        snapshot = RepoSnapshot(
            name=entry.name,
            path=str(repo),
            observed_at=now,
            exists=True,
            errors=tuple(errors),
            git=git,
            graph=reading.state if reading else None,
            service=service,
            attempts=attempts,
            gates=gates,
            control=control,
            tags=entry.tags,
            fingerprint=_fingerprint(git_key, runs_key),
            reused=reused_git and reused_graph and old is not None and old.runs_key == runs_key,
        )
        return snapshot, cache

    def _git_part(
        self, repo: Path, dirs: GitDirs | None, entry: RepoEntry, old: _Cache | None, deadline: float
    ) -> tuple[GitState | None, list[str], StatKey, bool]:
        if dirs is None:
            return None, ["not a git repository (no .git)"], (), old is not None and old.git_key == ()
        key = _keys(watched_paths(repo, dirs, entry))
        if old is not None and old.git_key == key:
            return old.git, list(old.git_errors), key, True
        try:
            state, errors = read_git_state(repo, dirs, entry, deadline)
        except subprocess.TimeoutExpired:
            return None, [f"git: timed out after {self.timeout_s:g}s"], (), False
        except (GitReadError, OSError) as error:
            return None, [f"git: {error}"], (), False
        return state, errors, key, False

    def _graph_part(
        self, repo: Path, now: datetime, names: frozenset[str], old: _Cache | None, key: StatKey
    ) -> tuple[GraphReading | None, list[str], bool]:
        if old is not None and old.graph_key == key:
            if old.graph is None:
                return None, list(old.graph_errors), True
            moved = refresh(old.graph, now)
            if moved is not None:
                return moved, list(old.graph_errors), True
        try:
            return read_graph(repo, now, names), [], False
        except OSError as error:
            return None, [f"graph: unreadable ({error.strerror or error})"], False
