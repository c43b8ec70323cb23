"""Worktrees per attempt: naming, ownership manifests, and a GC that never loses work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speedrift import layout
from speedrift.errors import Refused, SpeedriftError
from speedrift.repo import worktrees
from tests.gitrepo import make_repo, sh_git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_attempt_gets_its_own_worktree_and_branch_from_the_target_tip(repo: Path) -> None:
    manifest = worktrees.create(repo, "build-api", 1, "main")
    path = Path(manifest.path)
    assert path == repo / ".speedrift" / "worktrees" / "build-api-1"
    assert sh_git(path, "rev-parse", "--abbrev-ref", "HEAD") == "speedrift/build-api-a1"
    assert manifest.base_commit == sh_git(repo, "rev-parse", "main")
    assert (path / "README.md").read_text() == "# demo\n"
    assert worktrees.read_manifests(repo)[0].task_id == "build-api"


@pytest.mark.parametrize("task_id", ["../escape", "a/b", "-rf", "x\ny", "weird id!", ".system", "a..b.lock"])
def test_hostile_task_ids_become_safe_distinct_names(task_id: str) -> None:
    name = layout.safe_name(task_id)
    assert "/" not in name and ".." not in name and not name.startswith(("-", "."))
    assert name.replace("-", "").replace(".", "").replace("_", "").isalnum()
    assert layout.safe_name("a/b") != layout.safe_name("a-b")


def test_a_hostile_id_cannot_place_a_worktree_outside_the_repo(repo: Path) -> None:
    manifest = worktrees.create(repo, "../../escape", 1, "main")
    assert Path(manifest.path).resolve().is_relative_to((repo / ".speedrift" / "worktrees").resolve())


def test_existing_attempt_is_never_overwritten(repo: Path) -> None:
    worktrees.create(repo, "t", 1, "main")
    with pytest.raises(Refused):
        worktrees.create(repo, "t", 1, "main")
    assert worktrees.next_attempt(repo, "t") == 2


def test_a_repo_with_no_commits_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    sh_git(empty, "init", "-q", "-b", "main")
    with pytest.raises(SpeedriftError, match="no commit"):
        worktrees.create(empty, "t", 1, "main")


def _status(repo: Path, task_status: str | None = None) -> worktrees.WorktreeStatus:
    (manifest,) = worktrees.read_manifests(repo)
    return worktrees.inspect(repo, manifest, task_status)


def _finish(repo: Path, manifest: worktrees.Manifest) -> None:
    manifest.pid = 999_999_999  # not a live process: the attempt is over
    worktrees.write_manifest(repo, manifest)


def test_gc_keeps_a_dirty_worktree(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    _finish(repo, manifest)
    (Path(manifest.path) / "wip.txt").write_text("half done")
    status = _status(repo)
    assert status.verdict == "keep" and "dirty" in status.reason
    with pytest.raises(Refused):
        worktrees.remove(repo, status)
    assert (Path(manifest.path) / "wip.txt").exists()


def test_gc_keeps_unlanded_commits(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    _finish(repo, manifest)
    path = Path(manifest.path)
    (path / "feature.txt").write_text("x")
    sh_git(path, "add", "feature.txt")
    sh_git(path, "commit", "-q", "-m", "feature")
    status = _status(repo)
    assert status.verdict == "keep" and status.unlanded_commits == 1


def test_gc_removes_landed_work_and_its_merged_branch(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    _finish(repo, manifest)
    path = Path(manifest.path)
    (path / "feature.txt").write_text("x")
    sh_git(path, "add", "feature.txt")
    sh_git(path, "commit", "-q", "-m", "feature")
    sh_git(repo, "merge", "--ff-only", "-q", manifest.branch)
    status = _status(repo)
    assert status.verdict == "remove"
    worktrees.remove(repo, status)
    assert not path.exists()
    assert sh_git(repo, "branch", "--list", manifest.branch) == ""
    assert worktrees.read_manifests(repo) == []


def test_gc_removes_an_abandoned_tasks_worktree_but_keeps_its_unlanded_branch(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    _finish(repo, manifest)
    path = Path(manifest.path)
    (path / "feature.txt").write_text("x")
    sh_git(path, "add", "feature.txt")
    sh_git(path, "commit", "-q", "-m", "feature")
    status = _status(repo, task_status="abandoned")
    assert status.verdict == "remove" and "branch" in status.reason
    worktrees.remove(repo, status)
    assert not path.exists()
    assert sh_git(repo, "branch", "--list", manifest.branch).strip().endswith(manifest.branch)


def test_gc_keeps_a_worktree_whose_attempt_is_still_running(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    manifest.pid = os.getppid()  # alive, and not this process
    worktrees.write_manifest(repo, manifest)
    assert _status(repo, "abandoned").verdict == "keep"


def test_quarantine_moves_the_worktree_aside_with_its_work(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    original = Path(manifest.path)
    (original / "wip.txt").write_text("keep me")
    destination = worktrees.quarantine(repo, manifest)
    assert (destination / "wip.txt").read_text() == "keep me"
    assert worktrees.read_manifests(repo)[0].state == "quarantined"
    assert not original.exists()
