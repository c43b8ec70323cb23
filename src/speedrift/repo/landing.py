"""Landing an attempt: commit what the agent left, rebase onto the target, fast-forward it.

Serialized per repo by an exclusive flock on ``.speedrift/merge.lock`` (the merge queue). The
target branch only ever moves forward: where a checkout has it checked out, ``git merge
--ff-only`` runs there — git refuses rather than overwrite uncommitted changes, and the attempt
waits as merge-pending; otherwise the ref moves by compare-and-swap. History is never rewritten
on the target, nothing is force-pushed, and no one else's work is touched.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from speedrift import fsutil
from speedrift.errors import SpeedriftError
from speedrift.layout import merge_lock_path
from speedrift.repo import git
from speedrift.repo.worktrees import Manifest

TRAILER = "Speedrift-Task"


class MergeConflict(SpeedriftError):
    def __init__(self, files: list[str], target: str) -> None:
        super().__init__(f"rebasing onto {target} conflicts in: {', '.join(files) or '(unknown files)'}")
        self.files = files


class MergePending(SpeedriftError):
    """The target checkout has changes in the way; the attempt waits, nothing was merged."""


class CommitRejected(SpeedriftError):
    """The repo's commit hooks refused the agent's changes."""


def merge_lock(repo: Path) -> contextlib.AbstractContextManager[None]:
    return fsutil.flocked(merge_lock_path(repo))


def commit_all(repo: Path, worktree: Path, task_id: str, title: str) -> str | None:
    """Commit everything the agent left uncommitted (hooks run). Returns the new commit or None."""
    git.run(["add", "-A"], worktree)
    message = f"{task_id}: {title}\n\n{TRAILER}: {task_id}\n"
    result = git.run(
        ["commit", "-q", "-F", "-"], worktree, check=False, env=git.identity_env(repo), input_text=message
    )
    if result.returncode == 1 and "nothing to commit" in result.stdout + result.stderr:
        return None  # LC_ALL=C in git.run keeps this message stable
    if result.returncode != 0:
        raise CommitRejected(
            f"commit in {worktree} was refused: {(result.stderr or result.stdout).strip()[:2000]}"
        )
    return git.rev_parse(worktree, "HEAD")


@dataclass
class DiffStats:
    files: int
    insertions: int
    deletions: int
    paths: list[str]


def diff_stats(repo: Path, base: str, tip: str) -> DiffStats:
    out = git.git(["diff", "--numstat", "-z", f"{base}..{tip}"], repo)
    files = insertions = deletions = 0
    paths: list[str] = []
    for record in out.split("\0"):
        parts = record.split("\t")
        if len(parts) < 3:
            continue
        files += 1
        insertions += int(parts[0]) if parts[0].isdigit() else 0
        deletions += int(parts[1]) if parts[1].isdigit() else 0
        paths.append(parts[2])
    return DiffStats(files, insertions, deletions, paths)


def abort_rebase_if_any(worktree: Path) -> bool:
    """A rebase cut off by a crash is undone, leaving the branch as it was before it."""
    for marker in ("rebase-merge", "rebase-apply"):
        path = Path(git.git(["rev-parse", "--git-path", marker], worktree, check=False) or "")
        if not path.is_absolute():
            path = worktree / path
        if path.exists():
            git.run(["rebase", "--abort"], worktree, check=False)
            return True
    return False


def rebase_onto_target(repo: Path, manifest: Manifest, target_tip: str) -> str:
    """Rebase the attempt branch onto the target's tip; a conflict is aborted and reported."""
    worktree = Path(manifest.path)
    if target_tip == manifest.base_commit:  # nothing landed meanwhile: the branch is already on top
        tip = git.rev_parse(worktree, "HEAD")
        assert tip is not None
        return tip
    result = git.run(["rebase", "--quiet", target_tip], worktree, check=False, env=git.identity_env(repo))
    if result.returncode != 0:
        conflicted = git.git(["diff", "--name-only", "--diff-filter=U"], worktree, check=False).split("\n")
        git.run(["rebase", "--abort"], worktree, check=False)
        raise MergeConflict([f for f in conflicted if f], manifest.target_branch)
    tip = git.rev_parse(worktree, "HEAD")
    assert tip is not None
    return tip


def checkout_holding(repo: Path, branch: str) -> Path | None:
    for entry in git.worktrees(repo):
        if entry.branch == branch:
            return entry.path
    return None


def fast_forward_target(repo: Path, target: str, new_tip: str, old_tip: str | None = None) -> None:
    """Move ``target`` (at ``old_tip``) forward to ``new_tip``; anything but a fast-forward is refused."""
    old_tip = old_tip or git.rev_parse(repo, target)
    if (
        old_tip is None
        or old_tip == new_tip
        or git.run(["merge-base", "--is-ancestor", old_tip, new_tip], repo, check=False).returncode
    ):
        raise SpeedriftError(f"{new_tip[:12]} is not ahead of {target}; refusing anything but a fast-forward")
    holder = checkout_holding(repo, target)
    if holder is not None:
        # --ff-only: git itself refuses a non-fast-forward, and any change to uncommitted files
        result = git.run(["merge", "--ff-only", "--quiet", new_tip], holder, check=False)
        if result.returncode != 0:
            raise MergePending(
                f"the checkout at {holder} has {target} checked out and git refused to fast-forward it: "
                f"{(result.stderr or result.stdout).strip()[:500]}",
                hint="commit or stash the changes there; the attempt lands on the next try",
            )
        return
    git.run(["update-ref", f"refs/heads/{target}", new_tip, old_tip], repo)  # compare-and-swap


GateSeam = Callable[[Manifest, str], None]  # raises to block landing; runs on the rebased tip


def land(repo: Path, manifest: Manifest, gate: GateSeam, timings: dict[str, float] | None = None) -> str:
    """The merge queue's one step: rebase, re-run the gate seam, fast-forward. Returns the new tip.

    ``timings["queue_wait"]`` receives the seconds spent waiting for the queue."""
    asked = time.monotonic()
    with merge_lock(repo):
        if timings is not None:
            timings["queue_wait"] = time.monotonic() - asked
        target_tip = git.rev_parse(repo, manifest.target_branch)
        if target_tip is None:
            raise SpeedriftError(f"target branch {manifest.target_branch!r} disappeared")
        tip = rebase_onto_target(repo, manifest, target_tip)
        gate(manifest, tip)
        fast_forward_target(repo, manifest.target_branch, tip, target_tip)
        return tip
