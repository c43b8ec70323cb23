"""Landing an attempt: commit what the agent left, rebase onto the target, fast-forward it.

Serialized per repo by an exclusive flock on ``.speedrift/merge.lock`` (the merge queue). The
target branch only ever moves forward: where a checkout has it checked out, ``git merge
--ff-only`` runs there — git refuses rather than overwrite uncommitted changes, and the attempt
waits as merge-pending; otherwise the ref moves by compare-and-swap. History is never rewritten
on the target, nothing is force-pushed, and no one else's work is touched.

A landing is a small state machine, each state recorded durably before the next step, so that
recovery (fleet/crash_recovery.py) can finish it from wherever a crash cut it off: the attempt's
manifest says ``landing`` with the target's tip before the landing (``landing_from``) and the
candidate tip, then the ref moves, then the landings log (repo/landings.py) gets its line, then
the manifest says ``landed``; the pipeline then writes ``done`` into the graph and only then
removes the worktree and its manifest. The target moves only through this queue: before building
on the target, :func:`land` checks that everything that reached it since the attempt began came
through logged landings, and refuses anything else as :class:`TargetMoved`. Every git step that
can take a git lock file runs under a marker (repo/gitlocks.py) so recovery can clear what a kill
left. ``SPEEDRIFT_TEST_KILL_AT=<step>`` makes the process kill itself (SIGKILL) at that named step
(:data:`STEPS`): the crash tests' way to die exactly there.

Hooks: git runs none of the repository's hooks here unless the caller passes ``hooks`` — the
directory of hooks the repo opted in to (``[git] hooks = "repo"``) and that were there before the
attempt began (``speedrift.repo.gitboundary.approve_hooks``); then the commit, the rebase and the
fast-forward run them from there. Recovery finishing a landing a crash cut off runs none.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from speedrift import fsutil
from speedrift.errors import SpeedriftError
from speedrift.gitcmd import GitError
from speedrift.layout import merge_lock_path
from speedrift.repo import git, gitlocks, landings, worktrees
from speedrift.repo.worktrees import Manifest, ManifestState

TRAILER = "Speedrift-Task"
KILL_AT_ENV = "SPEEDRIFT_TEST_KILL_AT"
KILL_LOG_ENV = "SPEEDRIFT_TEST_KILL_LOG"
# the named points of a landing, in order: after the rebase, after the gates passed on the
# rebased tip, the manifest says landing, the ref moved, the log has the line, the manifest says
# landed; then (the pipeline) the graph says done, and the worktree is gone
STEPS = ("rebased", "gated", "landing", "moved", "logged", "landed", "done", "cleaned")


def at_step(step: str) -> None:
    """A landing reached ``step``. With ``$SPEEDRIFT_TEST_KILL_AT`` naming it, the process dies here
    by SIGKILL — no cleanup, no finally: what a kill -9 or an OOM kill leaves (crash tests only);
    ``$SPEEDRIFT_TEST_KILL_LOG`` names a file that gets one line per such death first."""
    if os.environ.get(KILL_AT_ENV) == step:
        kill_log = os.environ.get(KILL_LOG_ENV)
        if kill_log:
            with open(kill_log, "a") as handle:
                handle.write(f"{step} {os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)


class MergeConflict(SpeedriftError):
    def __init__(self, files: list[str], target: str, foreign: list[str] | None = None) -> None:
        super().__init__(f"rebasing onto {target} conflicts in: {', '.join(files) or '(unknown files)'}")
        self.files = files
        self.foreign = foreign or []  # commits on the target that did not come through the merge queue


class TargetMoved(SpeedriftError):
    """The target branch moved since the attempt began other than through the merge queue (a commit
    made directly on it, a reset, a pull): a boundary violation. Nothing was built on it."""

    def __init__(self, target: str, foreign: list[str], described: str) -> None:
        super().__init__(
            f"{target} moved outside the merge queue during the attempt: {len(foreign)} commit(s) that no "
            f"landing produced: {described}; nothing was landed on top of them"
        )
        self.target = target
        self.foreign = foreign
        self.described = described


class MergePending(SpeedriftError):
    """The target checkout has changes in the way; the attempt waits, nothing was merged."""


class CommitRejected(SpeedriftError):
    """The repo's commit hooks refused the agent's changes."""


def merge_lock(repo: Path) -> contextlib.AbstractContextManager[None]:
    return fsutil.flocked(merge_lock_path(repo))


@contextlib.contextmanager
def try_merge_lock(repo: Path) -> Iterator[bool]:
    """The merge lock if it is free right now (True), else nothing (False): for a tick that must
    not wait behind a landing."""
    fd = fsutil.try_flock(merge_lock_path(repo))
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        fsutil.release_flock(fd)


def commit_all(
    repo: Path, worktree: Path, task_id: str, title: str, *, hooks: Path | None = None
) -> str | None:
    """Commit everything the agent left uncommitted. ``hooks``: the approved hooks directory (its
    pre-commit, commit-msg … run and may refuse: :class:`CommitRejected`); None runs no hook.
    Returns the new commit or None."""
    locks = gitlocks.checkout_locks(worktree)
    added = gitlocks.run_step(repo, "add", ["add", "-A"], worktree, locks)
    if added.returncode != 0:
        raise GitError(f"git add -A failed in {worktree}: {(added.stderr or added.stdout).strip()[:2000]}")
    message = f"{task_id}: {title}\n\n{TRAILER}: {task_id}\n"
    branch = git.current_branch(worktree)
    result = gitlocks.run_step(
        repo,
        "commit",
        ["commit", "-q", "-F", "-"],
        worktree,
        [*locks, *gitlocks.ref_locks(repo, *([branch] if branch else []))],
        env=git.identity_env(repo),
        input_text=message,
        hooks=hooks,
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


def repo_of(checkout: Path) -> Path:
    """The main checkout of the repository ``checkout`` belongs to (whose ``.speedrift/`` it is)."""
    return git.common_dir(checkout).parent


def rebase_in_progress(worktree: Path) -> bool:
    own = git.git_dir(worktree)
    return any((own / marker).exists() for marker in ("rebase-merge", "rebase-apply"))


@dataclass(frozen=True)
class RebaseAbort:
    """What undoing an interrupted rebase came to: ``aborted`` only when git said so and the rebase
    is really gone; ``detail`` is git's own words when it was not."""

    aborted: bool
    detail: str = ""


