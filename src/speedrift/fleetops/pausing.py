"""Pausing and resuming a standing agent, durably: its state, its waiting runs, its escalations.

A pause is written to the agents' state first (fleetops/state.py: it survives a hub restart, and
the scheduler fires nothing for a paused agent), then every run of the agent that is waiting in a
served repo's graph (open, blocked or incomplete, not yet claimed: tasks tagged ``agent:<name>``)
gets wg's ``paused`` field, so no dispatcher claims it — through the one graph writer
(GraphStore.mutate + graph/ops.py). Each task paused here is marked ``speedrift.agent_pause`` with
who paused it; a resume lifts the pause only on tasks carrying that mark, so a task a person
paused by hand stays paused. Runs already claimed keep running (the nightwatch restarts or a
person cancels those).

Who wins: a person's pause (``by = "operator:<name>"``) always replaces the current one; an
automatic pause (``nightwatch``, ``restart-cap``) never replaces a pause still in force, so a
restart-cap pause is not turned into one that lapses by itself. A resume lifts whatever pause is
set, forgets the safety restarts counted so far (a person gave it a fresh start), and resolves the
open escalations the restart cap posted for the agent.

``write_graph(repo)`` says whether the caller may change that repo's graph (the hub passes its
authority, the CLI always yes); a repo it may not write is named in the record, never written.

Lock order: these functions take the agents-state lock and then graph locks. Never call them
inside :meth:`StateStore.update` (flock is not re-entrant: that would wait for itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.attemptlog import agent_of
from speedrift.coord.records import REPO_SCOPE, Actor, Author, Draft, Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.errors import Refused, SpeedriftError
from speedrift.fleetops import nightwatch
from speedrift.fleetops.state import DriftLevel, FleetState, Pause, StateStore
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import BLOCKED, INCOMPLETE, OPEN, speedrift_data, status_of
from speedrift.graph.store import GraphStore
from speedrift.textclip import clip

PAUSE_MARK = "agent_pause"  # speedrift.agent_pause on a task this module paused: who paused the agent
WAITING = frozenset({OPEN, BLOCKED, INCOMPLETE})  # a run not yet claimed
OPERATOR_PREFIX = "operator:"
ESCALATION_SOURCE = "agent-restart-cap"  # data.source of the escalations the restart cap posts
ACTOR = "speedrift-agents"

WriteGraph = Callable[[str], bool]


def _always(_repo: str) -> bool:
    return True


def pause_agent(
    hub: Path,
    repos: Mapping[str, Path],
    name: str,
    *,
    by: str,
    reason: str,
    now: datetime,
    until: datetime | None = None,
    write_graph: WriteGraph | None = None,
) -> dict[str, Any]:
    """Pause agent ``name`` (see the module docstring); returns the ``agent_pause`` ledger record.

    ``repos``: the repos whose graphs hold its runs (name → path). The record's ``changed`` is
    False when an automatic pause found the agent already paused (the pause in force is kept and
    named in ``kept``); its waiting runs are paused either way."""

    def change(state: FleetState) -> tuple[bool, Pause | None]:
        agent = state.agent(name)
        current = agent.pause
        if current is not None and current.active(now) and not by.startswith(OPERATOR_PREFIX):
            return False, current
        agent.pause = Pause(since=now, by=by, reason=reason, until=until)
        return True, None

    changed, kept = StateStore(hub).update(change)
    tasks, held, problems = _each_repo(repos, write_graph, lambda graph, t: _pause_tasks(graph, name, by, t))
    record: dict[str, Any] = {
        "kind": "agent_pause",
        "generated_at": now,
        "agent": name,
        "by": by,
        "reason": reason,
        "until": until,
        "tasks": tasks,
        "changed": changed,
    }
    if kept is not None:
        record["kept"] = {"by": kept.by, "reason": kept.reason, "since": kept.since, "until": kept.until}
    if held:
        record["not_written"] = held
    if problems:
        record["problems"] = problems
    return record


def resume_agent(
    hub: Path,
    repos: Mapping[str, Path],
    name: str,
    *,
    by: str,
    now: datetime,
    write_graph: WriteGraph | None = None,
) -> dict[str, Any]:
    """Lift agent ``name``'s pause (see the module docstring); returns the ``agent_resume`` record.

    An agent that is not paused is left as it is: ``changed`` is False and ``message`` says so
    (its graph is still swept for runs this module paused, which a crash may have left behind)."""

    def change(state: FleetState) -> Pause | None:
        agent = state.agents.get(name)
        if agent is None or agent.pause is None:
            return None
        lifted = agent.pause
        agent.pause = None
        agent.restarts = []
        if agent.drift.level is DriftLevel.CRITICAL:  # the nightwatch judges it from now on
            nightwatch.judge_afresh(state, name, now)
        return lifted

    lifted = StateStore(hub).update(change)
    tasks, held, problems = _each_repo(repos, write_graph, lambda graph, t: _resume_tasks(graph, name, t))
    settled: list[str] = []
    if lifted is not None:
        settled = _settle(repos, write_graph, name, by, now, problems)
    record: dict[str, Any] = {
        "kind": "agent_resume",
        "generated_at": now,
        "agent": name,
        "by": by,
        "reason": None if lifted is None else f"lifted the pause by {lifted.by}: {lifted.reason}",
        "until": None,
        "tasks": tasks,
        "changed": lifted is not None,
    }
    if lifted is None:
        record["message"] = f"agent {name!r} is not paused; nothing to resume"
    else:
        record["lifted"] = {"by": lifted.by, "reason": lifted.reason, "since": lifted.since}
        record["message"] = f"agent {name!r} resumed (it was paused by {lifted.by}: {lifted.reason})"
    if settled:
        record["escalations_resolved"] = settled
    if held:
        record["not_written"] = held
    if problems:
        record["problems"] = problems
    return record


# --- the graphs ----------------------------------------------------------------------------------------
def _each_repo(
    repos: Mapping[str, Path],
    write_graph: WriteGraph | None,
    build: Callable[[Graph, datetime], ops.Mutation],
) -> tuple[list[str], list[str], list[str]]:
    """Apply ``build`` to each repo's graph; (``repo:task`` changed, repos not written, problems)."""
    allowed = write_graph or _always
    changed: list[str] = []
    held: list[str] = []
    problems: list[str] = []
    for repo_name, path in sorted(repos.items()):
        if not allowed(repo_name):
            held.append(repo_name)
            continue
        store = GraphStore.of_repo(path)
        if store is None:
            continue  # no graph: no runs to change
        try:
            mutation = store.mutate(build, actor=ACTOR)
        except (SpeedriftError, OSError) as exc:
            problems.append(f"{repo_name}: {exc}")
            continue
        changed += [f"{repo_name}:{record.task_id}" for record in mutation.records]
    return changed, held, problems


