"""The form a wave's tasks take in the graph: their deterministic ids, their hashes, and every field
compile writes, derived from the spec alone (plans/compile.py compares it with the graph).

Task ``a1`` of wave 5 is ``w5-a1``; the closure tasks are ``w5.integration`` → ``w5.documentation``
→ ``w5.evaluation`` (a spec task id cannot hold a dot, so the two never collide). An ad-hoc run's
(plans/adhoc.py) are named by its key instead: ``adhoc-<run id>-a1``, ``adhoc-<run id>.integration``,
tag and scope ``adhoc-<run id>``, ``speedrift.plan.wave`` the key (a string, so the numbered waves'
readers, :func:`wave_of`, never see it). A wave task gets
its title; a description (prompt, exit contract, validation); ``after`` = its wave dependencies —
and, when the wave runs after earlier waves (``sequencing.after_waves``), its first tasks wait for
those waves' evaluation tasks; the tags ``wave-<n>`` and its role; its declared scope
(``speedrift.touch`` = its owned globs, what gates/scope.py enforces); its deliverables (what the
contract gate checks, and the developer's prompt lists); its acceptance criteria
(``speedrift.acceptance_criteria``); the wave as its spec excerpt (``speedrift.spec``); its runtime
and model as ``model`` (``runtime:model``, agents/choose.py); and ``speedrift.plan``: wave, local
id, role, hashes, validation commands, and what speedrift has no per-task field for yet (fallback
runtimes, budgets, capabilities, components, deploy). A closure task carries
``speedrift.plan.stage`` and its role: no developer attempt runs it (graph/model.py
``dispatch_hold``).

Two hashes say what a task was compiled from: ``task_hash``, of the spec task's canonical JSON, and
``context_hash``, of the wave around it (title, summary, sequencing; for the integration task also
the wave's task ids, which it runs after). A closure task's ``task_hash`` covers its stage, the
spec's guidance for it and the wave's validation commands. ``spec_hash`` is the whole spec's hash
when the task was last written.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from speedrift.agents.choose import MODEL_RUNTIMES
from speedrift.errors import InvalidValue, Refused, UsageError
from speedrift.fleet import approval
from speedrift.fleet.coordination import CAPABILITIES_KEY, SCOPE_KEY
from speedrift.fleet.roles.inputs import TASK_CRITERIA_KEY, TASK_SPEC_KEY
from speedrift.graph import ids
from speedrift.graph.codec import Graph
from speedrift.graph.model import APPROVAL_KEY, PLAN_KEY, PLAN_STAGE_KEY, Task, plan_data
from speedrift.plans import spec
from speedrift.plans.spec import ClosureStage, Mode, RuntimeProfile, TaskRole, WaveKey, WaveSpec, WaveTask

_STAGE_WORK = {
    ClosureStage.INTEGRATION: (
        "Integrate {wave}: read every task's result and write one integration_summary record — "
        "claims, interface drift, proof gaps, doc gaps, deploy risk. A gap is reported, never waved through."
    ),
    ClosureStage.DOCUMENTATION: (
        "Close {wave}'s documentation deltas: every doc gap the integration named is written or "
        "reported still open."
    ),
    ClosureStage.EVALUATION: (
        "Give {wave}'s final verdict against its tasks' exit contracts; an open gap of an earlier "
        "stage is never erased here."
    ),
}
_STAGE_CRITERIA = {
    ClosureStage.INTEGRATION: "one integration_summary record covers every task of the wave",
    ClosureStage.DOCUMENTATION: "every doc gap of the integration summary is closed or reported open",
    ClosureStage.EVALUATION: "a verdict judges every task of the wave; no open gap is counted as a pass",
}


# --- ids and hashes --------------------------------------------------------------------------------
def task_id(wave: WaveKey, local: str) -> str:
    return f"w{wave}-{local}" if isinstance(wave, int) else f"{wave}-{local}"


def closure_id(wave: WaveKey, stage: ClosureStage) -> str:
    return f"w{wave}.{stage.value}" if isinstance(wave, int) else f"{wave}.{stage.value}"


def wave_tag(wave: WaveKey) -> str:
    return spec.key_name(wave)


def command_of(wave: WaveKey, verb: str) -> str:
    """The command that compiles or runs the wave: an ad-hoc run does both itself."""
    return f"speedrift plan {verb} {wave}" if isinstance(wave, int) else "speedrift adhoc run"


@cache  # asked for every task of a wave: one Path built per wave, not per task
def spec_source(wave: WaveKey) -> str:
    """The spec's path relative to the repository (what a task names as its source)."""
    return spec.spec_path(Path(), wave).as_posix()