def abort_interrupted_rebase(repo: Path, worktree: Path) -> RebaseAbort | None:
    """Undo a rebase a crash cut off, leaving the branch as it was before it (None: there was none)."""
    if not rebase_in_progress(worktree):
        return None
    head_name = git.git_dir(worktree) / "rebase-merge" / "head-name"
    try:
        branch = head_name.read_text().strip().removeprefix("refs/heads/")
    except OSError:
        branch = ""
    locks = [*gitlocks.checkout_locks(worktree), *gitlocks.ref_locks(repo, *([branch] if branch else []))]
    result = gitlocks.run_step(repo, "rebase-abort", ["rebase", "--abort"], worktree, locks)
    still = rebase_in_progress(worktree)
    if result.returncode == 0 and not still:
        return RebaseAbort(True)
    said = (result.stderr or result.stdout).strip()[:500] or f"git rebase --abort exited {result.returncode}"
    return RebaseAbort(False, said + ("; the rebase is still in progress" if still else ""))


def abort_rebase_if_any(worktree: Path) -> bool:
    """A rebase cut off by a crash is undone, leaving the branch as it was before it. True only when
    one was found and really aborted (:func:`abort_interrupted_rebase` says why not)."""
    outcome = abort_interrupted_rebase(repo_of(worktree), worktree)
    return outcome is not None and outcome.aborted


def rebase_onto_target(
    repo: Path, manifest: Manifest, target_tip: str, own_tip: str | None = None, *, hooks: Path | None = None
) -> str:
    """Rebase the attempt branch onto the target's tip; a conflict is aborted and reported.
    ``own_tip``: the branch's tip when the caller knows it (saves asking git when nothing landed
    meanwhile and the branch is already on top). ``hooks``: the approved hooks directory, if any."""
    worktree = Path(manifest.path)
    if target_tip == manifest.base_commit:  # nothing landed meanwhile: the branch is already on top
        tip = own_tip or git.rev_parse(worktree, "HEAD")
        assert tip is not None
        return tip
    locks = [*gitlocks.checkout_locks(worktree), *gitlocks.ref_locks(repo, manifest.branch)]
    identity = git.identity_env(repo)
    rebasing = ["rebase", "--quiet", target_tip]
    result = gitlocks.run_step(repo, "rebase", rebasing, worktree, locks, env=identity, hooks=hooks)
    if result.returncode != 0:
        conflicted = git.git(["diff", "--name-only", "--diff-filter=U"], worktree, check=False).split("\n")
        gitlocks.run_step(repo, "rebase-abort", ["rebase", "--abort"], worktree, locks, hooks=hooks)
        raise MergeConflict([f for f in conflicted if f], manifest.target_branch)
    tip = git.rev_parse(worktree, "HEAD")
    assert tip is not None
    return tip


