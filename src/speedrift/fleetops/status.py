"""What ``speedrift agents list|status`` and the dashboard's Agents panel show about each standing
agent: its declaration, its durable state and its runs, with what the scheduler would decide now.

Read-only: the agents' state is read without its lock (it is replaced atomically) and the graphs
lock-free; nothing is fired or changed here (fleetops/agents_step.py does that, in the hub).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.errors import NotFound
from speedrift.fleet.opsconfig import FleetOps, Layer
from speedrift.fleetops.declared import Served, declared_agents, find
from speedrift.fleetops.runs import Run, RunsView, read_runs
from speedrift.fleetops.schedule import concurrency, decide, next_slot, restarts_in_window
from speedrift.fleetops.state import AgentState, FleetState, StateStore
from speedrift.times import iso_utc

RECENT_RUNS = 20


def _t(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None


def runtime_of(served: Served) -> str:
    """What the agent's runs run on: ``shell`` (exec), the model's runtime, or the repo's default."""
    spec = served.agent
    if spec.exec:
        return "shell"
    model = spec.model or ""
    prefix, sep, _rest = model.partition(":")
    if sep or model in ("claude", "codex", "opencode"):
        return prefix
    return "repo default"


def run_dict(run: Run) -> dict[str, Any]:
    return {
        "repo": run.repo,
        "task": run.task,
        "status": run.status,
        "paused": run.paused,
        "slot": _t(run.slot),
        "created_at": _t(run.created_at),
        "ended_at": _t(run.ended_at),
    }


def agent_row(served: Served, state: FleetState, runs: RunsView, now: datetime) -> dict[str, Any]:
    """One agent as the list shows it (see the module docstring)."""
    spec = served.agent
    agent: AgentState | None = state.agents.get(spec.name)
    pause = agent.pause if agent is not None and agent.paused(now) else None
    all_runs = runs.all_of(spec.name)
    last = all_runs[-1] if all_runs else None
    upcoming = next_slot(served, now)
    drift = agent.drift if agent is not None else None
    safety = spec.layer is Layer.SAFETY
    return {
        "name": spec.name,
        "layer": spec.layer.value,
        "source": served.source,
        "title": spec.title,
        "repos": list(served.repos),
        "schedule": spec.schedule,
        "tz": spec.tz if spec.layer is Layer.CORE else None,
        "next_slot": _t(upcoming),
        "last_slot": _t(agent.last_slot if agent is not None else None),
        "model": spec.model,
        "runtime": runtime_of(served),
        "exec": spec.exec,
        "role": spec.role.value if spec.role is not None else None,
        "enabled": spec.enabled,
        "paused": None
        if pause is None
        else {"by": pause.by, "reason": pause.reason, "since": _t(pause.since), "until": _t(pause.until)},
        "drift": None
        if drift is None
        else {"level": drift.level.value, "score": round(drift.score, 4), "samples": drift.samples},
        "concurrency": concurrency(served, agent),
        "max_concurrent": spec.max_concurrent,
        "restarts_in_window": len(restarts_in_window(served, agent, now)) if safety else None,
        "max_restarts": spec.restart.max_restarts if safety else None,
        "open_runs": sum(1 for r in all_runs if r.open),
        "last_run": run_dict(last) if last is not None else None,
        "now": [d.as_dict() for d in decide([served], state, runs, now)],
    }


def snapshot(
    ops: FleetOps, repos: Mapping[str, Path], hub: Path, now: datetime
) -> tuple[list[Served], FleetState, RunsView, list[str]]:
    """The declared agents, their state and their runs, and every problem found reading them."""
    served, problems = declared_agents(ops, repos)
    state = StateStore(hub).read()
    served_repos = {r: repos[r] for s in served for r in s.repos if r in repos}
    runs = read_runs(served_repos, {s.name for s in served})
    return served, state, runs, [*problems, *runs.problems]


def agent_rows(
    ops: FleetOps, repos: Mapping[str, Path], hub: Path, now: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every declared agent as :func:`agent_row` shows it (by name), and the problems found."""
    served, state, runs, problems = snapshot(ops, repos, hub, now)
    rows = [agent_row(s, state, runs, now) for s in sorted(served, key=lambda s: s.name)]
    return rows, problems


def unknown_agent(name: str, served: list[Served]) -> NotFound:
    known = ", ".join(sorted(s.name for s in served)) or "none"
    return NotFound(
        f"no standing agent named {name!r} (declared: {known})",
        hint="declare it in ecosystem.toml or a repo's speedrift.toml ([[agents]]); `speedrift agents list`",
    )


def agent_status(
    ops: FleetOps, repos: Mapping[str, Path], hub: Path, name: str, now: datetime
) -> dict[str, Any]:
    """One agent in full: its row, its recent runs (newest first) and the problems found.
    NotFound naming the declared agents for an unknown name."""
    served, state, runs, problems = snapshot(ops, repos, hub, now)
    item = find(served, name)
    if item is None:
        raise unknown_agent(name, served)
    row = agent_row(item, state, runs, now)
    recent = runs.all_of(name)[-RECENT_RUNS:]
    agent = state.agents.get(name)
    row["recent_runs"] = [run_dict(r) for r in reversed(recent)]
    row["restarts"] = [iso_utc(t) for t in (agent.restarts if agent is not None else [])]
    row["exited_at"] = _t(agent.exited_at if agent is not None else None)
    row["problems"] = problems
    return row
