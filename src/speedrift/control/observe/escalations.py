"""Human escalations as the observer reads them: every unfinished task tagged ``needs-human``.

The failure recovery (fleet/recovery.py ``decide``, written by fleet/recovery_graph.py
``annotate_failure``) tags a task ``needs-human`` when only a person can move it — the agent asked
a question, the runtime's login was refused, a tool is missing, a secret must be rotated, the
retry cap was reached — and records what the person is asked as ``speedrift.recovery.question``
(also logged as "Needs a human: …"). ``speedrift retry`` removes the tag; a task that is done or
abandoned asks nothing any more.

A question an agent asked that triage could not answer (fleet/clarify.py) is an open
``human_escalation`` record of the repo's coordination store, answered with ``speedrift answer
ID "…"`` (read by control/observe/coordination.py). A failed task waiting on it names that command
in its question: the task's escalation carries the record (``record``), and the record is not
listed again; a record no task names is an escalation of its own. Pure: tasks and records in,
:class:`Escalation` out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from speedrift.coord.records import Kind, Record
from speedrift.failure_class import FailureClass
from speedrift.fleet.recovery_graph import NEEDS_HUMAN
from speedrift.graph.model import ABANDONED, DONE, FAILED, Task, speedrift_data, status_of
from speedrift.register.record import Escalation
from speedrift.times import parse_time

MAX_ESCALATIONS = 50  # recorded per repo (the attention queue's cap); the count covers them all
QUESTION_LIMIT = 1000  # characters of a question kept in the snapshot
LOGGED = "Needs a human: "  # annotate_failure's log line
NO_QUESTION = "tagged needs-human; no question is recorded on the task (see its log)"
# the answer command the recovery wrote into its question: `speedrift retry ID --context '…'` / --force
_RETRY_COMMAND = re.compile(r"`(speedrift retry [^`\n]+)`")
# the answer command fleet/clarify.py writes into the question of a task waiting on a person
_ANSWER_COMMAND = re.compile(r"`(speedrift answer ([a-z0-9][a-z0-9._-]*-[0-9]+) [^`\n]+)`")

# what a person does before the answer command, by the class that escalated
_FIRST_STEP: dict[str, str] = {
    FailureClass.SECRET_LEAK: "Rotate the leaked credential at its issuer if it is real ({files}); "
    "say in the context where credentials belong",
    FailureClass.AUTH_FAILURE: "Log the agent's CLI in again (its credentials were refused)",
    FailureClass.ENV_BOOTSTRAP: "Fix the environment: install or configure what the question names",
}


def escalations(
    tasks: Mapping[str, Task], questions: Sequence[Record] = ()
) -> tuple[int, tuple[Escalation, ...]]:
    """How many unfinished tasks and open human_escalation ``questions`` wait on a human, and the
    first :data:`MAX_ESCALATIONS` of them (oldest escalation first; unknown times last, then by
    task and record id). A question a waiting task names is counted and listed once, as the task."""
    found = [e for task in tasks.values() if (e := escalation_of(task)) is not None]
    named = {e.record for e in found if e.record is not None}
    found += [
        question_of(q, tasks)
        for q in questions
        if q.kind is Kind.HUMAN_ESCALATION and q.open and q.id not in named
    ]
    found.sort(
        key=lambda e: (e.since is None, e.since.timestamp() if e.since else 0.0, e.task, e.record or "")
    )
    return len(found), tuple(found[:MAX_ESCALATIONS])


def question_of(record: Record, tasks: Mapping[str, Task]) -> Escalation:
    """An open human_escalation record as an escalation: its question and the answer command."""
    named = record.data.get("task")
    task_id = named if isinstance(named, str) else ""
    task = tasks.get(task_id) or {}
    title = task.get("title")
    return Escalation(
        task=task_id,
        title=title if isinstance(title, str) else "",
        status=status_of(task) if task else "",
        question=_clip(" ".join(record.summary.split())),
        answer=answer_command(record.id),
        since=record.created_at,
        record=record.id,
    )


def answer_command(record_id: str) -> str:
    return f'speedrift answer {record_id} "…"'


def escalation_of(task: Task) -> Escalation | None:
    """The task's escalation, None unless it is tagged ``needs-human`` and not done or abandoned."""
    tags = task.get("tags")
    if not isinstance(tags, list) or NEEDS_HUMAN not in tags:
        return None
    status = status_of(task)
    if status in (DONE, ABANDONED):
        return None
    task_id = str(task.get("id", ""))
    data = speedrift_data(task)
    recorded = data.get("recovery")
    recovery: dict[str, object] = recorded if isinstance(recorded, dict) else {}
    logged, logged_at = _logged(task)
    question = _text(recovery.get("question")) or logged or _text(task.get("failure_reason")) or NO_QUESTION
    cls = _text(data.get("failure_class")) or _text(recovery.get("failure_class"))
    answer = _answer(task_id, status, question)
    asked = _ANSWER_COMMAND.search(question)
    title = task.get("title")
    return Escalation(
        task=task_id,
        title=title if isinstance(title, str) else "",
        status=status,
        question=_clip(" ".join(question.split())),
        answer=answer,
        first=_first_step(cls, data, answer, status),
        failure_class=cls,
        since=logged_at or _failed_at(data),
        record=asked.group(2) if asked is not None and answer.startswith("speedrift answer") else None,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _clip(text: str) -> str:
    return text if len(text) <= QUESTION_LIMIT else text[: QUESTION_LIMIT - 1] + "…"


def _logged(task: Task) -> tuple[str | None, datetime | None]:
    """The newest "Needs a human: …" log line and its time."""
    log = task.get("log")
    for entry in reversed(log if isinstance(log, list) else []):
        message = entry.get("message") if isinstance(entry, dict) else None
        if isinstance(message, str) and message.startswith(LOGGED):
            return message[len(LOGGED) :], parse_time(entry.get("timestamp"))
    return None, None


def _failed_at(data: Mapping[str, object]) -> datetime | None:
    history = data.get("failures")
    last = history[-1] if isinstance(history, list) and history else None
    return parse_time(last.get("at")) if isinstance(last, dict) else None


def _answer(task_id: str, status: str, question: str) -> str:
    """The command that answers: the retry the recovery named in its question, else a retry with
    the answer as context; a task that is not failed (tagged by hand) only needs the tag removed."""
    if status != FAILED:
        return f"speedrift edit {task_id} --remove-tag {NEEDS_HUMAN}"
    asked = _ANSWER_COMMAND.search(question)
    if asked is not None:  # it waits on a question a person answers (the first one it names)
        return asked.group(1)
    named = [c for c in _RETRY_COMMAND.findall(question) if c.split()[2:3] == [task_id]]
    return named[-1] if named else f'speedrift retry {task_id} --context "…"'


def _first_step(cls: str | None, data: Mapping[str, object], answer: str, status: str) -> str | None:
    if status != FAILED:
        return "Do what the task's log asks"
    step = _FIRST_STEP.get(cls or "")
    if step is not None:
        classification = data.get("classification")
        files = classification.get("files") if isinstance(classification, dict) else None
        listed = ", ".join(str(f) for f in files[:5]) if isinstance(files, list) and files else "see the task"
        return step.format(files=listed)
    if answer.endswith("--force"):
        return "Fix the command or the code it runs"
    return None
