"""`speedrift plan status`: where each wave stands — every compiled task's state in the graph, the
closure stage the wave is at, what holds each open task — and whether its spec moved since it was
compiled.

The stage comes from the graph alone: ``implementation`` while a wave task is not done (or
abandoned), then the first closure task (integration → documentation → evaluation) not done, then
``closed``. (plans/closure.py adjudicates closure from the stages' records; this is what the graph
says.) What holds a task is graph/query.py's blocked explanation, and a ready closure task says
that `speedrift plan run` carries it out (graph/model.py ``dispatch_hold``). Drift is what
`speedrift plan compile` would do now, computed by the compile itself on the current graph:
anything added, updated or abandoned means "recompile"; a ``kept`` task changed in the spec after
it left open.

Pure but for :func:`statuses`, which reads the specs and the graph: graph, spec values and time in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.errors import NotFound, SpeedriftError
from speedrift.graph import query
from speedrift.graph.codec import Graph
from speedrift.graph.model import (
    DEP_SATISFIED,
    DISPATCHABLE,
    DONE,
    FAILED,
    IN_PROGRESS,
    Task,
    dispatch_hold,
    plan_data,
    speedrift_data,
    status_of,
)
from speedrift.graph.store import GraphStore
from speedrift.plans import spec
from speedrift.plans.closure import Phase
from speedrift.plans.compile import Change, ChangeKind, compile_wave
from speedrift.plans.compile_tasks import compiled_tasks, compiled_waves, stage_of
from speedrift.plans.spec import CLOSURE_ORDER, WaveKey
from speedrift.textclip import clip


@dataclass(frozen=True)
class TaskRow:
    id: str
    local: str  # the spec's task id, or the closure stage
    role: str
    status: str
    holds: str  # what holds it, in words ("" when nothing does: done, or running)
    closure: bool = False
    assigned: str | None = None
    reasons: tuple[Mapping[str, str], ...] = ()  # graph/query.py's direct reasons, when blocked

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "local": self.local,
            "role": self.role,
            "closure": self.closure,
            "status": self.status,
            "assigned": self.assigned,
            "holds": self.holds,
            "blocked_by": [dict(reason) for reason in self.reasons],
        }


@dataclass
class WaveStatus:
    wave: WaveKey  # a numbered wave, or an ad-hoc run's key (only when asked for by it)
    title: str = ""
    stage: Phase | None = None  # None: not compiled
    tasks: list[TaskRow] = field(default_factory=list)
    drift: list[Change] = field(default_factory=list)
    spec_problem: str | None = None  # why the spec cannot be compared (missing, invalid, refused)
    spec_hash: str | None = None

    @property
    def compiled(self) -> bool:
        return self.stage is not None

    @property
    def recompile(self) -> bool:
        """The graph is behind the spec: a compile would add, update or abandon something."""
        return any(change.kind is not ChangeKind.KEPT for change in self.drift)

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "title": self.title,
            "compiled": self.compiled,
            "stage": self.stage.value if self.stage is not None else None,
            "recompile": self.recompile,
            "drift": [change.as_dict() for change in self.drift],
            "spec_problem": self.spec_problem,
            "spec_hash": self.spec_hash,
            "tasks": [row.as_dict() for row in self.tasks],
        }


def wave_stage(tasks: Sequence[Task]) -> Phase | None:
    """The stage a wave's compiled tasks are at (see the module docstring); None when none are."""
    if not tasks:
        return None
    closure = {stage: task for task in tasks if (stage := stage_of(task)) is not None}
    if any(status_of(t) not in DEP_SATISFIED for t in tasks if stage_of(t) is None):
        return Phase.IMPLEMENTATION
    for stage in CLOSURE_ORDER:
        task = closure.get(stage)
        if task is None or status_of(task) != DONE:
            return Phase(stage.value)
    return Phase.CLOSED


def _holds(task: Task, ready: set[str], blocked: Mapping[str, list[dict[str, str]]]) -> str:
    status = status_of(task)
    if task["id"] in ready:
        hold = dispatch_hold(task)
        return f"ready: {hold}" if hold else "ready: waiting to be picked up"
    reasons = blocked.get(task["id"])
    if reasons:
        by_state: dict[str, list[str]] = {}  # "after a, b (open)": blockers grouped by what holds them
        others: list[str] = []
        for reason in reasons:
            if reason.get("kind") == "blocker":
                by_state.setdefault(reason.get("detail", ""), []).append(reason.get("blocker", "?"))
            else:
                others.append(reason.get("detail", ""))
        said = [f"after {', '.join(ids)} ({state})" for state, ids in by_state.items()]
        return "; ".join([*said, *others])
    if status == FAILED:
        return "failed: retry it to unblock the wave"
    if status == IN_PROGRESS:
        data = speedrift_data(task)  # merge-pending: gated, waiting to land (an approval, a dirty checkout)
        return (
            f"waiting to land: {data.get('pending_reason')}" if data.get("state") == "merge-pending" else ""
        )
    if status not in DISPATCHABLE and status not in DEP_SATISFIED:
        return status
    return ""


