"""What a lane reads: one :class:`RepoView` per ``drift check`` (shared by every lane, so the tree is
listed once, the diff computed once and each blob read once) and one :class:`LaneContext` per lane.

The view judges commits, never the working tree of the user's checkout, except when a diff range
ends at the working tree (``tip=None``: the original coredrift's "working changes" mode). Paths
are repo-relative in git's form; speedrift's own state (``.speedrift/``) and the graph directory
are never part of a tree or a diff.

Invariant: nothing here writes to the repo; every git call is read-only and uses
``--no-optional-locks`` semantics through :mod:`speedrift.gitcmd`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift import gitcmd, layout
from speedrift.gates.changes import ChangedFile, collect, git_bytes, read_blobs, zero_context_diff
from speedrift.graph.codec import Graph
from speedrift.graph.model import Task

GRAPH_DIRS = (".workgraph/", ".wg/")


def ignored(path: str) -> bool:
    """speedrift's state and the task graph are bookkeeping, not the repo's content."""
    return layout.is_state_path(path) or path.startswith(GRAPH_DIRS) or path.startswith(".git/")


@dataclass(frozen=True, slots=True)
class TreeEntry:
    path: str
    blob: str
    mode: str
    size: int


@dataclass(frozen=True, slots=True)
class NumStat:
    added: int  # lines; 0 for a binary file
    deleted: int
    binary: bool


class RepoView:
    """Read-only access to a repo at ``head`` (and a ``base``..``tip`` range), cached for every lane."""

    def __init__(self, repo: Path, head: str, base: str | None = None, tip: str | None = None) -> None:
        self.repo = repo
        self.head = head  # a full commit SHA: the tree lanes' commit
        self.base = base  # the diff range's start; None: no range
        self.tip = tip  # the range's end; None with a base: the working tree
        self._tree: tuple[TreeEntry, ...] | None = None
        self._by_path: dict[str, TreeEntry] | None = None
        self._blobs: dict[str, bytes] = {}
        self._changes: tuple[ChangedFile, ...] | None = None
        self._numstat: dict[str, NumStat] | None = None
        self._added: dict[str, list[tuple[int, str]]] | None = None

    @classmethod
    def at(
        cls, repo: Path, rev: str = "HEAD", *, base: str | None = None, tip: str | None = None
    ) -> RepoView:
        head = resolve(repo, rev)
        return cls(repo, head, resolve(repo, base) if base else None, resolve(repo, tip) if tip else None)

    # ------------------------------------------------------------------ the tree at head

    def tree(self) -> tuple[TreeEntry, ...]:
        """Every file at ``head`` (``git ls-tree -r -l``), bookkeeping excluded, sorted by path."""
        if self._tree is None:
            out = git_bytes(["ls-tree", "-r", "-l", "-z", "--full-tree", self.head], self.repo)
            entries: list[TreeEntry] = []
            for record in out.split(b"\0"):
                if not record:
                    continue
                meta, _, raw_path = record.partition(b"\t")
                mode, kind, blob, size = meta.split(maxsplit=3)
                path = os.fsdecode(raw_path)
                if kind != b"blob" or ignored(path):
                    continue
                entries.append(
                    TreeEntry(path, blob.decode(), mode.decode(), int(size) if size.strip() != b"-" else 0)
                )
            self._tree = tuple(entries)
        return self._tree

    def entry(self, path: str) -> TreeEntry | None:
        if self._by_path is None:
            self._by_path = {e.path: e for e in self.tree()}
        return self._by_path.get(path)

    def paths(self) -> list[str]:
        return [e.path for e in self.tree()]

    def read(self, path: str) -> bytes | None:
        """The file's bytes at ``head`` (None: no such regular file)."""
        entry = self.entry(path)
        if entry is None or entry.mode not in ("100644", "100755"):
            return None
        return self.read_many([path]).get(path)

    def read_many(self, paths: Sequence[str]) -> dict[str, bytes]:
        """Bytes of many files at ``head`` in one ``git cat-file --batch`` (cached by blob)."""
        wanted: dict[str, str] = {}
        for path in paths:
            entry = self.entry(path)
            if entry is not None and entry.mode in ("100644", "100755"):
                wanted[path] = entry.blob
        missing = [blob for blob in wanted.values() if blob not in self._blobs]
        if missing:
            self._blobs.update(read_blobs(self.repo, missing))
        return {path: self._blobs[blob] for path, blob in wanted.items() if blob in self._blobs}

    def text(self, path: str) -> str | None:
        data = self.read(path)
        return None if data is None else data.decode("utf-8", "replace")

    # ------------------------------------------------------------------ the diff range

    def changes(self) -> tuple[ChangedFile, ...]:
        """Files changed from ``base`` to ``tip`` (or the working tree); empty without a range."""
        if self._changes is None:
            if self.base is None:
                self._changes = ()
            else:
                self._changes = tuple(
                    c for c in collect(self.repo, self.base, self.tip) if not ignored(c.path)
                )
        return self._changes

    def numstat(self) -> dict[str, NumStat]:
        """Lines added and deleted per changed path (an untracked file counts every line as added);
        the counts come with the range's one diff (:meth:`changes`)."""
        if self._numstat is None:
            stats: dict[str, NumStat] = {}
            for change in self.changes():
                if change.binary:
                    stats[change.path] = NumStat(0, 0, True)
                elif self.tip is None and change.status == "A" and change.added == 0:
                    stats[change.path] = self._untracked_stat(change)
                else:
                    stats[change.path] = NumStat(change.added, change.deleted, False)
            self._numstat = stats
        return self._numstat

    def _untracked_stat(self, change: ChangedFile) -> NumStat:
        if change.binary:
            return NumStat(0, 0, True)
        try:
            data = (self.repo / change.path).read_bytes()
        except OSError:
            return NumStat(0, 0, False)
        return NumStat(data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1), 0, False)

    def added_lines(self) -> dict[str, list[tuple[int, str]]]:
        """The lines the range adds, per path, with their line number at the tip."""
        if self._added is None:
            added: dict[str, list[tuple[int, str]]] = {}
            tracked = [c.path for c in self.changes() if c.exists and not c.binary]
            if self.base is not None and tracked:
                added = parse_added(zero_context_diff(self.repo, self.base, self.tip, tracked))
            if self.tip is None:
                for change in self.changes():
                    if change.status == "A" and not change.binary and change.path not in added:
                        try:
                            text = (self.repo / change.path).read_text("utf-8", "replace")
                        except OSError:
                            continue
                        added[change.path] = list(enumerate(text.splitlines(), start=1))
            self._added = added
        return self._added


