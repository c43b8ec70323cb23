"""The operator's mutations (shared by the dashboard and the CLI) and the trail they leave."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.control.controlfile import read_control
from speedrift.control.cycle import run_once
from speedrift.control.operator import approve_action, pause_agent, resume_agent, set_mode
from speedrift.errors import NotFound, Refused, UsageError
from speedrift.fleet import attempts
from speedrift.register.ledger import Ledger
from speedrift.register.store import Register
from tests.gitrepo import make_repo


@pytest.fixture
def eco(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SPEEDRIFT_HUB_DIR", raising=False)
    for name in ("shop", "billing"):
        make_repo(tmp_path / name)
    path = tmp_path / "ecosystem.toml"
    path.write_text('schema = 1\n\n[repos.shop]\npath = "shop"\n\n[repos.billing]\npath = "billing"\n')
    return path


def _operator_entries(eco: Path) -> list[dict[str, Any]]:
    return [r for r in Ledger(hubdir.hub_dir(eco)).read(last=None) if r.get("kind") == "operator"]


def test_set_mode_writes_control_json_the_register_and_one_ledger_entry(eco: Path) -> None:
    result = set_mode(
        eco,
        "shop",
        "supervise",
        lease_ttl=timedelta(hours=2),
        actor="ann",
        source="dashboard",
        reason="night",
    )
    assert result["mode"] == "supervise" and result["lease_owner"] == "ann" and result["lease_expires_at"]
    control = read_control(eco.parent / "shop")
    assert (control.mode, control.lease_owner, control.updated_by) == ("supervise", "ann", "ann")
    with Register.open(hubdir.hub_dir(eco)) as register:
        [row] = register.mode_changes("shop")
    assert (row["mode"], row["actor"], row["source"], row["reason"]) == (
        "supervise",
        "ann",
        "dashboard",
        "night",
    )
    [entry] = _operator_entries(eco)
    assert entry["op"] == "set_mode" and entry["repo"] == "shop" and entry["source"] == "dashboard"
    assert "shop: mode supervise, lease ann" in entry["detail"]


def test_set_mode_refuses_unknown_repos_and_modes_without_writing(eco: Path) -> None:
    with pytest.raises(NotFound, match="no repo named 'nope'"):
        set_mode(eco, "nope", "observe", actor="ann")
    with pytest.raises(UsageError, match="unknown control mode"):
        set_mode(eco, "shop", "godmode", actor="ann")
    assert _operator_entries(eco) == []
    assert not (eco.parent / "shop" / ".speedrift" / "control.json").exists()


def test_approving_an_action_of_the_last_cycle_is_recorded_for_the_next(eco: Path) -> None:
    (eco.parent / "shop" / ".workgraph" / "graph.jsonl").write_text(
        '{"kind":"task","id":"t1","title":"t1","status":"open"}\n'
    )
    record = run_once(eco, execute_actions=False)
    action_id = next(s["action"]["id"] for s in record["skipped"])
    result = approve_action(eco, action_id, "ann", source="cli")
    assert result["action_id"] == action_id and result["approved_by"] == "ann"
    with Register.open(hubdir.hub_dir(eco)) as register:
        assert register.pending_approvals() == [action_id]
    [entry] = _operator_entries(eco)
    assert entry["op"] == "approve_action" and entry["action_kind"] == result["action_kind"]


def test_an_action_the_caller_already_saw_needs_no_ledger_record(eco: Path) -> None:
    seen = {"id": "shop:dispatch_ready", "repo": "shop", "kind": "dispatch_ready"}
    approve_action(eco, "shop:dispatch_ready", "ann", source="dashboard", action=seen)
    with Register.open(hubdir.hub_dir(eco)) as register:
        assert register.pending_approvals() == ["shop:dispatch_ready"]


def test_approving_something_no_cycle_planned_is_refused(eco: Path) -> None:
    with pytest.raises(NotFound, match="no recent cycle planned"):
        approve_action(eco, "shop:dispatch_ready", "ann")
    with pytest.raises(UsageError, match="not an action id"):
        approve_action(eco, "../../etc", "ann")


class Agent:
    """A real process group standing in for an agent, with the environment a worker gives it."""

    def __init__(self, repo: Path, task_id: str, attempt: int) -> None:
        env = {
            **os.environ,
            "SPEEDRIFT_TASK_ID": task_id,
            "SPEEDRIFT_ATTEMPT": str(attempt),
            "WG_DIR": str(repo / ".workgraph"),
        }
        self.process = subprocess.Popen(["sleep", "120"], env=env, start_new_session=True)

    def state(self) -> str:
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        return stat[stat.rfind(")") + 2 :].split()[0]

    def wait_stopped(self, stopped: bool) -> str:
        """The process state once it is (or is no longer) stopped, or whatever it is after 30 s."""
        deadline = time.monotonic() + 30
        while ((state := self.state()) == "T") != stopped and time.monotonic() < deadline:
            time.sleep(0.02)
        return state

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.stop()


def test_pause_stops_the_attempts_agent_group_and_resume_continues_it(eco: Path, agents: list[Agent]) -> None:
    shop = eco.parent / "shop"
    folder = attempts.run_dir(shop, "t1", 1)
    attempts.write_attempt(folder, {"state": "running", "runtime": "shell"})  # pid: this (live) process
    agent = Agent(shop, "t1", 1)
    bystander = Agent(eco.parent / "billing", "t1", 1)  # same task id, another repo: untouched
    agents.extend([agent, bystander])
    result = pause_agent(shop, "t1", ecosystem_path=eco, actor="ann", source="dashboard")
    assert result["process_groups"] == [agent.process.pid]
    assert agent.wait_stopped(True) == "T"
    assert bystander.state() != "T"
    assert (folder / "paused").exists()
    resume_agent(shop, "t1", ecosystem_path=eco, actor="ann", source="dashboard")
    assert agent.wait_stopped(False) != "T"
    assert not (folder / "paused").exists()
    assert [e["op"] for e in _operator_entries(eco)] == ["pause_agent", "resume_agent"]


def test_a_recorded_agent_group_is_used_when_the_worker_wrote_one(eco: Path, agents: list[Agent]) -> None:
    shop = eco.parent / "shop"
    agent = Agent(eco.parent / "billing", "other", 9)  # its environment would not match
    agents.append(agent)
    folder = attempts.run_dir(shop, "t1", 1)
    attempts.write_attempt(folder, {"state": "running", "agent_pgid": agent.process.pid})
    assert pause_agent(shop, "t1")["process_groups"] == [agent.process.pid]
    assert agent.wait_stopped(True) == "T"
    resume_agent(shop, "t1")
    assert agent.wait_stopped(False) != "T"


def test_pausing_without_a_running_attempt_or_agent_is_refused(eco: Path) -> None:
    shop = eco.parent / "shop"
    with pytest.raises(Refused, match="no running attempt"):
        pause_agent(shop, "t1")
    folder = attempts.run_dir(shop, "t1", 1)
    attempts.write_attempt(folder, {"state": "running"})
    with pytest.raises(Refused, match="has no agent process"):
        pause_agent(shop, "t1")
