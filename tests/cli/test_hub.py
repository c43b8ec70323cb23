"""`speedrift hub once|up|status|stop`, `mode`, `why`, `ledger`, `repos` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speedrift.demo import ecosystem as demo
from tests.cli.support import Cli, base_env


@pytest.fixture
def eco(tmp_path: Path) -> Path:
    demo.build(tmp_path / "eco")
    text = (tmp_path / "eco" / "ecosystem.toml").read_text()
    (tmp_path / "eco" / "ecosystem.toml").write_text(text.replace("plan_only = false", "plan_only = true"))
    return tmp_path / "eco"


def test_hub_once_json_prints_the_cycle_record(eco: Path) -> None:
    record = Cli(eco).json("hub", "once", "--json")

    assert record["plan_only"] is True
    assert {r["name"] for r in record["repos"]} == {"shop-api", "billing", "web-ui", "search", "factory"}
    assert all(
        {"name", "score", "tier", "trend", "reasons", "stall", "snapshot"} <= set(r) for r in record["repos"]
    )
    assert all({"action", "rule", "reason"} <= set(s) for s in record["skipped"])
    assert record["executed"] == []


def test_hub_once_finds_the_ecosystem_by_flag_from_anywhere(eco: Path, tmp_path: Path) -> None:
    record = Cli(tmp_path).json("hub", "once", "--json", "--ecosystem", str(eco / "ecosystem.toml"))
    assert len(record["repos"]) == 5


def test_without_an_ecosystem_the_error_says_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    result = Cli(tmp_path)("hub", "once")
    assert result.returncode != 0
    assert "ecosystem.toml" in result.stderr


def test_why_answers_from_the_ledger_with_the_rule_that_holds_the_work(eco: Path) -> None:
    cli = Cli(eco)
    cli.ok("hub", "once")

    repo = cli.json("why", "billing", "--json")
    task = cli.json("why", "billing:invoice-numbers", "--json")
    blocked = cli.json("why", "billing:statements", "--json")

    assert repo["tier"] == "at-risk"
    assert {h["rule"] for h in repo["held"]} == {"plan_only"}
    assert "plan_only" in task["answer"]
    assert "not ready" in blocked["answer"] and "invoice-numbers" in blocked["answer"]


def test_why_reads_the_named_repos_graph_even_inside_an_agents_environment(eco: Path) -> None:
    """The pipeline exports $WG_DIR to agents; `why REPO:TASK` run from there must still read REPO's
    own graph, not the graph $WG_DIR names."""
    cli = Cli(eco)
    cli.ok("hub", "once")
    elsewhere = {"WG_DIR": str(eco / "shop-api" / ".workgraph")}

    blocked = cli.json("why", "billing:statements", "--json", env=elsewhere)

    assert "not ready" in blocked["answer"] and "invoice-numbers" in blocked["answer"]


def test_mode_sets_the_repo_control_with_a_lease_and_records_it(eco: Path) -> None:
    cli = Cli(eco)
    result = cli.json("mode", "billing", "supervise", "--lease-ttl", "1h", "--owner", "ops", "--json")

    control = json.loads((eco / "billing" / ".speedrift" / "control.json").read_text())
    assert control["mode"] == "supervise" and control["lease_owner"] == "ops"
    assert result["lease_expires_at"]
    cli.ok("hub", "once")
    why = cli.json("why", "billing", "--json")
    assert why["mode"] == "supervise"


def test_mode_for_an_unknown_repo_is_a_clear_error(eco: Path) -> None:
    result = Cli(eco)("mode", "nope", "observe")
    assert result.returncode != 0 and "nope" in result.stderr


def test_repos_add_and_remove_keep_the_files_comments(eco: Path, tmp_path: Path) -> None:
    cli = Cli(eco)
    (tmp_path / "extra").mkdir()
    cli.ok("repos", "add", "extra", str(tmp_path / "extra"), "--tag", "new")
    listed = {r["name"]: r for r in cli.json("repos", "list", "--json")}
    cli.ok("repos", "remove", "extra")

    text = (eco / "ecosystem.toml").read_text()
    assert listed["extra"]["tags"] == ["new"]
    assert "# plan_only is the master switch" in text
    assert "extra" not in {r["name"] for r in cli.json("repos", "list", "--json")}


def test_ledger_show_lists_recorded_cycles(eco: Path) -> None:
    cli = Cli(eco)
    first = cli.json("hub", "once", "--json")
    second = cli.json("hub", "once", "--json")

    records = cli.json("ledger", "show", "--json", "--last", "10")

    assert [r["cycle_id"] for r in records if r.get("cycle_id")][-2:] == [
        first["cycle_id"],
        second["cycle_id"],
    ]


def _wait(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_hub_up_detached_runs_cycles_refuses_a_second_hub_and_stops(eco: Path) -> None:
    # Subprocess: `hub up --detach` leaves the hub running, whose parent must be a speedrift
    # process that exits (as for a user), and a second `hub up` would run the hub in-process.
    cli = Cli(eco, process=True)
    cli.ok("hub", "up", "--detach", "--no-dashboard", "--interval", "0.5")
    try:
        _wait(lambda: cli.json("hub", "status", "--json")["last_cycle"] is not None)
        status = cli.json("hub", "status", "--json")
        second = cli("hub", "up", "--no-dashboard", "--cycles", "1")
    finally:
        cli.ok("hub", "stop")

    assert status["running"] is True
    assert second.returncode != 0 and "already running" in second.stderr
    assert cli.json("hub", "status", "--json")["running"] is False


@pytest.mark.slow
def test_kill_9_at_any_point_leaves_a_readable_ledger_and_no_duplicated_action(eco: Path) -> None:
    text = (eco / "ecosystem.toml").read_text()
    (eco / "ecosystem.toml").write_text(text.replace("plan_only = true", "plan_only = false"))
    # real processes: each hub is killed with SIGKILL at some point of its cycle
    argv = [sys.executable, "-m", "speedrift", "hub", "up", "--no-dashboard", "--interval", "0.2"]
    for delay in (0.4, 0.9, 1.5, 0.7, 2.5):
        child = subprocess.Popen(
            argv, cwd=eco, env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    cli = Cli(eco)
    cli.ok("hub", "once")  # starts clean after the kills: recovers, repairs, records
    records = cli.json("ledger", "show", "--json", "--last", "1000")

    cycles = [r["cycle_id"] for r in records if r.get("cycle_id")]
    assert len(cycles) == len(set(cycles)) and cycles
    # however often the hub was killed, no task of factory's was run twice: one attempt each
    runs = eco / "factory" / ".speedrift" / "runs"
    attempts = (
        {task.name: sorted(p.name for p in task.iterdir()) for task in runs.iterdir()}
        if runs.exists()
        else {}
    )
    assert all(numbers == ["1"] for numbers in attempts.values()), attempts


def test_why_a_dispatched_task_names_the_action_that_started_it(eco: Path) -> None:
    text = (eco / "ecosystem.toml").read_text()
    (eco / "ecosystem.toml").write_text(text.replace("plan_only = true", "plan_only = false"))
    cli = Cli(eco)
    record = cli.json("hub", "once", "--json")
    dispatched = [o for o in record["executed"] if o["action_id"] == "factory:dispatch_ready"]

    answer = cli.json("why", "factory:greeting", "--json")

    assert dispatched and dispatched[0]["status"] == "succeeded"
    assert "greeting" in dispatched[0]["evidence"]["pids"]
    assert answer["answer"].startswith("greeting: factory:dispatch_ready succeeded")
