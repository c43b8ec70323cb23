"""`speedrift why` on standing agents (control/agent_holds.py): a run task of a paused agent names
the pause and its lift; `speedrift why` without a target lists paused and drifting agents."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from speedrift import hubdir
from speedrift.demo import ecosystem as demo
from speedrift.fleetops.pausing import pause_agent, resume_agent
from speedrift.fleetops.state import Drift, DriftLevel, FleetState, StateStore
from speedrift.times import now_utc
from tests.cli.support import Cli


@pytest.fixture
def eco(tmp_path: Path) -> Path:
    demo.build(tmp_path / "eco")
    Cli(tmp_path / "eco").ok("hub", "once", "--plan")  # `why REPO:TASK` reads the last cycle
    return tmp_path / "eco"


def hub_of(eco: Path) -> Path:
    return hubdir.hub_dir(eco / "ecosystem.toml")


def test_why_names_the_pause_of_a_run_tasks_agent_and_how_to_lift_it(eco: Path) -> None:
    billing = eco / "billing"
    Cli(billing).ok("add", "Nightly sweep", "--id", "sweep", "--tag", "agent:x", "--exec", "true")
    now = now_utc()
    until = now + timedelta(hours=1)
    pause_agent(
        hub_of(eco), {"billing": billing}, "x", by="nightwatch", reason="critical drift: 9 of 10 failed",
        now=now, until=until,
    )  # fmt: skip
    cli = Cli(eco)
    answer = cli.json("why", "billing:sweep")
    hold = answer["agent_pause"]
    assert (hold["agent"], hold["by"], hold["reason"]) == (
        "x",
        "nightwatch",
        "critical drift: 9 of 10 failed",
    )
    assert hold["until"] is not None and hold["since"] is not None
    assert answer["answer"].startswith("sweep is a run of agent x, paused by nightwatch since ")
    assert answer["answer"].endswith("— lift it with `speedrift agents resume x`")
    text = cli.ok("why", "billing:sweep").stdout
    assert "lift it now: speedrift agents resume x" in text
    resume_agent(hub_of(eco), {"billing": billing}, "x", by="operator:tester", now=now_utc())
    after = cli.json("why", "billing:sweep")
    assert after["agent_pause"] is None and "paused by nightwatch" not in after["answer"]


def test_why_without_a_target_lists_paused_agents_and_what_drifts(eco: Path) -> None:
    cli = Cli(eco)
    calm = cli.json("why")
    assert calm["paused_agents"] == [] and calm["drifting"] == []
    assert calm["answer"] == "no standing agent is paused and nothing drifts above normal"
    now = now_utc()

    def drifted(state: FleetState) -> None:
        state.agent("x").drift = Drift(DriftLevel.CRITICAL, 0.87, 20, now, now)
        state.agent("y").drift = Drift(DriftLevel.MINOR, 0.12, 20, now, now)
        state.models["codex:default"] = Drift(DriftLevel.MODERATE, 0.3, 9, now, now)

    StateStore(hub_of(eco)).update(drifted)
    pause_agent(hub_of(eco), {}, "x", by="nightwatch", reason="critical drift", now=now)
    answer = cli.json("why")
    assert [p["agent"] for p in answer["paused_agents"]] == ["x"]
    assert [(r["subject"], r["level"]) for r in answer["drifting"]] == [
        ("agent:x", "critical"),
        ("agent:y", "minor"),
        ("model:codex:default", "moderate"),
    ]
    assert answer["answer"].startswith("1 agent(s) paused: x; 3 above normal drift: agent:x critical")
    text = cli.ok("why").stdout
    assert "paused: agent x is paused by nightwatch" in text and "until a person resumes it" in text
    assert "lift it now: speedrift agents resume x" in text
    assert "drift: model:codex:default moderate (score 0.3, 9 samples)" in text
