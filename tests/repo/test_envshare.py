"""A working environment in the worktree that never rewires the user's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from speedrift.repo import envshare, worktrees
from tests.gitrepo import make_repo, sh_git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = make_repo(tmp_path / "repo")
    (path / ".gitignore").write_text(".speedrift/\n.env\nsecrets/\nbuild/\n")
    sh_git(path, "commit", "-qam", "ignore")
    return path


def test_worktreeinclude_copies_only_ignored_files_that_match(repo: Path) -> None:
    (repo / ".env").write_text("TOKEN=local")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("artifact")
    (repo / "untracked-not-ignored.txt").write_text("x")
    (repo / ".worktreeinclude").write_text(".env\nuntracked-not-ignored.txt\n")
    manifest = worktrees.create(repo, "t", 1, "main")
    injection = envshare.inject(repo, Path(manifest.path), [])
    assert injection.copied == [".env"]
    assert (Path(manifest.path) / ".env").read_text() == "TOKEN=local"
    assert not (Path(manifest.path) / "untracked-not-ignored.txt").exists()
    assert not (Path(manifest.path) / "build").exists()


def test_worktreeinclude_never_follows_a_symlink_out_of_the_repo(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text("do not copy")
    (repo / "secrets").mkdir()
    (repo / "secrets" / "link").symlink_to(outside)
    (repo / ".worktreeinclude").write_text("secrets/\n")
    manifest = worktrees.create(repo, "t", 1, "main")
    injection = envshare.inject(repo, Path(manifest.path), [])
    assert injection.copied == []
    assert "outside the repository" in injection.skipped[0]
    assert not (Path(manifest.path) / "secrets" / "link").exists()


def _make_shared_venv(repo: Path) -> Path:
    venv = repo / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "sharedlib.py").write_text("VALUE = 'from the shared venv'\n")
    return venv


def _run_in(venv: Path, code: str) -> str:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_python_venv_is_shared_read_only_through_a_per_worktree_overlay(repo: Path) -> None:
    shared = _make_shared_venv(repo)
    shared_purelib = _run_in(shared, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    before = sorted(p.name for p in Path(shared_purelib).iterdir())
    manifest = worktrees.create(repo, "t", 1, "main")
    tree = Path(manifest.path)
    injection = envshare.inject(repo, tree, [".venv"])
    assert injection.overlays == [".venv"]
    overlay = tree / ".venv"
    assert not overlay.is_symlink()
    # the shared packages are importable from the worktree ...
    assert _run_in(overlay, "import sharedlib; print(sharedlib.VALUE)") == "from the shared venv"
    # ... but anything installed lands in the worktree's own site-packages
    own = _run_in(overlay, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    assert Path(own).is_relative_to(tree.resolve())
    Path(own, "agent_installed.py").write_text("X = 1\n")
    assert _run_in(overlay, "import agent_installed; print(agent_installed.X)") == "1"
    assert sorted(p.name for p in Path(shared_purelib).iterdir()) == before
    # the overlay is not part of the attempt's commits
    assert ".venv" not in sh_git(tree, "status", "--porcelain")


def test_paths_into_the_main_checkout_are_redirected_to_the_worktree(repo: Path) -> None:
    shared = _make_shared_venv(repo)
    (repo / "src").mkdir()
    (repo / "src" / "mypkg.py").write_text("WHERE = 'main'\n")
    purelib = _run_in(shared, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    Path(purelib, "editable.pth").write_text(str((repo / "src").resolve()) + "\n")  # like `pip install -e`
    sh_git(repo, "add", "src")
    sh_git(repo, "commit", "-qm", "pkg")
    manifest = worktrees.create(repo, "t", 1, "main")
    tree = Path(manifest.path)
    (tree / "src" / "mypkg.py").write_text("WHERE = 'worktree'\n")
    envshare.inject(repo, tree, [".venv"])
    assert _run_in(tree / ".venv", "import mypkg; print(mypkg.WHERE)") == "worktree"


def test_other_shared_paths_are_linked_and_changes_to_them_are_detected(repo: Path) -> None:
    modules = repo / "node_modules"
    (modules / "left-pad").mkdir(parents=True)
    (modules / "left-pad" / "index.js").write_text("module.exports = 1\n")
    manifest = worktrees.create(repo, "t", 1, "main")
    tree = Path(manifest.path)
    injection = envshare.inject(repo, tree, ["node_modules"])
    assert (tree / "node_modules").is_symlink()
    assert envshare.shared_changes(repo, injection) == []
    (tree / "node_modules" / "new-dep").mkdir()  # an `npm install` in the worktree
    assert envshare.shared_changes(repo, injection) == ["node_modules"]


def test_port_blocks_do_not_collide_and_are_reused_after_release(tmp_path: Path) -> None:
    first = envshare.lease_ports(tmp_path, "a", 20000, 10)
    second = envshare.lease_ports(tmp_path, "b", 20000, 10)
    assert (first.base, second.base) == (20000, 20010)
    envshare.release_ports(tmp_path, first)
    assert envshare.lease_ports(tmp_path, "c", 20000, 10).base == 20000
    assert second.env()["SPEEDRIFT_PORT_BASE"] == "20010"


def test_a_dead_owners_port_lease_is_reclaimed(tmp_path: Path) -> None:
    (tmp_path / "ports").mkdir()
    (tmp_path / "ports" / "0.lease").write_text("999999999 gone")
    assert envshare.lease_ports(tmp_path, "new", 20000, 10).slot == 0
