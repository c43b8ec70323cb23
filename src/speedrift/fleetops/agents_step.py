"""The hub's standing-agents step, once per cycle: declared agents → decisions → run tasks.

For each decision (fleetops/schedule.py) the step acts and answers ledger records:

- ``agent_run`` — a run task was created in a repo (agent, repo, task, slot, layer, restart n/max);
  it is then dispatched like any task (the hub's dispatch in autonomous repos, the repo's service,
  ``speedrift run``).
- ``agent_skipped`` — a reason not to run (disabled, paused, a slot consumed by the concurrency
  cap) or ``held: <why>`` where the hub may not write the repo's graph (its control mode grants no
  automation). Recorded only when the reason differs from the last one recorded for that agent
  and repo, so a paused agent is not reported every cycle; a core slot held is still consumed
  (reported once per slot, never retried every cycle).
- ``agent_escalated`` — a safety agent past its restart cap: it is paused (``agent_pause`` by
  ``restart-cap``, durable) and a ``human_escalation`` is posted to the repo's coordination store
  (the attention queue and the dashboard's human queue show it; ``speedrift agents resume NAME``
  resolves it).
- ``agent_resume`` — a pause whose ``until`` passed is lifted (its runs unpaused).
- ``agents_config`` — the problems of the agents' declarations, when they change.

Exactly once: the decisions and the slots they consume are recorded in one
:meth:`StateStore.update`, and the runs are created inside it (the lock order is agents state,
then graph); a run for a slot is found rather than made again (fleetops/runs.py), so a hub killed
between the two never fires a slot twice.

The last reason recorded per agent and repo is kept in this process and, at the first cycle after
a start, read back from the ledger's recent records.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from speedrift.errors import SpeedriftError
from speedrift.fleetops import pausing
from speedrift.fleetops.declared import Served, declared_agents
from speedrift.fleetops.hubctx import HubContext
from speedrift.fleetops.runs import ensure_run, read_runs
from speedrift.fleetops.schedule import Decision, Verdict, decide, note_seen, record
from speedrift.fleetops.state import FleetState, StateStore
from speedrift.register.ledger import Ledger

HUB_ACTOR = "speedrift-hub"
RESTART_CAP = "restart-cap"
PAUSE_EXPIRED = "pause-expired"
CONFIG_KEY = "*config*"
LEDGER_SEED = 500  # ledger lines read back at a hub's first cycle for the last recorded reasons
_KINDS = ("agent_run", "agent_skipped", "agent_escalated")

_memory: dict[Path, dict[str, str]] = {}
_memory_lock = threading.Lock()


def _key(agent: str, repo: str | None) -> str:
    return f"{agent}@{repo or '*'}"


def _recalled(hub: Path) -> dict[str, str]:
    """The last reason recorded per agent and repo (read back from the ledger once per process)."""
    with _memory_lock:
        known = _memory.get(hub)
        if known is not None:
            return known
        known = {}
        try:
            lines = Ledger(hub).read(last=LEDGER_SEED)
        except (OSError, SpeedriftError):
            lines = []
        for line in lines:
            kind = line.get("kind")
            if kind not in _KINDS and kind != "agents_config":
                continue
            if kind == "agents_config":
                known[CONFIG_KEY] = "\n".join(str(p) for p in line.get("problems") or [])
                continue
            key = _key(str(line.get("agent")), line.get("repo"))
            known[key] = str(line.get("reason")) if kind == "agent_skipped" else f"({kind})"
        _memory[hub] = known
        return known


def forget(hub: Path) -> None:
    """Drop this process's memory of the reasons recorded (a test's "hub restart")."""
    with _memory_lock:
        _memory.pop(hub.resolve(), None)
        _memory.pop(hub, None)


def hub_step(ctx: HubContext) -> list[dict[str, Any]]:
    """Run the standing agents' step for one hub cycle; the ledger records of what it did."""
    records: list[dict[str, Any]] = []
    memory = _recalled(ctx.hub)
    served, problems = declared_agents(ctx.ops, ctx.repos)
    shown = "\n".join(problems)
    if memory.get(CONFIG_KEY, "") != shown:
        memory[CONFIG_KEY] = shown
        records.append({"kind": "agents_config", "generated_at": ctx.now, "problems": problems})
    if not served:
        return records
    by_name = {s.name: s for s in served}
    served_repos = {r: ctx.repos[r] for s in served for r in s.repos if r in ctx.repos}
    runs = read_runs(served_repos, set(by_name))
    store = StateStore(ctx.hub)
    records += _lift_lapsed(ctx, store.read(), by_name)

    def change(state: FleetState) -> list[tuple[Decision, str | None, str | None, bool]]:
        note_seen(state, served, runs, ctx.now)
        acted: list[tuple[Decision, str | None, str | None, bool]] = []  # decision, task, held/failed, new
        for decision in decide(served, state, runs, ctx.now):
            if decision.verdict is not Verdict.FIRE or decision.repo is None:
                record(state, decision, ctx.now, None)
                acted.append((decision, None, None, False))
                continue
            allowed, why = ctx.may_write(decision.repo)
            if not allowed:
                record(state, decision, ctx.now, None)  # a core slot held is consumed all the same
                acted.append((decision, None, f"held: {why}", False))
                continue
            try:
                task, new = ensure_run(
                    ctx.repos[decision.repo],
                    by_name[decision.agent],
                    slot=decision.slot,
                    now=ctx.now,
                    actor=HUB_ACTOR,
                )
            except (SpeedriftError, OSError) as exc:  # the slot stays due: tried again next cycle
                acted.append((decision, None, f"failed: {exc}", False))
                continue
            record(state, decision, ctx.now, f"{decision.repo}:{task}")
            acted.append((decision, task, None, new))
        return acted

    for decision, task, trouble, new in store.update(change):
        records += _report(ctx, memory, by_name[decision.agent], decision, task, trouble, new)
    return records


