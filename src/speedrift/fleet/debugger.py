"""The Debugger in recovery: a failed attempt's evidence read by a model, whose diagnosis takes the
place of the templated one.

Job: when ``[roles.debugger] enabled = true`` (default off: every diagnosis is one more model run)
and a failed attempt's decision is an automatic ``retry_with_diagnosis`` or ``escalate_model`` on
an agent runtime (never ``shell``: a command reads no prompt), :func:`consult` runs the Debugger
role (fleet/roles) in a read-only checkout of the failed worktree's HEAD, recorded under
``<run dir>/roles/debugger-1``, with the task, the failure (class, rule, evidence, reason), the
gate output, the agent's last messages (redacted), the diff (committed since the attempt's base
and left uncommitted in its worktree) and the earlier diagnoses. :func:`apply` turns a valid
output into the decision: ``retry`` — its diagnosis replaces the templated one, and
``recovery_graph.retry_mutation`` puts it into the next attempt's ``retry_context`` (the prompt's
"Guidance for this retry"); ``split`` — the task is re-planned, the note naming ``speedrift
decompose TASK``; ``escalate`` — a human is asked, the question built from the root cause.

Invariant: the Debugger never blocks recovery. Disabled, not applicable, failed, or invalid after
its corrected round: the decision stays as :func:`speedrift.fleet.recovery.decide` made it, and
the attempt's evidence says under ``debugger`` what happened and why.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift import layout, records, redact, safejson
from speedrift.agents.protocol import EventKind
from speedrift.fleet.attempt import Attempt
from speedrift.fleet.classify import Classification
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.recovery import MAX_DIAGNOSIS, Decision
from speedrift.fleet.roles.inputs import gates_text, task_and_scope
from speedrift.fleet.roles.names import RoleName
from speedrift.fleet.roles.runner import ROLE_RECORD, RoleCall, run_role
from speedrift.gates.verdict import GateVerdict
from speedrift.graph.model import Task, speedrift_data
from speedrift.repo import git
from speedrift.textclip import clip, cut_middle

ENABLED_BY_DEFAULT = False  # a model run per diagnosed failure: a repo opts in
DIAGNOSED = frozenset({"retry_with_diagnosis", "escalate_model"})
RECORD_NAME = "debugger-1"
MAX_DIFF = 60_000
MAX_UNTRACKED_FILE = 4_000
MAX_EVENTS_BYTES = 64_000
MAX_MESSAGES = 30
MAX_MESSAGE = 1_500
MAX_GATE_TEXT = 20_000
MAX_QUESTION = 2_000


class Recommendation(StrEnum):
    RETRY = "retry"
    SPLIT = "split"
    ESCALATE = "escalate"


def enabled(config: RepoConfig) -> bool:
    chosen = config.role(RoleName.DEBUGGER.value).enabled
    return ENABLED_BY_DEFAULT if chosen is None else chosen


def not_applicable(decision: Decision, runtime: str) -> str | None:
    """Why the Debugger does not run for this decision (None: it does)."""
    if not decision.automatic or decision.recovery not in DIAGNOSED:
        return f"the recovery is {decision.recovery}, not an automatic retry with a diagnosis"
    if runtime == "shell":
        return "a shell task's command reads no diagnosis"
    return None


def consult(
    repo: Path,
    config: RepoConfig,
    attempt: Attempt,
    task: Task,
    found: Classification,
    decision: Decision,
    reason: str,
    verdicts: list[GateVerdict],
) -> tuple[Decision, dict[str, Any] | None]:
    """The decision after the Debugger (see the module docstring), and what the evidence records
    of it under ``debugger`` (None: the role is not enabled, nothing to record)."""
    if not enabled(config):
        return decision, None
    why_not = not_applicable(decision, attempt.runtime)
    if why_not is not None:
        return decision, {"ran": False, "why": why_not}
    record_dir = attempt.run_dir / "roles" / RECORD_NAME
    noted: dict[str, Any] = {"ran": True, "applied": False, "record": str(record_dir)}
    try:
        inputs = gather_inputs(repo, attempt, task, found, reason, verdicts)
        commit = git.rev_parse(attempt.worktree, "HEAD") or attempt.base_commit
        call = RoleCall(
            RoleName.DEBUGGER, inputs, record_dir, commit, task_id=attempt.task_id, attempt=attempt.number
        )
        result = run_role(repo, config, call, decision=attempt.sandbox)
    except Exception as error:  # the Debugger never blocks recovery, whatever went wrong
        noted["why"] = redact.recordable(clip(f"the Debugger could not run: {error}", 1000))
        return decision, noted
    if result.output is None:
        noted["why"] = redact.recordable(result.reason()) + "; the templated diagnosis stays"
        return decision, noted
    changed = apply(decision, result.output, task_id=attempt.task_id)
    noted |= {
        "applied": True,
        "recommendation": result.output.get("recommendation"),
        "confidence": result.output.get("confidence"),
        "root_cause": clip(str(result.output.get("root_cause", "")), 500),
        "recovery": changed.recovery,
    }
    return changed, noted


# --- the output into the decision (pure) ------------------------------------------------------
def apply(decision: Decision, output: dict[str, Any], *, task_id: str) -> Decision:
    """``decision`` with the Debugger's valid ``output`` in it (see the module docstring)."""
    diagnosis = render(output, decision)
    root_cause = clip(str(output.get("root_cause", "")), 600)
    recommendation = Recommendation(str(output.get("recommendation")))
    if recommendation is Recommendation.RETRY:
        return replace(decision, diagnosis=diagnosis)
    halted = replace(decision, automatic=False, delay_seconds=0.0, model=None, diagnosis=diagnosis)
    if recommendation is Recommendation.SPLIT:
        return replace(
            halted,
            recovery="replan",
            note=f"the Debugger recommends splitting the task ({root_cause}); "
            f"`speedrift decompose {task_id}` splits it into verified subtasks and resumes it after them",
        )
    confidence = f"{output.get('confidence')}: {clip(str(output.get('confidence_reason', '')), 300)}"
    question = (
        f"Attempt {decision.attempt} failed as {decision.failure_class}; the Debugger found ({confidence}): "
        f"{root_cause}. It says only a human can unblock it. What should the next attempt do? "
        f"Answer with `speedrift retry {task_id} --context '<answer>'`"
    )
    return replace(
        halted,
        recovery="escalate_human",
        note="the Debugger recommends a human",
        question=clip(question, MAX_QUESTION, flatten=False),
    )


