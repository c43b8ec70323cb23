"""The hub's standing-agents step (fleetops/agents_step.py) over real repos and graphs, with a fake
clock: run tasks made through the graph writer, slots fired exactly once across a hub restart, the
repo's authority honoured, safety restarts capped and escalated, and the ledger told only news."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.control.ecosystem.load import load_ecosystem
from speedrift.control.observe.coordination import open_escalations
from speedrift.fleetops import agents_step
from speedrift.fleetops.agents_step import hub_step
from speedrift.fleetops.declared import declared_agents, find
from speedrift.fleetops.hubctx import HubContext
from speedrift.fleetops.pausing import resume_agent
from speedrift.fleetops.runs import ensure_run
from speedrift.fleetops.state import Pause, StateStore
from speedrift.graph import ops
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.register.record import ControlMode, ControlState
from tests.gitrepo import make_repo

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
HEAD = 'schema = 1\n[repos.app]\npath = "app"\n'
NIGHTLY = (
    '[[agents]]\nname = "nightly"\nlayer = "core"\nrepos = ["app"]\nschedule = "0 3 * * *"\n'
    'exec = "echo nightly"\ncapabilities = ["maintenance"]\nmodel = "codex:gpt-5"\n'
    "limits = { memory_mb = 512 }\nbudgets = { run_usd = 0.5 }\n"
)
GUARD = (
    '[[agents]]\nname = "guard"\nlayer = "safety"\nrepos = ["app"]\nexec = "./watch.sh"\n'
    "restart = { cooldown_s = 60, max_restarts = 2, window_s = 3600 }\n"
)


class Fleet:
    def __init__(self, tmp_path: Path, agents: str, repo_toml: str | None = None) -> None:
        files = {"README.md": "# app\n", **({"speedrift.toml": repo_toml} if repo_toml else {})}
        self.app = make_repo(tmp_path / "app", files)
        self.path = tmp_path / "ecosystem.toml"
        self.path.write_text(HEAD + agents)
        self.hub = tmp_path / "hub"
        self.hub.mkdir()
        self.mode: ControlMode = "autonomous"

    def step(self, now: datetime) -> list[dict[str, Any]]:
        eco = load_ecosystem(self.path)
        repos = {e.name: e.path for e in eco.repos}
        authority = {name: ControlState(mode=self.mode, lease_owner="hub-test") for name in repos}
        argv = (sys.executable, "-m", "speedrift")
        return hub_step(HubContext(self.hub, self.path, repos, authority, eco.ops, now, argv))

    def restart_hub(self) -> None:
        agents_step.forget(self.hub)  # a new hub process remembers only what is on disk

    @property
    def store(self) -> GraphStore:
        found = GraphStore.of_repo(self.app)
        assert found is not None
        return found

    def runs(self, agent: str) -> dict[str, dict[str, Any]]:
        return {tid: t for tid, t in self.store.load().tasks.items() if f"agent:{agent}" in t.get("tags", [])}

    def finish(self, task_id: str, at: datetime, status: str = "failed") -> None:
        if status == "failed":
            self.store.mutate(
                lambda g, now: ops.fail(g, task_id, reason="exit 1", now=now, actor="w"), now=at
            )
        else:
            self.store.mutate(lambda g, now: ops.done(g, task_id, now=now, actor="w"), now=at)


def kinds(records: list[dict[str, Any]]) -> list[str]:
    return [r["kind"] for r in records]


@pytest.fixture
def nightly(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path, NIGHTLY)


def test_a_due_slot_becomes_a_run_task_following_the_contract(nightly: Fleet) -> None:
    assert nightly.step(T0) == [] and nightly.runs("nightly") == {}

    (record,) = nightly.step(T0 + timedelta(hours=3, seconds=20))

    assert record["kind"] == "agent_run" and record["task"] == "agent-nightly-202611200300"
    assert (record["agent"], record["repo"], record["layer"]) == ("nightly", "app", "core")
    assert record["slot"] == T0 + timedelta(hours=3) and record["restart"] is None
    task = nightly.runs("nightly")["agent-nightly-202611200300"]
    assert task["title"] == "nightly (2026-11-20T03:00:00Z)"
    assert task["tags"] == ["agent:nightly", "maintenance"]
    assert task["exec"] == "echo nightly" and task["model"] == "codex:gpt-5" and task["status"] == "open"
    assert speedrift_data(task)["agent"] == {
        "name": "nightly",
        "layer": "core",
        "slot": "2026-11-20T03:00:00Z",
        "limits": {"memory_mb": 512},
        "budgets": {"run_usd": 0.5},
    }


def test_a_cron_slot_fires_exactly_once_across_a_hub_restart(nightly: Fleet) -> None:
    nightly.step(T0)
    fired = nightly.step(T0 + timedelta(hours=3, minutes=1))
    nightly.restart_hub()

    after_restart = [nightly.step(T0 + timedelta(hours=3, minutes=m)) for m in (2, 30)]

    assert kinds(fired) == ["agent_run"]
    assert after_restart == [[], []]
    assert list(nightly.runs("nightly")) == ["agent-nightly-202611200300"]
    assert StateStore(nightly.hub).read().agents["nightly"].last_slot == T0 + timedelta(hours=3)


def test_a_slot_whose_run_was_made_before_a_crash_is_found_not_made_again(nightly: Fleet) -> None:
    nightly.step(T0)
    eco = load_ecosystem(nightly.path)
    served = find(declared_agents(eco.ops, {"app": nightly.app})[0], "nightly")
    assert served is not None
    slot = T0 + timedelta(hours=3)
    ensure_run(nightly.app, served, slot=slot, now=slot, actor="speedrift-hub")  # then the hub died
    nightly.restart_hub()

    (record,) = nightly.step(T0 + timedelta(hours=3, minutes=5))

    assert record["kind"] == "agent_run" and "already existed" in record["found"]
    assert list(nightly.runs("nightly")) == ["agent-nightly-202611200300"]


def test_in_observe_mode_the_slot_is_held_once_and_no_task_is_made(nightly: Fleet) -> None:
    nightly.mode = "observe"
    nightly.step(T0)

    held = nightly.step(T0 + timedelta(hours=3, minutes=1))
    later = nightly.step(T0 + timedelta(hours=3, minutes=2))
    nightly.mode = "autonomous"
    granted = nightly.step(T0 + timedelta(hours=3, minutes=3))

    (record,) = held
    assert record["kind"] == "agent_skipped" and record["held"] is True
    assert record["reason"].startswith("held: control mode observe does not permit automation")
    assert later == [] and granted == []  # the held slot counts as fired: not retried, not late
    assert nightly.runs("nightly") == {}


def test_a_slot_past_the_concurrency_cap_is_recorded_as_consumed(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, NIGHTLY.replace('"0 3 * * *"', '"@hourly"'))
    fleet.step(T0 + timedelta(minutes=1))
    (first,) = fleet.step(T0 + timedelta(hours=1))

    (skipped,) = fleet.step(T0 + timedelta(hours=2))
    fleet.finish(first["task"], T0 + timedelta(hours=2, minutes=10), status="done")
    nothing = fleet.step(T0 + timedelta(hours=2, minutes=20))
    (third,) = fleet.step(T0 + timedelta(hours=3))

    assert skipped["kind"] == "agent_skipped" and "consumed, not queued" in skipped["reason"]
    assert skipped["slot"] == T0 + timedelta(hours=2)
    assert nothing == []
    assert third["kind"] == "agent_run" and third["slot"] == T0 + timedelta(hours=3)
    assert sorted(fleet.runs("nightly")) == ["agent-nightly-202611200100", "agent-nightly-202611200300"]


def test_a_safety_agent_is_restarted_after_the_cooldown_then_capped_paused_and_escalated(
    tmp_path: Path,
) -> None:
    fleet = Fleet(tmp_path, GUARD)
    (start,) = fleet.step(T0)
    assert start["kind"] == "agent_run" and start["restart"] is None  # the first start is no restart
    fleet.finish(start["task"], T0 + timedelta(seconds=10))

    assert fleet.step(T0 + timedelta(seconds=50)) == []  # inside the cooldown
    (one,) = fleet.step(T0 + timedelta(seconds=71))
    fleet.finish(one["task"], T0 + timedelta(seconds=80))
    (two,) = fleet.step(T0 + timedelta(seconds=141))
    fleet.finish(two["task"], T0 + timedelta(seconds=150))
    capped = fleet.step(T0 + timedelta(seconds=211))
    fleet.restart_hub()
    then = [fleet.step(T0 + timedelta(seconds=s)) for s in (300, 400, 5000)]

    assert (one["restart"], two["restart"]) == ({"n": 1, "max": 2}, {"n": 2, "max": 2})
    assert kinds(capped) == ["agent_pause", "agent_escalated"]
    pause, escalated = capped
    assert pause["by"] == "restart-cap" and "max_restarts = 2" in pause["reason"]
    assert escalated["resume"] == "speedrift agents resume guard"
    (question,) = open_escalations(fleet.app)  # what the attention queue and the human queue show
    assert question.id == escalated["escalation"] and "guard" in question.summary
    assert kinds(then[0]) == ["agent_skipped"] and then[0][0]["reason"].startswith("paused by restart-cap")
    assert then[1:] == [[], []]  # the same reason is not reported again
    assert len(fleet.runs("guard")) == 3
    assert StateStore(fleet.hub).read().agents["guard"].paused(T0 + timedelta(days=365))

    resumed = resume_agent(
        fleet.hub, {"app": fleet.app}, "guard", by="operator:ada", now=T0 + timedelta(hours=2)
    )
    (again,) = fleet.step(T0 + timedelta(hours=2, minutes=1))

    assert resumed["escalations_resolved"] == [f"app:{question.id}"] and open_escalations(fleet.app) == ()
    assert again["kind"] == "agent_run" and again["restart"] == {"n": 1, "max": 2}


def test_a_pause_whose_time_is_up_is_lifted_by_the_hub(nightly: Fleet) -> None:
    nightly.step(T0)
    until = T0 + timedelta(hours=1)
    StateStore(nightly.hub).update(
        lambda s: setattr(
            s.agent("nightly"), "pause", Pause(since=T0, by="nightwatch", reason="drift", until=until)
        )
    )

    records = nightly.step(T0 + timedelta(hours=3, minutes=1))

    assert kinds(records) == ["agent_resume", "agent_run"]
    assert records[0]["by"] == "pause-expired" and records[0]["changed"] is True
    assert StateStore(nightly.hub).read().agents["nightly"].pause is None


def test_a_growth_agent_is_never_started_by_the_hub(tmp_path: Path) -> None:
    fleet = Fleet(
        tmp_path, '[[agents]]\nname = "helper"\nlayer = "growth"\nrepos = ["app"]\nprompt = "help"\n'
    )
    records = [r for h in range(0, 72, 6) for r in fleet.step(T0 + timedelta(hours=h))]
    assert records == [] and fleet.runs("helper") == {}


def test_a_name_declared_twice_is_reported_once_and_neither_runs(tmp_path: Path) -> None:
    repo_toml = '[[agents]]\nname = "guard"\nlayer = "growth"\nprompt = "x"\n'
    fleet = Fleet(tmp_path, GUARD, repo_toml=repo_toml)

    first = fleet.step(T0)
    second = fleet.step(T0 + timedelta(minutes=1))

    (config,) = first
    assert config["kind"] == "agents_config"
    assert "'guard' is declared in ecosystem.toml and app/speedrift.toml" in config["problems"][0]
    assert second == [] and fleet.runs("guard") == {}
