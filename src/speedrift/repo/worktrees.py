"""One git worktree per attempt, with an ownership manifest, and a GC that never loses work.

Layout: ``<repo>/.speedrift/worktrees/<name>/`` on branch ``speedrift/<task>-a<attempt>``, and the
manifest beside it as ``<name>.json`` (outside the worktree, so the agent cannot touch it).
GC removes only worktrees speedrift owns whose work has landed or whose task was abandoned; a
dirty worktree or unlanded commits are reported and kept (or quarantined on request). A commit
that must not be published (the secrets gate blocked it) is withdrawn (:func:`withdraw`): no ref
holds it any more, its files stay in the quarantined worktree. A manifest's
``state`` is a :class:`ManifestState`; a manifest file holding another state is not read as ours.
Every change of an attempt's state is written to its manifest as it happens, and the manifest
names its ``owner`` (the :class:`~speedrift.procs.ProcessIdentity` of the process acting on it),
so that a manifest still saying ``active`` or ``landing`` after its owner died is known for what
it is: an attempt a crash cut off, which recovery (fleet/crash_recovery.py) settles.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil
from speedrift.errors import Refused, SpeedriftError
from speedrift.gitcmd import GitError
from speedrift.layout import quarantine_dir, safe_name, worktrees_dir
from speedrift.procs import ProcessIdentity, identity_alive, identity_of
from speedrift.repo import git, gitlocks
from speedrift.times import format_time, now_utc, short_stamp

BRANCH_PREFIX = "speedrift/"


def attempt_name(task_id: str, attempt: int) -> str:
    return f"{safe_name(task_id)}-{attempt}"


def branch_name(task_id: str, attempt: int) -> str:
    return f"{BRANCH_PREFIX}{safe_name(task_id)}-a{attempt}"


class ManifestState(StrEnum):
    """Where the attempt's worktree stands: in use, being merged, waiting to merge, or finished."""

    ACTIVE = "active"  # the attempt is running in it
    # in the merge queue; once ``candidate`` is set, the target may move to it at any moment
    LANDING = "landing"
    MERGE_PENDING = "merge-pending"  # it could not land yet; the service retries
    LANDED = "landed"  # the target moved to ``landed_commit``; the graph may not say done yet
    WAITING = "waiting"  # not landed, not failed: the task waits for a human (its log says why)
    FAILED = "failed"
    ABANDONED = "abandoned"
    QUARANTINED = "quarantined"  # moved aside by `speedrift worktrees quarantine`, work intact


@dataclass
class Manifest:
    task_id: str
    attempt: int
    branch: str
    path: str
    base_commit: str
    target_branch: str
    pid: int
    created: str
    state: ManifestState = ManifestState.ACTIVE
    landed_commit: str | None = None
    notes: list[str] = field(default_factory=list)
    owner: dict[str, int | None] | None = None  # ProcessIdentity.to_dict() of the process acting on it
    landing_from: str | None = None  # landing, merge-pending: the target's tip the branch sits on
    candidate: str | None = None  # landing: the tip the target moves to
    quarantined_at: str | None = None  # when it was moved aside (older manifests: unrecorded)
    scrubbed_at: str | None = None  # a secret-bearing quarantine's files deleted (repo/worktree_gc.py)

    def __post_init__(self) -> None:
        self.state = ManifestState(self.state)  # read back from JSON it is a str; unknown: ValueError

    @property
    def owner_identity(self) -> ProcessIdentity:
        """The process acting on the manifest: ``pid``, with its start time from ``owner`` when that
        names the same pid (older manifests have only the pid)."""
        owner = ProcessIdentity.from_dict(self.owner)
        return owner if owner is not None and owner.pid == self.pid else ProcessIdentity(self.pid, None)

    def owner_alive(self) -> bool:
        return identity_alive(self.owner_identity)

    def set_state(self, state: ManifestState, note: str | None = None) -> None:
        """A state change by this process (which becomes the owner), with an optional note."""
        self.state = state
        self.pid, self.owner = os.getpid(), identity_of().to_dict()
        if note:
            self.notes = [*self.notes, note][-20:]

    @property
    def name(self) -> str:
        return Path(self.path).name


def manifest_path(repo: Path, name: str) -> Path:
    return worktrees_dir(repo) / f"{name}.json"


