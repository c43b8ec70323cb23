"""What `speedrift why` says about standing agents: paused ones, and ones the nightwatch judges
above Normal.

For a run task of a paused agent (a task tagged ``agent:<name>``) it names the pause — by whom,
why, since and until when — and the command that lifts it (``speedrift agents resume NAME``); the
ecosystem view (``speedrift why`` without a target) lists every paused agent and every agent or
runtime×model above Normal. Read from the hub's agents state (fleetops/state.py) at the moment of
asking, not from the last cycle: a pause set or lifted since then counts. An unreadable state file
is said, never raised past `why`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.attemptlog import agent_of
from speedrift.fleetops.nightwatch import drift_rows
from speedrift.fleetops.state import FleetState, Pause, StateError, StateStore
from speedrift.graph.model import TERMINAL, Task, status_of
from speedrift.graph.store import GraphStore
from speedrift.times import format_time

RESUME = "speedrift agents resume {name}"


def _read(hub: Path) -> tuple[FleetState, str | None]:
    try:
        return StateStore(hub).read(), None
    except StateError as exc:
        return FleetState(), exc.message + (f" (fix: {exc.hint})" if exc.hint else "")


def pause_json(name: str, pause: Pause) -> dict[str, Any]:
    until = format_time(pause.until) if pause.until else None
    lifted = f"until {until}" if until else "until a person resumes it"
    held = f"paused by {pause.by} since {format_time(pause.since)}, {lifted}: {pause.reason}"
    return {
        "agent": name,
        "by": pause.by,
        "reason": pause.reason,
        "since": format_time(pause.since),
        "until": until,
        "resume": RESUME.format(name=name),
        "held": held,
        "sentence": f"agent {name} is {held}",
    }


def task_hold(state: FleetState, task: Task, now: datetime) -> dict[str, Any] | None:
    """The pause holding a run task of a standing agent, or None."""
    tags = task.get("tags")
    name = agent_of(tags if isinstance(tags, list) else [])
    if name is None or status_of(task) in TERMINAL:
        return None
    agent = state.agents.get(name)
    if agent is None or agent.pause is None or not agent.paused(now):
        return None
    return pause_json(name, agent.pause)


def add_task_hold(answer: dict[str, Any], hub: Path, repo: Path | None, task: str, now: datetime) -> None:
    """``speedrift why REPO:TASK``: when the task is a run of a paused agent, the pause comes first."""
    store = GraphStore.of_repo(repo) if repo is not None else None
    found = store.load().tasks.get(task) if store is not None else None
    if found is None:
        return
    state, problem = _read(hub)
    if problem is not None:
        answer["agents_state_error"] = problem
        return
    hold = task_hold(state, found, now)
    answer["agent_pause"] = hold
    if hold is not None:
        answer["answer"] = (
            f"{task} is a run of agent {hold['agent']}, {hold['held']} — lift it with `{hold['resume']}`"
        )


def fleet_view(state: FleetState, now: datetime) -> dict[str, Any]:
    """Paused agents and subjects above Normal (worst first), and a sentence saying so."""
    rows = drift_rows(state, now)
    paused = [
        pause_json(name, agent.pause)
        for name, agent in sorted(state.agents.items())
        if agent.pause is not None and agent.paused(now)
    ]
    drifting = [r for r in rows if r["level"] != "normal"]
    parts = []
    if paused:
        parts.append(f"{len(paused)} agent(s) paused: " + ", ".join(p["agent"] for p in paused))
    if drifting:
        parts.append(
            f"{len(drifting)} above normal drift: "
            + ", ".join(f"{r['subject']} {r['level']}" for r in drifting)
        )
    sentence = "; ".join(parts) or "no standing agent is paused and nothing drifts above normal"
    return {"answer": sentence, "paused_agents": paused, "drifting": drifting}


def ecosystem_answer(hub: Path, now: datetime) -> dict[str, Any]:
    """``speedrift why`` without a target: the standing agents held or drifting."""
    state, problem = _read(hub)
    view = fleet_view(state, now)
    view["hint"] = "name a repo (`speedrift why REPO[:TASK]`) to see why its work is not running"
    if problem is not None:
        view["agents_state_error"] = problem
        view["answer"] = f"the agents state cannot be read: {problem}"
    return view
