"""`speedrift agents list|status|run|pause|resume` as an operator runs them, over a real ecosystem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.graph.store import GraphStore
from speedrift.register.ledger import Ledger
from tests.cli.support import Cli
from tests.gitrepo import make_repo
from tests.waiting import wait_for

ECOSYSTEM = """schema = 1
[repos.app]
path = "app"
[repos.web]
path = "web"

[[agents]]
name = "nightly"
layer = "core"
repos = ["app", "web"]
schedule = "0 3 * * *"
tz = "Europe/Berlin"
exec = "echo nightly"

[[agents]]
name = "guard"
layer = "safety"
repos = ["web"]
exec = "true"
"""
HELPER = '[[agents]]\nname = "helper"\nlayer = "growth"\nexec = "echo hi > hello.txt"\n'


@pytest.fixture
def eco(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SPEEDRIFT_HUB_DIR", raising=False)
    make_repo(tmp_path / "app", {"README.md": "# app\n", "speedrift.toml": HELPER})
    make_repo(tmp_path / "web")
    (tmp_path / "ecosystem.toml").write_text(ECOSYSTEM)
    return tmp_path


def ledger(eco: Path, kind: str) -> list[dict[str, Any]]:
    hub = hubdir.hub_dir(eco / "ecosystem.toml")
    return [r for r in Ledger(hub).read(last=None) if r.get("kind") == kind]


def tasks(repo: Path) -> dict[str, dict[str, Any]]:
    found = GraphStore.of_repo(repo)
    assert found is not None
    return found.load().tasks


def test_list_shows_every_agent_with_its_layer_schedule_and_next_slot(eco: Path) -> None:
    listed = Cli(eco).json("agents", "list")

    rows = {row["name"]: row for row in listed["agents"]}
    assert listed["problems"] == [] and sorted(rows) == ["guard", "helper", "nightly"]
    nightly = rows["nightly"]
    assert (
        nightly["layer"] == "core" and nightly["tz"] == "Europe/Berlin" and nightly["repos"] == ["app", "web"]
    )
    assert nightly["next_slot"].endswith(":00:00Z") and nightly["runtime"] == "shell"
    assert rows["helper"]["source"] == "app/speedrift.toml" and rows["helper"]["repos"] == ["app"]
    assert rows["guard"]["max_restarts"] == 10 and rows["guard"]["restarts_in_window"] == 0
    text = Cli(eco).ok("agents", "list").stdout
    assert "nightly" in text and "always on" in text and "on demand" in text


def test_an_unknown_agent_is_an_error_naming_the_known_ones(eco: Path) -> None:
    for action in ("status", "run", "pause"):
        extra = ["--reason", "x"] if action == "pause" else []
        result = Cli(eco).fails(1, "agents", action, "nope", *extra)
        assert "no standing agent named 'nope' (declared: guard, helper, nightly)" in result.stderr


def test_agents_run_creates_a_run_and_lands_it_through_the_supervisor(eco: Path) -> None:
    result = Cli(eco).ok("agents", "run", "helper")

    (task_id,) = [t for t in tasks(eco / "app") if t.startswith("agent-helper-")]
    assert f"{task_id} attempt 1: done" in result.stdout
    assert (eco / "app" / "hello.txt").read_text() == "hi\n"  # landed on main by the pipeline
    task = tasks(eco / "app")[task_id]
    assert (
        task["status"] == "done"
        and task["tags"] == ["agent:helper"]
        and task["title"].endswith("(on demand)")
    )
    (entry,) = ledger(eco, "agent_run")
    assert entry["task"] == task_id and entry["repo"] == "app" and entry["by"] == "operator:tester"
    status = Cli(eco).json("agents", "status", "helper")
    assert status["recent_runs"][0]["task"] == task_id and status["recent_runs"][0]["status"] == "done"
    assert status["last_run"]["status"] == "done"


def test_agents_run_of_an_agent_serving_several_repos_asks_which(eco: Path) -> None:
    result = Cli(eco).fails(2, "agents", "run", "nightly")
    assert "serves 2 repos" in result.stderr and "--repo app | web" in result.stderr
    assert Cli(eco).fails(2, "agents", "run", "nightly", "--repo", "elsewhere").returncode == 2


def test_agents_run_detach_starts_the_run_in_the_background(eco: Path) -> None:
    cli = Cli(eco, process=True)  # the background `speedrift run` outlives the command
    started = cli.json("agents", "run", "nightly", "--repo", "web", "--detach")

    assert started["kind"] == "agent_run" and started["repo"] == "web" and started["pid"] > 0
    wait_for(lambda: tasks(eco / "web")[started["task"]]["status"] == "done", "the background run to land")
    assert Path(started["log"]).is_file()
    assert [e["pid"] for e in ledger(eco, "agent_run")] == [started["pid"]]


def test_pause_and_resume_are_durable_recorded_and_a_second_resume_says_there_is_nothing(eco: Path) -> None:
    cli = Cli(eco)
    paused = cli.json("agents", "pause", "guard", "--reason", "maintenance window", "--until", "2h")
    row = next(r for r in cli.json("agents", "list")["agents"] if r["name"] == "guard")
    refused = cli.fails(1, "agents", "run", "guard")
    resumed = cli.ok("agents", "resume", "guard").stdout
    again = cli.ok("agents", "resume", "guard").stdout

    assert paused["by"] == "operator:tester" and paused["until"] is not None
    assert row["paused"]["reason"] == "maintenance window" and row["paused"]["by"] == "operator:tester"
    assert "paused by operator:tester" in refused.stderr and "agents resume guard" in refused.stderr
    assert "resumed (it was paused by operator:tester: maintenance window)" in resumed
    assert "is not paused; nothing to resume" in again
    assert [e["agent"] for e in ledger(eco, "agent_pause")] == ["guard"]
    assert len(ledger(eco, "agent_resume")) == 1  # the no-op resume is not recorded


def test_pause_refuses_an_until_that_is_not_a_time(eco: Path) -> None:
    result = Cli(eco).fails(2, "agents", "pause", "guard", "--reason", "x", "--until", "soonish")
    assert "neither a time nor a duration" in result.stderr


def test_agents_alone_still_lists_the_attempts_running_in_this_repo(eco: Path) -> None:
    assert Cli(eco / "app").json("agents") == []
