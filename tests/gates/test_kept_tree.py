"""A kept tree: a checkout kept between uses that moves to another commit by rewriting only what
differs, comes back clean from whatever a run left, and never touches the repository's HEAD,
index, branches or worktree list."""

from __future__ import annotations

from pathlib import Path

from speedrift.gates.basetree import kept_tree
from tests.gitrepo import commit_file, make_repo, sh_git


def state(repo: Path) -> tuple[str, str, str, str]:
    return (
        sh_git(repo, "rev-parse", "HEAD"),
        sh_git(repo, "status", "--porcelain"),
        sh_git(repo, "for-each-ref"),
        sh_git(repo, "worktree", "list", "--porcelain"),
    )


def test_a_kept_tree_moves_between_commits_rewriting_only_what_changed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a = 1\n", "b.py": "b = 1\n", "gone.py": "x\n"})
    first = sh_git(repo, "rev-parse", "HEAD")
    commit_file(repo, "a.py", "a = 2\n")
    sh_git(repo, "rm", "-q", "gone.py")
    sh_git(repo, "commit", "-qm", "rm")
    second = sh_git(repo, "rev-parse", "HEAD")
    before = state(repo)
    folder = tmp_path / "kept" / "tree"
    with kept_tree(repo, first, folder) as root:
        assert (root / "a.py").read_text() == "a = 1\n" and (root / "gone.py").exists()
        unchanged = (root / ".gitignore").stat().st_mtime_ns
        (root / "b.py").write_text("edited by a test run\n")  # a run changes a tracked file
        (root / "scratch").mkdir()
        (root / "scratch" / "out.txt").write_text("left behind\n")  # and leaves files
    with kept_tree(repo, second, folder) as root:
        assert (root / "a.py").read_text() == "a = 2\n"
        assert not (root / "gone.py").exists()
        assert (root / "b.py").read_text() == "b = 1\n"
        assert not (root / "scratch").exists()
        assert (root / ".gitignore").stat().st_mtime_ns == unchanged  # not in the diff: not rewritten
    with kept_tree(repo, second, folder) as root:  # the same commit: nothing is rewritten
        assert (root / ".gitignore").stat().st_mtime_ns == unchanged
    assert state(repo) == before


def test_a_kept_tree_that_cannot_be_moved_is_rebuilt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a = 1\n"})
    head = sh_git(repo, "rev-parse", "HEAD")
    folder = tmp_path / "kept" / "tree"
    with kept_tree(repo, head, folder):
        pass
    (folder.with_name("tree.index")).write_bytes(b"not an index")
    with kept_tree(repo, head, folder) as root:
        assert (root / "a.py").read_text() == "a = 1\n"
