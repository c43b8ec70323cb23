"""When a standing agent runs: the layers' rules as a pure function of the agents, their durable
state, their runs and the time.

- **disabled** or **paused** (in force): nothing fires; a core slot that falls due meanwhile is
  consumed (it does not fire the moment the agent is resumed).
- **core**: the newest slot in (last fired slot, now] (graph/cron.py ``due_slot``: missed slots
  collapse into one, DST-correct; before its first slot, only slots from when the hub first saw
  the agent count) fires one run per served repo. A repo where the agent's open runs already
  reach its concurrency (the nightwatch's lowered value, else ``max_concurrent``; per repo) skips
  that slot: the slot is consumed, not queued.
- **safety**: always on — in each served repo where it has no open run, a run is started; the
  first ever is a start, every later one a restart, made only ``restart.cooldown_s`` after the
  last run there ended and while the restarts within ``restart.window_s`` stay under
  ``max_restarts``. Past the cap it is escalated (the caller pauses it and asks a person).
- **growth**: never by the hub; ``speedrift agents run NAME`` (or the dashboard) starts one.

Invariant: :func:`decide` changes nothing; :func:`record` is the one change of the state a
decision makes (the slot fired, a restart counted, a run remembered), applied by the caller in the
same :meth:`StateStore.update` as the decision, so a slot is recorded exactly when it was acted on.
Pure: the time is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from speedrift.errors import InvalidValue
from speedrift.fleet.opsconfig import Layer
from speedrift.fleetops.declared import Served
from speedrift.fleetops.runs import RunsView
from speedrift.fleetops.state import AgentState, FleetState
from speedrift.graph.cron import due_slot, next_slot_after
from speedrift.times import clock_words, iso_utc

SEEN_PREFIX = "seen:"  # FleetState.slots["seen:<agent>"]: when the hub first saw the agent


class Verdict(StrEnum):
    FIRE = "fire"  # start a run (in ``repo``)
    SKIP = "skip"  # a reason not to run that a person should know (recorded when it changes)
    WAIT = "wait"  # nothing is due (no slot yet, a run still going, a cooldown, growth): not recorded
    ESCALATE = "escalate"  # a safety agent past its restart cap: pause it and ask a person


@dataclass(frozen=True)
class Decision:
    agent: str
    layer: Layer
    verdict: Verdict
    reason: str
    repo: str | None = None  # None: about the agent as a whole
    slot: datetime | None = None  # the core slot this decision consumes
    restart: int | None = None  # a safety restart's number within the window (None: a first start)
    max_restarts: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "layer": self.layer.value,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "repo": self.repo,
            "slot": iso_utc(self.slot) if self.slot is not None else None,
            "restart": self.restart,
            "max_restarts": self.max_restarts,
        }


def seen_key(name: str) -> str:
    return f"{SEEN_PREFIX}{name}"


def first_seen(state: FleetState, name: str) -> datetime | None:
    return state.slots.get(seen_key(name))


def concurrency(served: Served, agent: AgentState | None) -> int:
    """How many of its runs may be open at once in one repo (the nightwatch's lowered value wins)."""
    lowered = agent.concurrency if agent is not None else None
    return lowered if lowered is not None else served.agent.max_concurrent


def restarts_in_window(served: Served, agent: AgentState | None, now: datetime) -> list[datetime]:
    window = timedelta(seconds=served.agent.restart.window_s)
    return [t for t in (agent.restarts if agent is not None else []) if now - t < window]


def next_slot(served: Served, now: datetime) -> datetime | None:
    """A core agent's next slot after ``now`` (None for other layers or a schedule that ends)."""
    schedule = served.agent.schedule
    if served.agent.layer is not Layer.CORE or schedule is None:
        return None
    try:
        return next_slot_after(schedule, now, served.agent.tz)
    except InvalidValue:
        return None


def decide(served: Sequence[Served], state: FleetState, runs: RunsView, now: datetime) -> list[Decision]:
    """Every decision for ``served`` now, each with its reason (see the module docstring)."""
    decisions: list[Decision] = []
    for item in served:
        agent_state = state.agents.get(item.name)
        if item.agent.layer is Layer.CORE:
            decisions += _core(item, agent_state, first_seen(state, item.name) or now, runs, now)
        elif item.agent.layer is Layer.SAFETY:
            decisions += _safety(item, agent_state, runs, now)
        else:
            decisions.append(_growth(item, agent_state, now))
    return decisions


def _held(served: Served, agent: AgentState | None, now: datetime) -> str | None:
    """Why the agent may not run at all now (disabled, paused), or None."""
    if not served.agent.enabled:
        return f"disabled (enabled = false in {served.source})"
    if agent is not None and agent.pause is not None and agent.paused(now):
        pause = agent.pause
        until = f" until {iso_utc(pause.until)}" if pause.until is not None else ""
        return f"paused by {pause.by}{until}: {pause.reason}"
    return None


def _core(
    served: Served, agent: AgentState | None, created: datetime, runs: RunsView, now: datetime
) -> list[Decision]:
    spec = served.agent
    assert spec.schedule is not None  # a core agent has one (opsconfig)
    last = agent.last_slot if agent is not None else None
    try:
        slot = due_slot(spec.schedule, last, now, spec.tz, created=created)
    except InvalidValue as bad:  # checked at load; a schedule that stopped firing says so here
        return [Decision(spec.name, spec.layer, Verdict.SKIP, f"schedule not usable: {bad.message}")]

    def made(verdict: Verdict, reason: str, repo: str | None = None, at: datetime | None = slot) -> Decision:
        return Decision(spec.name, spec.layer, verdict, reason, repo=repo, slot=at)

    held = _held(served, agent, now)
    if held is not None:
        return [made(Verdict.SKIP, held)]
    if slot is None:
        upcoming = next_slot(served, now)
        when = f"next slot {clock_words(upcoming, now)}" if upcoming else "its schedule has no further slot"
        return [made(Verdict.WAIT, when)]
    limit = concurrency(served, agent)
    out: list[Decision] = []
    for repo in served.repos:
        # a run already made for this slot (a cycle cut short after making it) is this slot's run
        mine = any(r.slot == slot for r in runs.of(spec.name, repo))
        still_open = [r for r in runs.open_in(spec.name, repo) if r.slot != slot]
        if not mine and len(still_open) >= limit:
            shown = ", ".join(r.task for r in still_open[:3])
            out.append(
                made(
                    Verdict.SKIP,
                    f"slot {iso_utc(slot)} skipped in {repo}: {len(still_open)} run(s) still open ({shown}),"
                    f" concurrency {limit}; the slot is consumed, not queued",
                    repo,
                )
            )
        else:
            out.append(made(Verdict.FIRE, f"slot {iso_utc(slot)} ({spec.schedule}, {spec.tz}) is due", repo))
    return out


def _safety(served: Served, agent: AgentState | None, runs: RunsView, now: datetime) -> list[Decision]:
    spec = served.agent
    held = _held(served, agent, now)
    if held is not None:
        return [Decision(spec.name, spec.layer, Verdict.SKIP, held)]
    policy = spec.restart
    counted = len(restarts_in_window(served, agent, now))
    out: list[Decision] = []
    for repo in served.repos:
        still_open = runs.open_in(spec.name, repo)
        if still_open:
            out.append(Decision(spec.name, spec.layer, Verdict.WAIT, f"running: {still_open[-1].ref}", repo))
            continue
        if not runs.of(spec.name, repo):
            out.append(Decision(spec.name, spec.layer, Verdict.FIRE, f"first start in {repo}", repo))
            continue
        last = runs.last_ended(spec.name, repo)
        ended = last.ended_at if last is not None else (agent.exited_at if agent is not None else None)
        ready_at = ended + timedelta(seconds=policy.cooldown_s) if ended is not None else now
        if now < ready_at:
            out.append(
                Decision(
                    spec.name,
                    spec.layer,
                    Verdict.WAIT,
                    f"its run in {repo} ended at {iso_utc(ended or now)}; restart after the "
                    f"{policy.cooldown_s:g} s cooldown, at {iso_utc(ready_at)}",
                    repo,
                )
            )
            continue
        window = f"{policy.window_s:g} s"
        if counted >= policy.max_restarts:
            out.append(
                Decision(
                    spec.name,
                    spec.layer,
                    Verdict.ESCALATE,
                    f"restarted {counted} time(s) within {window} (max_restarts = {policy.max_restarts});"
                    f" its run in {repo} ended again: paused, a person decides",
                    repo,
                    restart=counted,
                    max_restarts=policy.max_restarts,
                )
            )
            break  # paused: its other repos wait for the person too
        counted += 1
        out.append(
            Decision(
                spec.name,
                spec.layer,
                Verdict.FIRE,
                f"restart {counted}/{policy.max_restarts} within {window} in {repo}"
                f" (its last run {last.ref if last else 'ended'}, cooldown {policy.cooldown_s:g} s passed)",
                repo,
                restart=counted,
                max_restarts=policy.max_restarts,
            )
        )
    return out


def _growth(served: Served, agent: AgentState | None, now: datetime) -> Decision:
    spec = served.agent
    held = _held(served, agent, now)
    reason = "growth agents run on demand only: `speedrift agents run " + spec.name + "` or the dashboard"
    return Decision(spec.name, spec.layer, Verdict.WAIT, f"{held}; {reason}" if held else reason)


# --- the state change a decision makes ---------------------------------------------------------------
def note_seen(state: FleetState, served: Sequence[Served], runs: RunsView, now: datetime) -> None:
    """Remember when the hub first saw each agent, when its last run ended, and drop restarts
    that left their window."""
    for item in served:
        state.slots.setdefault(seen_key(item.name), now)
        agent = state.agent(item.name)
        last = runs.last_ended(item.name)
        ended = last.ended_at if last is not None else None
        if ended is not None and (agent.exited_at is None or ended > agent.exited_at):
            agent.exited_at = ended
        agent.restarts = restarts_in_window(item, agent, now)


def record(state: FleetState, decision: Decision, now: datetime, started: str | None) -> None:
    """Apply ``decision`` to the state: a core slot it consumed becomes the last fired slot; a run
    it ``started`` (``repo:task``; None: not started, e.g. held) is remembered, and counted as a
    restart when it is one."""
    agent = state.agent(decision.agent)
    slot = decision.slot
    consumed = slot is not None and decision.verdict in (Verdict.FIRE, Verdict.SKIP)
    if consumed and slot is not None and (agent.last_slot is None or slot > agent.last_slot):
        agent.last_slot = slot
    if started is None or decision.verdict is not Verdict.FIRE:
        return
    agent.remember_run(started, now)
    if decision.restart is not None:
        agent.restarts = [*agent.restarts, now]
