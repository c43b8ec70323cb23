"""The prompt an agent gets for one attempt, built from the task and what earlier attempts left.

Pure: the caller passes in the task, its graph neighbourhood and the earlier attempts' notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speedrift.fleet.roles.inputs import acceptance_criteria, spec_text
from speedrift.graph.model import Task, after_of, contract_globs, speedrift_data, str_list

MAX_LOG_LINES = 20
MAX_EARLIER = 3

# how the developer posts coordination records (fleet/signals.py, docs/coordination.md)
COORDINATION = [
    "## Coordinating with others",
    "Post what others should know as a record: `$SPEEDRIFT_SIGNAL_COMMAND KIND --json "
    '\'{"summary": "…"}\'` (optional fields: detail, targets such as "task:<id>" or "human", '
    "artifact_refs with the files it is about). KIND is clarification_request (a question you need "
    "answered), blocker (something stops you), decision (a choice later work must follow), handoff "
    "(where you leave off, for whoever continues) or claim (files or work you are taking on). The "
    "command checks the record and prints every problem; speedrift posts it when your run ends.",
    "A question you cannot continue without: post it as a clarification_request, then finish with "
    'status "blocked" (the question in "summary"); the answer reaches the next attempt\'s inbox.',
    "",
]


@dataclass
class EarlierAttempt:
    attempt: int
    outcome: str
    reason: str
    tail: list[str] = field(default_factory=list)  # last agent messages, already redacted


def build_prompt(
    task: Task,
    *,
    repo_name: str,
    target_branch: str,
    dependencies: list[Task],
    earlier: list[EarlierAttempt],
    handoff: str | None,
    inbox: str | None = None,
    revision: str | None = None,
) -> str:
    """``inbox``: the attempt's compiled coordination inbox (coord/inbox.py), in place of ad-hoc
    context; ``revision``: a review round's findings the developer must address now."""
    data = speedrift_data(task)
    parts: list[str] = [f"# Task {task['id']}: {task.get('title', '')}", ""]
    parts += [
        f"You are working in a dedicated git worktree of the repository `{repo_name}`, on a branch that "
        f"will be merged into `{target_branch}` after automated checks. Make the change, run the "
        "project's tests if it has them, and leave the result in the working tree: speedrift commits "
        "what you leave (do not commit: in its sandbox the repository's git data is read-only, and "
        "only this directory is writable). Stay inside this directory.",
        "",
    ]
    description = task.get("description")
    if isinstance(description, str) and description.strip():
        parts += ["## Description", description.strip(), ""]
    criteria = acceptance_criteria(task)
    if criteria:
        parts += ["## Acceptance criteria (a reviewer checks each)", *[f"- {c}" for c in criteria], ""]
    spec = spec_text(task)
    if spec:
        parts += ["## Spec excerpt (the source of truth)", spec, ""]
    deliverables = str_list(task, "deliverables")
    if deliverables:
        parts += [
            "## Deliverables (these files must exist when you finish)",
            *[f"- {d}" for d in deliverables],
            "",
        ]
    touch = [t for t in data.get("touch", []) if isinstance(t, str)] + contract_globs(task)
    if touch:
        parts += ["## Scope (change only files matching these globs)", *[f"- {t}" for t in touch], ""]
    if dependencies:
        parts.append("## Finished work this task builds on")
        parts += [f"- {d['id']}: {d.get('title', '')}" for d in dependencies]
        parts.append("")
    retry_context = data.get("retry_context")
    if isinstance(retry_context, str) and retry_context.strip():
        parts += ["## Guidance for this retry", retry_context.strip(), ""]
    if earlier:
        parts.append("## Earlier attempts (do not repeat their mistakes)")
        for previous in earlier[-MAX_EARLIER:]:
            parts.append(f"- attempt {previous.attempt}: {previous.outcome} — {previous.reason}")
            parts += [f"    {line}" for line in previous.tail[-5:]]
        parts.append("")
    if handoff:
        parts += ["## Handoff notes", handoff.strip(), ""]
    if inbox:
        parts += ["## Your inbox (coordination records for this task; re-read it before you finish)"]
        parts += [inbox.strip(), ""]
    if revision:
        parts += ["## Review findings to address now", revision.strip(), ""]
    raw_log = task.get("log")  # any JSON value may sit there
    entries = raw_log if isinstance(raw_log, list) else []
    log = [e for e in entries if isinstance(e, dict) and isinstance(e.get("message"), str)]
    if log:
        parts.append("## Task log")
        parts += [f"- {e['message']}" for e in log[-MAX_LOG_LINES:]]
        parts.append("")
    parts += COORDINATION
    parts += [
        "## When you finish",
        "Write a JSON object to the file named by the environment variable SPEEDRIFT_RESULT:",
        '`{"status": "done" | "blocked", "summary": "...", "files_touched": [...], "tests_added": [...], '
        '"concerns": [...]}`. Use "blocked" (with the question in "summary") if the task cannot be '
        "done as specified.",
    ]
    return "\n".join(parts) + "\n"


_RESUME_WHY = {
    "transient_infra": "was cut off by a fault on the provider's or the machine's side (not yours)",
    "usage_limit": "was paused by a usage or rate limit (not yours)",
}


def resume_prompt(*, why: str, from_attempt: int, fresh_worktree: bool, revision: str | None) -> str:
    """The context appended to a resumed session (fleet/resume.py): why it continues, what of the
    working tree is there, the review's findings when a revision round resumes. The task itself
    is in the conversation already."""
    if revision is not None:
        parts = ["# A reviewer requested changes to your work", "", revision.strip(), ""]
        parts += ["Address every finding in the same worktree, then write your report again."]
        return "\n".join(parts) + "\n"
    said = _RESUME_WHY.get(why, "ended unfinished")
    parts = [f"# Continuing the task: your run in attempt {from_attempt} {said}", ""]
    if fresh_worktree:
        parts += [
            "This is a new attempt in a FRESH worktree at the target branch's current tip: the files you "
            "changed before are NOT here. Redo the changes you still need (the conversation above tells "
            "you what you did and learnt), check the files before you edit them, and finish the task.",
            "",
        ]
    parts += ["When you finish, write your report to $SPEEDRIFT_RESULT as before."]
    return "\n".join(parts) + "\n"


def dependencies_of(task: Task, tasks: dict[str, Task]) -> list[Task]:
    return [tasks[d] for d in after_of(task) if d in tasks]
