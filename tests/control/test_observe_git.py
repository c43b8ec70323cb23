"""A repo's git state read without changing it: status, ahead/behind, last commit, own dirs excluded."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from speedrift.control.observe.git import (
    commit_time,
    git_dirs,
    parse_status,
    read_git_state,
    watched_paths,
)
from speedrift.register.record import GitState, RepoEntry
from tests.gitrepo import commit_file, make_repo, sh_git


def state_of(repo: Path, entry: RepoEntry | None = None) -> tuple[GitState, list[str]]:
    dirs = git_dirs(repo)
    assert dirs is not None
    return read_git_state(repo, dirs, entry or RepoEntry(name=repo.name, path=repo), time.monotonic() + 30)


def test_porcelain_v2_output_is_parsed_and_speedrifts_own_dirs_left_out() -> None:
    output = "\0".join(
        [
            "# branch.oid 1111111111111111111111111111111111111111",
            "# branch.head main",
            "# branch.upstream origin/main",
            "# branch.ab +2 -3",
            "1 .M N... 100644 100644 100644 aaa bbb src/app.py",
            "2 R. N... 100644 100644 100644 aaa bbb R100 new name.py",
            "old name.py",
            "u UU N... 100644 100644 100644 100644 a b c conflict.txt",
            "1 .M N... 100644 100644 100644 aaa bbb .speedrift/control.json",
            "? notes.txt",
            "? .speedrift/",
            "? .speedrift-hub/",
            "",
        ]
    )
    facts = parse_status(output)
    assert (facts.head, facts.branch, facts.upstream) == ("1" * 40, "main", "origin/main")
    assert (facts.ahead, facts.behind) == (2, 3)
    assert (facts.dirty, facts.untracked) == (3, 1)
    assert facts.paths == ["src/app.py", "new name.py", "conflict.txt", "notes.txt"]


def test_detached_and_unborn_heads_have_no_branch_or_no_commit() -> None:
    detached = parse_status("# branch.oid abc\0# branch.head (detached)\0")
    assert detached.branch is None and detached.head == "abc" and detached.ahead is None
    unborn = parse_status("# branch.oid (initial)\0# branch.head main\0")
    assert unborn.head is None and unborn.branch == "main"


def test_a_real_repo_reports_changes_and_its_last_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n", "b.txt": "b\n"})
    (repo / "a.txt").write_text("changed\n")
    (repo / "new.txt").write_text("n\n")
    (repo / ".speedrift").mkdir()
    (repo / ".speedrift" / "control.json").write_text("{}")
    state, errors = state_of(repo)
    assert errors == []
    assert state.branch == "main" and state.head == sh_git(repo, "rev-parse", "HEAD")
    assert (state.dirty_files, state.untracked_files) == (1, 1)
    assert state.dirty_paths == ("a.txt", "new.txt")
    committed = int(sh_git(repo, "log", "-1", "--format=%ct"))
    assert state.last_commit_at == datetime.fromtimestamp(committed, UTC)


def test_commit_times_are_read_from_loose_and_packed_objects(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    head = sh_git(repo, "rev-parse", "HEAD")
    expected = datetime.fromtimestamp(int(sh_git(repo, "log", "-1", "--format=%ct")), UTC)
    dirs = git_dirs(repo)
    assert dirs is not None
    assert (dirs.common_dir / "objects" / head[:2] / head[2:]).exists()
    assert commit_time(dirs, head) == expected
    sh_git(repo, "gc", "-q", "--prune=now")
    assert not (dirs.common_dir / "objects" / head[:2] / head[2:]).exists()
    assert commit_time(dirs, head) == expected
    assert commit_time(dirs, "0" * 40) is None and commit_time(dirs, "xyz") is None


def test_ahead_and_behind_are_counted_against_the_tracked_upstream(tmp_path: Path) -> None:
    origin = make_repo(tmp_path / "origin")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    sh_git(clone, "config", "user.name", "T")
    sh_git(clone, "config", "user.email", "t@example.invalid")
    commit_file(clone, "local.txt", "mine\n")
    commit_file(origin, "theirs.txt", "theirs\n")
    sh_git(clone, "fetch", "-q")
    state, errors = state_of(clone)
    assert errors == []
    assert (state.upstream, state.ahead, state.behind) == ("origin/main", 1, 1)


def test_a_configured_upstream_is_compared_instead_and_a_missing_one_is_reported(tmp_path: Path) -> None:
    origin = make_repo(tmp_path / "origin")
    sh_git(origin, "branch", "release")
    commit_file(origin, "main-only.txt", "x\n")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    entry = RepoEntry(name="c", path=clone, upstream_remote="origin", upstream_branch="release")
    state, errors = state_of(clone, entry)
    assert errors == []
    assert (state.upstream, state.ahead, state.behind) == ("origin/release", 1, 0)
    missing = RepoEntry(name="c", path=clone, upstream_remote="upstream", upstream_branch="main")
    state, errors = state_of(clone, missing)
    assert state.upstream == "upstream/main" and state.ahead is None
    assert errors and "upstream upstream/main not found" in errors[0]


def test_linked_worktrees_resolve_their_git_dirs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    sh_git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "side")
    dirs = git_dirs(tmp_path / "wt")
    assert dirs is not None
    assert dirs.common_dir.resolve() == (repo / ".git").resolve()
    assert dirs.git_dir != dirs.common_dir
    state, errors = state_of(tmp_path / "wt")
    assert errors == [] and state.branch == "side" and state.last_commit_at is not None
    watched = watched_paths(tmp_path / "wt", dirs, RepoEntry(name="wt", path=tmp_path / "wt"))
    assert str(dirs.common_dir / "refs" / "heads" / "side") in watched


def test_a_directory_that_is_not_a_repo_has_no_git_dirs(tmp_path: Path) -> None:
    assert git_dirs(tmp_path) is None
    (tmp_path / ".git").write_text("garbage")
    assert git_dirs(tmp_path) is None


def test_an_unborn_repo_has_no_head_and_no_last_commit(tmp_path: Path) -> None:
    repo = tmp_path / "unborn"
    repo.mkdir()
    sh_git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("x\n")
    state, errors = state_of(repo)
    assert errors == []
    assert (state.head, state.branch, state.last_commit_at) == (None, "main", None)
    assert state.untracked_files == 1
