"""`speedrift decompose TASK`: a task too large for one attempt, split into verified subtasks.

Job: the Architect (fleet/roles) plans the split in a read-only checkout of the target branch's
tip, given the task's text, how it failed (for a ``decomposition_error``, the files it needed but
did not declare), the repository's tracked files (clipped) and the heads of its guidance files
(AGENTS.md, CLAUDE.md). speedrift checks the plan itself (fleet/decompose_plan.py
``check_plan``), and the Plan Verifier checks it blind against the task's text — never shown the
Architect's rationale — with speedrift's findings. A plan that fails either check goes back to
the Architect with the findings, at most ``max_rounds`` rounds; after that a human decides: a
``human_escalation`` coordination record (repo scope, targets ``human``) holding the last
verification, and a line in the task's log. A verified plan is written in ONE graph mutation
(``decompose_plan.decompose_mutation``): ``<parent>-<id>`` subtasks with their criteria, scope,
dependencies and model, and the parent waiting for them as a ``split_task`` recovery leaves it.

Records: ``.speedrift/runs/<task>/decompose/<n>/`` holds each role run (``architect-<round>``,
``plan_verifier-<round>``) and ``decompose.json`` (every round's plan, findings, verification).

Invariant: nothing reaches the graph that speedrift's checks and the verifier did not both pass,
and it arrives in one change or not at all; a dry run writes nothing but its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, layout, redact, safejson
from speedrift.agents import choose as registry
from speedrift.coord.records import (
    MAX_DATA_BYTES,
    MAX_DETAIL,
    MAX_SUMMARY,
    REPO_SCOPE,
    Actor,
    Author,
    Draft,
    Kind,
    Status,
)
from speedrift.coord.store import CoordStore
from speedrift.errors import NotFound, Refused, SpeedriftError
from speedrift.fleet import attempts
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.coordination import store_for
from speedrift.fleet.decompose_plan import (
    Finding,
    check_plan,
    check_splittable,
    decompose_mutation,
    subtask_data,
    subtask_specs,
)
from speedrift.fleet.roles.inputs import guidance_text, task_and_scope
from speedrift.fleet.roles.names import RoleName
from speedrift.fleet.roles.runner import ROLE_RECORD, RoleCall, run_role
from speedrift.graph import ops
from speedrift.graph.model import Task, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.repo import git
from speedrift.textclip import clip, cut_middle

SUMMARY_FILE = "decompose.json"
ESCALATION_SOURCE = "decompose"  # data.source of the human_escalation records it posts
MAX_FILES_LISTED = 2_000
MAX_FILES_CHARS = 40_000


class Outcome(StrEnum):
    WRITTEN = "written"
    VERIFIED = "verified"  # --dry-run: verified, not written
    ESCALATED = "escalated"  # still failing after the last round: a human decides
    NOT_VERIFIED = "not_verified"  # --dry-run, still failing: nothing posted


MAX_ANSWERS = 20
MAX_ANSWER_CHARS = 2_000


@dataclass
class Round:
    number: int
    plan: dict[str, Any]  # the Architect's output
    findings: list[Finding]  # speedrift's own checks
    verification: dict[str, Any]  # the Plan Verifier's output

    @property
    def passed(self) -> bool:
        return not self.findings and self.verification.get("status") == "pass"

    def as_dict(self) -> dict[str, Any]:
        return {
            "round": self.number,
            "passed": self.passed,
            "plan": self.plan,
            "findings": [f.as_dict() for f in self.findings],
            "verification": self.verification,
        }


@dataclass
class Decomposition:
    task_id: str
    outcome: Outcome
    rounds: list[Round]
    record_dir: Path
    subtasks: list[ops.NewTask] = field(default_factory=list)  # written, or (dry run) as they would be
    escalation: str | None = None  # the human_escalation record's id

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "outcome": self.outcome.value,
            "verified": bool(self.rounds) and self.rounds[-1].passed,
            "rounds": [r.as_dict() for r in self.rounds],
            "subtasks": [
                {
                    "id": s.task_id,
                    "title": s.title,
                    "after": s.after,
                    "touch": s.touch,
                    "model": s.model,
                    "tags": s.tags,
                    "description": s.description,
                }
                for s in self.subtasks
            ],
            "escalation": self.escalation,
            "record_dir": str(self.record_dir),
        }


class RoleFailed(SpeedriftError):
    """A planning role (the Architect, the Plan Verifier) gave no valid output: nothing is written."""


# --- the edge: roles, rounds, the graph, the escalation -------------------------------------------
def decompose(
    repo: Path,
    store: GraphStore,
    config: RepoConfig,
    task_id: str,
    *,
    actor: str,
    max_rounds: int = 2,
    dry_run: bool = False,
) -> Decomposition:
    """Split ``task_id`` (see the module docstring). Raises SpeedriftError when it cannot be split
    now, or when a role gives no valid output (nothing is written then, the record says why)."""
    parent = store.load().get(task_id)
    if parent is None:
        raise NotFound(f"no task {task_id!r} in the graph", hint="`speedrift list --all` shows every id")
    check_splittable(parent)
    commit = _target_tip(repo, config)
    record_dir = _record_dir(repo, task_id)
    spec = task_and_scope(parent)
    given = {
        "task": spec,
        "failure": failure_text(repo, parent),
        "files": files_text(repo, commit),
        "guidance": guidance_text(repo, commit),
        "answers": answers_text(repo, parent),
    }
    rounds: list[Round] = []
    for number in range(1, max_rounds + 1):
        again = (
            {"previous_plan": _json(rounds[-1].plan), "findings": findings_text(rounds[-1])} if rounds else {}
        )
        call = RoleCall(
            RoleName.ARCHITECT, {**given, **again}, record_dir / f"architect-{number}", commit, task_id
        )
        plan = _output(repo, config, call, task_id, rounds, record_dir)
        findings = check_plan(task_id, plan["tasks"], store.load().tasks)
        checked = {
            "spec": spec,
            "plan": _json({"tasks": plan["tasks"]}),
            "findings": _findings_lines(findings),
        }
        call = RoleCall(
            RoleName.PLAN_VERIFIER, checked, record_dir / f"plan_verifier-{number}", commit, task_id
        )
        rounds.append(Round(number, plan, findings, _output(repo, config, call, task_id, rounds, record_dir)))
        _write_summary(record_dir, task_id, rounds)
        if rounds[-1].passed:
            break
    last = rounds[-1]
    runtime = registry.select_runtime(parent, config.default_runtime)[0]
    tiers = next((list(t) for name, t in config.recovery.model_tiers.items() if name == runtime), [])
    specs = subtask_specs(parent, last.plan["tasks"], runtime=runtime, tiers=tiers)
    result = Decomposition(task_id, Outcome.VERIFIED, rounds, record_dir, specs)
    if not last.passed:
        result.outcome = Outcome.NOT_VERIFIED
        if not dry_run:
            result.outcome = Outcome.ESCALATED
            result.escalation = _escalate(repo, store, task_id, rounds, record_dir, actor)
    elif not dry_run:
        data = subtask_data(parent, last.plan["tasks"])
        store.mutate(
            lambda g, now: decompose_mutation(g, task_id, specs, now=now, actor=actor, data=data), actor=actor
        )
        result.outcome = Outcome.WRITTEN
        settle_escalations(CoordStore.for_scope(repo, REPO_SCOPE), task_id, Status.RESOLVED, actor)
    _write_summary(record_dir, task_id, rounds, result)
    return result


def _target_tip(repo: Path, config: RepoConfig) -> str:
    branch = config.target_branch or git.default_branch(repo)
    tip = git.rev_parse(repo, branch) if branch else None
    if tip is None:
        raise Refused(
            f"{repo} has no commit on a target branch to plan on",
            hint="make an initial commit, or set target_branch in speedrift.toml",
        )
    return tip


def _record_dir(repo: Path, task_id: str) -> Path:
    return numbered_record_dir(layout.task_runs_dir(repo, task_id) / "decompose")


def numbered_record_dir(base: Path) -> Path:
    """A new numbered run record under ``base`` (``1``, ``2``, …), the newest runs kept as a
    task's attempts are. Shared by the planning loops (decompose, `plan draft`)."""
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
    folder = base / str(max(taken, default=0) + 1)
    folder.mkdir()
    attempts.prune_records(base)
    return folder


