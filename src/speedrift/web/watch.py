"""Watch every repo's ``graph.jsonl`` and push task-level deltas within a poll interval.

Writers (speedrift, wg) replace the file by atomic rename, so a change shows as a new inode,
mtime or size. Stat-polling 500 files costs about a millisecond, so polling every 0.1 s is
cheap and needs nothing platform-specific; only a changed file is read and re-derived. A slow
full rescan also re-derives unchanged graphs, because readiness can change with time alone
(``not_before``) and a same-size rewrite within one mtime tick would otherwise go unseen.
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
from speedrift.graph.store import repo_graph_file
from speedrift.times import now_utc
from speedrift.web.live import DashboardState
from speedrift.web.views import RepoInfo, task_nodes

Signature = tuple[int, int, int] | None
log = logging.getLogger("speedrift.web")


def _signature(path: Path) -> Signature:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def read_nodes(path: Path | None, now: datetime) -> dict[str, dict[str, Any]] | None:
    """A graph file's task nodes; None when the repo has no graph or it cannot be read."""
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return task_nodes(Graph.from_bytes(data), now)


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.set_repos(repos)

    def set_repos(self, repos: Sequence[RepoInfo]) -> None:
        with self._lock:
            self._paths = {r.name: Path(r.path) for r in repos}
            for name in list(self._signatures):
                if name not in self._paths:
                    self._signatures.pop(name, None)
                    self._files.pop(name, None)

    def load_all(self) -> None:
        """Read every graph once (start-up and full rescans)."""
        with self._lock:  # held for the pass: set_repos from another thread waits for it
            for name in list(self._paths):
                self._reload(name, force=True)

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
            self.state.update_graph(name, read_nodes(path, self.clock()))
            changed.append(name)
        return changed

    def _reload(self, name: str, *, force: bool) -> None:
        repo = self._paths.get(name)
        if repo is None:
            return
        path = repo_graph_file(repo)
        signature = _signature(path) if path is not None else None
        if not force and self._signatures.get(name) == signature:
            return
        self._files[name] = path
        self._signatures[name] = signature
        self.state.update_graph(name, read_nodes(path, self.clock()))

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