def _runs_of(graph: Graph, name: str) -> list[dict[str, Any]]:
    out = []
    for task in graph.tasks.values():
        tags = task.get("tags")
        if isinstance(tags, list) and agent_of(tags) == name:
            out.append(task)
    return out


def _merge(into: ops.Mutation, part: ops.Mutation) -> None:
    into.tasks += part.tasks
    into.records += part.records
    into.warnings += part.warnings


def _pause_tasks(graph: Graph, name: str, by: str, now: datetime) -> ops.Mutation:
    mutation = ops.Mutation()
    for task in _runs_of(graph, name):
        if status_of(task) not in WAITING or task.get("paused") is True:
            continue
        task_id = str(task["id"])
        part = ops.set_paused(graph, task_id, True, now=now, actor=ACTOR)
        ops.set_fields(graph, task_id, speedrift={PAUSE_MARK: by}, now=now, actor=ACTOR, within=part)
        _merge(mutation, part)
    return mutation


def _resume_tasks(graph: Graph, name: str, now: datetime) -> ops.Mutation:
    mutation = ops.Mutation()
    for task in _runs_of(graph, name):
        if PAUSE_MARK not in speedrift_data(task):
            continue
        task_id = str(task["id"])
        if task.get("paused") is True:
            part = ops.set_paused(graph, task_id, False, now=now, actor=ACTOR)
            ops.set_fields(graph, task_id, speedrift={PAUSE_MARK: None}, now=now, actor=ACTOR, within=part)
        else:  # resumed by hand meanwhile: only the mark is left to remove
            part = ops.set_fields(graph, task_id, speedrift={PAUSE_MARK: None}, now=now, actor=ACTOR)
        _merge(mutation, part)
    return mutation


# --- escalations ---------------------------------------------------------------------------------------
def escalate(repo: Path, name: str, summary: str, detail: str, *, now: datetime) -> str:
    """Ask a person about agent ``name`` in ``repo``: an open ``human_escalation`` record of the
    repo's coordination store (the dashboard's human queue and the attention queue show it).
    Resolved by :func:`resume_agent`. Returns the record's id."""
    record = CoordStore.for_scope(repo, REPO_SCOPE).post(
        Draft(
            Kind.HUMAN_ESCALATION,
            clip(summary, 500),
            Author(Actor.SPEEDRIFT, name=ACTOR),
            detail=clip(detail, 10_000, flatten=False),
            targets=("human",),
            data={"source": ESCALATION_SOURCE, "agent": name},
        ),
        now=now,
    )
    return record.id


def _settle(
    repos: Mapping[str, Path],
    write_graph: WriteGraph | None,
    name: str,
    by: str,
    now: datetime,
    problems: list[str],
) -> list[str]:
    """Resolve the open restart-cap escalations of agent ``name`` in the repos; their ids."""
    allowed = write_graph or _always
    settled: list[str] = []
    for repo_name, path in sorted(repos.items()):
        if not allowed(repo_name):
            continue
        try:
            store = CoordStore.for_scope(path, REPO_SCOPE)
            if not store.path.is_file():
                continue
            for record in store.read().open_records():
                mine = record.kind is Kind.HUMAN_ESCALATION and record.data.get("source") == ESCALATION_SOURCE
                if not mine or record.data.get("agent") != name:
                    continue
                try:
                    store.update(
                        record.id,
                        Status.RESOLVED,
                        author=Author(Actor.SPEEDRIFT, name=ACTOR),
                        detail=f"agent {name} resumed by {by}",
                        now=now,
                        only_if_open=True,
                    )
                except Refused:
                    continue  # a person closed it meanwhile
                settled.append(f"{repo_name}:{record.id}")
        except (SpeedriftError, OSError, ValueError) as exc:
            problems.append(f"{repo_name}: escalations not resolved: {exc}")
    return settled