def write_manifest(repo: Path, manifest: Manifest) -> None:
    path = manifest_path(repo, manifest.name)
    fsutil.write_atomic(path, orjson.dumps(asdict(manifest), option=orjson.OPT_INDENT_2))


def read_manifests(repo: Path) -> list[Manifest]:
    folder = worktrees_dir(repo)
    if not folder.is_dir():
        return []
    manifests: list[Manifest] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data: dict[str, Any] = orjson.loads(path.read_bytes())
            manifests.append(Manifest(**data))
        except (orjson.JSONDecodeError, TypeError, ValueError, OSError):
            continue  # not ours, or torn: GC will report it rather than guess
    return manifests


def create(repo: Path, task_id: str, attempt: int, target_branch: str) -> Manifest:
    """Add the attempt's worktree on a new branch from the target branch's current tip."""
    base = git.rev_parse(repo, f"refs/heads/{target_branch}")
    if base is None:
        raise SpeedriftError(
            f"target branch {target_branch!r} has no commit in {repo}",
            hint="make an initial commit, or set target_branch in speedrift.toml",
        )
    name = attempt_name(task_id, attempt)
    path = worktrees_dir(repo) / name
    branch = branch_name(task_id, attempt)
    if path.exists() or manifest_path(repo, name).exists():
        raise Refused(
            f"worktree {path} already exists", hint="`speedrift worktrees gc` or pick another attempt"
        )
    worktrees_dir(repo).mkdir(parents=True, exist_ok=True)
    added = gitlocks.run_step(
        repo,
        ADD_STEP,
        ["worktree", "add", "--quiet", "-b", branch, str(path), base],
        repo,
        [*gitlocks.ref_locks(repo, branch), *gitlocks.new_worktree_locks(repo, name)],
        worktree_admin=True,
        detail={"name": name, "path": str(path), "branch": branch, "base": base},
    )
    if added.returncode != 0:  # e.g. the branch exists: it holds an earlier attempt, never reused
        said = (added.stderr or added.stdout).strip() or f"git exited with status {added.returncode}"
        raise Refused(f"cannot create worktree {path} on {branch}: {said}")
    manifest = Manifest(
        task_id=task_id,
        attempt=attempt,
        branch=branch,
        path=str(path),
        base_commit=base,
        target_branch=target_branch,
        pid=os.getpid(),
        created=format_time(now_utc()),
        owner=identity_of().to_dict(),
    )
    write_manifest(repo, manifest)
    return manifest


ADD_STEP = "add-worktree"


def add_checkout(repo: Path, path: Path, commit: str) -> None:
    """A detached checkout of ``commit`` at ``path`` (no branch: nothing in it is ever landed),
    marked as a git step. Removed with :func:`remove_worktree` (``force``: it holds no work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    added = gitlocks.run_step(
        repo,
        "add-checkout",
        ["worktree", "add", "--detach", "--quiet", str(path), commit],
        repo,
        gitlocks.new_worktree_locks(repo, path.name),
        worktree_admin=True,
        detail={"path": str(path), "commit": commit},
    )
    if added.returncode != 0:
        said = (added.stderr or added.stdout).strip() or f"git exited with status {added.returncode}"
        raise Refused(f"cannot check out {commit[:12]} at {path}: {said}")


def undo_interrupted_add(repo: Path, detail: dict[str, object]) -> str | None:
    """Undo a ``git worktree add`` whose process was killed before :func:`create` wrote the manifest.

    git creates the worktree's admin directory (``.git/worktrees/<name>/``: ``locked``, ``gitdir``,
    ``HEAD``, ``commondir`` …) file by file; killed half way, the directory stays locked and
    unreadable, and every later ``git worktree add`` or ``list`` in the repo fails on it. No agent
    ever ran there (the manifest comes first), so the admin directory, the checkout and the branch
    (still at its base) go. Returns what was done, None when there was nothing to undo (the
    manifest exists: the add had completed). The caller knows the step's process is dead."""
    name, branch, base = (
        str(detail.get("name", "")),
        str(detail.get("branch", "")),
        str(detail.get("base", "")),
    )
    path = Path(str(detail.get("path", "")))
    if (
        not name
        or manifest_path(repo, name).exists()
        or path.parent.resolve() != worktrees_dir(repo).resolve()
    ):
        return None
    undone: list[str] = []
    with git.worktree_admin(repo, exclusive=True):
        admin = git.common_dir(repo) / "worktrees" / name
        gitdir = admin / "gitdir"
        ours = not gitdir.exists() or gitdir.read_text(errors="replace").strip().startswith(str(path))
        if admin.is_dir() and ours:
            shutil.rmtree(admin, ignore_errors=True)
            undone.append(f"its admin directory {admin.name}")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            undone.append("its checkout")
    git.run(["worktree", "prune"], repo, check=False)
    if branch and git.rev_parse(repo, f"refs/heads/{branch}") == base:  # no work on it: never used
        gitlocks.run_step(
            repo, "delete-branch", ["branch", "-D", branch], repo, gitlocks.ref_locks(repo, branch)
        )
        undone.append(f"its branch {branch}")
    return (
        f"undid the interrupted creation of worktree {name}: removed {', '.join(undone)}" if undone else None
    )


