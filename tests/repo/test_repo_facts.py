"""What git work asks of a repo again and again — its commit identity, its common git dir, its
checked-out branch — answered once, or without a git process, and the same as git's own answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from speedrift.repo import git, landing, worktrees
from tests.gitrepo import make_repo, sh_git


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    path = make_repo(tmp_path / "repo")
    yield path
    git._adopted.pop(path, None)  # adoption is per process: never leak it into another test


def test_the_repos_own_identity_is_used_and_a_missing_one_falls_back(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")  # only the repo's own configuration
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    git._identity_env.cache_clear()
    assert git.identity_env(repo) == {}
    sh_git(repo, "config", "--unset", "user.email")
    sh_git(repo, "config", "--add", "user.name", "Second Value")  # several values: the last wins
    git._identity_env.cache_clear()
    assert git.identity_env(repo) == {
        "GIT_AUTHOR_NAME": "Second Value",
        "GIT_AUTHOR_EMAIL": git.FALLBACK_EMAIL,
        "GIT_COMMITTER_NAME": "Second Value",
        "GIT_COMMITTER_EMAIL": git.FALLBACK_EMAIL,
    }
    git._identity_env.cache_clear()  # answered for this environment only


def test_a_worker_commits_with_the_facts_its_supervisor_resolved(repo: Path) -> None:
    resolved = git.facts(repo)
    assert resolved.common_dir == (repo / ".git").resolve()
    told = (
        ("GIT_AUTHOR_NAME", "Supervisor Said"),
        ("GIT_AUTHOR_EMAIL", "said@example.invalid"),
        ("GIT_COMMITTER_NAME", "Supervisor Said"),
        ("GIT_COMMITTER_EMAIL", "said@example.invalid"),
    )
    git.adopt(git.RepoFacts(repo, resolved.common_dir, told))
    manifest = worktrees.create(repo, "t", 1, "main")
    (Path(manifest.path) / "f.txt").write_text("f\n")
    tip = landing.commit_all(repo, Path(manifest.path), "t", "f")
    assert tip is not None
    assert sh_git(repo, "log", "-1", "--format=%an <%ae>", tip) == "Supervisor Said <said@example.invalid>"


def test_the_checked_out_branch_is_read_as_git_reads_it(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    assert git.current_branch(repo) == "main"
    assert git.current_branch(path) == manifest.branch == sh_git(path, "symbolic-ref", "--short", "HEAD")
    sh_git(path, "checkout", "-q", "--detach")
    assert git.current_branch(path) is None
    sh_git(repo, "checkout", "-q", "--orphan", "fresh")  # unborn: named all the same, like git
    assert git.current_branch(repo) == "fresh"
