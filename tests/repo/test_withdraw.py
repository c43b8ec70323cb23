"""Withdrawing an attempt's commits (repo/worktrees.py ``withdraw``): no ref holds them any more, a
push of everything publishes nothing of them, and the work stays in the quarantined worktree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from speedrift import layout
from speedrift.repo import worktrees
from tests.gitrepo import make_repo, sh_git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def attempt_with_a_commit(repo: Path) -> tuple[worktrees.Manifest, str]:
    manifest = worktrees.create(repo, "leaky", 1, "main")
    path = Path(manifest.path)
    (path / "leak.txt").write_text("the agent's work\n")
    (path / "README.md").write_text("# changed\n")
    sh_git(path, "add", "-A")
    sh_git(path, "commit", "-q", "-m", "the agent's commit")
    return manifest, sh_git(path, "rev-parse", "HEAD")


def test_a_withdrawn_commit_is_on_no_ref_and_its_files_stay_staged_in_the_quarantined_worktree(
    repo: Path, tmp_path: Path
) -> None:
    manifest, commit = attempt_with_a_commit(repo)
    base = manifest.base_commit

    done = worktrees.withdraw(repo, manifest, "a test")

    assert (done.commit, done.branch, done.base, done.still_held_by) == (commit, manifest.branch, base, ())
    assert sh_git(repo, "for-each-ref", "--contains", commit) == ""
    assert sh_git(repo, "rev-parse", manifest.branch) == base
    kept = Path(done.worktree)
    assert (
        kept.parent == layout.quarantine_dir(repo)
        and not (repo / ".speedrift" / "worktrees" / "leaky-1").exists()
    )
    assert (kept / "leak.txt").read_text() == "the agent's work\n"
    assert sorted(sh_git(kept, "status", "--porcelain").splitlines()) == ["A  leak.txt", "M  README.md"]
    assert sh_git(kept, "rev-parse", "HEAD") == base
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=kept).returncode != 0
    (read,) = worktrees.read_manifests(repo)
    assert read.state is worktrees.ManifestState.QUARANTINED and read.path == str(kept)
    assert worktrees.inspect(repo, read, "failed").verdict == "keep"  # GC never removes it
    assert layout.git_steps_dir(repo).is_dir() and list(layout.git_steps_dir(repo).iterdir()) == []
    remote = tmp_path / "remote.git"
    sh_git(tmp_path, "init", "-q", "--bare", str(remote))
    sh_git(repo, "push", "-q", "--all", str(remote))
    assert subprocess.run(["git", "cat-file", "-e", commit], cwd=remote, capture_output=True).returncode != 0
    assert "cannot publish it" in done.sentence() and str(kept) in done.sentence()


def test_a_ref_someone_else_made_on_the_commit_is_named_not_hidden(repo: Path) -> None:
    manifest, commit = attempt_with_a_commit(repo)
    sh_git(repo, "branch", "copied", commit)

    done = worktrees.withdraw(repo, manifest, "a test")

    assert done.still_held_by == ("refs/heads/copied",)
    assert "refs/heads/copied still hold(s) it" in done.sentence()
    assert sh_git(repo, "rev-parse", manifest.branch) == manifest.base_commit