def checkout_holding(repo: Path, branch: str) -> Path | None:
    """The checkout that has ``branch`` checked out, if any: the main checkout (asked first: no
    git process, and git lets only one checkout hold a branch), else one of its worktrees."""
    if git.current_branch(repo) == branch:
        return repo
    for entry in git.worktrees(repo):
        if entry.branch == branch:
            return entry.path
    return None


def fast_forward_target(
    repo: Path, target: str, new_tip: str, old_tip: str | None = None, *, hooks: Path | None = None
) -> None:
    """Move ``target`` (at ``old_tip``) forward to ``new_tip``; anything but a fast-forward is refused.
    ``hooks``: the approved hooks directory (post-merge, reference-transaction), if any."""
    old_tip = old_tip or git.rev_parse(repo, f"refs/heads/{target}")
    # asked of git even where `merge --ff-only` follows: for a tip behind the target, that merge
    # is a successful no-op ("Already up to date"), not a refusal
    if (
        old_tip is None
        or old_tip == new_tip
        or git.run(["merge-base", "--is-ancestor", old_tip, new_tip], repo, check=False).returncode
    ):
        raise SpeedriftError(f"{new_tip[:12]} is not ahead of {target}; refusing anything but a fast-forward")
    holder = checkout_holding(repo, target)
    ref_locks = gitlocks.ref_locks(repo, target)
    if holder is not None:
        # --ff-only: git itself refuses a non-fast-forward, and any change to uncommitted files
        detail = {"target": target, "from": old_tip, "to": new_tip, "checkout": str(holder)}
        result = gitlocks.run_step(
            repo,
            FAST_FORWARD_STEP,
            ["merge", "--ff-only", "--quiet", new_tip],
            holder,
            [*gitlocks.checkout_locks(holder), *ref_locks],
            detail=detail,
            hooks=hooks,
        )
        if result.returncode != 0:
            raise MergePending(
                f"the checkout at {holder} has {target} checked out and git refused to fast-forward it: "
                f"{(result.stderr or result.stdout).strip()[:500]}",
                hint=f"stash the changes there (a commit of your own on {target} would stop the attempts in "
                "flight from landing); the attempt lands on the next try",
            )
        return
    swap = ["update-ref", f"refs/heads/{target}", new_tip, old_tip]  # compare-and-swap
    moved = gitlocks.run_step(repo, "move-ref", swap, repo, ref_locks, hooks=hooks)
    if moved.returncode != 0:
        raise GitError(f"git update-ref refs/heads/{target} failed: {(moved.stderr or moved.stdout).strip()}")


FAST_FORWARD_STEP = "fast-forward"


def restore_interrupted_checkout(repo: Path, detail: dict[str, object]) -> str | None:
    """Undo what a fast-forward in a checkout, killed before its ref moved, wrote into that checkout.

    ``git merge --ff-only`` writes the new files, then the index, then moves the ref; killed before
    the ref, the checkout is left half-way to the candidate. Only paths the candidate changed are
    touched, and of those only files whose content is exactly the candidate's (what the merge wrote,
    never a person's edit); the index entries of those paths go back to HEAD. Returns what was
    done, None when nothing needed doing (the ref moved, or nothing was written)."""
    checkout, target = Path(str(detail.get("checkout", ""))), str(detail.get("target", ""))
    old, new = str(detail.get("from", "")), str(detail.get("to", ""))
    if not (checkout.is_dir() and target and old and new):
        return None
    if git.rev_parse(repo, f"refs/heads/{target}") != old or git.rev_parse(checkout, "HEAD") != old:
        return None  # the ref moved (git moves it last: the checkout is whole), or someone moved on
    listed = git.run(["diff", "--name-only", "-z", "--no-renames", old, new], repo, check=False).stdout
    paths = [p for p in listed.split("\0") if p]
    restored: list[str] = []
    for rel in paths:
        file = checkout / rel
        old_blob, new_blob = _blob(repo, old, rel), _blob(repo, new, rel)
        if file.is_file() and not file.is_symlink():
            written = git.git(["hash-object", "--", str(file)], checkout, check=False)
            if new_blob is None or written != new_blob:
                continue  # not what the merge wrote: a person's, left alone
            if old_blob is None:
                file.unlink()
            else:
                git.run(["checkout", old, "--", rel], checkout, check=False)
            restored.append(rel)
        elif not file.exists() and old_blob is not None and new_blob is None:
            git.run(["checkout", old, "--", rel], checkout, check=False)  # the merge deleted it
            restored.append(rel)
    if paths:
        git.run(["reset", "-q", old, "--", *paths], checkout, check=False)  # the index: back to HEAD
    if not restored:
        return None
    return f"restored {len(restored)} file(s) in {checkout} an interrupted fast-forward had half-written"


def _blob(repo: Path, commit: str, rel: str) -> str | None:
    return git.git(["rev-parse", "--verify", "--quiet", f"{commit}:{rel}"], repo, check=False) or None


