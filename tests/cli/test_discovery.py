"""Which graph a command uses: --dir, then $WG_DIR, then the nearest .wg/ or .workgraph/ upward."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.support import Cli, task_node


def _make_graph(folder: Path, name: str, task_id: str) -> Path:
    graph_dir = folder / name
    graph_dir.mkdir(parents=True)
    (graph_dir / "graph.jsonl").write_text(json.dumps(task_node(task_id)) + "\n")
    return graph_dir


def _listed_ids(cli: Cli, *args: str, env: dict[str, str] | None = None) -> list[str]:
    return [row["id"] for row in cli.json(*args, "list", env=env)]


def test_a_command_in_a_subdirectory_finds_the_repo_graph(repo: Path, cli: Cli) -> None:
    deep = repo / "src" / "pkg" / "deep"
    deep.mkdir(parents=True)

    cli.ok("add", "From below", "--id", "below", cwd=deep)

    assert b'"id":"below"' in (repo / ".workgraph" / "graph.jsonl").read_bytes()
    assert not (deep / ".workgraph").exists()


def test_walking_up_prefers_wg_over_workgraph_in_the_same_folder(tmp_path: Path) -> None:
    _make_graph(tmp_path, ".workgraph", "legacy")
    _make_graph(tmp_path, ".wg", "current")
    sub = tmp_path / "sub"
    sub.mkdir()

    assert _listed_ids(Cli(sub)) == ["current"]


def test_walking_up_stops_at_the_nearest_graph(tmp_path: Path) -> None:
    _make_graph(tmp_path, ".wg", "outer")
    inner = tmp_path / "inner"
    _make_graph(inner, ".workgraph", "inner")
    sub = inner / "sub"
    sub.mkdir()

    assert _listed_ids(Cli(sub)) == ["inner"]


def test_wg_dir_env_beats_walking_up(tmp_path: Path) -> None:
    _make_graph(tmp_path, ".wg", "walked")
    other = _make_graph(tmp_path / "other", ".workgraph", "from-env")

    assert _listed_ids(Cli(tmp_path), env={"WG_DIR": str(other)}) == ["from-env"]


def test_dir_option_beats_wg_dir_env(tmp_path: Path) -> None:
    from_env = _make_graph(tmp_path / "env", ".workgraph", "from-env")
    from_flag = _make_graph(tmp_path / "flag", ".wg", "from-flag")

    ids = _listed_ids(Cli(tmp_path), "--dir", str(from_flag), env={"WG_DIR": str(from_env)})

    assert ids == ["from-flag"]


def test_dir_option_writes_to_that_graph(tmp_path: Path, repo: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()

    Cli(outside).ok("--dir", str(repo / ".workgraph"), "add", "Remote", "--id", "remote")

    assert b'"id":"remote"' in (repo / ".workgraph" / "graph.jsonl").read_bytes()


def test_no_graph_anywhere_is_an_error_with_a_hint(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()

    result = Cli(nowhere).fails(1, "list")

    assert "no .wg/ or .workgraph/ graph found" in result.stderr
    assert str(nowhere) in result.stderr
    assert "speedrift init" in result.stderr
    assert result.stdout == ""


def test_dir_option_without_a_graph_names_the_path(tmp_path: Path) -> None:
    result = Cli(tmp_path).fails(1, "--dir", str(tmp_path / "missing"), "list")

    assert str(tmp_path / "missing") in result.stderr


def test_wg_dir_without_a_graph_is_an_error_not_a_fallback(tmp_path: Path, repo: Path) -> None:
    result = Cli(repo).fails(1, "list", env={"WG_DIR": str(tmp_path / "missing")})

    assert "WG_DIR" in result.stderr


def test_an_existing_wg_layout_is_used_without_init(tmp_path: Path) -> None:
    _make_graph(tmp_path, ".wg", "seed")

    Cli(tmp_path).ok("add", "Second", "--id", "second", "--after", "seed")

    ids = _listed_ids(Cli(tmp_path))
    assert ids == ["seed", "second"]
    assert not (tmp_path / ".workgraph").exists()
