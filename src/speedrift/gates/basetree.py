"""The base commit's files on disk, for running a tool "as it was" — without touching any checkout.

Nothing here changes a branch, HEAD, an index or git's worktree list: a full tree is checked out
through a private temporary index (``GIT_INDEX_FILE``) into a temporary directory; a handful of
files are written straight from their blobs; a *kept* tree (:func:`kept_tree`) stays between uses
with its own private index, so moving it to another commit rewrites only what differs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from speedrift import fsutil, gitcmd
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


@contextlib.contextmanager
def kept_tree(worktree: Path, commit: str, folder: Path) -> Iterator[Path]:
    """``folder`` holding exactly the tracked files of ``commit``, kept for the next use: it moves
    there from wherever the last use left it by rewriting only the files that differ (``read-tree
    -u`` against its private index), restoring tracked files a run changed and removing files a
    run left (``clean -ffdx``). Held exclusively (a lock beside it) while in use. A folder that
    cannot be moved is rebuilt from scratch; the repository's HEAD, index, refs and worktree list
    are never touched (git's directory is only read, through ``GIT_DIR``)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    index = folder.with_name(folder.name + ".index")
    with fsutil.flocked(folder.with_name(folder.name + ".lock")):
        git_dir = gitcmd.run(["rev-parse", "--absolute-git-dir"], worktree).stdout.strip()
        env = {"GIT_DIR": git_dir, "GIT_WORK_TREE": str(folder), "GIT_INDEX_FILE": str(index)}
        if not (folder.is_dir() and index.is_file() and _move(folder, commit, env)):
            shutil.rmtree(folder, ignore_errors=True)
            index.unlink(missing_ok=True)
            folder.mkdir()
            for args in (["read-tree", commit], ["checkout-index", "--all", "--force", "-u"]):
                result = gitcmd.run_bytes(args, folder, env=env, timeout=600)
                if result.returncode != 0:
                    message = result.stderr.decode("utf-8", "replace").strip()
                    raise GitError(f"could not check out {commit[:12]} into {folder}: {message}")
        yield folder


def _move(folder: Path, commit: str, env: dict[str, str]) -> bool:
    """Bring a kept tree to ``commit``: False when git could not (the caller rebuilds it)."""
    moved = gitcmd.run_bytes(["read-tree", "--reset", "-u", commit], folder, env=env, timeout=600)
    if moved.returncode != 0:
        return False
    changed = gitcmd.run_bytes(["diff-files", "--name-only", "-z"], folder, env=env, timeout=600)
    if changed.returncode != 0:
        return False
    if changed.stdout.strip(b"\0"):  # tracked files a run edited: back to the commit's bytes
        restore = ["checkout-index", "--force", "-u", "-z", "--stdin"]
        restored = gitcmd.run_bytes(restore, folder, env=env, timeout=600, input_bytes=changed.stdout)
        if restored.returncode != 0:
            return False
    return gitcmd.run_bytes(["clean", "-ffdxq"], folder, env=env, timeout=600).returncode == 0


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