def _digest(value: Any) -> str:
    return hashlib.sha256(spec.canonical(value)).hexdigest()


def task_hash(item: Mapping[str, Any]) -> str:
    """The hash of one spec task's canonical JSON."""
    return _digest(item)


def wave_of(task: Task) -> int | None:
    """The numbered wave ``task`` was compiled from (None for an ad-hoc run's: see :func:`key_of`)."""
    wave = plan_data(task).get("wave")
    return wave if isinstance(wave, int) and not isinstance(wave, bool) else None


def key_of(task: Task) -> WaveKey | None:
    """The wave ``task`` was compiled from: a number, or an ad-hoc run's key."""
    wave = plan_data(task).get("wave")
    return wave if isinstance(wave, str) and spec.is_adhoc_key(wave) else wave_of(task)


def stage_of(task: Task) -> ClosureStage | None:
    stage = plan_data(task).get(PLAN_STAGE_KEY)
    try:
        return ClosureStage(stage) if isinstance(stage, str) else None
    except ValueError:
        return None


def compiled_tasks(graph: Graph, wave: WaveKey) -> list[Task]:
    """The graph's tasks compiled from wave ``wave`` (closure tasks included), in file order."""
    return [t for t in graph.tasks.values() if key_of(t) == wave]


def compiled_waves(graph: Graph) -> list[int]:
    return sorted({w for t in graph.tasks.values() if (w := wave_of(t)) is not None})


# --- what the graph should hold --------------------------------------------------------------------
@dataclass
class Want:
    id: str
    local: str
    title: str
    description: str
    after: list[str]
    tags: list[str]  # the tags compile owns
    speedrift: dict[str, Any]  # acceptance criteria, spec, plan (touch separately)
    model: str | None = None
    touch: list[str] = field(default_factory=list)
    deliverables: list[str] = field(default_factory=list)

    @property
    def plan(self) -> dict[str, Any]:
        value: dict[str, Any] = self.speedrift[PLAN_KEY]
        return value

    def fingerprint(self) -> tuple[Any, Any]:
        return self.plan.get("task_hash"), self.plan.get("context_hash")


def _clean_line(text: str, what: str, limit: int = 200) -> str:
    return ids.clean_text(text.strip()[:limit].strip(), what, limit=limit, multiline=False)


def _model(local: str, profile: RuntimeProfile) -> str | None:
    """The task's ``model`` as agents/choose.py reads it: ``runtime:model``, ``runtime:`` (the
    runtime's configured model), a bare model (the repo's default runtime), or None."""
    if profile.runtime is None:
        return profile.model
    if profile.runtime not in MODEL_RUNTIMES:
        raise InvalidValue(
            f"task {local!r}: runtime {profile.runtime!r} cannot run a wave task's prompt",
            hint=f"name one of {', '.join(MODEL_RUNTIMES)} in its runtime profile (a shell task has no "
            "prompt to run)",
        )
    return f"{profile.runtime}:{profile.model or ''}"


def _criteria(task: WaveTask) -> list[dict[str, str]]:
    out = [
        {"criterion": f"{path} exists and is committed", "verify_by": "the contract gate"}
        for path in task.deliverables
    ]
    if task.exit_contract is not None:
        c = task.exit_contract
        out.append(
            {
                "criterion": f"the result reaches its exit contract: completion {c.completion}, durability "
                f"{c.durability}, proof {c.proof}, doc impact {c.doc_impact} (each at least)",
                "verify_by": "the wave's integration and evaluation (`speedrift plan run`)",
            }
        )
    out += [
        {"criterion": f"`{command}` passes", "verify_by": "speedrift runs it on the task's result"}
        for command in task.validation
    ]
    return out


