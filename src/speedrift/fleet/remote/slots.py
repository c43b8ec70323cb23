"""Warm checkouts on a Dask worker: a job works in a checkout an earlier job left, reset to its base.

Job: making a worktree writes every file of the repository — for a large repository seconds, and
on any machine the largest part of a small job's cost — while a checkout kept from an earlier job
and moved to the new base rewrites only the files that differ. Under the cache directory
(fleet/remote/repocache.py):

- ``slots/<repo_key>/<n>/<repo name>`` — checkout ``n`` of the cache repository, detached;
- ``slots/<repo_key>/<n>.lock`` — held (``flock``) by the job working in it, for the whole job.

:func:`take` gives a job the first slot whose lock is free and in which no agent of an earlier job
still runs (a dead worker's, which a sweep has not ended yet: fleet/remote/orphans.py); when all
:data:`MAX_SLOTS` are taken the job works in a one-off worktree instead (repocache.add_worktree).
:func:`prepare` makes the slot's checkout exactly the job's base.

Invariants:

- A slot is used only under its lock, which dies with the process holding it.
- Nothing of an earlier job survives into the next: before a kept checkout is used its ``.git``
  must still name its own record in the cache repository, ``git checkout --force --detach <base>``
  puts every tracked file back as the base has it, and ``git clean -ffdx`` removes every untracked
  and ignored file (nested repositories too). A checkout for which any of that fails is moved
  aside, deleted and made afresh.
- A slot's checkout is never removed under another job's lock; a sweep leaves it to the next job.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from speedrift import fsutil
from speedrift.fleet.remote import repocache
from speedrift.fleet.remote.repocache import Checkout
from speedrift.repo import git

SLOTS_DIR = "slots"
TRASH_DIR = "trash"
MAX_SLOTS = 16  # kept checkouts per cache repository; a job beyond them gets a one-off worktree


@dataclass
class Slot:
    """A kept checkout a job holds (its lock's descriptor): give it back with :meth:`release`."""

    checkout: Checkout
    number: int
    _fd: int

    def release(self) -> None:
        """The next job may take it; the checkout stays as this job left it (reset before reuse)."""
        fsutil.release_flock(self._fd)


def slot_folder(cache: Path, repo_key: str) -> Path:
    return cache / SLOTS_DIR / repocache.check_repo_key(repo_key)


def take(
    cache: Path, repo_key: str, repo: Path, repo_name: str, *, busy: Callable[[Path], bool]
) -> Slot | None:
    """The first free slot of ``repo`` (the cache repository), locked; None when all are taken.
    ``busy(worktree)``: an agent of an earlier job still runs in that checkout (the slot waits)."""
    folder = slot_folder(cache, repo_key)
    name = repocache.checkout_name(repo_name)
    for number in range(MAX_SLOTS):
        fd = fsutil.try_flock(folder / f"{number}.lock")
        if fd is None:
            continue
        worktree = folder / str(number) / name
        if busy(worktree):
            fsutil.release_flock(fd)
            continue
        return Slot(Checkout(repo, worktree, kept=True), number, fd)
    return None


def prepare(cache: Path, repo_key: str, checkout: Checkout, base_commit: str) -> bool:
    """Make the slot's checkout exactly ``base_commit`` (see the module docstring): True when the
    kept checkout was reset, False when it was made afresh. Raises repocache.CacheError when even
    a fresh one cannot be made."""
    worktree = checkout.worktree
    if _own(checkout):
        moved = git.run(["checkout", "--force", "--quiet", "--detach", base_commit], worktree, check=False)
        if moved.returncode == 0 and git.run(["clean", "-ffdxq"], worktree, check=False).returncode == 0:
            return True
    set_aside(cache, repo_key, checkout)
    repocache.add_worktree(cache, repo_key, checkout, base_commit)
    return False


def _own(checkout: Checkout) -> bool:
    """The checkout's ``.git`` names its record under the cache repository's ``worktrees/``, and
    that record names this checkout back: git works on the cache repository there, nowhere else."""
    dot_git = checkout.worktree / ".git"
    try:
        if checkout.worktree.is_symlink() or dot_git.is_symlink() or not dot_git.is_file():
            return False
        text = dot_git.read_text().strip()
        if not text.startswith("gitdir: "):
            return False
        # git writes absolute paths, or relative ones (worktree.useRelativePaths): either resolves
        record = (checkout.worktree / text.removeprefix("gitdir: ")).resolve()
        back = (record / Path((record / "gitdir").read_text().strip())).resolve()
        return record.parent == (checkout.repo / "worktrees").resolve() and back == dot_git.resolve()
    except (OSError, UnicodeDecodeError):
        return False


def _delete(path: Path) -> None:
    """``rmtree``, giving the owner back write and search permission on a directory an agent took
    it from; what still cannot go stays (under ``trash/``, never in a slot)."""

    def retry(_function: object, failed: str, _error: object) -> None:
        parent = Path(failed).parent
        with contextlib.suppress(OSError):
            parent.chmod(0o700)
            target = Path(failed)
            if target.is_dir() and not target.is_symlink():
                target.chmod(0o700)
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink()

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


def set_aside(cache: Path, repo_key: str, checkout: Checkout) -> None:
    """Whatever is at the slot's checkout goes: moved out of the way first (a rename needs no
    permission inside it, whatever an agent did to its modes), then deleted, and git's record of
    it pruned."""
    if checkout.worktree.exists() or checkout.worktree.is_symlink():
        trash = cache / TRASH_DIR / uuid.uuid4().hex
        trash.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            checkout.worktree.rename(trash)
        _delete(trash)
    with repocache.locked(cache, repo_key):
        git.run(["worktree", "prune"], checkout.repo, check=False)
