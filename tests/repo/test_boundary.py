"""The outside-write watch on real repositories: what it sees (ignored files, a stray file in
``.speedrift/`` or the git dir), what it leaves alone (speedrift's and git's own files), and what
it costs (an ignored tree is stamped by its top, never walked)."""

from __future__ import annotations

import os
from pathlib import Path

from speedrift import fsutil, gitcmd, layout
from speedrift.repo import boundary, git, worktrees
from tests.gitrepo import commit_file, make_repo, sh_git


def _repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    commit_file(repo, ".gitignore", ".speedrift/\nnode_modules/\n*.log\n", "ignore")
    return repo


def _watch(repo: Path) -> boundary.Watch:
    boundary._listings.pop(repo, None)  # a listing cached by an earlier test of this process
    return boundary.watch(repo, set())


def test_a_big_ignored_tree_is_stamped_by_its_top_and_a_write_into_it_still_shows(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    modules = repo / "node_modules"
    for package in range(200):
        (modules / f"p{package}" / "lib").mkdir(parents=True)
        for file in range(10):
            (modules / f"p{package}" / "lib" / f"f{file}.js").write_text("x")
    past = 1_000_000_000
    for folder in [modules, *modules.iterdir()]:
        os.utime(folder, (past, past))  # a write below changes these mtimes, whatever the clock's tick
    watch = _watch(repo)
    before = boundary.snapshot(watch)
    stamped = [key for key in before.areas[str(repo)] if "/node_modules/" in key]
    assert len(stamped) == 201  # the tree and its 200 direct entries: none of its 2000 files
    (modules / "p7" / "new.js").write_text("agent\n")
    (modules / "added.js").write_text("agent\n")
    found = boundary.changes(before, boundary.snapshot(watch))
    assert found == [f"{repo}/node_modules/", f"{repo}/node_modules/added.js", f"{repo}/node_modules/p7/"]


def test_an_ignored_file_changed_or_added_in_a_checkout_is_reported(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "run.log").write_text("before\n")
    watch = _watch(repo)
    before = boundary.snapshot(watch)
    (repo / "run.log").write_text("after the agent\n")
    (repo / "src").mkdir()
    (repo / "src" / "new.log").write_text("x")
    assert boundary.changes(before, boundary.snapshot(watch)) == [f"{repo}/run.log", f"{repo}/src/new.log"]


def test_speedrifts_and_gits_own_files_are_not_reported_but_a_stray_file_beside_them_is(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    manifest = worktrees.create(repo, "other task", 3, "main")
    watch = _watch(repo)
    before = boundary.snapshot(watch)
    # speedrift's own state, as a run writes it
    run = layout.attempt_dir(repo, "other task", 3)
    run.mkdir(parents=True)
    layout.events_path(run).write_text("{}\n")
    worktrees.write_manifest(repo, manifest)
    fsutil.temp_path(worktrees.manifest_path(repo, manifest.name)).write_text("half")
    for path in (layout.control_path(repo), layout.landings_path(repo), layout.outcomes_lock_path(repo)):
        path.write_text("{}")
    fsutil.temp_path(layout.control_path(repo)).write_text("half")
    (layout.git_steps_dir(repo) / "rebase-1.json").write_text("{}")
    layout.cache_dir(repo, "gates").mkdir(parents=True)
    (layout.state_dir(repo) / "ports").mkdir(exist_ok=True)
    # git's own, as a commit, a fetch or speedrift's worktree lock leave them
    common = git.common_dir(repo)
    git.exclude_locally(repo, "/scratch/")
    commit_file(repo, "tracked.txt", "committed\n")
    for name in ("ORIG_HEAD", "index.lock", "speedrift-worktrees.lock", "FETCH_HEAD", "sharedindex.0a1b"):
        (common / name).write_text("x")
    assert boundary.changes(before, boundary.snapshot(watch)) == []
    # and what an agent drops beside them
    (layout.worktrees_dir(repo) / "escape.txt").write_text("x")
    (layout.state_dir(repo) / "notes.md").write_text("x")
    (layout.runs_dir(repo) / "stray.txt").write_text("x")
    (common / "escape").write_text("x")
    (common / "info" / "dropped").write_text("x")
    assert boundary.changes(before, boundary.snapshot(watch)) == sorted(
        [
            f"{layout.worktrees_dir(repo)}/escape.txt",
            f"{layout.state_dir(repo)}/notes.md",
            f"{layout.runs_dir(repo)}/stray.txt",
            f"{common}/escape",
            f"{common}/info/dropped",
        ]
    )


def test_a_sibling_worktree_removed_or_busy_meanwhile_is_left_out_not_reported(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    gone = worktrees.create(repo, "gone", 1, "main")
    busy = worktrees.create(repo, "busy", 1, "main")
    for manifest in (gone, busy):
        (Path(manifest.path) / "wip.txt").write_text("work in progress\n")
        (Path(manifest.path) / "out.log").write_text("ignored output\n")
    watch = _watch(repo)
    assert {Path(gone.path), Path(busy.path)} <= set(watch.checkouts)
    before = boundary.snapshot(watch)
    gitcmd.run(["worktree", "remove", "--force", gone.path], repo)
    (Path(busy.path) / "out.log").write_text("its own landing ran the gates here\n")
    after = boundary.snapshot(watch.without({Path(busy.path).resolve()}))
    assert boundary.changes(before, after) == []
    assert sh_git(repo, "status", "--porcelain") == ""  # nothing of it in the user's checkout
