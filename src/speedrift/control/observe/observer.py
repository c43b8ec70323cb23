"""Observe every registered repo: one :class:`RepoSnapshot` each, incrementally, never changing a repo.

Each cycle, per repo, a cheap fingerprint is taken from ``stat`` alone (no process, no file
content) in three parts, and only the parts that changed are read again:

* **git** — the repo directory itself (top-level files added/removed), ``.git/HEAD``,
  ``.git/index``, ``.git/FETCH_HEAD``, ``packed-refs``, the current branch's ref and its
  remote-tracking ref. Unchanged: the previous :class:`GitState` is reused and no git process runs.
* **graph** — ``graph.jsonl`` of ``.wg/`` and ``.workgraph/``, with the coordination stores
  (``.speedrift/coord/*.jsonl``, whose open human escalations join the graph's: coordination.py).
  Unchanged and before the reading's time horizon: ages are moved forward and claimant pids
  re-checked, the files are not read.
* **runs** — the graph (attempts end with a graph write), ``.speedrift/runs/`` and
  ``.speedrift/scans/``.

**Dependencies across repos** (``after = ["shop-api:design-api"]``) are resolved in a second pass
over the cycle's readings (:meth:`Observer._resolve_peers`): the statuses come from the peer
graphs read (or kept) in the same cycle, and a reading whose peer statuses changed is judged
again from the graph it kept, without reading its file.

Service liveness, heartbeat and the control file are cheap and can change with no file event
(a service killed with -9 leaves every file as it was), so they are read fresh every cycle.
Fingerprints are taken in the calling thread; only repos with something to read go to the pool
of ``workers`` threads (git runs there, ``workers`` at a time).

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
import os
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TypeAlias

from speedrift import layout
from speedrift.control.controlfile import load_control
from speedrift.control.ecosystem import discover
from speedrift.control.ecosystem.load import Ecosystem
from speedrift.control.observe.coordination import coord_key, open_escalations
from speedrift.control.observe.git import (
    GitDirs,
    GitReadError,
    git_dirs,
    git_env,
    head_ref,
    read_git_state,
    start_status,
    stat_key,
    watched_paths,
)
from speedrift.control.observe.graph import GraphReading, read_graph, refresh, with_exports, with_peers
from speedrift.control.observe.lanes import lanes_state
from speedrift.control.observe.runs import LazyLockTable, Locks, runs_state, service_state
from speedrift.graph import peers as peer_deps
from speedrift.graph.model import status_of
from speedrift.graph.store import GRAPH_DIR_NAMES, GRAPH_FILE
from speedrift.lanes.policy import POLICY_FILE
from speedrift.lanes.runner import report_path
from speedrift.procs import ProcessTimeout, Running
from speedrift.register.record import (
    AttemptStats,
    ControlState,
    GateStats,
    GitState,
    LaneStats,
    RepoEntry,
    RepoSnapshot,
    ServiceState,
)

StatKey = tuple[tuple[int, int, int] | None, ...]
WATCHDOG_GRACE_S = 5.0  # past timeout_s, a repo whose worker has not returned is given up on
# A repo whose graph cannot be read is quarantined: its snapshot has no graph (so nothing is planned
# for it) and says why; the next cycle that finds the file changed reads it again.
UNREADABLE_FIX = (
    "fix: make graph.jsonl readable (permissions, a file not a directory), then `speedrift repair`"
)


@dataclass(frozen=True, slots=True)
class _Keys:
    """A repo's fingerprint, taken before anything is read (so a change during the read is seen next time)."""

    dirs: GitDirs | None
    git: StatKey
    graph: StatKey
    runs: StatKey
    state_dir: bool  # .speedrift/ exists: there may be a service, runs, a control file
    coord: StatKey = ()  # the coordination stores (observe/coordination.py): read with the graph
    lanes: StatKey = ()  # the lanes' report and the drift policy files (observe/lanes.py)

    @property
    def graph_read(self) -> StatKey:
        """What a graph reading is valid under: the graph file and the coordination stores."""
        return self.graph + self.coord

    def graph_dir(self, repo: Path) -> Path | None:
        for name, key in zip(GRAPH_DIR_NAMES, self.graph, strict=True):
            if key is not None:
                return repo / name
        return None


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
    lanes_key: StatKey
    lanes: LaneStats


