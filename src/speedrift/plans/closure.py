"""Closure adjudication: from a wave's task states, speedrift's own validation runs and the closure
stages' typed records to one decision — which stage the wave is at, which gaps are open, whether it
is closed — with every reason.

The stages run in order (spec.CLOSURE_ORDER after the implementation): implementation (every task
done with speedrift's gates passed, and every validation command run by speedrift, not by an
agent, passing on the integrated commit) → integration (the Integration steward's
``integration_summary``) → documentation (the Documentation steward's report) → evaluation (the
Evaluator's verdict) → closed.

The loopholes wave-orchestration left open (reference §B.6, §B.11) are closed here by rule:

- **A gap is never a pass.** A wave closes only with no open gap at all. There is no
  "conditional pass".
- **A later stage cannot erase an earlier stage's open gap.** Gaps are carried forward. A
  documentation report closes only the doc gaps it names, by file (or, for a gap that names no
  file, by the same summary). An Evaluator's pass closes no gap. An integration ``ready`` does not
  clear an unverified task or a failed validation. Only a new run of the stage that raised a gap
  can withdraw it.
- **A stage's record counts only if it is newer than the record of the stage before it.** A
  re-run integration makes the documentation and evaluation records stale.
- **Each stage is a typed record** (a schema-checked role output), never text scraped from a log.

Pure: no I/O and no clock. Records come in the order they were posted; the result depends on
nothing else. This is the function `speedrift replay` re-derives a bundle's decisions with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from speedrift.plans.compile_tasks import command_of
from speedrift.plans.spec import ClosureStage, WaveSpec


class Phase(StrEnum):
    IMPLEMENTATION = "implementation"
    INTEGRATION = "integration"
    DOCUMENTATION = "documentation"
    EVALUATION = "evaluation"
    CLOSED = "closed"


class GapKind(StrEnum):
    UNVERIFIED = "unverified"  # a task landed "done (unverified)": no tests gate ran
    VALIDATION = "validation"  # a validation command failed on the integrated commit
    BLOCKER = "blocker"
    CONFLICT = "conflict"
    PROOF = "proof"
    DOC = "doc"
    DEPLOY_RISK = "deploy_risk"
    EVAL = "eval"  # a target the Evaluator failed or did not evaluate, or a gap it named
    UNJUDGED = "unjudged"  # a task no verdict covers


@dataclass(frozen=True)
class TaskState:
    """A compiled wave task as the graph has it: ``id`` the graph id, ``local`` the spec's id."""

    id: str
    local: str
    status: str
    verified: bool = False  # done with speedrift's gates passed, tests included


@dataclass(frozen=True)
class CommandResult:
    """One validation command speedrift ran itself on ``commit``."""

    command: str
    commit: str
    exit_code: int


@dataclass(frozen=True)
class StageRecord:
    """A closure stage's schema-valid role output, with the coordination record that carries it."""

    stage: ClosureStage
    record: str
    output: Mapping[str, Any]


@dataclass(frozen=True)
class Gap:
    kind: GapKind
    stage: Phase  # the stage that raised it
    summary: str
    files: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "stage": self.stage.value,
            "summary": self.summary,
            "files": list(self.files),
            "tasks": list(self.tasks),
        }


@dataclass(frozen=True)
class Closure:
    phase: Phase
    reasons: tuple[str, ...]
    open_gaps: tuple[Gap, ...] = ()
    closed_gaps: tuple[Gap, ...] = ()
    records: Mapping[str, str] = field(default_factory=dict)  # stage → the record that counted

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "closed": self.closed,
            "reasons": list(self.reasons),
            "open_gaps": [gap.as_dict() for gap in self.open_gaps],
            "closed_gaps": [gap.as_dict() for gap in self.closed_gaps],
            "records": dict(self.records),
        }


DONE = "done"