def wave_status(
    graph: Graph,
    wave: WaveKey,
    value: Mapping[str, Any] | None,
    *,
    now: datetime,
    ready: set[str] | None = None,
    blocked: Mapping[str, list[dict[str, str]]] | None = None,
    spec_problem: str | None = None,
) -> WaveStatus:
    """Wave ``wave`` as ``graph`` holds it, compared with its spec ``value`` (None: no readable spec,
    ``spec_problem`` says why). ``ready``/``blocked``: graph/query.py's answers for the whole graph,
    when the caller asks about several waves (computed here otherwise)."""
    if ready is None:
        ready = set(query.ready_ids(graph, now))
    if blocked is None:
        blocked = {row["id"]: row["reasons"] for row in query.blocked(graph, now)}
    tasks = compiled_tasks(graph, wave)
    listed = value.get("tasks") if value is not None else None
    places = {
        str(item.get("id")): index
        for index, item in enumerate(listed if isinstance(listed, list) else [])
        if isinstance(item, Mapping)
    }
    tasks.sort(key=lambda task: _order(task, places))
    out = WaveStatus(wave, stage=wave_stage(tasks), spec_problem=spec_problem)
    for task in tasks:
        plan = plan_data(task)
        stage = stage_of(task)
        assigned = task.get("assigned")
        out.tasks.append(
            TaskRow(
                id=task["id"],
                local=stage.value if stage is not None else str(plan.get("task", "")),
                role=str(plan.get("role", "")),
                status=status_of(task),
                holds=_holds(task, ready, blocked),
                closure=stage is not None,
                assigned=assigned if isinstance(assigned, str) else None,
                reasons=tuple(blocked.get(task["id"], ())),
            )
        )
    if value is None:
        return out
    out.title = str(value.get("title", ""))
    problems = spec.schema_problems(value)
    if problems:
        out.spec_problem = f"the spec fails its schema ({clip(problems[0], 200)}): run `speedrift plan lint`"
        return out
    if spec.key_of_value(value) != wave:
        out.spec_problem = (
            f"the spec of {spec.label(wave)} says wave {value.get('wave')!r}: run `speedrift plan lint`"
        )
        return out
    out.spec_hash = spec.spec_hash(value)
    try:
        out.drift = compile_wave(graph, value, now=now, actor=None).changes
    except SpeedriftError as error:
        out.spec_problem = _problem(error)
    return out


def _problem(error: SpeedriftError) -> str:
    return clip(error.message + (f" (fix: {error.hint})" if error.hint else ""), 400)


def _order(task: Task, places: Mapping[str, int]) -> tuple[int, int, str]:
    """Wave tasks first (in spec order, then by id), then the closure in its order."""
    stage = stage_of(task)
    if stage is None:
        return (0, places.get(str(plan_data(task).get("task")), len(places)), str(task["id"]))
    return (1, CLOSURE_ORDER.index(stage), str(task["id"]))


def statuses(repo: Path, store: GraphStore, wave: WaveKey | None, *, now: datetime) -> list[WaveStatus]:
    """Every numbered wave of ``repo`` (with a spec or compiled into its graph), or only ``wave``
    (an ad-hoc run's key too: those are never listed, only asked for)."""
    graph = store.load()
    known: list[WaveKey] = sorted(set(spec.wave_numbers(repo)) | set(compiled_waves(graph)))
    if wave is not None:
        adhoc = isinstance(wave, str) and (
            spec.spec_path(repo, wave).is_file() or bool(compiled_tasks(graph, wave))
        )
        if wave not in known and not adhoc:
            raise NotFound(
                f"wave {wave} has no spec ({spec.SPECS_DIR}/wave-{wave}.json) and no compiled task",
                hint="`speedrift plan status` lists the waves",
            )
        known = [wave]
    ready = set(query.ready_ids(graph, now))
    blocked = {row["id"]: row["reasons"] for row in query.blocked(graph, now)}
    out = []
    for number in known:
        value: dict[str, Any] | None = None
        problem: str | None = None
        try:
            value = spec.read(spec.spec_path(repo, number))
        except SpeedriftError as error:
            problem = _problem(error)
        out.append(
            wave_status(graph, number, value, now=now, ready=ready, blocked=blocked, spec_problem=problem)
        )
    return out