def _describe(wave: WaveSpec, task: WaveTask) -> str:
    parts = [task.prompt.strip()]
    if task.exit_contract is not None:
        c = task.exit_contract
        parts.append(
            f"Exit contract (the least the result must reach): completion {c.completion}, durability "
            f"{c.durability}, proof {c.proof}, doc impact {c.doc_impact}."
        )
    if task.validation:
        lines = "\n".join(f"- `{command}`" for command in task.validation)
        parts.append(f"Validation (speedrift runs these on the result before it lands):\n{lines}")
    parts.append(
        f"Task {task.id} ({task.role}) of {spec.label(wave.key)} ({wave.title}), compiled from "
        f"{spec_source(wave.key)} by `{command_of(wave.key, 'compile')}`. Change only the files this "
        "task owns (its declared scope): the wave's other tasks own theirs."
    )
    return "\n\n".join(parts)


def _spec_excerpt(wave: WaveSpec) -> dict[str, str]:
    text = [f"{spec.label(wave.key, capital=True)}: {wave.title}"]
    if wave.summary.strip():
        text.append(wave.summary.strip())
    if wave.sequencing_note.strip():
        text.append(f"Sequencing: {wave.sequencing_note.strip()}")
    return {"source": spec_source(wave.key), "text": "\n\n".join(text)}


def _context_hash(wave: WaveSpec, **more: Any) -> str:
    return _digest(
        {
            "wave": wave.wave,
            "title": wave.title,
            "summary": wave.summary,
            "note": wave.sequencing_note,
            "after_waves": list(wave.after_waves),
            "mode": wave.mode.value,
            **more,
        }
    )


def want_task(wave: WaveSpec, task: WaveTask, item: Mapping[str, Any], shash: str, first: list[str]) -> Want:
    plan: dict[str, Any] = {
        "wave": wave.key,
        "task": task.id,
        "role": task.role,
        "spec_hash": shash,
        "task_hash": task_hash(item),
        "context_hash": _context_hash(wave),
        "validation": list(task.validation),
    }
    runtime: dict[str, Any] = {}
    if task.runtime.fallbacks:
        runtime["fallbacks"] = list(task.runtime.fallbacks)
    budgets = {
        key: value
        for key, value in (
            ("wall_clock_minutes", task.runtime.wall_clock_minutes),
            ("max_turns", task.runtime.max_turns),
            ("max_cost_usd", task.runtime.max_cost_usd),
        )
        if value is not None
    }
    if budgets:
        runtime["budgets"] = budgets  # kept here: the pipeline reads only [budgets] of speedrift.toml
    if runtime:
        plan["runtime"] = runtime
    for key, values in (("capabilities", task.capabilities), ("components", task.components)):
        if values:
            plan[key] = list(values)
    if task.deploy is not None:
        plan["deploy"] = {
            k: v
            for k, v in (("environment", task.deploy.environment), ("rollback", task.deploy.rollback))
            if v
        }
    try:
        title = _clean_line(task.title, "title")
        description = ids.clean_text(
            _describe(wave, task), "description", limit=ids.MAX_DESCRIPTION_LENGTH, multiline=True
        )
    except UsageError as error:
        raise InvalidValue(f"task {task.id!r}: {error.message}", hint="fix the task in the spec") from None
    return Want(
        id=task_id(wave.key, task.id),
        local=task.id,
        title=title,
        description=description,
        after=[task_id(wave.key, d) for d in task.after] or list(first),
        tags=[wave_tag(wave.key), task.role],
        speedrift={
            TASK_CRITERIA_KEY: _criteria(task),
            TASK_SPEC_KEY: _spec_excerpt(wave),
            PLAN_KEY: plan,
            APPROVAL_KEY: _approval(wave, task),
            # its developers post to, and read their inbox from, the wave's coordination scope
            SCOPE_KEY: spec.scope_of(wave.key),
            CAPABILITIES_KEY: list(task.capabilities) or None,
        },
        model=_model(task.id, task.runtime),
        touch=list(task.owned),
        deliverables=list(task.deliverables),
    )


def _approval(wave: WaveSpec, task: WaveTask) -> dict[str, bool] | None:
    """An oversight wave's checkpoints (fleet/approval.py): every task's merge waits for a person,
    a deploy task's start too. A dark-factory wave waits for nobody (None removes an earlier one)."""
    if wave.mode is not Mode.OVERSIGHT:
        return None
    checkpoints = {approval.Checkpoint.MERGE.value: True}
    if task.role == TaskRole.DEPLOY:
        checkpoints[approval.Checkpoint.START.value] = True
    return checkpoints


