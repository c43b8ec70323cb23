"""The nightwatch in the hub loop (fleetops/nightwatch_step.py), on real hub dirs, real repo
graphs and real `speedrift run` attempts: its interval across a hub restart, one ledger record per
level change, the corrections (concurrency, restart, durable pause, the cooldown's lift), the hub's
authority over repo graphs, and levels judged from the attempt records real runs leave."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import attemptlog, layout, records
from speedrift.attemptlog import AttemptEntry
from speedrift.fleet import attempts
from speedrift.fleet.opsconfig import AgentDef, FleetOps, Layer, NightwatchConfig
from speedrift.fleetops import nightwatch
from speedrift.fleetops.hubctx import HubContext
from speedrift.fleetops.nightwatch_step import hub_step
from speedrift.fleetops.pausing import resume_agent
from speedrift.fleetops.state import DriftLevel, StateStore
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.records import AttemptState
from speedrift.register.record import ControlState
from speedrift.times import format_time, now_utc
from tests.cli.support import Cli, base_env
from tests.conftest import NOW
from tests.gitrepo import make_repo
from tests.waiting import wait_for

CONFIG = NightwatchConfig(interval_s=300, pause_cooldown_s=3600)


@dataclass
class Fleet:
    """One hub dir and one repo, ``shop``, served by the standing agent ``x`` (max_concurrent 4)."""

    hub: Path
    repo: Path
    config: NightwatchConfig = CONFIG
    mode: str = "supervise"
    agents: tuple[AgentDef, ...] = field(
        default_factory=lambda: (
            AgentDef(name="x", layer=Layer.GROWTH, repos=["shop"], exec="true", max_concurrent=4),
        )
    )

    def ctx(self, now: datetime) -> HubContext:
        control = ControlState(mode=self.mode, lease_owner="tester")  # type: ignore[arg-type]
        return HubContext(
            hub=self.hub,
            ecosystem_path=self.hub.parent / "ecosystem.toml",
            repos={"shop": self.repo},
            authority={"shop": control},
            ops=FleetOps(agents=self.agents, nightwatch=self.config),
            now=now,
            speedrift_argv=(sys.executable, "-m", "speedrift"),
        )

    def step(self, now: datetime) -> list[dict[str, Any]]:
        return hub_step(self.ctx(now))

    def feed(self, failed: int, passed: int, *, start: datetime, agent: str | None = "x", **kw: Any) -> None:
        """Append finished attempts of this repo to the machine-wide feed, one a second from ``start``."""
        for i in range(failed + passed):
            attemptlog.append(
                AttemptEntry(
                    at=start + timedelta(seconds=i),
                    repo=str(self.repo),
                    task=f"run-{start.timestamp():.0f}-{i}",
                    attempt=1,
                    status="failed" if i < failed else "done",
                    failure="implementation_error" if i < failed else None,
                    runtime=kw.get("runtime", "shell"),
                    model=kw.get("model"),
                    agent=agent,
                    gates_passed=0 if i < failed else 1,
                    gates_failed=1 if i < failed else 0,
                )
            )

    def add_run(self, task_id: str, agent: str = "x") -> None:
        spec = ops.NewTask(f"run of {agent}", task_id=task_id, tags=[f"agent:{agent}"], exec_command="true")
        GraphStore(self.repo / ".workgraph").mutate(
            lambda g, now: ops.add_task(g, spec, now=now, actor="test")
        )

    def task(self, task_id: str) -> dict[str, Any]:
        return GraphStore(self.repo / ".workgraph").load().tasks[task_id]

    def state(self) -> Any:
        return StateStore(self.hub).read()  # a fresh store each time: what a restarted hub reads


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(hub=tmp_path / "hub", repo=make_repo(tmp_path / "shop"))


def nightwatch_records(out: list[dict[str, Any]], subject: str | None = "agent:x") -> list[dict[str, Any]]:
    """The nightwatch's level-change records in a step's output (of ``subject``; None: all)."""
    return [r for r in out if r["kind"] == "nightwatch" and subject in (None, r.get("subject"))]


def test_the_interval_is_kept_across_a_hub_restart(fleet: Fleet) -> None:
    assert fleet.step(NOW) == []  # evaluated: nothing to say yet
    assert fleet.state().slots["nightwatch"] == NOW
    fleet.feed(10, 0, start=NOW + timedelta(seconds=1))
    # a new hub process (new context, new store) 100 s later: the interval has not passed
    assert fleet.step(NOW + timedelta(seconds=100)) == []
    assert fleet.state().agents["x"].drift.level is DriftLevel.NORMAL
    assert fleet.state().slots["nightwatch"] == NOW
    out = nightwatch_records(fleet.step(NOW + timedelta(seconds=300)))
    assert [(r["subject"], r["from"], r["to"]) for r in out] == [("agent:x", "normal", "critical")]
    assert fleet.state().slots["nightwatch"] == NOW + timedelta(seconds=300)


def test_a_disabled_nightwatch_judges_nothing(fleet: Fleet) -> None:
    fleet.config = NightwatchConfig(enabled=False)
    fleet.feed(10, 0, start=NOW - timedelta(hours=1))
    assert fleet.step(NOW) == []
    assert "nightwatch" not in fleet.state().slots and "x" not in fleet.state().agents


def test_attempts_of_repos_outside_the_ecosystem_are_not_judged(fleet: Fleet, tmp_path: Path) -> None:
    other = Fleet(hub=fleet.hub, repo=make_repo(tmp_path / "elsewhere"))
    other.feed(10, 0, start=NOW - timedelta(hours=1))
    assert nightwatch_records(fleet.step(NOW)) == []
    assert fleet.state().agents["x"].drift.samples == 0


def test_a_level_change_is_recorded_once_and_not_on_every_tick(fleet: Fleet) -> None:
    fleet.feed(6, 14, start=NOW - timedelta(hours=1))  # score 0.21: moderate
    [record] = nightwatch_records(fleet.step(NOW))
    assert record["subject"] == "agent:x" and (record["from"], record["to"]) == ("normal", "moderate")
    assert record["samples"] == 20 and record["score"] == pytest.approx(0.21)
    assert record["metrics"]["error_rate"] == 0.3 and record["generated_at"] == NOW
    assert "6 of 20 failed" in record["why"]
    for minutes in (5, 10, 15):
        assert fleet.step(NOW + timedelta(minutes=minutes)) == []
    assert fleet.state().agents["x"].concurrency == 2  # halved once, not on every tick
    assert fleet.state().agents["x"].drift.changed_at == NOW


def test_moderate_halves_the_agents_concurrency_and_back_at_normal_it_is_restored(fleet: Fleet) -> None:
    fleet.feed(6, 14, start=NOW - timedelta(hours=1))
    [record] = nightwatch_records(fleet.step(NOW))
    assert record["action"] == "concurrency lowered to 2 (was 4)"
    assert fleet.state().agents["x"].concurrency == 2
    fleet.feed(0, 20, start=NOW + timedelta(seconds=1))  # the window is all successes now
    [record] = nightwatch_records(fleet.step(NOW + timedelta(seconds=300)))
    assert (record["from"], record["to"]) == ("moderate", "normal")
    assert record["action"] == "concurrency restored to 4 (was 2)"
    assert fleet.state().agents["x"].concurrency is None


def test_moderate_halves_a_concurrency_already_lowered(fleet: Fleet) -> None:
    StateStore(fleet.hub).update(lambda s: setattr(s.agent("x"), "concurrency", 3))
    fleet.feed(6, 14, start=NOW - timedelta(hours=1))
    [record] = nightwatch_records(fleet.step(NOW))
    assert record["action"] == "concurrency lowered to 1 (was 3)"


def test_only_a_rise_corrects_and_only_normal_or_minor_restores_concurrency(fleet: Fleet) -> None:
    steps = [
        ((6, 14), "moderate", "concurrency lowered to 2 (was 4)", 2),
        ((12, 8), "severe", "restart: no running attempt to cancel; its next run starts fresh", 2),
        ((6, 14), "moderate", "recorded (recovering; its concurrency is restored at normal or minor)", 2),
        ((3, 17), "minor", "concurrency restored to 4 (was 2)", None),
    ]
    for index, ((failed, passed), level, action, concurrency) in enumerate(steps):
        at = NOW + timedelta(minutes=5 * index)
        fleet.feed(failed, passed, start=at - timedelta(minutes=1))
        [record] = nightwatch_records(fleet.step(at))
        assert (record["to"], record["action"]) == (level, action)
        assert fleet.state().agents["x"].concurrency == concurrency


def test_a_critical_agent_is_paused_durably_and_its_waiting_runs_get_wgs_paused(fleet: Fleet) -> None:
    fleet.add_run("agent-x-1")
    fleet.add_run("agent-y-1", agent="y")
    fleet.feed(10, 0, start=NOW - timedelta(hours=1))
    out = fleet.step(NOW)
    [record] = nightwatch_records(out)
    until = NOW + timedelta(seconds=3600)
    assert (record["from"], record["to"], record["samples"]) == ("normal", "critical", 10)
    assert record["action"] == f"paused until {format_time(until)}"
    assert set(record) >= {
        "kind",
        "generated_at",
        "subject",
        "from",
        "to",
        "score",
        "metrics",
        "samples",
        "why",
    }
    [pause_record] = [r for r in out if r["kind"] == "agent_pause"]
    assert pause_record["by"] == "nightwatch" and pause_record["tasks"] == ["shop:agent-x-1"]
    # a restarted hub reads it back: the pause is in the agents state, with who, why and until
    pause = fleet.state().agents["x"].pause
    assert pause is not None and pause.by == "nightwatch" and pause.until == until
    assert pause.reason.startswith("critical drift: agent:x critical")
    assert fleet.state().agents["x"].paused(NOW + timedelta(minutes=30))
    assert fleet.task("agent-x-1").get("paused") is True
    assert fleet.task("agent-y-1").get("paused") is not True  # another agent's run
    # the next evaluations (a new step, a new store) keep it paused and record nothing again
    assert fleet.step(NOW + timedelta(minutes=5)) == []
    assert fleet.step(NOW + timedelta(minutes=10)) == []
    assert fleet.state().agents["x"].paused(NOW + timedelta(minutes=10))


def test_the_pause_is_lifted_after_its_cooldown_and_the_agent_is_judged_afresh(fleet: Fleet) -> None:
    fleet.add_run("agent-x-1")
    fleet.feed(10, 0, start=NOW - timedelta(hours=1))
    fleet.step(NOW)
    assert fleet.step(NOW + timedelta(seconds=3300)) == []  # evaluated, still paused: nothing new
    out = fleet.step(NOW + timedelta(seconds=3600))
    [resume] = [r for r in out if r["kind"] == "agent_resume"]
    assert resume["by"] == "nightwatch-cooldown" and resume["tasks"] == ["shop:agent-x-1"]
    assert fleet.state().agents["x"].pause is None
    assert fleet.task("agent-x-1").get("paused") is not True
    [record] = nightwatch_records(out)  # the failures before the lift no longer count for it
    assert (record["from"], record["to"], record["samples"]) == ("critical", "normal", 0)
    # it runs again and fails again: paused again, on the change
    fleet.feed(5, 0, start=NOW + timedelta(seconds=3700))
    [again] = nightwatch_records(fleet.step(NOW + timedelta(seconds=4000)))
    assert (again["from"], again["to"]) == ("normal", "critical") and again["action"].startswith("paused")


def test_a_pause_without_cooldown_waits_for_a_person_and_after_their_resume_it_starts_afresh(
    fleet: Fleet,
) -> None:
    fleet.config = NightwatchConfig(interval_s=300)
    fleet.feed(10, 0, start=NOW - timedelta(hours=1))
    [record] = nightwatch_records(fleet.step(NOW))
    assert record["action"] == "paused until `speedrift agents resume x`"
    assert fleet.step(NOW + timedelta(days=3)) == []  # no cooldown: still paused days later
    assert fleet.state().agents["x"].paused(NOW + timedelta(days=3))
    resume_agent(fleet.hub, {"shop": fleet.repo}, "x", by="operator:tester", now=NOW + timedelta(days=3))
    # judged afresh from the resume itself, not from the next evaluation: nothing in between is lost
    assert fleet.state().slots["nightwatch:agent:x"] == NOW + timedelta(days=3)
    [afresh] = nightwatch_records(fleet.step(NOW + timedelta(days=3, minutes=5)))
    assert (afresh["from"], afresh["to"]) == ("critical", "normal")


def test_a_repo_without_automation_authority_keeps_its_graph_but_the_pause_holds(fleet: Fleet) -> None:
    fleet.mode = "observe"
    fleet.add_run("agent-x-1")
    fleet.feed(10, 0, start=NOW - timedelta(hours=1))
    [record] = nightwatch_records(fleet.step(NOW))
    assert "run tasks left alone in shop (no automation authority)" in record["action"]
    assert fleet.task("agent-x-1").get("paused") is not True
    assert fleet.state().agents["x"].paused(NOW)


def test_a_runtime_model_level_change_is_recorded_and_pauses_nothing(fleet: Fleet) -> None:
    fleet.feed(10, 0, start=NOW - timedelta(hours=1), agent=None, runtime="codex", model="gpt-5")
    out = fleet.step(NOW)
    [record] = nightwatch_records(out, subject="model:codex:gpt-5")
    assert (record["from"], record["to"]) == ("normal", "critical")
    assert record["action"] == "recorded (a runtime×model is shown, never paused by the nightwatch)"
    assert [r["kind"] for r in out] == ["nightwatch"]
    state = fleet.state()
    assert state.models["codex:gpt-5"].level is DriftLevel.CRITICAL
    assert not any(a.pause for a in state.agents.values())
    assert nightwatch.drift_rows(state, NOW)[-1]["subject"] == "model:codex:gpt-5"


def _running(repo: Path) -> list[dict[str, Any]]:
    return attempts.running(repo)


def start_run(repo: Path, task: str) -> subprocess.Popen[str]:
    """`speedrift run TASK` in a process of its own: the attempt runs while the test acts on it."""
    argv = [sys.executable, "-m", "speedrift", "run", task]
    return subprocess.Popen(
        argv, cwd=repo, env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_severe_restarts_the_agent_by_cancelling_its_running_attempt(fleet: Fleet) -> None:
    cli = Cli(fleet.repo)
    cli.ok("add", "Watch", "--id", "agent-x-1", "--tag", "agent:x", "--exec", "echo started; sleep 30")
    cli.ok("add", "Other", "--id", "other", "--exec", "echo started; sleep 30")
    runners = [start_run(fleet.repo, task) for task in ("agent-x-1", "other")]
    try:
        wait_for(lambda: len(_running(fleet.repo)) == 2, "both attempts to run")
        fleet.feed(12, 8, start=NOW - timedelta(hours=1))  # 0.6 · 0.7 = 0.42: severe
        [record] = nightwatch_records(fleet.step(NOW))
        assert record["to"] == "severe"
        assert record["action"] == (
            "restart: cancelled 1 running attempt(s) (shop:agent-x-1#1); the scheduler starts a fresh run"
        )
        out, _err = runners[0].communicate(timeout=120)
        assert runners[0].returncode == 1 and "cancelled" in out
        run = records.read_attempt(layout.attempt_dir(fleet.repo, "agent-x-1", 1))
        assert run is not None and run.state is not AttemptState.RUNNING
        assert [Path(r["run_dir"]).parent.name for r in _running(fleet.repo)] == ["other"]
    finally:
        for runner in runners:
            runner.kill()
            runner.communicate()


def test_severe_cancels_nothing_in_a_repo_without_automation_authority(fleet: Fleet) -> None:
    fleet.mode = "observe"
    fleet.feed(12, 8, start=NOW - timedelta(hours=1))
    [record] = nightwatch_records(fleet.step(NOW))
    assert record["to"] == "severe"
    assert record["action"] == (
        "restart: no running attempt to cancel; its next run starts fresh; attempts in shop left alone: "
        "control mode observe does not permit automation"
    )


def test_levels_are_judged_from_the_records_real_attempts_leave(fleet: Fleet) -> None:
    """Depends on the attempt feed (fleet/attemptfeed.py): each `speedrift run` appends its entry."""
    cli = Cli(fleet.repo)
    for index in range(3):
        cli.ok("add", f"Broken {index}", "--id", f"broken-{index}", "--tag", "agent:x", "--exec", "exit 3")
        cli.fails(1, "run", f"broken-{index}")
    cli.ok("add", "Fine", "--id", "fine", "--tag", "agent:x", "--exec", "echo ok > ok.txt")
    cli.ok("run", "fine")
    entries = attemptlog.read()
    mine = [e for e in entries if e.agent == "x"]
    assert sorted((e.task, e.status) for e in mine) == [
        ("broken-0", "failed"),
        ("broken-1", "failed"),
        ("broken-2", "failed"),
        ("fine", "done"),
    ]
    verdict = nightwatch.evaluate(entries, NightwatchConfig())["agent:x"]
    assert verdict.samples == 4 and verdict.metrics.error_rate == pytest.approx(0.75)
    assert verdict.score >= 0.3 and verdict.level is nightwatch.level_of(verdict.score, NightwatchConfig())
    assert nightwatch.RANK[verdict.level] >= nightwatch.RANK[DriftLevel.MODERATE]
    [record] = nightwatch_records(fleet.step(now_utc()))
    assert record["to"] == verdict.level.value and record["samples"] == 4
