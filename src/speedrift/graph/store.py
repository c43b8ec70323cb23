"""The one place that reads and writes a graph directory (POSIX: flock + atomic rename).

Writers follow wg's protocol exactly, so wg and speedrift can share a repo: exclusive ``flock`` on
``graph.lock``, re-read under the lock, write ``.graph.tmp.<pid>``, fsync, rename over
``graph.jsonl``, fsync the directory. Readers need no lock: rename is atomic, so a reader sees
the old file or the new one, never half of one. Every mutation is appended to
``log/operations.jsonl`` in wg's schema.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from speedrift import fsutil
from speedrift.errors import GraphFormatError, NotFound, Refused
from speedrift.graph import oplog
from speedrift.graph.codec import Graph
from speedrift.graph.ops import Mutation
from speedrift.graph.wgcompat import check_task
from speedrift.times import format_time, now_utc

GRAPH_DIR_NAMES = (".wg", ".workgraph")  # wg's resolver order: new name first, then legacy
GRAPH_FILE = "graph.jsonl"
LOCK_FILE = "graph.lock"
TMP_PREFIX = ".graph.tmp."


def find_graph_dir(explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Path:
    """Resolve like wg: ``--dir`` > ``$WG_DIR`` > walk up from cwd for ``.wg/`` then ``.workgraph/``."""
    if explicit:
        path = Path(explicit).expanduser()
        if not (path / GRAPH_FILE).is_file():
            raise NotFound(f"{path} holds no {GRAPH_FILE}", hint="check --dir, or run `speedrift init`")
        return path
    env = os.environ.get("WG_DIR")
    if env:
        path = Path(env).expanduser()
        if not (path / GRAPH_FILE).is_file():
            raise NotFound(
                f"WG_DIR={env} holds no {GRAPH_FILE}", hint="unset WG_DIR or point it at a graph dir"
            )
        return path
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        for name in GRAPH_DIR_NAMES:
            candidate = folder / name
            if (candidate / GRAPH_FILE).is_file():
                return candidate
    raise NotFound(
        f"no .wg/ or .workgraph/ graph found in {start} or any parent",
        hint="run `speedrift init` in your repository, or pass --dir",
    )


def repo_graph_dir(repo: Path) -> Path | None:
    """A repository's own graph directory (``.wg/`` before ``.workgraph/``, wg's order), or None.

    For code that acts on a named repo (the hub, gates, handlers, the dashboard): it never follows
    ``$WG_DIR`` (which the pipeline exports to agents) nor a parent directory's graph.
    """
    for name in GRAPH_DIR_NAMES:
        if (repo / name / GRAPH_FILE).is_file():
            return repo / name
    return None


def graph_file_candidates(repo: Path) -> tuple[Path, ...]:
    """Where a repository's ``graph.jsonl`` may be, in wg's resolver order (for stat-only watchers)."""
    return tuple(repo / name / GRAPH_FILE for name in GRAPH_DIR_NAMES)


def repo_graph_file(repo: Path) -> Path | None:
    """A repository's own ``graph.jsonl`` (see :func:`repo_graph_dir`), or None."""
    folder = repo_graph_dir(repo)
    return folder / GRAPH_FILE if folder is not None else None


