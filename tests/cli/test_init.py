"""`speedrift init`: a wg-compatible graph directory, and .speedrift/ kept out of git."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import Cli, git


def test_init_creates_graph_lock_and_gitignore_in_workgraph_dir(bare_repo: Path) -> None:
    result = Cli(bare_repo).ok("init")

    graph_dir = bare_repo / ".workgraph"
    assert (graph_dir / "graph.jsonl").is_file()
    assert (graph_dir / "graph.jsonl").read_bytes() == b""
    assert (graph_dir / "graph.lock").is_file()
    assert "agents/" in (graph_dir / ".gitignore").read_text().splitlines()
    assert str(graph_dir) in result.stdout


def test_init_adds_speedrift_dir_to_git_info_exclude_exactly_once(bare_repo: Path) -> None:
    cli = Cli(bare_repo)
    cli.ok("init")
    cli.ok("init")

    exclude = bare_repo / ".git" / "info" / "exclude"
    assert exclude.read_text().splitlines().count(".speedrift/") == 1


def test_init_makes_a_speedrift_dir_invisible_to_git_status(bare_repo: Path) -> None:
    Cli(bare_repo).ok("init")
    (bare_repo / ".speedrift").mkdir()
    (bare_repo / ".speedrift" / "scratch").write_text("x")

    assert ".speedrift" not in git(bare_repo, "status", "--porcelain", "--untracked-files=all")


def test_init_twice_keeps_existing_tasks(bare_repo: Path) -> None:
    cli = Cli(bare_repo)
    cli.ok("init")
    cli.ok("add", "Keep me", "--id", "keep")
    before = (bare_repo / ".workgraph" / "graph.jsonl").read_bytes()

    cli.ok("init")

    assert (bare_repo / ".workgraph" / "graph.jsonl").read_bytes() == before


def test_init_takes_the_repository_root_as_an_argument(bare_repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    Cli(elsewhere).ok("init", str(bare_repo))

    assert (bare_repo / ".workgraph" / "graph.jsonl").is_file()
    assert not (elsewhere / ".workgraph").exists()


def test_init_json_reports_graph_dir_and_exclusion(bare_repo: Path) -> None:
    report = Cli(bare_repo).json("init")

    assert report == {"graph_dir": str(bare_repo / ".workgraph"), "excluded_speedrift_dir": True}


def test_init_outside_git_still_creates_the_graph_and_warns(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()

    result = Cli(plain).ok("init")

    assert (plain / ".workgraph" / "graph.jsonl").is_file()
    assert "not a git repository" in result.stderr


def test_init_refuses_when_a_wg_dir_already_exists_and_names_it(bare_repo: Path) -> None:
    (bare_repo / ".wg").mkdir()
    (bare_repo / ".wg" / "graph.jsonl").write_bytes(b"")

    result = Cli(bare_repo).fails(1, "init")

    assert str(bare_repo / ".wg") in result.stderr
    assert not (bare_repo / ".workgraph").exists()
