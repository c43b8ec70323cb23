"""One repo's hostile or unreadable graph never takes the hub down: the cycle completes, that repo
is quarantined (no graph, so nothing is planned for it; the reason on its snapshot, score and
card) or has its bad lines counted, and every other repo is supervised as usual."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speedrift.control.cycle import Hub
from speedrift.demo import ecosystem as demo
from speedrift.serialize import cycle_to_dict
from tests.cli.support import Cli

SURROGATE_LINE = b'{"kind":"task","id":"lone","title":"x\\ud800y","status":"open"}\n'
DEEP_LINE = b'{"kind":"task","id":"deep","title":"t","x":' + b"[" * 1100 + b"]" * 1100 + b"}\n"
UNREADABLE = "/proc/self/mem"  # a regular file whose read fails (EIO), even for root


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """The demo ecosystem (plan only) with a lone surrogate in billing's graph, a line nested
    1,100 deep in search's, and web-ui's graph.jsonl unreadable. Returns ecosystem.toml."""
    demo.build(tmp_path)
    eco = tmp_path / "ecosystem.toml"
    eco.write_text(eco.read_text().replace("plan_only = false", "plan_only = true"))
    for repo, line in (("billing", SURROGATE_LINE), ("search", DEEP_LINE)):
        with (tmp_path / repo / ".workgraph" / "graph.jsonl").open("ab") as handle:
            handle.write(line)
    graph = tmp_path / "web-ui" / ".workgraph" / "graph.jsonl"
    graph.unlink()
    os.symlink(UNREADABLE, graph)
    return eco


def _repos(record: dict[str, object]) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in record["repos"]}  # type: ignore[attr-defined]


def test_a_hub_cycle_over_hostile_graphs_completes_for_every_repo(hostile: Path) -> None:
    record = cycle_to_dict(Hub(hostile).cycle(execute_actions=False))

    repos = _repos(record)
    assert set(repos) == {"shop-api", "billing", "web-ui", "search", "factory"}
    assert repos["billing"]["snapshot"]["graph"]["problems"] == 1  # type: ignore[index]
    assert repos["search"]["snapshot"]["graph"]["problems"] == 1  # type: ignore[index]
    assert repos["shop-api"]["snapshot"]["errors"] == []  # type: ignore[index]
    assert repos["shop-api"]["snapshot"]["graph"]["counts"]  # type: ignore[index]


def test_a_repo_whose_graph_cannot_be_read_is_quarantined_with_the_reason(hostile: Path) -> None:
    record = cycle_to_dict(Hub(hostile).cycle(execute_actions=False))

    web = _repos(record)["web-ui"]
    snapshot = web["snapshot"]
    assert snapshot["graph"] is None  # type: ignore[index]
    (error,) = snapshot["errors"]  # type: ignore[index]
    assert error.startswith("graph: unreadable (Input/output error)") and "fix:" in error
    assert any("observation failed: graph: unreadable" in r["text"] for r in web["reasons"])  # type: ignore[attr-defined]
    planned = [a for a in record["planned"] if a["repo"] == "web-ui"]
    assert not any(a["kind"] in ("dispatch", "restart", "retry", "repair") for a in planned)


def test_the_bad_lines_are_scored_as_unreadable_lines_pointing_at_repair(hostile: Path) -> None:
    record = cycle_to_dict(Hub(hostile).cycle(execute_actions=False))

    for name in ("billing", "search"):
        texts = [r["text"] for r in _repos(record)[name]["reasons"]]  # type: ignore[attr-defined]
        assert "1 unreadable graph line (see `speedrift repair`)" in texts, name


def test_hub_once_from_the_cli_survives_hostile_graphs(hostile: Path) -> None:
    result = Cli(hostile.parent).ok("hub", "once", "--json")

    assert "Traceback" not in result.stderr
    assert len(result.json()["repos"]) == 5


def test_hub_up_runs_its_cycles_and_dashboard_over_hostile_graphs(hostile: Path) -> None:
    # Subprocess: `hub up` serves the dashboard from its own process and traps signals.
    result = Cli(hostile.parent, process=True)(
        "hub", "up", "--cycles", "2", "--interval", "0.1", "--port", "0"
    )

    assert result.returncode == 0, str(result)
    assert "Traceback" not in result.stderr
