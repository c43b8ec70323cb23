"""The repo card's dirty count leaves the task graph out: `speedrift init` then work on the graph
never makes a repo look dirty, and `init` says the graph is meant to be committed."""

from __future__ import annotations

import time
from pathlib import Path

from speedrift.control.observe.git import git_dirs, read_git_state
from speedrift.register.record import GitState, RepoEntry
from tests.cli.support import Cli, seed, task_node
from tests.gitrepo import make_repo


def _state(repo: Path) -> GitState:
    dirs = git_dirs(repo)
    assert dirs is not None
    state, errors = read_git_state(repo, dirs, RepoEntry(name=repo.name, path=repo), time.monotonic() + 30)
    assert errors == []
    return state


def test_an_uncommitted_workgraph_after_init_is_not_counted_dirty(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", graph=False)
    out = Cli(repo).ok("init").stdout
    seed(repo, task_node("t"))
    (repo / "notes.txt").write_text("mine\n")

    state = _state(repo)

    assert "Commit .workgraph/" in out and "as with wg" in out
    assert (state.dirty_files, state.untracked_files) == (0, 1)
    assert state.dirty_paths == ("notes.txt",)


def test_a_committed_graph_changed_by_speedrift_is_not_counted_dirty(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")  # .workgraph/ committed
    seed(repo, task_node("t"))
    (repo / "README.md").write_text("changed\n")

    state = _state(repo)

    assert (state.dirty_files, state.untracked_files) == (1, 0)
    assert state.dirty_paths == ("README.md",)


def test_a_wg_graph_directory_is_left_out_too(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", graph=False)
    (repo / ".wg").mkdir()
    (repo / ".wg" / "graph.jsonl").write_text("")

    assert (_state(repo).dirty_files, _state(repo).untracked_files) == (0, 0)