def attempt_branches(repo: Path, task_id: str) -> set[str]:
    """The attempt numbers (as written) the task's attempt branches carry (ref files, else git)."""
    prefix = f"refs/heads/{BRANCH_PREFIX}{safe_name(task_id)}-a"
    refs = git.branches_from_files(git.common_dir(repo), prefix)
    if refs is None:  # only git can tell
        refs = set(git.git(["for-each-ref", "--format=%(refname)", prefix + "*"], repo, check=False).split())
    return {ref.removeprefix(prefix) for ref in refs}


def next_attempt(repo: Path, task_id: str, floor: int = 1, branches: set[str] | None = None) -> int:
    """The lowest attempt number >= floor that no worktree, manifest or branch uses yet.
    ``branches``: :func:`attempt_branches`, when the caller asked git already (a claim asks before
    it takes the graph lock: only the task's claimant creates its branches, so none appears
    between the two)."""
    branches = attempt_branches(repo, task_id) if branches is None else branches
    attempt = floor
    while (
        str(attempt) in branches
        or manifest_path(repo, attempt_name(task_id, attempt)).exists()
        or (worktrees_dir(repo) / attempt_name(task_id, attempt)).exists()
    ):
        attempt += 1
    return attempt


# --- inspection and GC ----------------------------------------------------------------------------
@dataclass
class WorktreeStatus:
    manifest: Manifest
    exists: bool
    dirty: list[str]
    landed: bool  # branch tip is contained in the target branch
    unlanded_commits: int
    verdict: str  # remove | keep | scrub (repo/worktree_gc.py)
    reason: str
    # superseded (a later attempt landed, or the task is done): its checkout is removed even with
    # changes; a branch with unlanded commits stays (repo/worktree_gc.py)
    superseded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.manifest),
            "exists": self.exists,
            "dirty": self.dirty,
            "landed": self.landed,
            "unlanded_commits": self.unlanded_commits,
            "verdict": self.verdict,
            "reason": self.reason,
            "superseded": self.superseded,
        }


def inspect(repo: Path, manifest: Manifest, task_status: str | None) -> WorktreeStatus:
    path = Path(manifest.path)
    exists = path.is_dir()
    dirty = git.status_porcelain(path) if exists else []
    tip = git.rev_parse(repo, f"refs/heads/{manifest.branch}")
    target = git.rev_parse(repo, manifest.target_branch)
    landed = manifest.state is ManifestState.LANDED
    unlanded = 0
    if tip and target:
        count = git.git(["rev-list", "--count", f"{target}..{tip}"], repo, check=False)
        unlanded = int(count) if count.isdigit() else 0
        landed = landed or unlanded == 0
    if manifest.state is ManifestState.ACTIVE and manifest.owner_alive() and manifest.pid != os.getpid():
        return WorktreeStatus(
            manifest, exists, dirty, landed, unlanded, "keep", "an attempt is running in it"
        )
    if manifest.state is ManifestState.LANDING:
        alive = manifest.owner_alive()
        why = "in the merge queue" if alive else "a landing a crash cut off: recovery settles it"
        return WorktreeStatus(manifest, exists, dirty, landed, unlanded, "keep", why)
    if manifest.state is ManifestState.LANDED and task_status not in (None, "done", "abandoned"):
        why = "landed; its task is not recorded done yet (recovery records it)"
        return WorktreeStatus(manifest, exists, dirty, landed, unlanded, "keep", why)
    if manifest.state is ManifestState.QUARANTINED:
        return WorktreeStatus(manifest, exists, dirty, landed, unlanded, "keep", "quarantined")
    if dirty:
        return WorktreeStatus(
            manifest, exists, dirty, landed, unlanded, "keep", f"dirty: {len(dirty)} changed file(s)"
        )
    if landed and (tip is None or unlanded == 0):
        return WorktreeStatus(manifest, exists, dirty, landed, unlanded, "remove", "its work has landed")
    if task_status == "abandoned" or manifest.state is ManifestState.ABANDONED:
        why = "task abandoned" + (
            f"; branch {manifest.branch} kept ({unlanded} unlanded commit(s))" if unlanded else ""
        )
        return WorktreeStatus(manifest, exists, dirty, landed, unlanded, "remove", why)
    return WorktreeStatus(
        manifest,
        exists,
        dirty,
        landed,
        unlanded,
        "keep",
        f"unlanded: {unlanded} commit(s) not on {manifest.target_branch}",
    )


