"""`speedrift demo DIR`: the main job — a demo ecosystem of real repos and the hub on it; reruns reuse it."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import Cli, git

REPOS = ("shop-api", "billing", "web-ui", "search", "factory")


def test_demo_builds_an_ecosystem_of_real_repos_runs_the_hub_and_a_rerun_reuses_it(tmp_path: Path) -> None:
    cli = Cli(tmp_path)

    first = cli.ok("demo", str(tmp_path / "demo"), "--no-dashboard", "--cycles", "1")

    root = tmp_path / "demo"
    assert "Created the demo ecosystem" in first.stdout
    for name in REPOS:
        assert git(root / name, "log", "--oneline").strip()
        assert (root / name / ".workgraph" / "graph.jsonl").is_file()
    assert (root / "ecosystem.toml").is_file()
    assert (root / ".speedrift-hub" / "ledger" / "cycles.jsonl").is_file()
    built = (root / "billing" / ".workgraph" / "graph.jsonl").read_bytes()

    second = cli.ok("demo", str(root), "--no-dashboard", "--cycles", "1")

    assert "Reusing the demo ecosystem" in second.stdout
    assert (root / "billing" / ".workgraph" / "graph.jsonl").read_bytes() == built
    cycles = Cli(root).json("ledger", "show", "--json", "--last", "10")
    assert len([r for r in cycles if r.get("cycle_id")]) == 2


def test_the_demo_repos_answer_the_graph_commands(tmp_path: Path) -> None:
    Cli(tmp_path).ok("demo", str(tmp_path), "--no-dashboard", "--cycles", "1")
    billing = Cli(tmp_path / "billing")

    ready = [row["id"] for row in billing.json("ready")]
    chain = Cli(tmp_path / "search").json("why-blocked", "ranking")

    assert "invoice-numbers" in ready and "statements" not in ready
    assert any(node["status"] == "missing" for node in chain["blocked_by"])
