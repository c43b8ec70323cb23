"""A Dask worker's repository cache: bare clones, the attempts' worktrees, kept result bundles.

Job: give a job (fleet/remote/job.py) the repository at its base commit without a full clone per
attempt. Layout under the cache directory (:func:`speedrift.statehome.worker_cache_dir`):

- ``repos/<repo_key>.git`` — one bare repository per hub repository (``JobSpec.repo_key``), each
  base commit a job asked for kept reachable under ``refs/speedrift/base/<commit>`` (the newest
  :data:`KEEP_BASES`, pruned back to them whenever :data:`PRUNE_AT` are loose);
- ``locks/<repo_key>.lock`` — the per-repository flock held while the cache repository is
  created, fetched into, or a worktree is added to or removed from it;
- ``slots/<repo_key>/…`` — checkouts kept from job to job (fleet/remote/slots.py);
- ``work/<job>/<repo name>`` — a one-off worktree when no slot is free; either kind is detached at
  the base commit (the commits made there travel back as a bundle of ``HEAD``; no branch is made,
  so none is left behind); ``runs/<job>/`` the job's run dir; ``tmp/`` — bundles received from
  the hub while they are fetched;
- ``results/<job>.bundle`` — the result bundles sent back (the newest :data:`KEEP_RESULTS`), so
  an attempt's work survives a hub that never received it.

Invariants: the base commit is fetched only when the cache repository does not hold it yet (a
second attempt at the same base fetches nothing); the cache is the worker's own — the user's
repositories are only ever read (fetched from), never written; every git command goes through
:mod:`speedrift.repo.git`. ``.speedrift/`` is excluded in every cache repository, so an agent's
report is never committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from speedrift import fsutil, gitcmd, layout, redact
from speedrift.errors import InvalidValue, SpeedriftError
from speedrift.fleet.remote.spec import RepoSource, SourceKind
from speedrift.repo import git

REPOS_DIR = "repos"
LOCKS_DIR = "locks"
WORK_DIR = "work"
RUNS_DIR = "runs"
TMP_DIR = "tmp"
RESULTS_DIR = "results"
BASE_REFS = "refs/speedrift/base/"
KEEP_BASES = 20  # base refs kept per cache repository (older bases stay while a worktree uses them)
PRUNE_AT = 2 * KEEP_BASES  # the loose base refs that make a fetch prune them back to KEEP_BASES
KEEP_RESULTS = 50  # result bundles kept in results/
FETCH_TIMEOUT_S = 1800.0  # a first fetch of a large repository over a slow link
# as the hub's own fetch (control/authority.py): only the refspec given, no tags, no FETCH_HEAD,
# no submodules, no maintenance afterwards; a remote also gets git's own upload-pack (a bundle
# has none)
FETCH_FLAGS = (
    "--quiet",
    "--no-tags",
    "--refmap=",
    "--no-write-fetch-head",
    "--no-recurse-submodules",
    "--no-auto-maintenance",
)
REMOTE_ONLY_FLAGS = ("--upload-pack=git-upload-pack",)
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class CacheError(SpeedriftError):
    """The cache could not provide the base commit (fetch failed, the source lacks it)."""


class MissingBase(CacheError):
    """The hub's bundle starts after commits this cache does not hold (``commits``): the hub's
    record of what this worker holds was wrong or old; it sends the whole history instead."""

    def __init__(self, commits: tuple[str, ...]) -> None:
        super().__init__(
            f"the cache lacks {', '.join(c[:12] for c in commits)}, which the job's bundle starts after",
            hint="the hub sends the job again with the whole history",
        )
        self.commits = commits


def safe_name(key: str) -> str:
    """A file name for ``key`` (a job key, a repository name): its safe characters, and a short
    hash of the whole key so two keys that differ only in unsafe characters never share one."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", key).strip("._-")[:80] or "job"
    return f"{cleaned}-{hashlib.blake2b(key.encode(), digest_size=4).hexdigest()}"