def _output(
    repo: Path, config: RepoConfig, call: RoleCall, task_id: str, rounds: list[Round], record_dir: Path
) -> dict[str, Any]:
    try:
        return role_output(
            repo, config, call, subject=f"decompose {task_id}", again=f"speedrift decompose {task_id}"
        )
    except RoleFailed:
        _write_summary(record_dir, task_id, rounds)
        raise


def role_output(
    repo: Path, config: RepoConfig, call: RoleCall, *, subject: str, again: str
) -> dict[str, Any]:
    """The role's valid output; RoleFailed naming its record when it gave none (after its
    corrected round) or its run failed. ``subject`` starts the message, ``again`` is the command
    to run once the record is read. Shared by the planning loops (decompose, `plan draft`)."""
    result = run_role(repo, config, call)
    if result.output is not None:
        return result.output
    raise RoleFailed(
        f"{subject}: {result.reason()}; nothing was written (record: {call.record_dir / ROLE_RECORD})",
        hint=f"read the record, then run `{again}` again",
    )


def _escalate(
    repo: Path, store: GraphStore, task_id: str, rounds: list[Round], record_dir: Path, actor: str
) -> str:
    """A human decides: a human_escalation record with the last verification, and a log line."""
    last = rounds[-1]
    data: dict[str, Any] = {
        "source": ESCALATION_SOURCE,
        "task": task_id,
        "rounds": len(rounds),
        "findings": [f.as_dict() for f in last.findings],
        "verification": last.verification,
        "plan": last.plan.get("tasks", []),
    }
    if len(orjson.dumps(data)) > MAX_DATA_BYTES:
        data.pop("plan")
    if len(orjson.dumps(data)) > MAX_DATA_BYTES:
        data["verification"] = {"status": last.verification.get("status"), "clipped": True}
    summary = f"The split of {task_id} failed verification in {len(rounds)} round(s): decide how to split it"
    draft = Draft(
        kind=Kind.HUMAN_ESCALATION,
        summary=clip(summary, MAX_SUMMARY),
        author=Author(Actor.SPEEDRIFT, name=actor),
        detail=cut_middle(findings_text(last), MAX_DETAIL),
        targets=("human",),
        artifact_refs=(str(record_dir / SUMMARY_FILE),),
        data=data,
    )
    coord = CoordStore.for_scope(repo, REPO_SCOPE)
    record = coord.post(draft)
    settle_escalations(coord, task_id, Status.SUPERSEDED, actor, keep=record.id)
    message = (
        f"Decomposition failed verification in {len(rounds)} round(s); a human decides: coordination record "
        f"{record.id} (`speedrift board`). Split it by hand, or change the task and run "
        f"`speedrift decompose {task_id}` again"
    )
    store.mutate(lambda g, now: ops.log_message(g, task_id, message, now=now, actor=actor), actor=actor)
    return record.id


