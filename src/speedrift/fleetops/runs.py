"""A standing agent's runs: the tasks tagged ``agent:<name>`` in the served repos' graphs.

Creating one follows the run-task contract (docs: the standing agents' run tasks): id
``agent-<name>-<UTC yyyymmddHHMM>`` (``-2``… when taken), title ``<title or name> (<slot or "on
demand">)``, the prompt (or the role's template) as its description, tags ``agent:<name>`` and the
agent's capabilities, ``model`` when the agent names a ``runtime:model``, ``exec`` for a shell
agent, and ``speedrift.agent`` = {name, layer, slot, limits, budgets, fallback} (empty values
dropped). It is written through the one graph writer (GraphStore.mutate + graph/ops.py add_task,
as ``speedrift add`` does) and then runs like any task: the hub's dispatch, the repo's service or
``speedrift run``.

Invariant: a cron slot yields at most one run per repo. A run for a slot is looked up by
``speedrift.agent.slot`` under the graph lock before one is added, so a hub that fired a slot and
died before recording it finds the run it made instead of making a second one.

:class:`RunsView` is what the scheduler reads: every agent's runs per repo, oldest first, with
their status and when they ended (``completed_at``, else the time of the last log line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from speedrift.agents.choose import MODEL_RUNTIMES, RUNTIME_NAMES
from speedrift.attemptlog import agent_of
from speedrift.errors import NotFound, SpeedriftError
from speedrift.fleet.config import load_config
from speedrift.fleet.opsconfig import TIERS, AgentDef
from speedrift.fleet.roles.model import PLACEHOLDER, load_role
from speedrift.fleetops.declared import Served
from speedrift.graph import ids, ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import TERMINAL, Task, speedrift_data, status_of
from speedrift.graph.store import GraphStore
from speedrift.times import iso_utc, parse_time

AGENT_KEY = "agent"  # speedrift.agent on a run task
ON_DEMAND = "on demand"


# --- reading --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    repo: str
    task: str
    status: str
    paused: bool
    slot: datetime | None
    created_at: datetime | None
    ended_at: datetime | None  # None while it is not finished

    @property
    def open(self) -> bool:
        """Not finished: waiting, claimed or being validated (done, failed and abandoned are finished)."""
        return self.status not in TERMINAL

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.task}"


@dataclass
class RunsView:
    """Every agent's runs: agent → repo → runs, oldest first. ``problems``: graphs not read."""

    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def of(self, agent: str, repo: str) -> list[Run]:
        return self.runs.get(agent, {}).get(repo, [])

    def open_in(self, agent: str, repo: str) -> list[Run]:
        return [r for r in self.of(agent, repo) if r.open]

    def all_of(self, agent: str) -> list[Run]:
        found = [run for runs in self.runs.get(agent, {}).values() for run in runs]
        return sorted(found, key=_order)

    def last_ended(self, agent: str, repo: str | None = None) -> Run | None:
        """The run that ended last (in ``repo``, or in any repo)."""
        runs = self.of(agent, repo) if repo is not None else self.all_of(agent)
        ended = [r for r in runs if not r.open and r.ended_at is not None]
        return max(ended, key=lambda r: r.ended_at or datetime.min, default=None)

    def add(self, agent: str, run: Run) -> None:
        repo_runs = self.runs.setdefault(agent, {}).setdefault(run.repo, [])
        repo_runs.append(run)
        repo_runs.sort(key=_order)


def _order(run: Run) -> tuple[str, str]:
    return (iso_utc(run.created_at) if run.created_at else "", run.task)


def _ended_at(task: Task) -> datetime | None:
    done = parse_time(task.get("completed_at"))
    if done is not None:
        return done
    log = task.get("log")
    for entry in reversed(log if isinstance(log, list) else []):
        moment = parse_time(entry.get("timestamp")) if isinstance(entry, dict) else None
        if moment is not None:
            return moment
    return parse_time(task.get("created_at"))


def run_of(repo: str, task: Task) -> Run:
    status = status_of(task)
    data = speedrift_data(task).get(AGENT_KEY)
    slot = parse_time(data.get("slot")) if isinstance(data, dict) else None
    return Run(
        repo=repo,
        task=str(task.get("id", "")),
        status=status,
        paused=task.get("paused") is True,
        slot=slot,
        created_at=parse_time(task.get("created_at")),
        ended_at=_ended_at(task) if status in TERMINAL else None,
    )


def read_runs(repos: Mapping[str, Path], agents: set[str] | None = None) -> RunsView:
    """The runs of ``agents`` (None: every agent) in each repo's graph, read lock-free."""
    view = RunsView()
    for repo_name, path in sorted(repos.items()):
        store = GraphStore.of_repo(path)
        if store is None:
            continue
        try:
            graph = store.load()
        except (SpeedriftError, OSError) as exc:
            view.problems.append(f"{repo_name}: graph not read: {exc}")
            continue
        for task in graph.tasks.values():
            tags = task.get("tags")
            name = agent_of(tags) if isinstance(tags, list) else None
            if name is not None and (agents is None or name in agents):
                view.add(name, run_of(repo_name, task))
    return view