def adjudicate(
    spec: WaveSpec,
    tasks: Sequence[TaskState],
    validation: Sequence[CommandResult],
    records: Sequence[StageRecord],
    *,
    commit: str,
) -> Closure:
    """The wave's closure decision on the integrated ``commit`` (see the module docstring)."""
    gaps: list[Gap] = []
    reasons: list[str] = []

    # -- implementation ------------------------------------------------------------------------
    unfinished = [task for task in tasks if task.status != DONE]
    missing = sorted({task.id for task in spec.tasks} - {task.local for task in tasks})
    if missing:
        reasons.append(f"not compiled: {', '.join(missing)} (run `{command_of(spec.key, 'compile')}`)")
    for task in unfinished:
        reasons.append(f"{task.id} is {task.status}")
    for task in tasks:
        if task.status == DONE and not task.verified:
            gaps.append(
                Gap(
                    GapKind.UNVERIFIED,
                    Phase.IMPLEMENTATION,
                    f"{task.id} landed without a tests gate that ran",
                    tasks=(task.id,),
                )
            )
    if missing or unfinished:
        return Closure(Phase.IMPLEMENTATION, tuple(reasons), tuple(gaps))

    ran = {(result.command, result.commit): result for result in validation}
    for command in required_validation(spec):
        result = ran.get((command, commit))
        if result is None:
            reasons.append(f"validation not run on {commit[:12]}: {command}")
        elif result.exit_code != 0:
            gaps.append(
                Gap(
                    GapKind.VALIDATION,
                    Phase.IMPLEMENTATION,
                    f"`{command}` exited {result.exit_code} on {commit[:12]}",
                )
            )
    if reasons:
        return Closure(Phase.IMPLEMENTATION, tuple(reasons), tuple(gaps))
    if any(gap.kind is GapKind.VALIDATION for gap in gaps):
        reasons.append("validation failed: the wave needs more work before its closure")
        return Closure(Phase.IMPLEMENTATION, tuple(reasons), tuple(gaps))

    # -- the closure stages, each only from a record newer than the stage before ----------------
    counted: dict[str, str] = {}
    integration, documentation, evaluation = _current(records)

    if integration is None:
        return Closure(Phase.INTEGRATION, ("waiting for the Integration steward",), tuple(gaps), (), counted)
    counted[ClosureStage.INTEGRATION.value] = integration.record
    summary = integration.output
    gaps += _integration_gaps(summary)
    if summary.get("recommendation") != "ready":
        reasons.append(f"integration {integration.record}: needs more work")
        return Closure(Phase.INTEGRATION, tuple(reasons), tuple(gaps), (), counted)

    if documentation is None:
        return Closure(
            Phase.DOCUMENTATION, ("waiting for the Documentation steward",), tuple(gaps), (), counted
        )
    counted[ClosureStage.DOCUMENTATION.value] = documentation.record
    gaps, closed = _close_doc_gaps(gaps, documentation.output)
    if documentation.output.get("status") != "complete":
        reasons.append(f"documentation {documentation.record}: docs still to change")
        return Closure(Phase.DOCUMENTATION, tuple(reasons), tuple(gaps), tuple(closed), counted)

    if evaluation is None:
        return Closure(Phase.EVALUATION, ("waiting for the Evaluator",), tuple(gaps), tuple(closed), counted)
    counted[ClosureStage.EVALUATION.value] = evaluation.record
    gaps += _evaluation_gaps(evaluation.output, tasks)
    if evaluation.output.get("overall") != "pass":
        reasons.append(f"evaluation {evaluation.record}: fail")
    if gaps:
        reasons.append(f"{len(gaps)} open gap(s): a gap is never a pass")
    if reasons:
        return Closure(Phase.EVALUATION, tuple(reasons), tuple(gaps), tuple(closed), counted)
    return Closure(Phase.CLOSED, ("every stage passed with no open gap",), (), tuple(closed), counted)


def required_validation(spec: WaveSpec) -> list[str]:
    """Every validation command of the wave and of its tasks, once each, in spec order."""
    seen: dict[str, None] = dict.fromkeys(spec.validation)
    for task in spec.tasks:
        seen.update(dict.fromkeys(task.validation))
    return list(seen)