def _lift_lapsed(ctx: HubContext, state: FleetState, by_name: Mapping[str, Served]) -> list[dict[str, Any]]:
    """Resume the agents whose pause had an ``until`` that has passed (their runs unpaused)."""
    out = []
    for name, served in by_name.items():
        agent = state.agents.get(name)
        if agent is None or agent.pause is None or agent.pause.active(ctx.now):
            continue
        out.append(
            pausing.resume_agent(
                ctx.hub,
                _repos_of(ctx, served),
                name,
                by=PAUSE_EXPIRED,
                now=ctx.now,
                write_graph=lambda repo: ctx.may_write(repo)[0],
            )
        )
    return out


def _repos_of(ctx: HubContext, served: Served) -> dict[str, Path]:
    return {r: ctx.repos[r] for r in served.repos if r in ctx.repos}


def _report(
    ctx: HubContext,
    memory: dict[str, str],
    served: Served,
    decision: Decision,
    task: str | None,
    trouble: str | None,
    new: bool,
) -> list[dict[str, Any]]:
    key = _key(decision.agent, decision.repo)
    base: dict[str, Any] = {
        "generated_at": ctx.now,
        "agent": decision.agent,
        "layer": decision.layer.value,
        "repo": decision.repo,
        "slot": decision.slot,
    }
    if decision.verdict is Verdict.ESCALATE:
        memory[key] = "(agent_escalated)"
        return _escalate(ctx, served, decision, base)
    if decision.verdict is Verdict.FIRE and task is not None:
        memory[key] = "(agent_run)"
        restart = None if decision.restart is None else {"n": decision.restart, "max": decision.max_restarts}
        run = {"kind": "agent_run", **base, "task": task, "restart": restart, "reason": decision.reason}
        if not new:
            run["found"] = "the run for this slot already existed (a cycle interrupted after making it)"
        return [run]
    reason = decision.reason if trouble is None else f"{trouble} ({decision.reason})"
    if decision.verdict is Verdict.WAIT:
        memory[key] = reason
        return []
    if memory.get(key) == reason:
        return []
    memory[key] = reason
    skipped = {"kind": "agent_skipped", **base, "reason": reason}
    if trouble is not None:
        skipped["held" if trouble.startswith("held") else "failed"] = True
    return [skipped]


def _escalate(
    ctx: HubContext, served: Served, decision: Decision, base: dict[str, Any]
) -> list[dict[str, Any]]:
    repos = _repos_of(ctx, served)
    paused = pausing.pause_agent(
        ctx.hub,
        repos,
        decision.agent,
        by=RESTART_CAP,
        reason=decision.reason,
        now=ctx.now,
        write_graph=lambda repo: ctx.may_write(repo)[0],
    )
    escalated: dict[str, Any] = {
        "kind": "agent_escalated",
        **base,
        "reason": decision.reason,
        "restart": {"n": decision.restart, "max": decision.max_restarts},
        "resume": f"speedrift agents resume {decision.agent}",
    }
    repo = decision.repo
    if repo is not None and repo in repos and ctx.may_write(repo)[0]:
        policy = served.agent.restart
        name = decision.agent
        detail = (
            f"The safety agent {name} ({served.source}) keeps exiting: {decision.reason}.\n\n"
            f"Its restart policy: cooldown {policy.cooldown_s:g} s, at most {policy.max_restarts}"
            f" restart(s) within {policy.window_s:g} s. It is paused; its runs are the tasks tagged"
            f" agent:{name} in {repo} (`speedrift list -t agent:{name}`, `speedrift tail TASK`).\n\n"
            f"When it is fixed: `speedrift agents resume {name}` (this escalation is then resolved)."
        )
        try:
            escalated["escalation"] = pausing.escalate(
                repos[repo],
                decision.agent,
                f"Safety agent {decision.agent} exceeded its restart cap and is paused",
                detail,
                now=ctx.now,
            )
        except (SpeedriftError, OSError, ValueError) as exc:
            escalated["escalation_problem"] = str(exc)
    return [paused, escalated]
