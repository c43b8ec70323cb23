"""One git worktree per attempt, with an ownership manifest, and a GC that never loses work.

Layout: ``<repo>/.speedrift/worktrees/<name>/`` on branch ``speedrift/<task>-a<attempt>``, and the
manifest beside it as ``<name>.json`` (outside the worktree, so the agent cannot touch it).
GC removes only worktrees speedrift owns whose work has landed or whose task was abandoned; a
dirty worktree or unlanded commits are reported and kept (or quarantined on request). A manifest's
``state`` is a :class:`ManifestState`; a manifest file holding another state is not read as ours.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil
from speedrift.errors import Refused, SpeedriftError
from speedrift.layout import quarantine_dir, safe_name, worktrees_dir
from speedrift.procs import pid_alive
from speedrift.repo import git
from speedrift.times import format_time, now_utc, short_stamp

BRANCH_PREFIX = "speedrift/"


def attempt_name(task_id: str, attempt: int) -> str:
    return f"{safe_name(task_id)}-{attempt}"


def branch_name(task_id: str, attempt: int) -> str:
    return f"{BRANCH_PREFIX}{safe_name(task_id)}-a{attempt}"


class ManifestState(StrEnum):
    """Where the attempt's worktree stands: in use, being merged, waiting to merge, or finished."""

    ACTIVE = "active"  # the attempt is running in it
    LANDING = "landing"  # its branch is being rebased and merged (the merge queue holds the lock)
    MERGE_PENDING = "merge-pending"  # it could not land yet; the service retries
    LANDED = "landed"
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

    def __post_init__(self) -> None:
        self.state = ManifestState(self.state)  # read back from JSON it is a str; unknown: ValueError

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
    base = git.rev_parse(repo, target_branch)
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
    added = git.run(["worktree", "add", "--quiet", "-b", branch, str(path), base], repo, check=False)
    if added.returncode != 0:  # e.g. the branch exists: it holds an earlier attempt, never reused
        raise Refused(f"cannot create worktree {path} on {branch}: {added.stderr.strip()}")
    manifest = Manifest(
        task_id=task_id,
        attempt=attempt,
        branch=branch,
        path=str(path),
        base_commit=base,
        target_branch=target_branch,
        pid=os.getpid(),
        created=format_time(now_utc()),
    )
    write_manifest(repo, manifest)
    return manifest


def next_attempt(repo: Path, task_id: str, floor: int = 1) -> int:
    """The lowest attempt number >= floor that no worktree, manifest or branch uses yet."""
    prefix = f"refs/heads/{BRANCH_PREFIX}{safe_name(task_id)}-a"
    listed = git.git(["for-each-ref", "--format=%(refname)", prefix + "*"], repo, check=False)
    branches = {ref.removeprefix(prefix) for ref in listed.splitlines()}
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
    verdict: str  # remove | keep
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.manifest),
            "exists": self.exists,
            "dirty": self.dirty,
            "landed": self.landed,
            "unlanded_commits": self.unlanded_commits,
            "verdict": self.verdict,
            "reason": self.reason,
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
    if manifest.state is ManifestState.ACTIVE and pid_alive(manifest.pid) and manifest.pid != os.getpid():
        return WorktreeStatus(
            manifest, exists, dirty, landed, unlanded, "keep", "an attempt is running in it"
        )
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
    """Remove a worktree GC judged removable. The branch goes only if fully merged (git -d)."""
    manifest = status.manifest
    if status.verdict != "remove":
        raise Refused(f"{manifest.path} is not removable: {status.reason}")
    if status.exists:
        # no --force: git itself refuses if anything changed since the inspection
        git.run(["worktree", "remove", manifest.path], repo)
    git.run(["worktree", "prune"], repo, check=False)
    if status.unlanded_commits == 0:
        git.run(["branch", "-d", manifest.branch], repo, check=False)
    manifest_path(repo, manifest.name).unlink(missing_ok=True)


def remove_landed(repo: Path, manifest: Manifest) -> bool:
    """Right after landing: drop the worktree and its (now merged) branch. git refuses both if
    anything is left uncommitted or unmerged, in which case they stay for `worktrees gc`."""
    if git.run(["worktree", "remove", manifest.path], repo, check=False).returncode != 0:
        return False
    git.run(["branch", "-d", manifest.branch], repo, check=False)
    manifest_path(repo, manifest.name).unlink(missing_ok=True)
    return True


def quarantine(repo: Path, manifest: Manifest) -> Path:
    """Move a worktree out of the way (work intact) so new attempts are not confused by it."""
    folder = quarantine_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / f"{manifest.name}-{short_stamp(now_utc())}"
    if Path(manifest.path).exists():
        git.run(["worktree", "move", manifest.path, str(destination)], repo)
    old = manifest_path(repo, manifest.name)
    manifest.path = str(destination)
    manifest.state = ManifestState.QUARANTINED
    write_manifest(repo, manifest)
    old.unlink(missing_ok=True)
    return destination


def discard_unused(repo: Path, manifest: Manifest) -> None:
    """Remove a worktree the attempt never touched (setup failed before the agent ran)."""
    if git.status_porcelain(Path(manifest.path)):
        return
    git.run(["worktree", "remove", "--force", manifest.path], repo, check=False)
    git.run(["branch", "-D", manifest.branch], repo, check=False)
    manifest_path(repo, manifest.name).unlink(missing_ok=True)
    if Path(manifest.path).exists():
        shutil.rmtree(manifest.path, ignore_errors=True)