def check_repo_key(repo_key: str) -> str:
    if not _KEY.fullmatch(repo_key):
        raise InvalidValue(
            f"repo_key {repo_key!r} is not a cache directory name",
            hint="use fleet/supervisor.repo_key (letters, digits, '.', '_', '-')",
        )
    return repo_key


def check_commit(commit: str) -> str:
    if not git.is_object_id(commit):
        raise InvalidValue(f"base_commit {commit!r} is not a full commit id", hint="pass the 40/64-hex id")
    return commit


def repo_path(cache: Path, repo_key: str) -> Path:
    return cache / REPOS_DIR / f"{check_repo_key(repo_key)}.git"


@contextlib.contextmanager
def locked(cache: Path, repo_key: str) -> Iterator[None]:
    """The per-repository lock (create, fetch, add or remove a worktree)."""
    with fsutil.flocked(cache / LOCKS_DIR / f"{check_repo_key(repo_key)}.lock"):
        yield


@dataclass(frozen=True)
class Obtained:
    repo: Path  # the bare cache repository
    fetched: bool  # False: the cache held the base commit already


def obtain(cache: Path, repo_key: str, source: RepoSource, base_commit: str, *, tag: str) -> Obtained:
    """The cache repository for ``repo_key`` holding ``base_commit`` (fetched from ``source`` only
    when missing). ``tag``: names the temporary bundle file (the job's safe name). Raises
    :class:`CacheError` when the source cannot be fetched or does not hold the commit.

    A base kept already (its ref) costs no git process; one the cache holds without its ref costs
    one (and the ref); a fetch writes the base ref itself (its refspec)."""
    check_commit(base_commit)
    with locked(cache, repo_key):
        repo = _ensure(cache, repo_key)
        if git.rev_parse(repo, BASE_REFS + base_commit) == base_commit:
            return Obtained(repo, fetched=False)
        if git.rev_parse(repo, base_commit) is not None:
            _keep_base(repo, base_commit)
            return Obtained(repo, fetched=False)
        _fetch(cache, repo, source, base_commit, tag)
        if git.rev_parse(repo, BASE_REFS + base_commit) != base_commit:
            # the fetched ref is not the base itself (a remote's branch moved on): the base must be
            # in its history, and gets its own ref
            if git.rev_parse(repo, base_commit) is None:
                where = "the bundle" if source.kind is SourceKind.BUNDLE else "the remote"
                raise CacheError(
                    f"{where} ({source.ref or 'no ref'}) does not hold the base commit {base_commit}",
                    hint="the hub must ship a bundle or name a ref that contains the attempt's base",
                )
            _keep_base(repo, base_commit)
        _prune_bases(repo)
        return Obtained(repo, fetched=True)


def newest_base(repo: Path, fallback: str) -> str:
    """The base commit this cache repository fetched or kept last (its newest loose base ref, by
    when it was written; no git process), else ``fallback``: what a job tells the hub this worker
    holds (fleet/remote/held.py) — on a machine whose workers share the cache, whatever any of them
    fetched."""
    newest: tuple[float, str] | None = None
    with contextlib.suppress(OSError):
        for entry in os.scandir(repo / BASE_REFS):
            if git.is_object_id(entry.name) and entry.is_file(follow_symlinks=False):
                written = entry.stat(follow_symlinks=False).st_mtime
                if newest is None or written > newest[0]:
                    newest = (written, entry.name)
    return newest[1] if newest is not None else fallback


def _ensure(cache: Path, repo_key: str) -> Path:
    repo = repo_path(cache, repo_key)
    if (repo / "HEAD").is_file():
        return repo
    if repo.exists():  # a half-made one (the worker died while creating it): start over
        shutil.rmtree(repo)
    repo.parent.mkdir(parents=True, exist_ok=True)
    git.run(["init", "--bare", "--quiet", str(repo)], repo.parent)
    git.exclude_locally(repo, layout.EXCLUDE_PATTERN)  # an agent's report is never committed
    return repo


