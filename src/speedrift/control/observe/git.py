"""A repo's git state for the observer, read without changing anything in the repo.

One ``git --no-optional-locks status --porcelain=v2 --branch -z`` per repo gives branch, HEAD,
changed and untracked files and ahead/behind versus the branch's upstream (``GIT_OPTIONAL_LOCKS=0``
as well: git never takes ``index.lock`` or refreshes the index while we look). The last commit's
time is read straight from the object database (loose object, or the pack via its ``.idx``), so
the usual cold observation costs one process per repo; a configured ``upstream_remote`` /
``upstream_branch`` that differs from the branch's own upstream costs one ``rev-list`` more, and an
object we cannot read ourselves (alternates, a deltified commit) one ``log``.
"""

from __future__ import annotations

import mmap
import os
import stat
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from speedrift import gitcmd, hubdir, layout, procs
from speedrift.errors import SpeedriftError
from speedrift.graph.store import GRAPH_DIR_NAMES
from speedrift.register.record import GitState, RepoEntry

# speedrift's own state never counts as a change, nor does the task graph (.wg/, .workgraph/): it is
# committed, as with wg, but speedrift rewrites it on every claim and done, so a repo would never
# look clean; its changes are the graph's business, not a checkout's edits
OWN_DIRS = (layout.STATE_PREFIX, hubdir.HUB_PREFIX, *(f"{name}/" for name in GRAPH_DIR_NAMES))
MAX_PATHS = 50
STATUS_ARGS = ["status", "--porcelain=v2", "--branch", "-z"]  # run with --no-optional-locks


@dataclass(frozen=True, slots=True)
class GitDirs:
    git_dir: Path  # HEAD, index, FETCH_HEAD (per worktree)
    common_dir: Path  # objects, refs, packed-refs (shared by worktrees)


