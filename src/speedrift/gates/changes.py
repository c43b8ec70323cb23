"""What an attempt changed: ``git diff --raw --numstat -z base..tip`` read as bytes.

Paths are kept as ``str`` with non-UTF-8 bytes as surrogate escapes (``os.fsdecode``), so any
file name round-trips to the filesystem; :attr:`ChangedFile.display` is the printable form for
findings and JSON. Binary files are recognised by git's numstat (``-``), or, for untracked files
of a dirty checkout, by a NUL byte in their first 8 KiB.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from speedrift import gitcmd
from speedrift.gitcmd import GitError
from speedrift.layout import STATE_PREFIX

_NULL_SHA = "0" * 40


@dataclass(frozen=True, slots=True)
class ChangedFile:
    path: str  # repo-relative at the tip (for a deletion: the deleted path)
    status: str  # A added, M modified, D deleted, R renamed, C copied, T type changed
    old_path: str | None = None  # the path at the base (renames and copies)
    binary: bool = False
    old_blob: str | None = None
    new_blob: str | None = None  # None for working-tree changes git has not hashed
    mode: str = "100644"
    added: int = 0  # lines (from the same diff's numstat; 0 for a binary file or an untracked one)
    deleted: int = 0

    @property
    def exists(self) -> bool:
        return self.status != "D"

    @property
    def base_path(self) -> str | None:
        """Where this file was at the base commit (None: it did not exist there)."""
        if self.status == "A":
            return None
        return self.old_path or self.path

    @property
    def regular(self) -> bool:
        """A regular file (not a symlink, not a submodule): only these are read and parsed."""
        return self.mode in ("100644", "100755")

    @property
    def display(self) -> str:
        return display_path(self.path)


def display_path(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "replace")


def git_bytes(
    args: Sequence[str], cwd: Path, *, timeout: float = 120, input_bytes: bytes | None = None
) -> bytes:
    result = gitcmd.run_bytes(args, cwd, timeout=timeout, input_bytes=input_bytes)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise GitError(f"git {' '.join(args[:3])} failed in {cwd}: {message}")
    return result.stdout


def collect(worktree: Path, base: str, tip: str | None) -> list[ChangedFile]:
    """Files changed from ``base`` to ``tip`` (commit), or to the working tree when ``tip`` is None
    (then untracked, not ignored files count as added)."""
    target = [tip] if tip else []
    out = git_bytes(["diff", "--raw", "--numstat", "-z", "-M", "--no-abbrev", base, *target], worktree)
    changes = _parse(out)
    if tip is None:
        known = {c.path for c in changes}
        untracked = git_bytes(["ls-files", "-z", "--others", "--exclude-standard"], worktree)
        for raw in untracked.split(b"\0"):
            if not raw:
                continue
            path = os.fsdecode(raw)
            if path in known or path.startswith(STATE_PREFIX):  # speedrift's own state: never a change
                continue
            changes.append(ChangedFile(path, "A", binary=_looks_binary(worktree / path)))
    return sorted(changes, key=lambda c: c.path)


def _parse(out: bytes) -> list[ChangedFile]:
    tokens = out.split(b"\0")
    raw: list[tuple[str, str, str, str, str, str | None]] = []  # status, path, old, blobs, mode
    binary: set[str] = set()
    counts: dict[str, tuple[int, int]] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token:
            index += 1
            continue
        if token.startswith(b":"):
            fields = token[1:].decode("ascii", "replace").split()
            _old_mode, new_mode, old_sha, new_sha, status = fields[:5]
            kind = status[0]
            if kind in "RC":
                source, target = os.fsdecode(tokens[index + 1]), os.fsdecode(tokens[index + 2])
                raw.append((kind, target, old_sha, new_sha, new_mode, source))
                index += 3
            else:
                raw.append((kind, os.fsdecode(tokens[index + 1]), old_sha, new_sha, new_mode, None))
                index += 2
            continue
        # numstat: "added\tdeleted\tpath", or "added\tdeleted\t" then old and new paths (renames)
        added, _, rest = token.partition(b"\t")
        deleted, _, named = rest.partition(b"\t")
        if named:
            name = os.fsdecode(named)
            index += 1
        else:
            name = os.fsdecode(tokens[index + 2]) if index + 2 < len(tokens) else ""
            index += 3
        if added == b"-":
            binary.add(name)
        else:
            counts[name] = (int(added), int(deleted))
    changes: list[ChangedFile] = []
    for kind, path, old_sha, new_sha, mode, old in raw:
        changes.append(
            ChangedFile(
                path=path,
                status=kind,
                old_path=old,
                binary=path in binary,
                old_blob=None if old_sha == _NULL_SHA else old_sha,
                new_blob=None if new_sha == _NULL_SHA else new_sha,
                mode=mode if kind != "D" else "100644",
                added=counts.get(path, (0, 0))[0],
                deleted=counts.get(path, (0, 0))[1],
            )
        )
    return changes


def _looks_binary(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return b"\0" in handle.read(8192)
    except OSError:
        return False


def read_blobs(worktree: Path, shas: Sequence[str]) -> dict[str, bytes]:
    """Blob contents by SHA in one ``git cat-file --batch`` call."""
    wanted = [s for s in dict.fromkeys(shas) if s]
    if not wanted:
        return {}
    out = git_bytes(["cat-file", "--batch"], worktree, input_bytes=("\n".join(wanted) + "\n").encode())
    blobs: dict[str, bytes] = {}
    position = 0
    for sha in wanted:
        newline = out.index(b"\n", position)
        header = out[position:newline].split()
        position = newline + 1
        if len(header) < 3 or header[1] == b"missing":
            continue
        size = int(header[2])
        blobs[sha] = out[position : position + size]
        position += size + 1
    return blobs


def is_ancestor(worktree: Path, older: str, newer: str) -> bool:
    return gitcmd.run_bytes(["merge-base", "--is-ancestor", older, newer], worktree).returncode == 0


def zero_context_diff(worktree: Path, base: str, tip: str | None, paths: Sequence[str]) -> bytes:
    """``git diff -U0`` for the given paths (line maps of the diff-aware gates)."""
    if not paths:
        return b""
    target = [tip] if tip else []
    return git_bytes(
        ["diff", "-U0", "-M", "--no-color", "--no-ext-diff", base, *target, "--", *paths], worktree
    )