def _fetch(cache: Path, repo: Path, source: RepoSource, base_commit: str, tag: str) -> None:
    wanted = source.ref or base_commit
    refspec = f"+{wanted}:{BASE_REFS}{base_commit}"
    if source.kind is SourceKind.BUNDLE:
        if not source.bundle:
            if source.prerequisite:  # the hub counted on this cache holding the base itself
                raise MissingBase((source.prerequisite,))
            raise CacheError("the job's source is a bundle, but it carries none", hint="a hub bug: report it")
        incoming = cache / TMP_DIR / f"{tag}.bundle"
        incoming.parent.mkdir(parents=True, exist_ok=True)
        fsutil.write_atomic(incoming, source.bundle, durable=False)
        try:
            _run_fetch(repo, [*FETCH_FLAGS, str(incoming), refspec], "the hub's bundle")
        except CacheError:
            missing = lacking(repo, bundle_prerequisites(source.bundle))
            if missing:
                raise MissingBase(missing) from None
            raise
        finally:
            incoming.unlink(missing_ok=True)
        return
    if not source.url:
        raise CacheError("the job's source is a remote, but it names no URL", hint="a hub bug: report it")
    _run_fetch(repo, [*FETCH_FLAGS, *REMOTE_ONLY_FLAGS, source.url, refspec], source.url)


def bundle_prerequisites(data: bytes) -> tuple[str, ...]:
    """The commits a git bundle (v2 or v3) starts after: the ``-<id>`` lines of its header."""
    header, blank, _pack = data.partition(b"\n\n")
    lines = header.split(b"\n")
    if not blank or not lines[0].startswith(b"# v") or not lines[0].endswith(b" git bundle"):
        return ()
    found = []
    for line in lines[1:]:
        if line.startswith(b"-"):
            oid = line[1:].split(b" ", 1)[0].decode("ascii", "replace")
            if git.is_object_id(oid):
                found.append(oid)
    return tuple(found)


