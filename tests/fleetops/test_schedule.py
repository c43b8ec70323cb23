"""The layers' rules (fleetops/schedule.py) with a fake clock: decisions from agents, state and runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from speedrift.fleet.opsconfig import AgentDef
from speedrift.fleetops.declared import Served
from speedrift.fleetops.runs import Run, RunsView
from speedrift.fleetops.schedule import Decision, Verdict, decide, note_seen, record
from speedrift.fleetops.state import FleetState, Pause

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def served(
    name: str = "nightly", layer: str = "core", repos: tuple[str, ...] = ("app",), **fields: Any
) -> Served:
    spec: dict[str, Any] = {"name": name, "layer": layer, "exec": "true", **fields}
    if layer == "core":
        spec.setdefault("schedule", "0 3 * * *")
    return Served(AgentDef.model_validate(spec), repos, "ecosystem.toml")


def run(
    task: str, status: str, *, created: datetime, ended: datetime | None = None, repo: str = "app"
) -> Run:
    return Run(repo, task, status, False, None, created, ended)


class Hub:
    """The scheduler as the hub step drives it: decide, act on every fire, record it in the state."""

    def __init__(self, agents: list[Served], runs: RunsView | None = None) -> None:
        self.agents = agents
        self.state = FleetState()
        self.runs = runs or RunsView()
        self.fired: list[Decision] = []

    def cycle(self, now: datetime) -> list[Decision]:
        note_seen(self.state, self.agents, self.runs, now)
        decisions = decide(self.agents, self.state, self.runs, now)
        for d in decisions:
            started = None
            if d.verdict is Verdict.FIRE:
                started = f"{d.repo}:run-{len(self.fired)}"
                self.fired.append(d)
            record(self.state, d, now, started)
        return decisions


def fires(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.verdict is Verdict.FIRE]


# --- core --------------------------------------------------------------------------------------------
def test_a_core_slot_fires_once_and_only_after_it_is_due() -> None:
    hub = Hub([served()])
    assert fires(hub.cycle(T0 + timedelta(hours=2, minutes=59))) == []
    first = fires(hub.cycle(T0 + timedelta(hours=3, seconds=30)))
    again = [fires(hub.cycle(T0 + timedelta(hours=3, minutes=m))) for m in (1, 5, 30, 600)]

    assert [d.slot for d in first] == [T0 + timedelta(hours=3)] and first[0].repo == "app"
    assert again == [[], [], [], []]
    assert hub.state.agents["nightly"].last_slot == T0 + timedelta(hours=3)


def test_a_core_agent_fires_one_run_per_served_repo() -> None:
    hub = Hub([served(repos=("app", "web"))])
    hub.cycle(T0)
    fired = fires(hub.cycle(T0 + timedelta(hours=3, minutes=1)))
    assert sorted(d.repo or "" for d in fired) == ["app", "web"]
    assert {d.slot for d in fired} == {T0 + timedelta(hours=3)}


def test_missed_slots_collapse_into_the_newest_one() -> None:
    hub = Hub([served(schedule="@hourly")])
    hub.cycle(T0 + timedelta(minutes=1))  # the hub sees the agent
    fired = fires(hub.cycle(T0 + timedelta(hours=5, minutes=20)))  # the hub was down for five slots
    assert [d.slot for d in fired] == [T0 + timedelta(hours=5)]
    assert fires(hub.cycle(T0 + timedelta(hours=5, minutes=21))) == []


def test_a_slot_from_before_the_hub_first_saw_the_agent_does_not_fire() -> None:
    hub = Hub([served()])
    assert fires(hub.cycle(T0 + timedelta(hours=3, minutes=30))) == []  # 03:00 passed before it was declared
    assert [d.slot for d in fires(hub.cycle(T0 + timedelta(days=1, hours=3)))] == [
        T0 + timedelta(days=1, hours=3)
    ]


def _fires_over_a_day(agent: Served, day: datetime, step: timedelta = timedelta(minutes=5)) -> list[datetime]:
    hub = Hub([agent])
    moment = day - timedelta(hours=6)
    hub.cycle(moment)
    while moment < day + timedelta(hours=30):
        moment += step
        hub.cycle(moment)
    return [d.slot for d in hub.fired if d.slot is not None and day <= d.slot < day + timedelta(days=1)]


def test_a_daily_slot_in_the_skipped_hour_fires_once_when_the_clocks_spring_forward() -> None:
    agent = served(schedule="30 2 * * *", tz="Europe/Berlin")
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist and fires at 03:00 CEST = 01:00 UTC
    slots = _fires_over_a_day(agent, datetime(2026, 3, 29, tzinfo=UTC))
    assert slots == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]


def test_a_daily_slot_in_the_repeated_hour_fires_once_when_the_clocks_fall_back() -> None:
    agent = served(schedule="30 2 * * *", tz="Europe/Berlin")
    # 2026-10-25: 02:30 happens twice (CEST, then CET); it fires at the first, 00:30 UTC, only
    slots = _fires_over_a_day(agent, datetime(2026, 10, 25, tzinfo=UTC))
    assert slots == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]


def test_an_hourly_schedule_fires_once_per_wall_clock_hour_across_the_fall_back() -> None:
    agent = served(schedule="0 * * * *", tz="Europe/Berlin")
    slots = _fires_over_a_day(agent, datetime(2026, 10, 25, tzinfo=UTC), step=timedelta(minutes=10))
    # 24 UTC hours, one of them the repeated 02:00 (CET, 01:00 UTC): it ran already, at 02:00 CEST
    assert len(slots) == len(set(slots)) == 23
    assert datetime(2026, 10, 25, 0, 0, tzinfo=UTC) in slots  # 02:00 CEST
    assert datetime(2026, 10, 25, 1, 0, tzinfo=UTC) not in slots  # 02:00 CET, the same wall time
    assert datetime(2026, 10, 25, 2, 0, tzinfo=UTC) in slots  # 03:00 CET


def test_a_slot_past_the_concurrency_cap_is_skipped_and_consumed_not_queued() -> None:
    runs = RunsView()
    runs.add("nightly", run("agent-nightly-old", "in-progress", created=T0 - timedelta(days=1)))
    hub = Hub([served()], runs)
    hub.cycle(T0)
    (decision,) = hub.cycle(T0 + timedelta(hours=3, minutes=1))

    assert decision.verdict is Verdict.SKIP and decision.slot == T0 + timedelta(hours=3)
    assert "1 run(s) still open (agent-nightly-old), concurrency 1" in decision.reason
    assert "consumed, not queued" in decision.reason
    hub.runs = RunsView()  # the old run finished: the skipped slot does not fire late
    assert fires(hub.cycle(T0 + timedelta(hours=4))) == []
    assert len(fires(hub.cycle(T0 + timedelta(days=1, hours=3)))) == 1


def test_the_nightwatchs_lowered_concurrency_wins_over_max_concurrent() -> None:
    runs = RunsView()
    runs.add("nightly", run("agent-nightly-a", "open", created=T0 - timedelta(days=1)))
    hub = Hub([served(max_concurrent=3)], runs)
    hub.cycle(T0)
    assert len(fires(hub.cycle(T0 + timedelta(hours=3)))) == 1  # 1 open < 3
    hub.state.agents["nightly"].concurrency = 1
    (decision,) = hub.cycle(T0 + timedelta(days=1, hours=3))
    assert decision.verdict is Verdict.SKIP and "concurrency 1" in decision.reason


def test_a_paused_agent_skips_its_slots_and_fires_the_next_after_the_pause_lapses() -> None:
    hub = Hub([served()])
    hub.cycle(T0)
    until = T0 + timedelta(hours=5)
    hub.state.agent("nightly").pause = Pause(since=T0, by="nightwatch", reason="critical drift", until=until)

    (paused,) = hub.cycle(T0 + timedelta(hours=3, minutes=1))
    assert paused.verdict is Verdict.SKIP
    assert (
        paused.reason
        == f"paused by nightwatch until {until.isoformat().replace('+00:00', 'Z')}: critical drift"
    )
    assert fires(hub.cycle(T0 + timedelta(hours=6))) == []  # the slot paused through is not fired late
    assert len(fires(hub.cycle(T0 + timedelta(days=1, hours=3)))) == 1


def test_a_disabled_agent_is_skipped_and_says_where_it_is_disabled() -> None:
    hub = Hub([served(enabled=False)])
    (decision,) = hub.cycle(T0 + timedelta(hours=3))
    assert (
        decision.verdict is Verdict.SKIP and decision.reason == "disabled (enabled = false in ecosystem.toml)"
    )


# --- safety ------------------------------------------------------------------------------------------
def safety(**restart: Any) -> Served:
    policy = {"cooldown_s": 60, "max_restarts": 2, "window_s": 3600, **restart}
    return served("guard", "safety", restart=policy)


def test_the_first_start_of_a_safety_agent_is_not_a_restart() -> None:
    (decision,) = Hub([safety()]).cycle(T0)
    assert decision.verdict is Verdict.FIRE and decision.restart is None
    assert decision.reason == "first start in app"


def test_a_running_safety_agent_is_left_alone() -> None:
    runs = RunsView()
    runs.add("guard", run("agent-guard-1", "in-progress", created=T0))
    (decision,) = Hub([safety()], runs).cycle(T0 + timedelta(hours=1))
    assert decision.verdict is Verdict.WAIT and decision.reason == "running: app:agent-guard-1"


def test_a_safety_agent_is_restarted_after_its_cooldown_and_not_before() -> None:
    runs = RunsView()
    runs.add("guard", run("agent-guard-1", "failed", created=T0, ended=T0 + timedelta(seconds=10)))
    hub = Hub([safety()], runs)

    (early,) = hub.cycle(T0 + timedelta(seconds=69))
    (due,) = hub.cycle(T0 + timedelta(seconds=70))

    assert early.verdict is Verdict.WAIT and "restart after the 60 s cooldown" in early.reason
    assert due.verdict is Verdict.FIRE and (due.restart, due.max_restarts) == (1, 2)
    assert hub.state.agents["guard"].restarts == [T0 + timedelta(seconds=70)]
    assert hub.state.agents["guard"].exited_at == T0 + timedelta(seconds=10)


def test_a_safety_agent_past_its_restart_cap_within_the_window_is_escalated() -> None:
    hub = Hub([safety()])
    ended = T0 + timedelta(minutes=30)
    hub.state.agent("guard").restarts = [T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)]
    hub.runs.add("guard", run("agent-guard-3", "failed", created=T0, ended=ended))

    (decision,) = hub.cycle(ended + timedelta(minutes=2))

    assert decision.verdict is Verdict.ESCALATE and (decision.restart, decision.max_restarts) == (2, 2)
    assert "max_restarts = 2" in decision.reason and hub.fired == []


def test_restarts_that_left_the_window_no_longer_count() -> None:
    hub = Hub([safety()])
    hub.state.agent("guard").restarts = [T0, T0 + timedelta(minutes=1)]
    hub.runs.add("guard", run("agent-guard-3", "done", created=T0, ended=T0 + timedelta(minutes=2)))

    (decision,) = hub.cycle(T0 + timedelta(hours=1, seconds=30))  # the first restart left the window

    assert decision.verdict is Verdict.FIRE and decision.restart == 2


def test_a_paused_safety_agent_is_not_restarted() -> None:
    hub = Hub([safety()])
    hub.state.agent("guard").pause = Pause(since=T0, by="restart-cap", reason="too many exits")
    (decision,) = hub.cycle(T0 + timedelta(days=3))
    assert decision.verdict is Verdict.SKIP and decision.reason.startswith("paused by restart-cap")


# --- growth ------------------------------------------------------------------------------------------
def test_a_growth_agent_is_never_started_by_the_hub() -> None:
    hub = Hub([served("helper", "growth")])
    decisions = [d for hours in range(0, 72, 3) for d in hub.cycle(T0 + timedelta(hours=hours))]
    assert hub.fired == [] and {d.verdict for d in decisions} == {Verdict.WAIT}
    assert "speedrift agents run helper" in decisions[0].reason