def settle_escalations(
    coord: CoordStore, task_id: str, status: Status, actor: str, *, keep: str | None = None
) -> list[str]:
    """Close the open escalations an earlier `speedrift decompose` of ``task_id`` posted: superseded
    by a newer one, or resolved by a split that was written. Returns their ids."""
    settled = []
    for record in coord.read().open_records():
        mine = record.kind is Kind.HUMAN_ESCALATION and record.data.get("source") == ESCALATION_SOURCE
        if mine and record.data.get("task") == task_id and record.id != keep:
            why = (
                "a newer decomposition asks again" if status is Status.SUPERSEDED else "the split was written"
            )
            try:
                coord.update(
                    record.id,
                    status,
                    author=Author(Actor.SPEEDRIFT, name=actor),
                    summary="",
                    detail=why,
                    only_if_open=True,
                )
            except Refused:
                continue  # a human closed it meanwhile
            settled.append(record.id)
    return settled


def _write_summary(
    record_dir: Path, task_id: str, rounds: list[Round], result: Decomposition | None = None
) -> None:
    summary = (
        result.as_dict() if result is not None else {"task": task_id, "rounds": [r.as_dict() for r in rounds]}
    )
    fsutil.write_atomic(record_dir / SUMMARY_FILE, orjson.dumps(summary, option=orjson.OPT_INDENT_2))


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _findings_lines(findings: Sequence[Finding]) -> str:
    return "\n".join(f"- {f.kind}: {f.message}" for f in findings)


def findings_text(last: Round) -> str:
    """Why a round's plan was not accepted, for the Architect's next round and for a human."""
    lines: list[str] = []
    if last.findings:
        lines += ["speedrift's own checks:", _findings_lines(last.findings), ""]
    return "\n".join([*lines, *verification_lines(last.verification)])


