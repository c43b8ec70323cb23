"""The closure stages of a wave run: what each closure role is shown, running it, and the typed
record it leaves.

:func:`gather` reads a wave's compiled tasks from the graph (``speedrift.plan``, plans/compile.py)
with their last attempt's evidence: status, whether speedrift's gates verified it, what it landed.
:func:`run_stage` runs the stage's role (Integration steward, Documentation steward, Evaluator:
fleet/roles) on the integrated commit through the one role runner — schema-checked output, one
corrected round — and posts the output as one record in the wave's coordination scope
(``integration_summary`` for integration, ``decision`` for the others; ``data.stage`` names the
stage, ``data.output`` holds the output). :func:`stage_records` reads them back for closure,
checking each against its role's schema again: a record that does not hold a valid output is not
a stage.

Invariant: a stage is only ever a schema-valid role output carried by a coordination record;
nothing is scraped from text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.coord import board
from speedrift.coord.records import Actor, Author, Draft, Kind, Record
from speedrift.coord.store import CoordStore
from speedrift.fleet.attempts import latest_attempt_dir
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.roles.inputs import acceptance_criteria, scope_text
from speedrift.fleet.roles.model import shipped
from speedrift.fleet.roles.runner import RoleCall, RoleResult, run_role
from speedrift.graph.codec import Graph
from speedrift.graph.model import Task, plan_data, status_of
from speedrift.plans.closure import DONE, Closure, GapKind, StageRecord, TaskState
from speedrift.plans.compile_tasks import compiled_tasks, stage_of
from speedrift.plans.spec import STAGE_ROLE, ClosureStage, WaveKey, scope_of, state_dir
from speedrift.records import read_evidence
from speedrift.repo import git
from speedrift.textclip import clip, cut_middle
from speedrift.times import stamp

STAGE_KIND = {
    ClosureStage.INTEGRATION: Kind.INTEGRATION_SUMMARY,
    ClosureStage.DOCUMENTATION: Kind.DECISION,
    ClosureStage.EVALUATION: Kind.DECISION,
}
MAX_DIFF_CHARS = 20_000  # per task
MAX_DIFFS_CHARS = 150_000  # all of them


@dataclass(frozen=True)
class WaveTask:
    """A compiled wave task as closure sees it: the graph task, its state, its last evidence."""

    task: Task
    state: TaskState
    evidence: dict[str, Any]


def wave_tasks(graph: Graph, wave: WaveKey) -> list[Task]:
    """The wave's compiled implementation tasks (not its closure tasks), in graph order."""
    return [task for task in compiled_tasks(graph, wave) if stage_of(task) is None]


def gather(repo: Path, graph: Graph, wave: WaveKey) -> list[WaveTask]:
    found = []
    for task in wave_tasks(graph, wave):
        task_id = str(task["id"])
        evidence = _evidence(repo, task_id)
        verified = evidence.get("verified") is True
        state = TaskState(task_id, str(plan_data(task).get("task", task_id)), status_of(task), verified)
        found.append(WaveTask(task, state, evidence))
    return found


def _evidence(repo: Path, task_id: str) -> dict[str, Any]:
    run_dir = latest_attempt_dir(repo, task_id)
    record = read_evidence(run_dir) if run_dir is not None else None
    return record.raw if record is not None else {}


# -- the inputs each role is shown --------------------------------------------------------------