# --- creating -------------------------------------------------------------------------------------------
def run_id(name: str, moment: datetime, taken: Mapping[str, object]) -> str:
    """``agent-<name>-<UTC yyyymmddHHMM>``, with ``-2``, ``-3``… when taken."""
    safe = name
    while ".." in safe:
        safe = safe.replace("..", ".")
    base = f"agent-{safe.rstrip('.')}-{moment.astimezone(UTC).strftime('%Y%m%d%H%M')}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return ids.validate_id(candidate)


def task_model(agent: AgentDef) -> str | None:
    """The ``model`` field of a run: the agent's ``runtime:model`` when it names one (a routing tier
    or a bare runtime is not a model: it is kept in ``speedrift.agent.model`` for routing)."""
    model = (agent.model or "").strip()
    prefix, sep, rest = model.partition(":")
    if sep and prefix in MODEL_RUNTIMES and rest:
        return model
    if not model or model in TIERS or model in RUNTIME_NAMES:
        return None
    return model  # an unprefixed model: the repo's default runtime runs it (agents/choose.py)


def _dropped(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != [] and v != {}}


def agent_object(agent: AgentDef, slot: datetime | None) -> dict[str, Any]:
    """The run's ``speedrift.agent`` (None and empty values dropped; ``slot`` None: on demand)."""
    return _dropped(
        {
            "name": agent.name,
            "layer": agent.layer.value,
            "slot": iso_utc(slot) if slot is not None else None,
            "limits": _dropped(agent.limits.model_dump()),
            "budgets": _dropped(agent.budgets.model_dump()),
            "fallback": list(agent.fallback),
            "model": agent.model if agent.model and task_model(agent) is None else None,
            "role": agent.role.value if agent.role is not None else None,
        }
    )


def description_for(agent: AgentDef, repo: Path) -> str | None:
    """The run's description: the agent's prompt, else its role's template (the repo's override
    when it has one) with the role's inputs named where a role run would fill them in."""
    if agent.prompt:
        return agent.prompt
    if agent.role is None:
        return None
    template_path = load_config(repo).role(agent.role.value).template
    role = load_role(repo, agent.role, template_path)
    described = {i.name: i.description for i in role.inputs}

    def name_input(match: Any) -> str:
        key = match.group(1)
        return f"({key}: {described.get(key, 'not given')} — not given to a standing agent's run)"

    head = f"Standing agent {agent.name}, as the {role.title} role: {role.summary}".strip()
    return f"{head}\n\n{PLACEHOLDER.sub(name_input, role.template).strip()}\n"


def _existing_run(graph: Graph, name: str, slot: datetime) -> str | None:
    for task in graph.tasks.values():
        tags = task.get("tags")
        if not isinstance(tags, list) or agent_of(tags) != name:
            continue
        data = speedrift_data(task).get(AGENT_KEY)
        if isinstance(data, dict) and parse_time(data.get("slot")) == slot:
            return str(task.get("id"))
    return None


def ensure_run(
    repo: Path, served: Served, *, slot: datetime | None, now: datetime, actor: str
) -> tuple[str, bool]:
    """The run of ``served`` in ``repo`` for ``slot`` (None: on demand, always a new one): its task
    id, and whether it was created now (False: the slot's run already existed)."""
    store = GraphStore.of_repo(repo)
    if store is None:
        raise NotFound(f"{repo} has no task graph", hint=f"run `speedrift init {repo}`")
    agent = served.agent
    description = description_for(agent, repo)
    title = f"{agent.title or agent.name} ({iso_utc(slot) if slot is not None else ON_DEMAND})"
    created: dict[str, bool] = {}

    def build(graph: Graph, at: datetime) -> ops.Mutation:
        if slot is not None and (found := _existing_run(graph, agent.name, slot)) is not None:
            created[found] = False
            return ops.Mutation()
        spec = ops.NewTask(
            title=title,
            task_id=run_id(agent.name, slot or at, graph.tasks),
            description=description,
            tags=[f"agent:{agent.name}", *agent.capabilities],
            model=task_model(agent),
            exec_command=agent.exec,
        )
        mutation = ops.add_task(graph, spec, now=at, actor=actor)
        task_id = mutation.tasks[0]["id"]
        ops.set_fields(
            graph,
            task_id,
            speedrift={AGENT_KEY: agent_object(agent, slot)},
            now=at,
            actor=actor,
            within=mutation,
        )
        created[task_id] = True
        return mutation

    store.mutate(build, actor=actor, now=now)
    ((task_id, new),) = created.items()
    return task_id, new


def create_run(repo: Path, served: Served, *, slot: datetime | None, now: datetime, actor: str) -> str:
    """Create (or, for a slot already fired, find) the run task; its id. See :func:`ensure_run`."""
    return ensure_run(repo, served, slot=slot, now=now, actor=actor)[0]