def _current(
    records: Sequence[StageRecord],
) -> tuple[StageRecord | None, StageRecord | None, StageRecord | None]:
    """The latest record of each stage that is newer than the counted record of the stage before."""
    latest: dict[ClosureStage, tuple[int, StageRecord]] = {}
    for index, record in enumerate(records):
        latest[record.stage] = (index, record)
    chosen: list[StageRecord | None] = []
    floor = -1
    for stage in (ClosureStage.INTEGRATION, ClosureStage.DOCUMENTATION, ClosureStage.EVALUATION):
        found = latest.get(stage)
        if found is None or found[0] < floor or (chosen and chosen[-1] is None):
            chosen.append(None)
            continue
        floor = found[0]
        chosen.append(found[1])
    return chosen[0], chosen[1], chosen[2]


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _items(output: Mapping[str, Any], key: str) -> Iterable[Mapping[str, Any]]:
    value = output.get(key)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _integration_gaps(summary: Mapping[str, Any]) -> list[Gap]:
    stage = Phase.INTEGRATION
    found = [
        Gap(GapKind.BLOCKER, stage, str(item.get("summary", "")), tasks=_strings(item.get("tasks")))
        for item in _items(summary, "unresolved_blockers")
    ]
    found += [
        Gap(GapKind.CONFLICT, stage, str(item.get("summary", "")), tasks=_strings(item.get("tasks")))
        for item in _items(summary, "conflicting_claims")
    ]
    found += [
        Gap(
            GapKind.PROOF,
            stage,
            f"{item.get('summary', '')} (needed: {item.get('needed', '')})",
            tasks=_strings(item.get("tasks")),
        )
        for item in _items(summary, "proof_gaps")
    ]
    found += [
        Gap(
            GapKind.DOC,
            stage,
            str(item.get("summary", "")),
            files=_strings(item.get("docs")),
            tasks=_strings(item.get("tasks")),
        )
        for item in _items(summary, "doc_gaps")
    ]
    # A high deploy risk with no mitigation is a gap; lower ones are carried as the summary says.
    found += [
        Gap(GapKind.DEPLOY_RISK, stage, str(item.get("summary", "")))
        for item in _items(summary, "deploy_risks")
        if item.get("severity") == "high" and not str(item.get("mitigation", "")).strip()
    ]
    return found


def _file_of(location: str) -> str:
    """``docs/a.md:12`` → ``docs/a.md``."""
    head, sep, tail = location.rpartition(":")
    return head if sep and tail.isdigit() else location


def _close_doc_gaps(gaps: list[Gap], report: Mapping[str, Any]) -> tuple[list[Gap], list[Gap]]:
    """The Documentation steward closes doc gaps it names (by file, or by the same summary for a
    gap that names no file) and raises the ones it found and did not close. It closes nothing else."""
    closed_files = {_file_of(str(item.get("location", ""))) for item in _items(report, "gaps_closed")}
    closed_files |= {
        str(item.get("path", "")) for item in _items(report, "docs_to_change") if item.get("done") is True
    }
    closed_summaries = {
        str(item.get("summary", "")).strip().casefold() for item in _items(report, "gaps_closed")
    }
    still: list[Gap] = []
    closed: list[Gap] = []
    for gap in gaps:
        if gap.kind is not GapKind.DOC:
            still.append(gap)
            continue
        done = (
            all(name in closed_files for name in gap.files)
            if gap.files
            else gap.summary.strip().casefold() in closed_summaries
        )
        (closed if done else still).append(gap)
    for item in _items(report, "gaps_found"):
        location = str(item.get("location", ""))
        if _file_of(location) not in closed_files:
            still.append(
                Gap(GapKind.DOC, Phase.DOCUMENTATION, str(item.get("summary", "")), files=(location,))
            )
    for item in _items(report, "docs_to_change"):
        if item.get("done") is not True:
            still.append(
                Gap(
                    GapKind.DOC,
                    Phase.DOCUMENTATION,
                    str(item.get("reason", "")),
                    files=(str(item.get("path", "")),),
                )
            )
    return still, closed


def _evaluation_gaps(verdict: Mapping[str, Any], tasks: Sequence[TaskState]) -> list[Gap]:
    stage = Phase.EVALUATION
    found = [
        Gap(
            GapKind.EVAL,
            stage,
            f"{item.get('target', '?')}: {item.get('verdict', '?')}",
            tasks=_strings([item["task"]]) if isinstance(item.get("task"), str) else (),
        )
        for item in _items(verdict, "verdicts")
        if item.get("verdict") != "pass"
    ]
    found += [Gap(GapKind.EVAL, stage, str(item.get("summary", ""))) for item in _items(verdict, "gaps")]
    judged = {str(item.get("task")) for item in _items(verdict, "verdicts") if item.get("task")}
    found += [
        Gap(GapKind.UNJUDGED, stage, f"no verdict covers {task.id}", tasks=(task.id,))
        for task in tasks
        if task.id not in judged and task.local not in judged
    ]
    return found