def verification_lines(verification: dict[str, Any]) -> list[str]:
    """The Plan Verifier's output in words: every requirement not covered, every overlap,
    criterion and critical failure, and its recommendations."""
    lines = [f"The Plan Verifier says: {verification.get('status')}"]
    for item in verification.get("spec_requirements") or []:
        if item.get("status") != "covered":
            task = f" (task {item['mapped_to_task']})" if item.get("mapped_to_task") else ""
            notes = f": {item['notes']}" if item.get("notes") else ""
            lines.append(f"- requirement {item.get('status')}{task}: {item.get('requirement')}{notes}")
    for item in verification.get("ownership_overlaps") or []:
        together = ", ".join(item.get("tasks") or [])
        lines.append(f"- {item.get('file')} is touched by {together}, which may run at the same time")
    for item in verification.get("untestable_criteria") or []:
        lines.append(
            f"- task {item.get('task')}: nothing can check {item.get('criterion')!r}: {item.get('why')}"
        )
    for item in verification.get("critical_failures") or []:
        lines.append(
            f"- critical: {item.get('description')} (the spec: {item.get('spec_reference')}; "
            f"the plan: {item.get('plan_gap')})"
        )
    lines += [f"- recommended: {r}" for r in verification.get("recommendations") or []]
    return lines


# --- what the Architect is given --------------------------------------------------------------------
def failure_text(repo: Path, task: Task) -> str:
    """How the task last failed, from its record and its evidence file: class, reason, evidence,
    the files involved (a decomposition_error's undeclared files), the Debugger's root cause."""
    data = speedrift_data(task)
    history = [h for h in data.get("failures", []) if isinstance(h, dict) and h.get("class")]
    evidence = _evidence(repo, data.get("evidence"))
    found = evidence.get("classification") if isinstance(evidence.get("classification"), dict) else None
    found = found or (data.get("classification") if isinstance(data.get("classification"), dict) else None)
    if not history and not found:
        return ""
    last = history[-1] if history else {}
    cls = (found or {}).get("class") or last.get("class")
    reason = last.get("reason") or evidence.get("reason", "")
    lines = [f"It failed as {cls} (attempt {last.get('attempt', '?')}): {reason}"]
    lines += [f"- {e}" for e in (found or {}).get("evidence", []) if isinstance(e, str)]
    files = [f for f in (found or {}).get("files", []) if isinstance(f, str)]
    if files:
        said = (
            "files it changed outside its declared scope"
            if cls == "decomposition_error"
            else "files involved"
        )
        lines.append(f"{said}: {', '.join(files[:100])}")
    diagnosed = evidence.get("debugger")
    if isinstance(diagnosed, dict) and diagnosed.get("root_cause"):
        lines.append(f"the Debugger's root cause: {diagnosed['root_cause']}")
    return redact.recordable("\n".join(lines))


def _evidence(repo: Path, where: object) -> dict[str, Any]:
    """The evidence file a task's record names, when it lies in this repo's run records."""
    if not isinstance(where, str) or not where:
        return {}
    path = Path(where)
    try:
        path.resolve().relative_to(layout.runs_dir(repo).resolve())
        value = safejson.loads(path.read_bytes())
    except (ValueError, OSError, safejson.MalformedJson):
        return {}
    return value if isinstance(value, dict) else {}


def files_text(repo: Path, commit: str) -> str:
    listed = git.run(["ls-tree", "-r", "--name-only", "-z", commit], repo, check=False).stdout
    names = [n for n in listed.split("\0") if n]
    shown = "\n".join(names[:MAX_FILES_LISTED])
    more = len(names) - MAX_FILES_LISTED
    text = cut_middle(shown, MAX_FILES_CHARS) + (f"\n… and {more} more files" if more > 0 else "")
    return text or "(the repository has no tracked files)"


def answers_text(repo: Path, task: Task) -> str:
    """The answers given about ``task`` in its scope — a person's ``human_feedback`` and triage's
    ``guidance`` targeting it (an answer to an earlier decompose's escalation among them) — oldest
    first, so a later run of the Architect plans with them."""
    target = f"task:{task['id']}"
    kinds = (Kind.HUMAN_FEEDBACK, Kind.GUIDANCE)
    found = [
        r for r in store_for(repo, task).read().records.values() if r.kind in kinds and target in r.targets
    ]
    lines = []
    for record in found[-MAX_ANSWERS:]:
        said = clip(record.detail or record.summary, MAX_ANSWER_CHARS, flatten=False)
        lines.append(f"- {record.id} ({record.author.words()}): {said}")
    return redact.redact_text("\n".join(lines))