def lacking(repo: Path, commits: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``commits`` the repository does not hold (one git process)."""
    if not commits:
        return ()
    listed = "".join(f"{commit}\n" for commit in commits)
    checked = git.run(["cat-file", "--batch-check=%(objectname)"], repo, check=False, input_text=listed)
    if checked.returncode != 0:
        return commits
    held = {line for line in checked.stdout.splitlines() if " " not in line}  # absent: "<id> missing"
    return tuple(commit for commit in commits if commit not in held)


def _run_fetch(repo: Path, args: list[str], what: str) -> None:
    done = git.run(["fetch", *args], repo, check=False, timeout=FETCH_TIMEOUT_S)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-1500:] or f"git exited with {done.returncode}"
        raise CacheError(f"could not fetch from {redact.redact_url(what)}: {redact.redact_text(said)}")


def _keep_base(repo: Path, base_commit: str) -> None:
    """A ref on the base commit: it stays reachable (no gc takes it) while the cache keeps it."""
    git.run(["update-ref", f"{BASE_REFS}{base_commit}", base_commit], repo)


def _prune_bases(repo: Path) -> None:
    """Keep the newest :data:`KEEP_BASES` base refs, once the loose ones number :data:`PRUNE_AT`
    (the refs of every base are listed then, packed ones included)."""
    folder = repo / BASE_REFS
    with contextlib.suppress(OSError):
        if sum(1 for _ in folder.iterdir()) < PRUNE_AT:
            return
    listed = git.git(["for-each-ref", "--sort=-committerdate", "--format=%(refname)", BASE_REFS], repo)
    for ref in listed.splitlines()[KEEP_BASES:]:
        git.run(["update-ref", "-d", ref], repo, check=False)


# --- worktrees ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkout:
    repo: Path  # the cache repository
    worktree: Path
    kept: bool = False  # a warm checkout (fleet/remote/slots.py): it stays for the next job


def checkout_name(repo_name: str) -> str:
    """A checkout's directory name: the repository's, as the hub's worktree is named."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", repo_name).strip(".") or "repo"


def worktree_path(cache: Path, job: str, repo_name: str) -> Path:
    """Where job ``job`` (a :func:`safe_name`) works in a one-off worktree."""
    return cache / WORK_DIR / job / checkout_name(repo_name)


def run_dir(cache: Path, job: str) -> Path:
    return cache / RUNS_DIR / job


def add_worktree(cache: Path, repo_key: str, checkout: Checkout, base_commit: str) -> None:
    """The worktree at ``checkout.worktree``, detached at ``base_commit``: one git process. A
    leftover at that path (the same job run again on this worker) is disposable: it is replaced."""
    with locked(cache, repo_key):
        checkout.worktree.parent.mkdir(parents=True, exist_ok=True)
        args = ["worktree", "add", "--quiet", "--detach", str(checkout.worktree), base_commit]
        added = git.run(args, checkout.repo, check=False)
        if added.returncode != 0:  # a leftover checkout, or git's record of one: clear and retry once
            _remove(checkout.repo, checkout.worktree)
            added = git.run(args, checkout.repo, check=False)
        if added.returncode != 0:
            said = (added.stderr or added.stdout).strip()[:1500]
            raise CacheError(f"cannot create the worktree {checkout.worktree} at {base_commit[:12]}: {said}")


def discard_worktree(cache: Path, repo_key: str, checkout: Checkout) -> None:
    """Remove a one-off worktree (git's record of it too) and its job folder; a kept checkout
    stays (the next job that takes its slot resets it: fleet/remote/slots.py)."""
    if checkout.kept:
        return
    if not checkout.repo.is_dir():
        shutil.rmtree(checkout.worktree.parent, ignore_errors=True)
        return
    with locked(cache, repo_key):
        args = ["worktree", "remove", "--force", "--force", str(checkout.worktree)]
        if not checkout.worktree.exists() or git.run(args, checkout.repo, check=False).returncode != 0:
            _remove(checkout.repo, checkout.worktree)
        shutil.rmtree(checkout.worktree.parent, ignore_errors=True)


def _remove(repo: Path, worktree: Path) -> None:
    """Whatever is left of a checkout: the worktree's files, then every record git keeps of a
    worktree that is gone."""
    if worktree.exists():
        git.run(["worktree", "remove", "--force", "--force", str(worktree)], repo, check=False)
        shutil.rmtree(worktree, ignore_errors=True)
    git.run(["worktree", "prune"], repo, check=False)


def discard_repo(cache: Path, repo_key: str) -> None:
    """Drop a cache repository entirely (its git configuration or hooks were changed by an agent:
    nothing of it is trusted again); the next job fetches afresh."""
    with locked(cache, repo_key):
        shutil.rmtree(repo_path(cache, repo_key), ignore_errors=True)


# --- result bundles ------------------------------------------------------------------------------------
def bundle(cache: Path, worktree: Path, base_commit: str, job: str) -> bytes:
    """``git bundle`` of ``base_commit..HEAD`` in the job's ``worktree`` (``HEAD`` the ref inside:
    ``git fetch <bundle> HEAD`` takes it), kept in ``results/``."""
    folder = cache / RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job}.bundle"
    args = ["bundle", "create", "--quiet", str(path), "HEAD", f"^{base_commit}"]
    made = git.run(args, worktree, check=False)
    if made.returncode != 0:
        said = (made.stderr or made.stdout).strip()[:1500]
        raise gitcmd.GitError(f"git bundle create failed in {worktree}: {said}")
    data = path.read_bytes()
    _prune_results(folder)
    return data


def _prune_results(folder: Path) -> None:
    def age(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    for old in sorted(folder.glob("*.bundle"), key=age)[:-KEEP_RESULTS]:
        old.unlink(missing_ok=True)
