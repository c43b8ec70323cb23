"""`speedrift demo DIR`: the main job — a demo ecosystem of real repos and the hub on it; reruns reuse it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import Cli, base_env, git

REPOS = ("shop-api", "billing", "web-ui", "search", "factory")
FACTORY_CHAIN = ("greeting", "farewell", "docs")  # farewell fails its tests once, then lands


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_the_main_job_serves_the_dashboard_and_closes_the_loop_in_the_autonomous_repo(tmp_path: Path) -> None:
    port = _free_port()
    # a real process: the hub serves until SIGINT, while this test reads the dashboard
    argv = [sys.executable, "-m", "speedrift", "demo", str(tmp_path / "demo"), "--port", str(port)]
    child = subprocess.Popen(
        [*argv, "--interval", "1"],
        cwd=tmp_path,
        env=base_env() | {"SPEEDRIFT_DEMO_PACE": "0.1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        done = False
        while time.monotonic() < deadline and not done:
            time.sleep(0.5)
            try:
                nodes = _get(f"{base}/api/repos/factory/graph")["nodes"]
            except (OSError, ValueError):
                continue
            chain = {node["id"]: node["status"] for node in nodes if node["id"] in FACTORY_CHAIN}
            done = len(chain) == len(FACTORY_CHAIN) and set(chain.values()) == {"done"}
        status = _get(f"{base}/api/status")
        cards = {card["name"]: card for card in _get(f"{base}/api/repos")["cards"]}
    finally:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)

    assert done, f"factory's tasks did not complete\n{out.decode()}\n{err.decode()}"
    assert status["overview"]["plan_only"] is False and status["overview"]["source"] == "hub"
    assert set(cards) == set(REPOS)
    assert cards["billing"]["tier"] == "at-risk"  # shop-api keeps getting new work from the feeder
    # not a terminal: the address and where the token is, never the token itself (it is no log's)
    assert f"Dashboard: http://127.0.0.1:{port}/ (access token in " in out.decode()
    assert "#token=" not in out.decode()
    assert child.returncode == 0, err.decode()