def parse_added(diff: bytes) -> dict[str, list[tuple[int, str]]]:
    """``git diff -U0`` output -> {path: [(line number at the tip, added text)]}."""
    added: dict[str, list[tuple[int, str]]] = {}
    path: str | None = None
    number = 0
    for raw in diff.split(b"\n"):
        if raw.startswith(b"+++ "):
            name = raw[4:]
            path = None if name == b"/dev/null" else os.fsdecode(name[2:] if name.startswith(b"b/") else name)
            continue
        if raw.startswith(b"@@"):
            header = raw.split(b" ")
            plus = next((h for h in header if h.startswith(b"+")), b"+0")
            number = int(plus[1:].split(b",")[0])
            continue
        if path is not None and raw.startswith(b"+"):
            added.setdefault(path, []).append((number, raw[1:].decode("utf-8", "replace")))
            number += 1
    return added


def resolve(repo: Path, rev: str) -> str:
    """The full SHA of ``rev`` (a GitError names the repo and the rev when it does not exist)."""
    result = gitcmd.run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo, check=False)
    sha = result.stdout.strip()
    if result.returncode != 0 or not sha:
        raise gitcmd.GitError(f"{repo}: no commit named {rev!r} (git rev-parse found nothing)")
    return sha


@dataclass(frozen=True, slots=True)
class LaneContext:
    """One lane's inputs. ``settings`` are the lane's defaults overlaid with the policy's table for
    it; ``fence`` is the task's fenced block for the lane (``None`` when absent), already parsed —
    ``fence_error`` says why it could not be (the lane reports it as a finding)."""

    lane: str
    view: RepoView
    now: datetime
    settings: Mapping[str, Any] = field(default_factory=dict)
    graph: Graph | None = None
    task: Task | None = None
    fence: Mapping[str, Any] | None = None
    fence_error: str | None = None
    state_dir: Path | None = None  # the lane's own directory under .speedrift/lanes/ (artifacts, state)

    @property
    def repo(self) -> Path:
        return self.view.repo

    @property
    def task_id(self) -> str:
        value = self.task.get("id") if self.task is not None else None
        return value if isinstance(value, str) else ""

    @property
    def description(self) -> str:
        value = self.task.get("description") if self.task is not None else None
        return value if isinstance(value, str) else ""