_Outcome: TypeAlias = tuple[RepoSnapshot, _Cache | None] | Exception


def _fingerprint(keys: _Keys) -> str:
    signed = repr((keys.git, keys.runs, keys.coord, keys.lanes)).encode()
    return hashlib.blake2b(signed, digest_size=10).hexdigest()


def _with_peers(fingerprint: str, peers: dict[str, str | None]) -> str:
    """A repo's fingerprint with the statuses of the peer tasks it waits on folded in."""
    signed = repr((fingerprint, sorted(peers.items(), key=lambda item: item[0])))
    return hashlib.blake2b(signed.encode(), digest_size=10).hexdigest()


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
        self.entries: tuple[RepoEntry, ...] = (
            self._fixed_entries if self._fixed_entries is not None else ecosystem.repos
        )
        self.cycles = 0
        self._cache: dict[str, _Cache] = {}
        self._previous: dict[str, RepoSnapshot] = {}
        self._dirs: dict[str, GitDirs | None] = {}
        self._heads: dict[str, tuple[tuple[int, int, int] | None, str | None]] = {}
        self._wanted: dict[str, frozenset[str]] = {}  # repo -> its tasks other repos wait on

    # ------------------------------------------------------------------ the cycle
    def is_full_rescan(self) -> bool:
        """Whether the next :meth:`observe` rereads every repo (the first cycle always does)."""
        if self.cycles == 0:
            return True
        return self.full_rescan_every > 0 and self.cycles % self.full_rescan_every == 0

    def observe(self, now: datetime) -> dict[str, RepoSnapshot]:
        full = self.is_full_rescan()
        if full:
            self._dirs.clear()
            self._heads.clear()
            if self._fixed_entries is None:
                eco = self.ecosystem
                self.entries = discover.with_discovered(eco.discovery, eco.repos, now, eco.workspace_root)
        self.cycles += 1
        names = frozenset(entry.name.lower() for entry in self.entries)
        locks = LazyLockTable()
        results: dict[str, RepoSnapshot] = {}
        jobs: list[tuple[RepoEntry, _Keys, _Cache | None]] = []
        for entry in self.entries:
            if not os.path.isdir(entry.path):
                results[entry.name] = RepoSnapshot(
                    name=entry.name, path=str(entry.path), observed_at=now, exists=False, tags=entry.tags
                )
                self._cache.pop(entry.name, None)
                continue
            keys = self._keys(entry)
            old = None if full else self._cache.get(entry.name)
            reused = self._reuse(entry, keys, old, now, locks) if old is not None else None
            if reused is not None:
                results[entry.name] = reused
            else:
                jobs.append((entry, keys, old))
        if jobs:
            self._read(jobs, now, names, locks, results)
        self._resolve_peers(results, now)
        ordered = {entry.name: results[entry.name] for entry in self.entries if entry.name in results}
        self._previous = ordered
        return ordered

    def _read(
        self,
        jobs: list[tuple[RepoEntry, _Keys, _Cache | None]],
        now: datetime,
        names: frozenset[str],
        locks: Locks | None,
        results: dict[str, RepoSnapshot],
    ) -> None:
        """Read the changed repos on the pool; results come back through a queue (O(1) each)."""
        env = git_env()
        started: dict[str, float] = {}
        done: queue.SimpleQueue[tuple[RepoEntry, _Outcome]] = queue.SimpleQueue()

        def work(entry: RepoEntry, keys: _Keys, old: _Cache | None) -> None:
            try:
                outcome: _Outcome = self._observe_one(entry, keys, old, now, names, locks, env, started)
            except Exception as error:  # a bug in one repo's reading must not end the cycle
                outcome = error
            done.put((entry, outcome))

        pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="observe")
        try:
            waiting = {entry.name: entry for entry, _, _ in jobs}
            for entry, keys, old in jobs:
                pool.submit(work, entry, keys, old)
            while waiting:
                try:
                    entry, outcome = done.get(timeout=0.5)
                except queue.Empty:
                    self._give_up_overdue(waiting, started, now, results)
                    continue
                if waiting.pop(entry.name, None) is None:
                    continue  # already given up on
                if isinstance(outcome, Exception):
                    results[entry.name] = self._failed(entry, now, f"{type(outcome).__name__}: {outcome}")
                    continue
                snapshot, cache = outcome
                results[entry.name] = snapshot
                if cache is not None:
                    self._cache[entry.name] = cache
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _give_up_overdue(
        self,
        waiting: dict[str, RepoEntry],
        started: dict[str, float],
        now: datetime,
        results: dict[str, RepoSnapshot],
    ) -> None:
        """Workers past their timeout (plus grace): reported, their thread left to finish alone."""
        limit = self.timeout_s + WATCHDOG_GRACE_S
        clock = time.monotonic()
        for name in [n for n in waiting if (began := started.get(n)) is not None and clock - began > limit]:
            entry = waiting.pop(name)
            results[name] = self._failed(entry, now, f"timed out after {self.timeout_s:g}s")

    def _failed(self, entry: RepoEntry, now: datetime, error: str) -> RepoSnapshot:
        previous = self._previous.get(entry.name)
        self._cache.pop(entry.name, None)  # the next cycle reads this repo afresh
        return RepoSnapshot(
            name=entry.name,
            path=str(entry.path),
            observed_at=now,
            exists=entry.path.is_dir(),
            errors=(f"observe: {error}",),
            git=previous.git if previous else None,
            graph=previous.graph if previous else None,
            tags=entry.tags,
        )

    # ------------------------------------------------------------------ fingerprints (calling thread)
    def _keys(self, entry: RepoEntry) -> _Keys:
        repo = entry.path
        dirs = self._dirs.get(entry.name)
        if dirs is None:  # a directory that is not (yet) a repo is looked at again every cycle
            dirs = git_dirs(repo)
            if dirs is not None:
                self._dirs[entry.name] = dirs
        git: StatKey = ()
        if dirs is not None:
            head_key = stat_key(dirs.git_dir / "HEAD")
            cached = self._heads.get(entry.name)
            if cached is None or cached[0] != head_key:
                cached = (head_key, head_ref(dirs))
                self._heads[entry.name] = cached
            git = tuple(stat_key(p) for p in watched_paths(repo, dirs, entry, cached[1] or ""))
        base = str(repo)
        graph = tuple(stat_key(f"{base}/{name}/{GRAPH_FILE}") for name in GRAPH_DIR_NAMES)
        state_dir = os.path.isdir(layout.state_dir(repo))
        runs = graph + (
            (stat_key(layout.runs_dir(repo)), stat_key(layout.scans_dir(repo))) if state_dir else (None, None)
        )
        # the lanes' report and policy: a new check or an edited policy is read at once
        lanes = (
            stat_key(report_path(repo)) if state_dir else None,
            *(stat_key(f"{base}/{name}/{POLICY_FILE}") for name in GRAPH_DIR_NAMES),
        )
        return _Keys(dirs, git, graph, runs, state_dir, coord_key(repo) if state_dir else (), lanes)

    def _live(
        self, entry: RepoEntry, keys: _Keys, locks: Locks | None, now: datetime
    ) -> tuple[ServiceState, ControlState, str | None]:
        """The parts read fresh every cycle: service liveness and the control file."""
        service = service_state(entry.path, keys.graph_dir(entry.path), locks, now, state_dir=keys.state_dir)
        if not keys.state_dir:
            return service, ControlState(), None
        control, problem = load_control(entry.path)
        return service, control, problem

    def _snapshot(
        self,
        entry: RepoEntry,
        keys: _Keys,
        cache: _Cache,
        now: datetime,
        locks: Locks | None,
        reused: bool,
    ) -> RepoSnapshot:
        service, control, problem = self._live(entry, keys, locks, now)
        errors = (*cache.git_errors, *cache.graph_errors, *((problem,) if problem else ()))
        return RepoSnapshot(
            name=entry.name,
            path=str(entry.path),
            observed_at=now,
            exists=True,
            errors=errors,
            git=cache.git,
            graph=cache.graph.state if cache.graph else None,
            service=service,
            attempts=cache.attempts,
            gates=cache.gates,
            lanes=cache.lanes,
            control=control,
            tags=entry.tags,
            fingerprint=_fingerprint(keys),
            reused=reused,
        )

    def _reuse(
        self, entry: RepoEntry, keys: _Keys, old: _Cache, now: datetime, locks: Locks | None
    ) -> RepoSnapshot | None:
        """The snapshot without reading anything, or None when some part changed."""
        if (
            old.git_key != keys.git
            or old.graph_key != keys.graph_read
            or old.runs_key != keys.runs
            or old.lanes_key != keys.lanes
        ):
            return None
        reading = old.graph
        if reading is not None:
            reading = refresh(reading, now)
            if reading is None:
                return None  # past the horizon: a time-based fact changed, read the graph again
        cache = _Cache(
            old.git_key, old.git, old.git_errors, old.graph_key, reading, old.graph_errors, old.runs_key,
            old.attempts, old.gates, old.lanes_key, old.lanes,
        )  # fmt: skip
        self._cache[entry.name] = cache
        return self._snapshot(entry, keys, cache, now, locks, reused=True)

    # ------------------------------------------------------------------ reading (worker thread)
    def _observe_one(
        self,
        entry: RepoEntry,
        keys: _Keys,
        old: _Cache | None,
        now: datetime,
        names: frozenset[str],
        locks: Locks | None,
        env: dict[str, str] | None,
        started: dict[str, float],
    ) -> tuple[RepoSnapshot, _Cache | None]:
        began = time.monotonic()
        started[entry.name] = began
        repo = entry.path
        deadline = began + self.timeout_s
        status: Running | None = None
        failure: str | None = None
        if keys.dirs is not None and not (old is not None and old.git_key == keys.git):
            try:  # git runs while this thread reads the graph
                status = start_status(repo, deadline, env)
            except ProcessTimeout:
                failure = f"git: timed out after {self.timeout_s:g}s"
            except OSError as error:
                failure = f"git: {error}"
        reading, graph_errors, reused_graph = self._graph_part(entry, now, names, old, keys)
        git_key: StatKey = ()
        if failure is not None:
            git, git_errors, reused_git = None, [failure], False
        else:
            git, git_errors, git_key, reused_git = self._git_part(entry, keys, old, deadline, env, status)
        if old is not None and old.runs_key == keys.runs:
            attempts, gates, reused_runs = old.attempts, old.gates, True
        elif keys.state_dir:
            attempts, gates = runs_state(repo, now)
            reused_runs = False
        else:
            attempts, gates, reused_runs = AttemptStats(), GateStats(), False
        if old is not None and old.lanes_key == keys.lanes and old.git_key == git_key:
            lanes = old.lanes  # the report, the policy and the target's tip are as they were
        else:
            lanes = lanes_state(repo, keys.dirs) if keys.dirs is not None else LaneStats()
        cache = _Cache(
            git_key,
            git,
            tuple(git_errors),
            keys.graph_read,
            reading,
            tuple(graph_errors),
            keys.runs,
            attempts,
            gates,
            keys.lanes,
            lanes,
        )
        reused = reused_git and reused_graph and reused_runs
        return self._snapshot(entry, keys, cache, now, locks, reused), cache

    def _git_part(
        self,
        entry: RepoEntry,
        keys: _Keys,
        old: _Cache | None,
        deadline: float,
        env: dict[str, str] | None,
        status: Running | None,
    ) -> tuple[GitState | None, list[str], StatKey, bool]:
        if keys.dirs is None:
            return None, ["not a git repository (no .git)"], (), old is not None and old.git_key == ()
        if old is not None and old.git_key == keys.git:
            return old.git, list(old.git_errors), keys.git, True
        try:
            state, errors = read_git_state(entry.path, keys.dirs, entry, deadline, env, status)
        except ProcessTimeout:
            return None, [f"git: timed out after {self.timeout_s:g}s"], (), False
        except (GitReadError, OSError) as error:
            return None, [f"git: {error}"], (), False
        return state, errors, keys.git, False

    def _graph_part(
        self, entry: RepoEntry, now: datetime, names: frozenset[str], old: _Cache | None, keys: _Keys
    ) -> tuple[GraphReading | None, list[str], bool]:
        if old is not None and old.graph_key == keys.graph_read:
            if old.graph is None:
                return None, list(old.graph_errors), True
            moved = refresh(old.graph, now)
            if moved is not None:
                return moved, list(old.graph_errors), True
        try:
            previous = old.graph.peers if old is not None and old.graph is not None else None
            return (
                read_graph(
                    entry.path,
                    now,
                    names,
                    own=entry.name.lower(),
                    peers=previous.statuses if previous is not None else None,
                    export=self._wanted.get(entry.name, ()),
                    questions=open_escalations(entry.path) if keys.coord else (),
                ),
                [],
                False,
            )
        except OSError as error:
            return None, [f"graph: unreadable ({error.strerror or error}); {UNREADABLE_FIX}"], False
        except Exception as error:  # quarantined: no graph, the reason shown, the other repos go on
            return None, [f"graph: unreadable ({type(error).__name__}: {error}); {UNREADABLE_FIX}"], False

    # ------------------------------------------------------------------ dependencies across repos
    def _resolve_peers(self, results: dict[str, RepoSnapshot], now: datetime) -> None:
        """The second pass: ``after = ["REPO:TASK"]`` judged against the peer repos' graphs.

        Each reading says which peer tasks it waits on and keeps the statuses of its own tasks
        that others waited on last cycle (read with its graph, no extra file access). A task asked
        about for the first time is looked up by reading that peer's graph once, and kept. A
        reading whose peer statuses changed is judged again from the graph it kept, so a task
        done in one repo frees its dependents in another in the same cycle."""
        entries = {entry.name: entry for entry in self.entries}
        readings = {
            name: cache.graph
            for name, cache in self._cache.items()
            if name in results and name in entries and cache.graph is not None
        }
        wanted: dict[str, set[str]] = {}
        for reading in readings.values():
            if reading.peers is not None:
                for repo, ids in reading.peers.wanted.items():
                    wanted.setdefault(repo, set()).update(ids)
        self._wanted = {repo: frozenset(ids) for repo, ids in wanted.items() if repo in entries}
        if not wanted:
            return
        statuses: dict[str, str | None] = {}
        for repo, ids in self._wanted.items():
            peer = readings.get(repo)
            exports = peer.peers.exports if peer is not None and peer.peers is not None else {}
            if not ids <= exports.keys():
                graph = peer_deps.read_peer_graph(entries[repo].path)
                tasks = graph.tasks if graph is not None else {}
                exports = {tid: (status_of(tasks[tid]) if tid in tasks else None) for tid in ids}
                if peer is not None:
                    readings[repo] = with_exports(peer, exports)
                    self._cache[repo] = replace(self._cache[repo], graph=readings[repo])
            statuses.update((f"{repo}:{tid}", exports.get(tid)) for tid in ids)
        for name, reading in readings.items():
            view = reading.peers
            if view is None or not view.wanted:
                continue
            mine = {
                key: statuses[key]
                for repo, ids in view.wanted.items()
                for tid in ids
                if (key := f"{repo}:{tid}") in statuses
            }
            # what it waits on is part of what the snapshot says: a kept score must not outlive it
            signed = replace(results[name], fingerprint=_with_peers(results[name].fingerprint, mine))
            results[name] = signed
            if view.statuses is not None and dict(view.statuses) == mine:
                continue
            judged = with_peers(reading, mine, now)
            self._cache[name] = replace(self._cache[name], graph=judged)
            results[name] = replace(signed, graph=judged.state)