def render(output: dict[str, Any], decision: Decision) -> str:
    """The diagnosis the next attempt reads as its retry guidance (at most MAX_DIAGNOSIS)."""
    lines = [
        f"The previous attempt ({decision.attempt}) failed as {decision.failure_class}. The Debugger read "
        f"its evidence (confidence {output.get('confidence')}: {output.get('confidence_reason', '')}).",
        f"Root cause: {output.get('root_cause', '')}",
    ]
    where = output.get("root_cause_location")
    if isinstance(where, dict):
        at = f"{where.get('file')}" + (f":{where['line']}" if where.get("line") else "")
        lines.append(f"Where: {at}" + (f" — {where['context']}" if where.get("context") else ""))
    fix = _fix(output)
    lines.append(f"Fix: {fix.get('description', '')}")
    for change in fix.get("changes") or []:
        at = f"{change.get('file')}" + (f":{change['line']}" if change.get("line") else "")
        current = f"`{change['current']}` → " if change.get("current") else ""
        lines.append(f"- {at}: {current}`{change.get('should_be', '')}`")
    suffix = ""
    if decision.model:
        suffix = f"\nYou now run on the stronger model {decision.model.partition(':')[2] or decision.model}."
    body = redact.recordable("\n".join(lines))
    return cut_middle(body, MAX_DIAGNOSIS - len(suffix)) + suffix


def _fix(output: dict[str, Any]) -> dict[str, Any]:
    fix = output.get("fix")
    return fix if isinstance(fix, dict) else {}