def remove(repo: Path, status: WorktreeStatus) -> None:
    """Remove a worktree GC judged removable. The branch goes only if fully merged (git -d): a
    superseded attempt's checkout goes even with changes, but its unlanded commits stay on its
    branch (speedrift never deletes unmerged commits; the user may, with ``git branch -D``)."""
    manifest = status.manifest
    if status.verdict != "remove":
        raise Refused(f"{manifest.path} is not removable: {status.reason}")
    if status.exists:
        # no --force unless superseded: git itself refuses if anything changed since the inspection
        removed = _remove_step(repo, manifest.path, force=status.superseded)
        if removed.returncode != 0:
            said = (removed.stderr or removed.stdout).strip() or f"exit status {removed.returncode}"
            raise GitError(f"git worktree remove {manifest.path} failed: {said}")
    git.run(["worktree", "prune"], repo, check=False)
    if status.unlanded_commits == 0:
        delete_merged_branch(repo, manifest.branch)
    manifest_path(repo, manifest.name).unlink(missing_ok=True)


def remove_worktree(repo: Path, path: str, force: bool = False) -> int:
    """``git worktree remove`` (without ``force`` git refuses a worktree with changes), marked.
    Returns git's exit code."""
    return _remove_step(repo, path, force=force).returncode


def remove_checkout(repo: Path, checkout: Path) -> None:
    """Remove a throwaway checkout (:func:`add_checkout`) whatever state it is in; never raises."""
    if remove_worktree(repo, str(checkout), force=True) != 0:
        shutil.rmtree(checkout, ignore_errors=True)
        with contextlib.suppress(SpeedriftError):
            git.run(["worktree", "prune"], repo, check=False)


def _remove_step(repo: Path, path: str, *, force: bool) -> subprocess.CompletedProcess[str]:
    locks = gitlocks.checkout_locks(Path(path))
    args = ["worktree", "remove", *(["--force"] if force else []), path]
    return gitlocks.run_step(repo, "remove-worktree", args, repo, locks, worktree_admin=True)


def delete_merged_branch(repo: Path, branch: str) -> bool:
    """``git branch -d`` (git refuses an unmerged branch), marked: it takes ``packed-refs.lock``."""
    locks = gitlocks.ref_locks(repo, branch)
    return gitlocks.run_step(repo, "delete-branch", ["branch", "-d", branch], repo, locks).returncode == 0


def remove_landed(repo: Path, manifest: Manifest) -> bool:
    """Right after landing: drop the worktree and its (now merged) branch. git refuses both if
    anything is left uncommitted or unmerged, in which case they stay for `worktrees gc`."""
    if remove_worktree(repo, manifest.path) != 0:
        return False
    delete_merged_branch(repo, manifest.branch)
    manifest_path(repo, manifest.name).unlink(missing_ok=True)
    return True


def quarantine(repo: Path, manifest: Manifest) -> Path:
    """Move a worktree out of the way (work intact) so new attempts are not confused by it."""
    folder = quarantine_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / f"{manifest.name}-{short_stamp(now_utc())}"
    if Path(manifest.path).exists():
        moved = gitlocks.run_step(
            repo,
            "move-worktree",
            ["worktree", "move", manifest.path, str(destination)],
            repo,
            gitlocks.checkout_locks(Path(manifest.path)),
            worktree_admin=True,
        )
        if moved.returncode != 0:
            said = (moved.stderr or moved.stdout).strip() or f"git exited with status {moved.returncode}"
            raise GitError(f"git worktree move {manifest.path} failed: {said}")
    old = manifest_path(repo, manifest.name)
    manifest.path = str(destination)
    manifest.state = ManifestState.QUARANTINED
    manifest.quarantined_at = format_time(now_utc())
    write_manifest(repo, manifest)
    old.unlink(missing_ok=True)
    return destination