def conflicts_between(repo: Path, onto: str, tip: str) -> list[str]:
    """The files a rebase of ``tip`` onto ``onto`` would conflict in, found without touching any
    checkout (``git merge-tree``; empty when none, or when this git cannot tell)."""
    found = git.run(
        ["merge-tree", "--write-tree", "--name-only", "--no-messages", onto, tip], repo, check=False
    )
    if found.returncode != 1:
        return []
    return list(dict.fromkeys(line for line in found.stdout.splitlines()[1:] if line.strip()))


def check_target_moves(repo: Path, manifest: Manifest, target_tip: str) -> list[str]:
    """Commits that brought the target from the attempt's base to ``target_tip`` other than through
    the merge queue (empty: only logged landings). A landing a crash cut off between the ref and the
    log is logged now from its manifest first. The caller holds the merge lock."""
    target = manifest.target_branch
    foreign = landings.foreign_commits(repo, target, manifest.base_commit, target_tip)
    if foreign and _log_cut_off_landings(repo, target):
        foreign = landings.foreign_commits(repo, target, manifest.base_commit, target_tip)
    return foreign


def _log_cut_off_landings(repo: Path, target: str) -> int:
    """Log the landings whose ref moved but whose line a crash cut off (from their manifests)."""
    logged = 0
    for other in worktrees.read_manifests(repo):
        candidate = other.candidate or other.landed_commit
        if other.target_branch != target or not candidate or not other.landing_from:
            continue
        if other.state not in (ManifestState.LANDING, ManifestState.LANDED):
            continue
        if landings.on_target(repo, candidate, target):
            logged += landings.record(repo, landing_of(other, candidate))
    return logged


def landing_of(manifest: Manifest, new_tip: str) -> landings.Landing:
    return landings.Landing(
        task=manifest.task_id,
        attempt=manifest.attempt,
        target=manifest.target_branch,
        old=manifest.landing_from or manifest.base_commit,
        new=new_tip,
    )


GateSeam = Callable[[Manifest, str], None]  # raises to block landing; runs on the rebased tip


def land(
    repo: Path,
    manifest: Manifest,
    gate: GateSeam,
    timings: dict[str, float] | None = None,
    own_tip: str | None = None,
    *,
    hooks: Path | None = None,
) -> str:
    """The merge queue's one step: check the target moved only through the queue, rebase, re-run the
    gate seam, then the landing's states (see the module docstring). Returns the new tip.
    ``hooks``: the approved hooks directory for the rebase and the fast-forward, if any.

    While the gate runs, ``manifest.landing_from`` is the tip the candidate sits on (the base the
    attempt's own commits are judged against). ``timings["queue_wait"]`` receives the seconds
    spent waiting for the queue. Raises :class:`TargetMoved`, :class:`MergeConflict`,
    :class:`MergePending`, or whatever the gate raises; the target has not moved then."""
    asked = time.monotonic()
    with merge_lock(repo):
        if timings is not None:
            timings["queue_wait"] = time.monotonic() - asked
        target = manifest.target_branch
        target_tip = git.rev_parse(repo, f"refs/heads/{target}")
        if target_tip is None:
            raise SpeedriftError(f"target branch {target!r} disappeared")
        foreign = check_target_moves(repo, manifest, target_tip)
        if foreign:
            own_tip = git.rev_parse(repo, f"refs/heads/{manifest.branch}") or manifest.base_commit
            conflicted = conflicts_between(repo, target_tip, own_tip)
            if conflicted:
                raise MergeConflict(conflicted, target, foreign)
            raise TargetMoved(target, foreign, landings.describe(repo, foreign))
        tip = rebase_onto_target(repo, manifest, target_tip, own_tip, hooks=hooks)
        at_step("rebased")
        manifest.landing_from = target_tip
        try:
            gate(manifest, tip)
        except BaseException:
            manifest.landing_from = None
            raise
        at_step("gated")
        manifest.candidate = tip
        manifest.set_state(ManifestState.LANDING)
        worktrees.write_manifest(repo, manifest)
        at_step("landing")
        try:
            fast_forward_target(repo, target, tip, target_tip, hooks=hooks)
        except MergePending:
            # git refused: nothing moved; the branch stays rebased onto ``landing_from``, which a
            # resumed landing judges the attempt's own commits against
            manifest.candidate = None
            raise
        at_step("moved")
        landings.record(repo, landing_of(manifest, tip))
        at_step("logged")
        manifest.landed_commit = tip
        manifest.set_state(ManifestState.LANDED)
        worktrees.write_manifest(repo, manifest)
        at_step("landed")
        return tip
