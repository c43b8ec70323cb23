"""git operations on a repository (rev-parse, status, worktrees, identity…), all run through
:mod:`speedrift.gitcmd` (argv lists, never a shell string; its environment, timeout and
:class:`~speedrift.gitcmd.GitError`). Invariant: a worktree write (add/remove/move/prune) holds the
repo's worktree-admin lock exclusively, a listing shares it."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from speedrift import fsutil, gitcmd

# Identity for commits speedrift makes when the repo has none configured.
FALLBACK_NAME = "speedrift"
FALLBACK_EMAIL = "speedrift@localhost"

WORKTREE_WRITES = frozenset({"add", "remove", "move", "prune"})


def run(
    args: list[str],
    cwd: Path,
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    input_text: str | None = None,
    no_optional_locks: bool = False,
    hooks: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """:func:`speedrift.gitcmd.run`, under the worktree-admin lock when it writes worktrees.
    ``hooks``: the approved hooks directory, if any (:func:`speedrift.gitcmd.command`)."""
    writes = len(args) > 1 and args[0] == "worktree" and args[1] in WORKTREE_WRITES
    with worktree_admin(cwd, exclusive=True) if writes else contextlib.nullcontext():
        return gitcmd.run(
            args,
            cwd,
            check=check,
            env=env,
            timeout=timeout,
            input_text=input_text,
            no_optional_locks=no_optional_locks,
            hooks=hooks,
        )


def git(args: list[str], cwd: Path, *, check: bool = True, timeout: float = 120) -> str:
    result = run(args, cwd, check=check, timeout=timeout)
    return result.stdout.strip() if result.returncode == 0 else ""


def toplevel(path: Path) -> Path | None:
    out = git(["rev-parse", "--show-toplevel"], path, check=False)
    return Path(out) if out else None


def rev_parse(repo: Path, ref: str) -> str | None:
    """The commit ``ref`` names in ``repo`` (any checkout of it), or None. ``HEAD``, full branch
    names (``refs/heads/…``) and speedrift's own refs (``refs/speedrift/…``, which only ever name
    commits) are read from the ref files, as git itself reads them, with no git process (an attempt
    asks several times); anything else, or anything unexpected on disk (a reftable repository, a
    symbolic branch, a malformed file), is asked of git."""
    known = _read_ref(repo, ref)
    if known is not _UNKNOWN:
        return known
    out = git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo, check=False)
    return out or None


_UNKNOWN = ""  # _read_ref: the files do not settle it, ask git
_HEX = frozenset("0123456789abcdef")


def is_object_id(text: str) -> bool:
    """``text`` is a full object id (SHA-1 or SHA-256, lower-case hex)."""
    return len(text) in (40, 64) and set(text) <= _HEX


def _read_ref(checkout: Path, ref: str) -> str | None:
    """``HEAD`` or a ref :func:`ref_from_files` reads, from the files backend: a loose ref file,
    else its line in ``packed-refs`` (git writes both by rename, so a read sees the old or the new
    value whole); None when the ref does not exist, :data:`_UNKNOWN` when only git can tell."""
    try:
        common = common_dir(checkout)
        if ref == "HEAD":
            if (common / "reftable").exists():
                return _UNKNOWN
            head = (git_dir(checkout) / "HEAD").read_text().strip()
            if is_object_id(head):
                return head  # detached
            if not head.startswith("ref: refs/heads/"):
                return _UNKNOWN
            ref = head.removeprefix("ref: ")
        return ref_from_files(common, ref)
    except (OSError, UnicodeDecodeError, gitcmd.GitError):
        return _UNKNOWN


# the refs read from files: branches, and speedrift's own (never a tag, which may name a tag object)
FILE_REFS = ("refs/heads/", "refs/speedrift/")


def ref_from_files(common: Path, ref: str) -> str | None:
    """A ref under :data:`FILE_REFS` (``refs/heads/<name>``, ``refs/speedrift/…``) read from the
    repository's common directory alone, with no git process: the loose ref file, else its line in
    ``packed-refs``; None when the ref does not exist, :data:`_UNKNOWN` when only git can tell (a
    reftable repository, another kind of ref, anything unexpected)."""
    try:
        if (common / "reftable").exists():
            return _UNKNOWN
        if not ref.startswith(FILE_REFS) or ".." in ref or ref.endswith(("/", ".lock")):
            return _UNKNOWN
        try:
            loose = (common / ref).read_text().strip()
        except FileNotFoundError:
            loose = None
        except IsADirectoryError:
            return _UNKNOWN
        if loose is not None:
            return loose if is_object_id(loose) else _UNKNOWN
        try:
            packed = (common / "packed-refs").read_text()
        except FileNotFoundError:
            return None
        for line in packed.splitlines():
            oid, _, name = line.partition(" ")
            if name == ref:
                return oid if is_object_id(oid) else _UNKNOWN
        return None
    except (OSError, UnicodeDecodeError):
        return _UNKNOWN


def branches_from_files(common: Path, prefix: str) -> set[str] | None:
    """The branches ``refs/heads/<...>`` whose names start with ``prefix`` (up to no further
    ``/``, as ``git for-each-ref '<prefix>*'`` matches), read from the files backend alone: the
    loose ref files, then ``packed-refs`` (in that order: ``git pack-refs`` writes the packed file
    before it deletes the loose ones, so a branch being packed is seen in one or the other). None
    when only git can tell (a reftable repository, a directory where a name would be, anything
    unexpected)."""
    try:
        if (common / "reftable").exists() or not prefix.startswith("refs/heads/") or ".." in prefix:
            return None
        folder, _, start = prefix.rpartition("/")
        found: set[str] = set()
        try:
            entries = list(os.scandir(common / folder))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if not entry.name.startswith(start) or entry.name.endswith(".lock"):
                continue
            if not entry.is_file(follow_symlinks=False):
                return None
            found.add(f"{folder}/{entry.name}")
        try:
            packed = (common / "packed-refs").read_text()
        except FileNotFoundError:
            packed = ""
        for line in packed.splitlines():
            _oid, _, name = line.partition(" ")
            if name.startswith(prefix) and "/" not in name[len(prefix) :]:
                found.add(name)
        return found
    except (OSError, UnicodeDecodeError):
        return None


def current_branch(repo: Path) -> str | None:
    """The checked-out branch (named even before its first commit), or None on a detached HEAD.
    Read from the checkout's ``HEAD`` file when it is the files backend's symbolic ref (no git
    process); otherwise (a reftable repository's placeholder, anything unexpected) git says."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        head = (git_dir(repo) / "HEAD").read_text().strip()
        if head.startswith("ref: refs/heads/") and head != "ref: refs/heads/.invalid":
            return head.removeprefix("ref: refs/heads/")
        if len(head) in (40, 64) and all(c in "0123456789abcdef" for c in head):
            return None  # detached
    out = git(["symbolic-ref", "--quiet", "--short", "HEAD"], repo, check=False)
    return out or None


def default_branch(repo: Path) -> str | None:
    """origin's HEAD when known, else the checked-out branch, else main/master if they exist."""
    remote_head = git(["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"], repo, check=False)
    if remote_head.startswith("origin/"):
        return remote_head.removeprefix("origin/")
    branch = current_branch(repo)
    if branch and rev_parse(repo, branch):
        return branch
    for name in ("main", "master"):
        if rev_parse(repo, name):
            return name
    return None


def status_porcelain(repo: Path) -> list[str]:
    """Changed and untracked paths (porcelain v1, -z); speedrift's own dirs are excluded by git."""
    # no optional locks: never take index.lock while looking, so peeking at a worktree another
    # process is committing in cannot make its `git add` fail
    args = ["status", "--porcelain=v1", "-z", "--untracked-files=all"]
    out = run(args, repo, no_optional_locks=True).stdout
    entries = [e for e in out.split("\0") if e]
    paths: list[str] = []
    skip_next = False
    for entry in entries:
        if skip_next:  # the source path of a rename
            skip_next = False
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":
            skip_next = True
    return paths


def identity_env(repo: Path) -> dict[str, str]:
    """Author/committer for speedrift's commits: the repo's identity, else the fallback.
    Cached per process (or adopted, see :class:`RepoFacts`): a long-running service picks up a
    changed identity on restart."""
    adopted = _adopted.get(repo)
    return dict(adopted.identity) if adopted is not None else dict(_identity_env(repo))


@functools.lru_cache(maxsize=256)
def _identity_env(repo: Path) -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    listed = run(["config", "--get-regexp", r"^user\.(name|email)$"], repo, check=False).stdout
    for line in listed.splitlines():  # every value of every config file in order: the last wins
        key, _, value = line.partition(" ")
        found[key] = value.strip()
    name, email = found.get("user.name", ""), found.get("user.email", "")
    if name and email:
        return ()
    return (
        ("GIT_AUTHOR_NAME", name or FALLBACK_NAME),
        ("GIT_AUTHOR_EMAIL", email or FALLBACK_EMAIL),
        ("GIT_COMMITTER_NAME", name or FALLBACK_NAME),
        ("GIT_COMMITTER_EMAIL", email or FALLBACK_EMAIL),
    )


@dataclass(frozen=True)
class RepoFacts:
    """What git work in one repo keeps asking and cannot change under a running supervisor without
    a restart: its common git directory and the identity speedrift commits with. A supervisor
    resolves them once (:func:`facts`); a worker process it starts takes them over
    (:func:`adopt`) instead of asking git again in every attempt."""

    repo: Path
    common_dir: Path
    identity: tuple[tuple[str, str], ...]


_adopted: dict[Path, RepoFacts] = {}


def facts(repo: Path) -> RepoFacts:
    return RepoFacts(repo, common_dir(repo), tuple(identity_env(repo).items()))


def adopt(known: RepoFacts) -> None:
    """Take ``known`` as this process's answer for its repo (a worker, from its supervisor)."""
    _adopted[known.repo] = known


@dataclass(frozen=True)
class WorktreeEntry:
    path: Path
    head: str | None
    branch: str | None  # short name, None when detached
    locked: bool


@functools.lru_cache(maxsize=1024)
def _common_dir(path: Path) -> Path:
    linked = _linked_common_dir(path)
    if linked is not None:
        return linked
    common = Path(gitcmd.run(["rev-parse", "--git-common-dir"], path).stdout.strip())
    return (common if common.is_absolute() else path / common).resolve()


def _linked_common_dir(checkout: Path) -> Path | None:
    """A linked worktree's common dir from its files (``.git`` → its admin dir → ``commondir``),
    as git finds it; None when ``checkout`` is not plainly one (git is asked then)."""
    dot_git = checkout / ".git"
    try:
        if not dot_git.is_file():
            return None
        admin = git_dir(checkout)
        pointer = (admin / "commondir").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    common = Path(pointer) if Path(pointer).is_absolute() else admin / pointer
    common = common.resolve()
    return common if (common / "HEAD").is_file() and (common / "objects").is_dir() else None


def common_dir(path: Path) -> Path:
    """The repository's common git directory (``.git`` of the main checkout), from any checkout."""
    adopted = _adopted.get(path)
    return adopted.common_dir if adopted is not None else _common_dir(path)


def git_dir(checkout: Path) -> Path:
    """A checkout's own git directory: ``.git`` itself, or for a linked worktree the directory its
    ``.git`` file points to (``<common>/worktrees/<name>``) — where its ``index`` and ``HEAD`` live."""
    dot_git = checkout / ".git"
    if dot_git.is_file():
        text = dot_git.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            path = Path(text.removeprefix("gitdir:").strip())
            return path if path.is_absolute() else (checkout / path).resolve()
    return dot_git


_waits = threading.local()


@contextlib.contextmanager
def worktree_admin(repo: Path, exclusive: bool) -> Iterator[None]:
    """git's worktree bookkeeping is not safe under concurrent `worktree add`: a lister can catch
    a half-created entry ("failed to read .../commondir"). Adding and removing take this lock
    exclusively, listing shares it. Per repo, across processes (flock). The time spent waiting
    for it adds to :func:`admin_wait_s`."""
    asked = time.monotonic()
    with fsutil.flocked(common_dir(repo) / "speedrift-worktrees.lock", shared=not exclusive):
        _waits.total = admin_wait_s() + time.monotonic() - asked
        yield


def admin_wait_s() -> float:
    """Seconds this thread has waited for worktree-admin locks so far (an attempt's timings take
    the difference over the attempt: time queued behind other attempts, not work)."""
    total: float = getattr(_waits, "total", 0.0)
    return total


def worktrees(repo: Path) -> list[WorktreeEntry]:
    with worktree_admin(repo, exclusive=False):
        out = run(["worktree", "list", "--porcelain", "-z"], repo).stdout
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    for token in [*out.split("\0"), ""]:
        if token:
            key, _, value = token.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            branch = fields.get("branch", "")
            entries.append(
                WorktreeEntry(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=branch.removeprefix("refs/heads/") or None,
                    locked="locked" in fields,
                )
            )
        fields = {}
    return entries


def exclude_locally(repo: Path, pattern: str) -> bool:
    """Add ``pattern`` to the repo's ``info/exclude`` once. Returns True if it was added."""
    exclude = Path(git(["rev-parse", "--git-path", "info/exclude"], repo))
    if not exclude.is_absolute():
        exclude = repo / exclude
    exclude.parent.mkdir(parents=True, exist_ok=True)
    current = exclude.read_text() if exclude.exists() else ""
    if pattern in current.splitlines():
        return False
    with open(exclude, "a") as handle:
        handle.write(("" if current.endswith("\n") or not current else "\n") + pattern + "\n")
    return True