@dataclass(frozen=True)
class Withdrawn:
    """What :func:`withdraw` did: the commit taken off the branch, and where its files are now."""

    commit: str | None  # the branch's tip before (None: the branch held no commit of the attempt)
    branch: str
    base: str  # where the branch points now
    worktree: str  # the quarantined worktree: HEAD detached at ``base``, the work staged in its index
    still_held_by: tuple[str, ...] = ()  # refs that hold the commit anyway (made by someone else)

    def sentence(self) -> str:
        held = (
            f"; but {', '.join(self.still_held_by[:5])} still hold(s) it: remove it from them before a push"
            if self.still_held_by
            else "; no branch or tag holds it, so `git push --all` cannot publish it"
        )
        taken = (
            f"commit {self.commit[:12]} was taken off branch {self.branch} (now at its base "
            f"{self.base[:12]}{held})"
            if self.commit
            else f"branch {self.branch} holds none of its commits"
        )
        return (
            f"{taken}; its files are kept for a human, uncommitted, in the quarantined worktree "
            f"{self.worktree} (HEAD detached at the base)"
        )


def withdraw(repo: Path, manifest: Manifest, note: str) -> Withdrawn:
    """Take an attempt's commits off every ref while keeping its work: a commit that must never be
    published (the secrets gate blocked it) must not sit on a branch a ``git push --all`` sends.

    In order, each a marked git step: the attempt branch moves back to the attempt's base (only if
    it still holds the tip read here — compare-and-swap); the worktree's HEAD is detached at that
    base, so its index and files still hold the work (``git status`` there shows it as staged
    changes, ``git diff --cached`` the whole commit); then the worktree is quarantined
    (:func:`quarantine`: moved aside, manifest ``quarantined``, kept by GC). A crash between the
    steps leaves the commit off the branch already. Raises GitError when a step fails."""
    branch, base = manifest.branch, manifest.base_commit
    tip = git.rev_parse(repo, f"refs/heads/{branch}")
    checkout = Path(manifest.path)
    if tip is not None and tip != base:
        moved = gitlocks.run_step(
            repo,
            "withdraw-branch",
            ["update-ref", "-m", f"speedrift: withdrawn ({note})", f"refs/heads/{branch}", base, tip],
            repo,
            gitlocks.ref_locks(repo, branch),
            detail={"branch": branch, "from": tip, "to": base},
        )
        if moved.returncode != 0:
            said = (moved.stderr or moved.stdout).strip() or f"git exited with status {moved.returncode}"
            raise GitError(f"could not move {branch} back to {base[:12]}: {said}")
    if checkout.is_dir():
        detached = gitlocks.run_step(
            repo,
            "detach-worktree",
            ["update-ref", "--no-deref", "-m", f"speedrift: withdrawn ({note})", "HEAD", base],
            checkout,
            gitlocks.checkout_locks(checkout),
        )
        if detached.returncode != 0:
            said = (detached.stderr or detached.stdout).strip() or f"exit status {detached.returncode}"
            raise GitError(f"could not detach {checkout} at {base[:12]}: {said}")
    manifest.notes = [*manifest.notes, f"withdrawn: {note}"][-20:]
    where = quarantine(repo, manifest)
    if tip is None or tip == base:
        return Withdrawn(None, branch, base, str(where))
    holding = git.git(["for-each-ref", "--format=%(refname)", "--contains", tip], repo, check=False)
    return Withdrawn(tip, branch, base, str(where), tuple(holding.split()))


def discard_unused(repo: Path, manifest: Manifest) -> None:
    """Remove a worktree the attempt never touched (setup failed before the agent ran)."""
    if git.status_porcelain(Path(manifest.path)):
        return
    remove_worktree(repo, manifest.path, force=True)
    gitlocks.run_step(
        repo,
        "delete-branch",
        ["branch", "-D", manifest.branch],
        repo,
        gitlocks.ref_locks(repo, manifest.branch),
    )
    manifest_path(repo, manifest.name).unlink(missing_ok=True)
    if Path(manifest.path).exists():
        shutil.rmtree(manifest.path, ignore_errors=True)
