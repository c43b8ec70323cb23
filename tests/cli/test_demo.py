"""`speedrift demo DIR`: a real repository with a graph, reused (not rebuilt) on a rerun."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import Cli, git


def test_demo_builds_a_repo_with_a_graph_and_a_rerun_reuses_it(tmp_path: Path) -> None:
    cli = Cli(tmp_path)

    first = cli.ok("demo", str(tmp_path / "demo"))

    repo = tmp_path / "demo" / "shop-api"
    graph = repo / ".workgraph" / "graph.jsonl"
    assert f"Created a demo repository in {repo}" in first.stdout
    assert git(repo, "log", "--oneline").strip()  # a real repository with a commit
    assert graph.is_file()
    built = graph.read_bytes()

    second = cli.ok("demo", str(tmp_path / "demo"))

    assert f"Reusing the demo in {repo}" in second.stdout
    assert "Created" not in second.stdout
    assert graph.read_bytes() == built


def test_the_demo_graph_answers_the_commands_it_suggests(tmp_path: Path) -> None:
    Cli(tmp_path).ok("demo", str(tmp_path))
    cli = Cli(tmp_path / "shop-api")

    ready = [row["id"] for row in cli.json("ready")]
    chain = cli.json("why-blocked", "release")

    assert ready and "release" not in ready
    assert chain["id"] == "release"
    assert chain["blocked_by"]
