"""Refs read from the files, as git reads them (repo/git.py ``rev_parse`` for ``HEAD``,
``refs/heads/…`` and ``refs/speedrift/…``, and a linked worktree's common dir): always the answer
git gives, in every state a ref can be in, and git itself asked whenever the files do not settle it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from speedrift.repo import git
from tests.gitrepo import make_repo, sh_git


def _git_says(repo: Path, ref: str) -> str | None:
    args = ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]
    return subprocess.run(args, cwd=repo, capture_output=True, text=True).stdout.strip() or None


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    sh_git(repo, "branch", "feature")
    sh_git(repo, "worktree", "add", "-q", "-b", "wt/one", str(tmp_path / "wt"), "HEAD")
    (tmp_path / "wt" / "b.txt").write_text("b\n")
    sh_git(tmp_path / "wt", "add", "-A")
    sh_git(tmp_path / "wt", "commit", "-q", "-m", "b")
    return repo


def test_loose_and_packed_branches_and_head_read_as_git_reads_them(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    cases = [(repo, "HEAD"), (wt, "HEAD"), (repo, "refs/heads/feature"), (wt, "refs/heads/wt/one")]
    for where, ref in cases:
        assert git._read_ref(where, ref) == _git_says(where, ref) is not None
    sh_git(repo, "pack-refs", "--all")  # now only in packed-refs
    assert not (repo / ".git" / "refs" / "heads" / "feature").exists()
    for where, ref in cases:
        assert git._read_ref(where, ref) == _git_says(where, ref) is not None
    assert git._read_ref(repo, "refs/heads/absent") is None and _git_says(repo, "refs/heads/absent") is None


def test_speedrifts_own_refs_read_from_the_files_and_a_tag_is_asked_of_git(repo: Path) -> None:
    tip = _git_says(repo, "HEAD")
    sh_git(repo, "update-ref", f"refs/speedrift/base/{tip}", "HEAD")
    assert git._read_ref(repo, f"refs/speedrift/base/{tip}") == tip
    sh_git(repo, "pack-refs", "--all")
    assert git._read_ref(repo, f"refs/speedrift/base/{tip}") == tip
    assert git._read_ref(repo, "refs/speedrift/base/absent") is None
    # an annotated tag's ref names the tag object, not the commit: only git peels it
    sh_git(repo, "tag", "-a", "-m", "v1", "v1")
    assert git._read_ref(repo, "refs/tags/v1") == git._UNKNOWN
    assert git.rev_parse(repo, "refs/tags/v1") == tip


def test_a_detached_head_reads_as_its_commit(repo: Path) -> None:
    tip = _git_says(repo, "HEAD")
    sh_git(repo, "checkout", "-q", "--detach")
    assert git._read_ref(repo, "HEAD") == tip


def test_what_the_files_do_not_settle_is_asked_of_git(repo: Path) -> None:
    sh_git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/feature")  # a symbolic branch
    assert git._read_ref(repo, "refs/heads/alias") == git._UNKNOWN
    assert git.rev_parse(repo, "refs/heads/alias") == _git_says(repo, "refs/heads/feature")
    assert git._read_ref(repo, "feature") == git._UNKNOWN  # a short name: git's precedence rules
    assert git._read_ref(repo, "refs/heads/../HEAD") == git._UNKNOWN
    (repo / ".git" / "refs" / "heads" / "broken").write_text("not an object id\n")
    assert git._read_ref(repo, "refs/heads/broken") == git._UNKNOWN


def test_a_linked_worktrees_common_dir_is_read_from_its_files(repo: Path, tmp_path: Path) -> None:
    assert git._linked_common_dir(tmp_path / "wt") == (repo / ".git").resolve()
    assert git._linked_common_dir(repo) is None  # the main checkout: git says
    answer = sh_git(tmp_path / "wt", "rev-parse", "--git-common-dir").strip()
    assert git._linked_common_dir(tmp_path / "wt") == (tmp_path / "wt" / answer).resolve()


def _for_each_ref(repo: Path, prefix: str) -> set[str]:
    args = ["git", "for-each-ref", "--format=%(refname)", prefix + "*"]
    return set(subprocess.run(args, cwd=repo, capture_output=True, text=True, check=True).stdout.split())


def test_branches_by_prefix_read_as_git_lists_them_loose_packed_and_mixed(repo: Path) -> None:
    prefix = "refs/heads/speedrift/fix-login-a"
    common = repo / ".git"
    assert git.branches_from_files(common, prefix) == _for_each_ref(repo, prefix) == set()
    for name in ("fix-login-a1", "fix-login-a2", "fix-logout-a1", "fix-login-b1"):
        sh_git(repo, "branch", f"speedrift/{name}")
    expected = {f"{prefix}1", f"{prefix}2"}
    assert git.branches_from_files(common, prefix) == _for_each_ref(repo, prefix) == expected
    sh_git(repo, "pack-refs", "--all")  # packed only
    assert git.branches_from_files(common, prefix) == _for_each_ref(repo, prefix) == expected
    sh_git(repo, "branch", "speedrift/fix-login-a3")  # loose beside packed
    sh_git(repo, "branch", "-D", "speedrift/fix-login-a1")  # gone from packed-refs too
    expected = {f"{prefix}2", f"{prefix}3"}
    assert git.branches_from_files(common, prefix) == _for_each_ref(repo, prefix) == expected


def test_branches_the_files_cannot_settle_are_left_to_git(repo: Path) -> None:
    sh_git(repo, "branch", "speedrift/deep-a/x")  # a folder where an attempt's name would be
    assert git.branches_from_files(repo / ".git", "refs/heads/speedrift/deep-a") is None
    assert git.branches_from_files(repo / ".git", "refs/remotes/origin/x") is None
    assert git.branches_from_files(repo / ".git", "refs/heads/../x") is None
    (repo / ".git" / "reftable").mkdir()  # another ref backend: only git can tell
    assert git.branches_from_files(repo / ".git", "refs/heads/speedrift/fix-a") is None
