"""Watch every repo's ``graph.jsonl`` and push task-level deltas within a poll interval.

Writers (speedrift, wg) replace the file by atomic rename, so a change shows as a new inode,
mtime or size. Stat-polling 500 files costs about a millisecond, so polling every 0.1 s is
cheap and needs nothing platform-specific; only a changed file is read and re-derived. A slow
full rescan also re-derives unchanged graphs, because readiness can change with time alone
(``not_before``) and a same-size rewrite within one mtime tick would otherwise go unseen.

An ``after`` entry ``REPO:TASK`` is judged from the watched repos themselves (they are the
ecosystem): every read keeps that repo's task statuses, and a repo whose tasks name peer tasks
also keeps its graph and which repos it names. When a repo's graph changes, every repo naming it
is re-derived from what was kept — no file is read twice for it — and published the same way.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.graph.codec import Graph
from speedrift.graph.model import status_of
from speedrift.graph.query import PeerStatuses
from speedrift.graph.store import repo_graph_file
from speedrift.times import now_utc
from speedrift.web.live import DashboardState
from speedrift.web.views import RepoInfo, peer_deps, task_nodes

Signature = tuple[int, int, int] | None
log = logging.getLogger("speedrift.web")


def _signature(path: Path) -> Signature:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def read_graph(path: Path | None) -> Graph | None:
    """A graph file, decoded (bad lines are listed on it, never raised); None when the repo has no
    graph. Raises OSError when the file is there but cannot be read (a directory, no permission)."""
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # removed between the stat and the read
        return None
    return Graph.from_bytes(data)


def graph_problems(graph: Graph, limit: int = 20) -> tuple[str, ...]:
    """What the graph route reports about a graph it could read: skipped lines, duplicate ids."""
    lines = [
        f"line {n}: {problem} (skipped; `speedrift repair` sets it aside)" for n, problem in graph.problems
    ]
    return tuple([*lines, *graph.warnings][:limit])


class GraphWatcher:
    """Polls the graph files of ``repos`` and feeds changes into ``state``."""

    def __init__(
        self,
        state: DashboardState,
        repos: Sequence[RepoInfo],
        *,
        interval: float = 0.1,
        rescan_every: float = 60.0,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.state = state
        self.interval = interval
        self.rescan_every = rescan_every
        self.clock = clock
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        self._files: dict[str, Path | None] = {}
        self._signatures: dict[str, Signature] = {}
        # from each repo's last read: its tasks' statuses (what the repos naming them are judged by)
        self._statuses: dict[str, dict[str, str]] = {}
        # only for a repo whose tasks name peer tasks: those (repo -> task ids), and its graph
        self._wants: dict[str, dict[str, set[str]]] = {}
        self._graphs: dict[str, Graph] = {}
        self._problems: dict[str, tuple[str, ...]] = {}  # what the graph route says of each graph
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.set_repos(repos)

    def set_repos(self, repos: Sequence[RepoInfo]) -> None:
        """Follow the registry. A repo that left is forgotten and the repos naming it re-derived (it
        is now unregistered); a new one is read at the next poll, which re-derives those naming it."""
        with self._lock:
            self._paths = {r.name: Path(r.path) for r in repos}
            gone = [name for name in self._signatures if name not in self._paths]
            for name in gone:
                self._signatures.pop(name, None)
                self._files.pop(name, None)
                self._problems.pop(name, None)
                self._forget(name)
            if gone:
                self._publish([], set(gone))

    def load_all(self) -> None:
        """Read every graph once (start-up and full rescans)."""
        with self._lock:  # held for the pass: set_repos from another thread waits for it
            for name, repo in self._paths.items():
                path = repo_graph_file(repo)
                self._files[name] = path
                self._signatures[name] = _signature(path) if path is not None else None
            self._refresh(list(self._paths))

    def poll_once(self) -> list[str]:
        """Stat every graph file; re-read the changed ones. Returns the names re-read."""
        with self._lock:
            return self._poll_locked()

    def _poll_locked(self) -> list[str]:
        changed: list[str] = []
        for name, repo in self._paths.items():
            path = self._files.get(name)
            signature = _signature(path) if path is not None else None
            if path is None or signature is None:
                path = repo_graph_file(repo)  # created, moved between .wg/ and .workgraph/, or removed
                signature = _signature(path) if path is not None else None
            if (
                name in self._signatures
                and signature == self._signatures[name]
                and path == self._files.get(name)
            ):
                continue
            self._files[name] = path
            self._signatures[name] = signature
            changed.append(name)
        if changed:
            self._refresh(changed)
        return changed

    def _refresh(self, names: list[str]) -> None:
        """Re-read ``names``' graphs and publish their nodes, and those of every repo naming one."""
        naming: list[str] = []
        for name in names:
            graph = self._read(name)
            if graph is None or name not in self._wants:
                # names no peer task: published now (its graph is not kept), whatever else this pass reads
                self.state.update_graph(name, self._nodes(graph, {}), problems=self._problems.get(name, ()))
            else:
                naming.append(name)
        self._publish(naming, set(names))

    def _publish(self, read: list[str], changed: set[str]) -> None:
        """Publish the repos naming peer tasks that were just ``read``, then those naming a repo in
        ``changed`` (from their kept graphs): after every read of the pass, so their peers are
        judged by this pass's statuses."""
        naming = [name for name, wants in self._wants.items() if not changed.isdisjoint(wants)]
        dependents = read + [name for name in naming if name not in changed]
        for name in dependents:
            self.state.update_graph(
                name,
                self._nodes(self._graphs[name], self._wants[name]),
                problems=self._problems.get(name, ()),
            )

    def _read(self, name: str) -> Graph | None:
        """Read one repo's graph and keep what its dependents and its own re-derivation need. A
        graph that cannot be read is reported on the graph route, never raised into the pass."""
        try:
            graph = read_graph(self._files.get(name))
        except OSError as error:
            self._problems[name] = (f"graph.jsonl cannot be read: {error.strerror or error}",)
            graph = None
        else:
            self._problems[name] = graph_problems(graph) if graph is not None else ()
        if graph is None:
            self._forget(name)
            return None
        self._statuses[name] = {task_id: status_of(task) for task_id, task in graph.tasks.items()}
        wants = peer_deps(graph)
        if wants:
            self._wants[name], self._graphs[name] = wants, graph
        else:
            self._wants.pop(name, None)
            self._graphs.pop(name, None)
        return graph

    def _forget(self, name: str) -> None:
        self._statuses.pop(name, None)
        self._wants.pop(name, None)
        self._graphs.pop(name, None)

    def _nodes(self, graph: Graph | None, wants: dict[str, set[str]]) -> dict[str, dict[str, Any]] | None:
        if graph is None:
            return None
        return task_nodes(graph, self.clock(), self._peer_statuses(wants))

    def _peer_statuses(self, wants: dict[str, set[str]]) -> PeerStatuses:
        """As :func:`speedrift.graph.peers.resolve` answers, from the statuses kept: a repo not
        watched is left out (unregistered); a watched one without a graph answers None."""
        found: dict[str, str | None] = {}
        for repo, task_ids in wants.items():
            if repo in self._paths:
                statuses = self._statuses.get(repo, {})
                found.update((f"{repo}:{task_id}", statuses.get(task_id)) for task_id in task_ids)
        return found

    def run(self) -> None:
        since_rescan = 0.0
        while not self._stop.wait(self.interval):
            since_rescan += self.interval
            try:
                if since_rescan >= self.rescan_every:
                    since_rescan = 0.0
                    self.load_all()
                else:
                    self.poll_once()
            except Exception:  # one bad repo or a bug must not end the live view; say so and go on
                log.exception("graph watch pass failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="speedrift-graph-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
