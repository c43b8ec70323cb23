"""The base commit's files on disk, for running a tool "as it was" — without touching any checkout.

Nothing here changes a branch, HEAD, an index or git's worktree list: a full tree is checked out
through a private temporary index (``GIT_INDEX_FILE``) into a temporary directory; a handful of
files are written straight from their blobs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from speedrift import gitcmd
from speedrift.gates.changes import git_bytes, read_blobs
from speedrift.gitcmd import GitError


@contextlib.contextmanager
def full_tree(worktree: Path, commit: str, *, prefix: str = "speedrift-base-") -> Iterator[Path]:
    """A temporary directory holding every tracked file of ``commit``."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    index = folder.with_name(folder.name + ".index")
    try:
        env = {"GIT_INDEX_FILE": str(index)}
        for args in (
            ["read-tree", commit],
            ["--work-tree", str(folder), "checkout-index", "--all", "--force"],
        ):
            result = gitcmd.run_bytes(args, worktree, env=env, timeout=600)
            if result.returncode != 0:
                message = result.stderr.decode("utf-8", "replace").strip()
                raise GitError(f"could not check out {commit[:12]} for the base run: {message}")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            index.unlink()


def tree_blobs(worktree: Path, commit: str, paths: Sequence[str]) -> dict[str, str]:
    """path -> blob SHA at ``commit`` for the paths that exist there."""
    if not paths:
        return {}
    found: dict[str, str] = {}
    for chunk in _chunks(list(paths), 500):
        out = git_bytes(["ls-tree", "-z", "--full-tree", commit, "--", *chunk], worktree)
        for record in out.split(b"\0"):
            meta, _, name = record.partition(b"\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == b"blob":
                found[os.fsdecode(name)] = parts[2].decode()
    return found


@contextlib.contextmanager
def some_files(
    worktree: Path, commit: str, paths: Sequence[str], extra: Sequence[str] = ()
) -> Iterator[Path]:
    """A temporary directory holding ``paths`` (and config files ``extra``) as at ``commit``."""
    folder = Path(tempfile.mkdtemp(prefix="speedrift-basefiles-"))
    try:
        blobs = tree_blobs(worktree, commit, [*paths, *extra])
        contents = read_blobs(worktree, list(blobs.values()))
        for path, sha in blobs.items():
            if sha not in contents:
                continue
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(contents[sha])
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_at(worktree: Path, commit: str, path: str) -> bytes | None:
    blobs = tree_blobs(worktree, commit, [path])
    if path not in blobs:
        return None
    return read_blobs(worktree, [blobs[path]]).get(blobs[path])


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