def current_user() -> str:
    try:
        return os.environ.get("WG_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class Transaction:
    """A graph loaded under the exclusive lock; :meth:`apply` writes it back atomically."""

    store: GraphStore
    graph: Graph
    actor: str | None
    now: datetime

    def apply(self, mutation: Mutation) -> Mutation:
        if self.graph.problems:
            raise GraphFormatError(self.store.graph_path, self.graph.problems)
        if not mutation.tasks:
            return mutation  # a no-op (e.g. done on a done task) writes nothing
        for task in mutation.tasks:
            check_task(task, self.graph.get(task["id"]))
            self.graph.put_task(task)
        self.store.write_bytes_locked(self.graph.to_bytes())
        user = current_user()
        for record in mutation.records:
            oplog.append(
                self.store.directory,
                {
                    "timestamp": format_time(self.now),
                    "op": record.op,
                    "task_id": record.task_id,
                    "actor": self.actor,
                    "user": user,
                    "detail": record.detail,
                },
            )
        return mutation


class GraphStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.graph_path = directory / GRAPH_FILE
        self.lock_path = directory / LOCK_FILE

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None = None) -> GraphStore:
        """The graph the CLI means: ``--dir`` > ``$WG_DIR`` > walking up (see :func:`find_graph_dir`)."""
        return cls(find_graph_dir(explicit))

    @classmethod
    def of_repo(cls, repo: Path) -> GraphStore | None:
        """A named repository's own graph, or None (see :func:`repo_graph_dir`: never ``$WG_DIR``)."""
        folder = repo_graph_dir(repo)
        return cls(folder) if folder is not None else None

    def read_bytes(self) -> bytes:
        try:
            return self.graph_path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{self.graph_path} does not exist", hint="run `speedrift init`") from None
        except OSError as exc:  # a directory, no permission, an I/O error: named, never a traceback
            raise Refused(
                f"cannot read {self.graph_path}: {exc.strerror or exc}",
                hint="make it a readable file (check its permissions), then run the command again",
            ) from None

    def load(self) -> Graph:
        """Lock-free read (atomic rename makes it safe). Malformed lines are listed on the graph;
        no content raises (see graph/codec.py)."""
        return Graph.from_bytes(self.read_bytes())

    def locked(self) -> contextlib.AbstractContextManager[None]:
        # never creates the graph dir: a vanished one fails instead of coming back empty
        return fsutil.flocked(self.lock_path, create_dirs=False)

    @contextlib.contextmanager
    def transaction(self, actor: str | None = None, now: datetime | None = None) -> Iterator[Transaction]:
        with self.locked():
            yield Transaction(self, self.load(), actor, now or now_utc())

    def mutate(
        self,
        build: Callable[[Graph, datetime], Mutation],
        actor: str | None = None,
        now: datetime | None = None,
    ) -> Mutation:
        """Lock, reload, run ``build(graph, now)``, write. The usual way to change a graph."""
        with self.transaction(actor, now) as tx:
            return tx.apply(build(tx.graph, tx.now))

    def write_bytes_locked(self, data: bytes) -> None:
        """Replace graph.jsonl atomically. The caller holds the lock."""
        for stale in self.directory.glob(TMP_PREFIX + "*"):
            # under the exclusive lock no writer is active: any temp file is a crashed write
            with contextlib.suppress(OSError):
                stale.unlink()
        # wg's temp name (not fsutil's default): the cleanup above, and wg's own, find it by prefix
        fsutil.write_atomic(self.graph_path, data, tmp=self.directory / f"{TMP_PREFIX}{os.getpid()}")

    def replace_all(self, data: bytes) -> None:
        """Write a whole new graph under the lock (repair)."""
        with self.locked():
            self.write_bytes_locked(data)


def init_graph_dir(repo_root: Path) -> Path:
    """Create ``.workgraph/`` like ``wg init`` (graph, lock, .gitignore). Refuses a second graph dir."""
    existing = [repo_root / name for name in GRAPH_DIR_NAMES if (repo_root / name).exists()]
    target = repo_root / ".workgraph"
    others = [p for p in existing if p != target]
    if others:
        raise Refused(
            f"{others[0]} already exists; a repo may hold only one of .wg/ and .workgraph/",
            hint=f"use the existing graph (speedrift finds {others[0].name}/ by itself)",
        )
    target.mkdir(exist_ok=True)
    graph = target / GRAPH_FILE
    if not graph.exists():
        graph.touch()
    (target / LOCK_FILE).touch()
    gitignore = target / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("agents/\nservice/\nmatrix.toml\n*.secret\n*.credentials\n")
    return target