# --- what the Debugger is given ---------------------------------------------------------------
def gather_inputs(
    repo: Path,
    attempt: Attempt,
    task: Task,
    found: Classification,
    reason: str,
    verdicts: list[GateVerdict],
) -> dict[str, str]:
    """The role's inputs, each redacted (they are shown to a model, and recorded)."""
    inputs = {
        "task": task_and_scope(task),
        "failure": failure_text(found, reason),
        "gates": gates_text(verdicts),
        "events": events_text(attempt.run_dir),
        "diff": diff_text(attempt.worktree, attempt.base_commit),
        "earlier_diagnoses": earlier_text(repo, attempt, task),
    }
    return {name: redact.redact_text(value) for name, value in inputs.items()}


def failure_text(found: Classification, reason: str) -> str:
    lines = [f"class: {found.cls} (rule {found.rule}" + (f", {found.subclass})" if found.subclass else ")")]
    lines.append(f"reason: {reason}")
    lines += [f"- {e}" for e in found.evidence]
    if found.files:
        lines.append("files: " + ", ".join(found.files[:50]))
    return "\n".join(lines)


def events_text(run_dir: Path) -> str:
    """The agent's last messages and errors (the event log is redacted as it is written)."""
    events, truncated = records.tail_events(run_dir, MAX_EVENTS_BYTES)
    said = [e for e in events if e.kind in (EventKind.MESSAGE, EventKind.ERROR) and e.text.strip()]
    lines = [f"[{e.kind}] {cut_middle(e.text.strip(), MAX_MESSAGE)}" for e in said[-MAX_MESSAGES:]]
    if lines and (truncated or len(said) > MAX_MESSAGES):
        lines.insert(0, "(earlier messages left out)")
    return redact.recordable("\n".join(lines))


def diff_text(worktree: Path, base: str) -> str:
    """What the attempt changed against ``base``: its commits and what it left uncommitted
    (tracked files by ``git diff base``, new files listed with their head)."""
    if not worktree.is_dir():
        return ""
    tracked = git.run(["diff", "--no-color", base], worktree, check=False).stdout
    listed = git.run(["ls-files", "--others", "--exclude-standard", "-z"], worktree, check=False).stdout
    parts = [tracked.rstrip()] if tracked.strip() else []
    for name in [n for n in listed.split("\0") if n][:50]:
        parts.append(f"new file (uncommitted): {name}\n{_head(worktree / name)}".rstrip())
    return cut_middle("\n".join(parts), MAX_DIFF)


def _head(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_UNTRACKED_FILE + 1)
    except OSError:
        return ""
    if b"\0" in data:
        return "(binary)"
    text = data[:MAX_UNTRACKED_FILE].decode("utf-8", errors="replace")
    return text + ("\n…" if len(data) > MAX_UNTRACKED_FILE else "")


def earlier_text(repo: Path, attempt: Attempt, task: Task) -> str:
    """The guidance this attempt was given, and the Debugger's diagnoses of earlier attempts."""
    lines: list[str] = []
    given = speedrift_data(task).get("retry_context")
    if isinstance(given, str) and given.strip():
        lines += ["The guidance this attempt was given:", clip(given.strip(), 3000, flatten=False), ""]
    for folder in layout.attempt_dirs(repo, attempt.task_id):
        if int(folder.name) >= attempt.number:
            continue
        output = earlier_output(folder)
        if output is None:
            continue
        fix = _fix(output)
        lines.append(
            f"- attempt {folder.name}: root cause: {clip(str(output.get('root_cause', '')), 500)}; "
            f"fix: {clip(str(fix.get('description', '')), 500)}; "
            f"recommended {output.get('recommendation')} ({output.get('confidence')})"
        )
    return "\n".join(lines).strip()


def earlier_output(run_dir: Path) -> dict[str, Any] | None:
    """The valid output the Debugger gave on an earlier attempt (None: none)."""
    path = run_dir / "roles" / RECORD_NAME / ROLE_RECORD
    try:
        recorded = safejson.loads(path.read_bytes())
    except (OSError, safejson.MalformedJson):
        return None
    output = recorded.get("output") if isinstance(recorded, dict) else None
    return output if isinstance(output, dict) and recorded.get("valid") is True else None