def git_dirs(repo: Path) -> GitDirs | None:
    """Where the repo's git data lives; handles ``.git`` files (worktrees, submodules)."""
    dot_git = repo / ".git"
    try:
        mode = os.stat(dot_git).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return GitDirs(dot_git, dot_git)  # a main checkout: its git dir is the common dir
    try:
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text.removeprefix("gitdir:").strip())
    git_dir = target if target.is_absolute() else repo / target
    try:
        pointer = (git_dir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        pointer = ""
    common = (Path(pointer) if Path(pointer).is_absolute() else git_dir / pointer) if pointer else git_dir
    return GitDirs(git_dir, common)


def head_ref(dirs: GitDirs) -> str | None:
    """``refs/heads/<branch>`` that HEAD points at, None when detached or unreadable."""
    try:
        text = (dirs.git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return text.removeprefix("ref:").strip() if text.startswith("ref:") else None


def watched_paths(repo: Path, dirs: GitDirs, entry: RepoEntry, ref: str | None = None) -> list[str]:
    """Files whose change means the git state may have changed (see docs: working-tree edits are
    not among them; the periodic full rescan bounds how long those go unseen). ``ref`` is HEAD's
    branch ref when the caller already knows it."""
    git_dir, common = str(dirs.git_dir), str(dirs.common_dir)
    paths = [
        str(repo),  # top-level files created or deleted
        f"{git_dir}/HEAD",
        f"{git_dir}/index",
        f"{git_dir}/FETCH_HEAD",
        f"{common}/packed-refs",
    ]
    ref = ref if ref is not None else head_ref(dirs)
    if ref:
        paths.append(f"{common}/{ref}")
        branch = ref.removeprefix("refs/heads/")
        remote = entry.upstream_remote or "origin"
        paths.append(f"{common}/refs/remotes/{remote}/{entry.upstream_branch or branch}")
    return paths


# --- git status ----------------------------------------------------------------------------------
@dataclass
class StatusFacts:
    head: str | None = None
    branch: str | None = None
    upstream: str | None = None
    ahead: int | None = None
    behind: int | None = None
    dirty: int = 0
    untracked: int = 0
    paths: list[str] | None = None


def _own(path: str) -> bool:
    return any(path == d.rstrip("/") or path.startswith(d) for d in OWN_DIRS)


def parse_status(output: str) -> StatusFacts:
    """``status --porcelain=v2 --branch -z`` output -> facts, speedrift's own directories left out."""
    facts = StatusFacts(paths=[])
    tracked: list[str] = []
    untracked: list[str] = []
    tokens = output.split("\0")
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token:
            continue
        kind = token[0]
        if kind == "#":
            key, _, value = token[2:].partition(" ")
            if key == "branch.oid":
                facts.head = None if value == "(initial)" else value
            elif key == "branch.head":
                facts.branch = None if value == "(detached)" else value
            elif key == "branch.upstream":
                facts.upstream = value
            elif key == "branch.ab":
                ahead, _, behind = value.partition(" ")
                facts.ahead, facts.behind = int(ahead.lstrip("+")), int(behind.lstrip("-"))
        elif kind in "12u":
            fields = {"1": 8, "2": 9, "u": 10}[kind]
            parts = token.split(" ", fields)
            path = parts[fields] if len(parts) > fields else ""
            if kind == "2":
                index += 1  # the rename's original path follows as its own token
            if not _own(path):
                tracked.append(path)
        elif kind == "?":
            path = token[2:]
            if not _own(path):
                untracked.append(path)
    facts.dirty, facts.untracked = len(tracked), len(untracked)
    facts.paths = (tracked + untracked)[:MAX_PATHS]
    return facts


# --- commit time straight from the object database --------------------------------------------------
def _commit_header(data: bytes) -> datetime | None:
    for line in data.split(b"\n"):
        if line.startswith(b"committer "):
            parts = line.rsplit(b" ", 2)
            if len(parts) == 3 and parts[1].lstrip(b"-").isdigit():
                return datetime.fromtimestamp(int(parts[1]), UTC)
        if not line:
            break  # end of the header: no committer line
    return None


def _loose(common: Path, oid: str) -> bytes | None:
    try:
        raw = (common / "objects" / oid[:2] / oid[2:]).read_bytes()
    except OSError:
        return None
    try:
        data = zlib.decompressobj().decompress(raw, 8192)
    except zlib.error:
        return None
    header, _, body = data.partition(b"\0")
    return body if header.startswith(b"commit ") else None


def _pack_offset(index_file: Path, binsha: bytes) -> int | None:
    with open(index_file, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        if len(view) < 8 + 1024 or view[:4] != b"\xfftOc" or int.from_bytes(view[4:8], "big") != 2:
            return None
        fanout = 8
        first = binsha[0]
        low = int.from_bytes(view[fanout + 4 * (first - 1) : fanout + 4 * first], "big") if first else 0
        high = int.from_bytes(view[fanout + 4 * first : fanout + 4 * first + 4], "big")
        count = int.from_bytes(view[fanout + 4 * 255 : fanout + 1024], "big")
        shas = fanout + 1024
        while low < high:
            middle = (low + high) // 2
            current = view[shas + 20 * middle : shas + 20 * middle + 20]
            if current < binsha:
                low = middle + 1
            elif current > binsha:
                high = middle
            else:
                offsets = shas + 24 * count  # after the sha table and the crc table
                offset = int.from_bytes(view[offsets + 4 * middle : offsets + 4 * middle + 4], "big")
                if offset & 0x80000000:
                    large = offsets + 4 * count + 8 * (offset & 0x7FFFFFFF)
                    offset = int.from_bytes(view[large : large + 8], "big")
                return offset
    return None


def _packed(common: Path, oid: str) -> bytes | None:
    pack_dir = common / "objects" / "pack"
    try:
        indexes = [p for p in pack_dir.iterdir() if p.suffix == ".idx"]
    except OSError:
        return None
    binsha = bytes.fromhex(oid)
    for index_file in indexes:
        try:
            offset = _pack_offset(index_file, binsha)
            if offset is None:
                continue
            with open(index_file.with_suffix(".pack"), "rb") as handle:
                handle.seek(offset)
                chunk = handle.read(8192)
        except (OSError, ValueError):
            continue
        byte = chunk[0]
        kind = (byte >> 4) & 7
        position = 1
        while byte & 0x80 and position < len(chunk):
            byte = chunk[position]
            position += 1
        if kind != 1:  # a deltified commit: let git read it
            return None
        try:
            return zlib.decompressobj().decompress(chunk[position:], 8192)
        except zlib.error:
            return None
    return None


def commit_time(dirs: GitDirs, oid: str) -> datetime | None:
    """The committer time of ``oid`` read from the object store, None if we cannot read it here."""
    if len(oid) != 40:
        return None
    try:
        bytes.fromhex(oid)
    except ValueError:
        return None
    data = _loose(dirs.common_dir, oid) or _packed(dirs.common_dir, oid)
    return _commit_header(data) if data else None


# --- the whole git state --------------------------------------------------------------------------
class GitReadError(SpeedriftError):
    """git answered with an error (not a repo, dubious ownership, corrupt index...)."""


def git_env() -> dict[str, str]:
    """The environment for observation (:func:`speedrift.gitcmd.environment` with optional locks
    off), built once per cycle and passed to every read."""
    return gitcmd.environment(no_optional_locks=True)


def _start(args: list[str], repo: Path, deadline: float, env: dict[str, str] | None) -> procs.Running:
    """Start ``git --no-optional-locks <args>`` now; past ``deadline`` its group is killed."""
    return gitcmd.start(args, repo, deadline=deadline, environ=env, no_optional_locks=True)


def _finish(running: procs.Running) -> tuple[int, str, str]:
    """Wait for a started git; ProcessTimeout if it ran past its deadline."""
    done = running.finish()
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


def _git(args: list[str], repo: Path, deadline: float, env: dict[str, str] | None) -> tuple[int, str, str]:
    return _finish(_start(args, repo, deadline, env))


def start_status(repo: Path, deadline: float, env: dict[str, str] | None = None) -> procs.Running:
    """Start ``git status`` now and collect it later with :func:`read_git_state` (``status=``), so
    the caller can read the graph while git runs."""
    return _start(STATUS_ARGS, repo, deadline, env)


def read_git_state(
    repo: Path,
    dirs: GitDirs,
    entry: RepoEntry,
    deadline: float,
    env: dict[str, str] | None = None,
    status: procs.Running | None = None,
) -> tuple[GitState, list[str]]:
    """The repo's git state and any problems (as words). ``deadline`` is a ``time.monotonic()`` value;
    ``env`` is :func:`git_env`'s answer (None: build it).

    Raises :class:`~speedrift.procs.ProcessTimeout` when git runs past the deadline (the observer
    reports it).
    """
    errors: list[str] = []
    code, out, err = _finish(status or _start(STATUS_ARGS, repo, deadline, env))
    if code != 0:
        raise GitReadError(f"git status failed: {err.strip()[:300] or code}")
    facts = parse_status(out)
    upstream, ahead, behind = facts.upstream, facts.ahead, facts.behind
    if entry.upstream_remote or entry.upstream_branch:
        remote = entry.upstream_remote or "origin"
        branch = entry.upstream_branch or facts.branch
        wanted = f"{remote}/{branch}" if branch else None
        if wanted and wanted != facts.upstream:
            upstream, ahead, behind = wanted, None, None
            argv = ["rev-list", "--left-right", "--count"]
            code, out, _ = _git([*argv, f"HEAD...refs/remotes/{wanted}"], repo, deadline, env)
            left, _, right = out.strip().partition("\t")
            if code == 0 and left.isdigit() and right.isdigit():
                ahead, behind = int(left), int(right)
            else:
                errors.append(
                    f"upstream {wanted} not found: `git fetch {remote}`, or fix upstream_* in ecosystem.toml"
                )
    last_commit = commit_time(dirs, facts.head) if facts.head else None
    if facts.head and last_commit is None:
        argv = ["log", "-1", "--format=%ct", "HEAD"]
        code, out, _ = _git(argv, repo, deadline, env)
        stamp = out.strip()
        if code == 0 and stamp.isdigit():
            last_commit = datetime.fromtimestamp(int(stamp), UTC)
    state = GitState(
        branch=facts.branch,
        head=facts.head,
        dirty_files=facts.dirty,
        untracked_files=facts.untracked,
        dirty_paths=tuple(facts.paths or ()),
        upstream=upstream,
        ahead=ahead,
        behind=behind,
        last_commit_at=last_commit,
    )
    return state, errors


def stat_key(path: str | Path) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten or replaced: (mtime ns, size, inode)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)