def want_closure(wave: WaveSpec, stage: ClosureStage, after: list[str], shash: str) -> Want:
    n = wave.key
    role = spec.STAGE_ROLE[stage]
    guidance = wave.closure.get(stage.value, "").strip()
    parts = [_STAGE_WORK[stage].format(wave=spec.label(n))]
    if guidance:
        parts.append(f"Guidance from the spec:\n{guidance}")
    if wave.validation:
        lines = "\n".join(f"- `{command}`" for command in wave.validation)
        parts.append(f"Wave validation (speedrift runs these on the integrated result):\n{lines}")
    parts.append(
        f"The {stage.value} stage of {spec.label(n)} ({wave.title}), carried out by the {role.value} role "
        f"under `{command_of(n, 'run')}` — never by a developer attempt."
    )
    plan = {
        "wave": n,
        PLAN_STAGE_KEY: stage.value,
        "role": role.value,
        "spec_hash": shash,
        "task_hash": _digest(
            {"stage": stage.value, "guidance": guidance, "validation": list(wave.validation)}
        ),
        # the integration runs after every task: the task set is part of what it is compiled from
        "context_hash": _context_hash(wave, tasks=after if stage is ClosureStage.INTEGRATION else []),
        "validation": list(wave.validation),
    }
    return Want(
        id=closure_id(n, stage),
        local=stage.value,
        title=_clean_line(f"{spec.label(n, capital=True)} {stage.value}: {wave.title}", "title"),
        description=ids.clean_text(
            "\n\n".join(parts), "description", limit=ids.MAX_DESCRIPTION_LENGTH, multiline=True
        ),
        after=after,
        tags=[wave_tag(n), role.value],
        speedrift={
            TASK_CRITERIA_KEY: [{"criterion": _STAGE_CRITERIA[stage], "verify_by": "speedrift's closure"}],
            TASK_SPEC_KEY: _spec_excerpt(wave),
            PLAN_KEY: plan,
        },
    )


def dependencies_first(wave: WaveSpec) -> list[WaveTask]:
    """The wave's tasks, each after its dependencies; InvalidValue for an unknown id or a cycle."""
    by_id = {t.id: t for t in wave.tasks}
    if len(by_id) != len(wave.tasks):
        raise InvalidValue(f"wave {wave.wave} names a task id twice", hint="run `speedrift plan lint`")
    for index, task in enumerate(wave.tasks):
        unknown = [d for d in task.after if d not in by_id]
        if unknown:
            raise InvalidValue(
                f"$.tasks[{index}].after: wave {wave.wave} has no task {unknown[0]!r}",
                hint="name a task of this wave, or drop the dependency",
            )
    ordered: list[WaveTask] = []
    placed: set[str] = set()
    waiting = list(wave.tasks)
    while waiting:
        ready = [t for t in waiting if all(d in placed for d in t.after)]
        if not ready:
            raise InvalidValue(
                f"wave {wave.wave}: the dependencies of {', '.join(t.id for t in waiting)} form a cycle",
                hint="run `speedrift plan lint` to see it",
            )
        ordered += ready
        placed.update(t.id for t in ready)
        waiting = [t for t in waiting if t.id not in placed]
    return ordered


def sequenced(graph: Graph, wave: WaveSpec) -> list[str]:
    """The evaluation tasks of the earlier waves this one runs after: each must be compiled."""
    found: list[str] = []
    for earlier in wave.after_waves:
        if earlier == wave.wave:
            raise InvalidValue(f"wave {wave.wave} cannot run after itself", hint="fix sequencing.after_waves")
        evaluation = closure_id(earlier, ClosureStage.EVALUATION)
        if evaluation not in graph.tasks:
            raise Refused(
                f"wave {wave.wave} runs after wave {earlier}, which is not compiled ({evaluation} is not "
                "in the graph)",
                hint=f"compile wave {earlier} first: `speedrift plan compile {earlier}`",
            )
        found.append(evaluation)
    return found