def tasks_text(tasks: Sequence[WaveTask]) -> str:
    parts = []
    for item in tasks:
        task = item.task
        criteria = acceptance_criteria(task)
        lines = [
            f"## {task['id']}: {clip(str(task.get('title', '')), 200)}",
            f"status: {item.state.status}"
            + (" (verified by speedrift's gates)" if item.state.verified else ""),
            "declared scope:",
            scope_text(task),
        ]
        if criteria:
            lines += [
                "acceptance criteria:",
                *(f"- [{task['id']}#{n}] {text}" for n, text in enumerate(criteria, 1)),
            ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or "(no tasks)"


def diffs_text(repo: Path, tasks: Sequence[WaveTask]) -> str:
    parts = []
    for item in tasks:
        landed, onto = item.evidence.get("landed_commit"), item.evidence.get("landed_onto")
        head = f"### {item.task['id']}: {clip(str(item.task.get('title', '')), 200)}"
        if item.state.status != DONE or not isinstance(landed, str) or not isinstance(onto, str):
            parts.append(f"{head}\n(nothing landed)")
            continue
        shown = git.run(["diff", "--no-ext-diff", "--no-textconv", onto, landed], repo, check=False).stdout
        parts.append(f"{head} ({onto[:12]}..{landed[:12]})\n{cut_middle(shown, MAX_DIFF_CHARS)}")
    return cut_middle("\n\n".join(parts), MAX_DIFFS_CHARS) or "(no diffs)"


def gates_text(tasks: Sequence[WaveTask], validation: Sequence[tuple[str, int]]) -> str:
    lines = []
    for item in tasks:
        gates = item.evidence.get("gates")
        summaries = [
            f"{gate.get('gate', '?')}: {'passed' if gate.get('passed') else 'failed'}"
            for gate in (gates if isinstance(gates, list) else [])
            if isinstance(gate, dict)
        ]
        verified = "verified" if item.state.verified else "NOT verified by a tests gate"
        lines.append(f"- {item.task['id']}: {verified}; " + ("; ".join(summaries) or "no gate record"))
    lines += [f"- validation `{command}`: exit {code}" for command, code in validation]
    return "\n".join(lines) or "(no gate results)"


def targets_text(tasks: Sequence[WaveTask]) -> str:
    lines = []
    for item in tasks:
        for n, text in enumerate(acceptance_criteria(item.task), 1):
            lines.append(f"- id {item.task['id']}#{n} (acceptance_criterion, task {item.task['id']}): {text}")
        if not acceptance_criteria(item.task):
            lines.append(
                f"- id {item.task['id']} (acceptance_criterion, task {item.task['id']}): its title holds"
            )
    return "\n".join(lines) or "(no targets)"


def coordination_text(repo: Path, wave: WaveKey, now: datetime) -> str:
    snapshot = CoordStore.for_scope(repo, scope_of(wave)).read()
    return cut_middle(board.render(snapshot, now=now), 60_000)


def inputs_for(
    stage: ClosureStage,
    repo: Path,
    wave: WaveKey,
    tasks: Sequence[WaveTask],
    validation: Sequence[tuple[str, int]],
    decision: Closure,
    *,
    diffs: str,
    guidance: str,
    now: datetime,
) -> dict[str, str]:
    """What the stage's role is shown. ``diffs``: :func:`diffs_text` of the commit judged (the
    same for every stage of it: the caller makes it once)."""
    if stage is ClosureStage.INTEGRATION:
        return {
            "coordination": coordination_text(repo, wave, now),
            "diffs": diffs,
            "gates": gates_text(tasks, validation),
            "tasks": tasks_text(tasks),
        }
    if stage is ClosureStage.DOCUMENTATION:
        doc_gaps = [gap for gap in decision.open_gaps if gap.kind is GapKind.DOC]
        return {
            "diffs": diffs,
            "tasks": tasks_text(tasks),
            "doc_gaps": json.dumps([gap.as_dict() for gap in doc_gaps], indent=2) if doc_gaps else "(none)",
            "guidance": guidance or "(the repository gives no documentation guidance)",
        }
    carried = (
        json.dumps([gap.as_dict() for gap in decision.open_gaps], indent=2) if decision.open_gaps else ""
    )
    return {
        "targets": targets_text(tasks),
        "diffs": diffs,
        "gates": gates_text(tasks, validation),
        "evidence": "Open gaps carried from earlier stages (a pass does not close them):\n" + carried
        if carried
        else "(no gap is open from earlier stages)",
    }


# -- running a stage and reading stages back ----------------------------------------------------


@dataclass(frozen=True)
class StageRun:
    stage: ClosureStage
    result: RoleResult
    record: Record | None  # the record that carries a valid output; None when it failed

    @property
    def failure(self) -> str:
        if self.result.output is not None:
            return ""
        if self.result.problems:
            return "invalid output: " + "; ".join(self.result.problems[:5])
        return self.result.outcome.reason or "the role's run failed"


def run_stage(
    repo: Path,
    config: RepoConfig,
    stage: ClosureStage,
    wave: WaveKey,
    inputs: dict[str, str],
    commit: str,
    *,
    now: Callable[[], datetime],
) -> StageRun:
    record_dir = state_dir(repo, wave) / f"{stage.value}-{stamp(now())}"
    call = RoleCall(STAGE_ROLE[stage], inputs, record_dir, commit, scope=scope_of(wave))
    result = run_role(repo, config, call)
    if result.output is None:
        return StageRun(stage, result, None)
    posted = CoordStore.for_scope(repo, scope_of(wave)).post(
        Draft(
            STAGE_KIND[stage],
            f"{stage.value}: {_verdict_word(stage, result.output)}",
            Author(Actor.SPEEDRIFT, name="plan run", role=STAGE_ROLE[stage].value),
            data={"stage": stage.value, "output": result.output, "commit": commit},
            artifact_refs=(str(record_dir.relative_to(repo)),),
        ),
        now=now(),
    )
    return StageRun(stage, result, posted)


def _verdict_word(stage: ClosureStage, output: dict[str, Any]) -> str:
    key = {"integration": "recommendation", "documentation": "status", "evaluation": "overall"}[stage.value]
    return str(output.get(key, "?"))


def output_problems(stage: ClosureStage, output: object) -> list[str]:
    """Every way ``output`` is not a valid output of the stage's role (its shipped schema)."""
    return shipped(STAGE_ROLE[stage]).problems(output) if isinstance(output, dict) else ["no output"]


def stage_records(records: Sequence[Record], commit: str) -> tuple[list[StageRecord], list[str]]:
    """The closure stages posted on ``commit``, in the order they were posted, each re-checked
    against its role's schema; and what was refused (a record that claims to be a stage but does
    not hold a valid output)."""
    found: list[StageRecord] = []
    refused: list[str] = []
    for record in sorted(records, key=lambda item: item.seq):
        data = record.data
        if not isinstance(data.get("stage"), str) or data.get("commit") != commit:
            continue
        try:
            stage = ClosureStage(data["stage"])
        except ValueError:
            refused.append(f"{record.id}: unknown stage {data['stage']!r}")
            continue
        output = data.get("output")
        problems = output_problems(stage, output)
        # only plan run posts stages (as speedrift); an agent's record claiming to be one is refused
        if problems or record.kind is not STAGE_KIND[stage] or record.author.actor is not Actor.SPEEDRIFT:
            refused.append(f"{record.id}: not a valid {stage.value} record: {'; '.join(problems[:3])}")
            continue
        assert isinstance(output, dict)
        found.append(StageRecord(stage, record.id, output))
    return found, refused
