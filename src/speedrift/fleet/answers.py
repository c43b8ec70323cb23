"""A person's answer to a question an agent asked: ``speedrift answer RECORD_ID "…"`` and the
dashboard's answer box, one function (:func:`answer`).

The record answered is an open ``human_escalation`` (fleet/clarify.py posts one when triage could
not answer) or the ``clarification_request`` behind it. The answer is posted as ``human_feedback``
by the person (targeting the task, so the next attempt's inbox holds it, and depending on both
records), both are resolved, and a task that failed waiting on it is reopened with every answer
to its attempt's questions as retry guidance — once none of its questions is left unanswered;
until then its recorded question names the ones still open.

Invariant: of two answers to one record at once, exactly one lands (the record is closed first,
under the store's lock) and the other is refused naming who closed it; a closed record is never
answered again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.coord.records import MAX_SUMMARY, Actor, Author, Draft, Kind, Record, Status, split_id
from speedrift.coord.store import CoordStore, Snapshot
from speedrift.errors import NotFound, Refused, UsageError
from speedrift.failure_class import FailureClass
from speedrift.fleet import recovery_graph
from speedrift.fleet.clarify import (
    ACTOR,
    MAX_ANSWER,
    answer_of,
    ask_mutation,
    close,
    retry_context,
    waiting_question,
)
from speedrift.fleet.config import RepoConfig
from speedrift.graph import ids, ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import FAILED, Task, speedrift_data, status_of
from speedrift.graph.store import GraphStore
from speedrift.textclip import clip
from speedrift.times import format_time


@dataclass(frozen=True)
class Answered:
    """What :func:`answer` did."""

    record: str  # the record answered
    feedback: Record
    resolved: tuple[str, ...]
    task: str | None
    reopened: bool
    waiting_on: tuple[str, ...] = ()  # escalations the task still waits on (not reopened yet)

    def as_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "feedback": self.feedback.as_dict(),
            "resolved": list(self.resolved),
            "task": self.task,
            "reopened": self.reopened,
            "waiting_on": list(self.waiting_on),
        }


def answer(
    repo: Path,
    store: GraphStore | None,
    config: RepoConfig,
    record_id: str,
    text: str,
    *,
    name: str,
    now: datetime | None = None,
) -> Answered:
    """Answer an open human_escalation (or the clarification_request behind one) as ``name``; see
    the module docstring. NotFound for an unknown id, Refused for a record that is not a question
    or no longer open (naming its status and who closed it), UsageError for an empty answer."""
    scope, _seq = split_id(record_id)
    coord = CoordStore.for_scope(repo, scope)
    snapshot = coord.read()
    record = snapshot.records.get(record_id)
    if record is None:
        raise NotFound(
            f"no coordination record {record_id} in scope {scope} of {repo}",
            hint=f"`speedrift board {scope}` lists the open records (the human queue on the dashboard too)",
        )
    if record.kind not in (Kind.HUMAN_ESCALATION, Kind.CLARIFICATION_REQUEST):
        raise Refused(
            f"{record_id} is a {record.kind.value} record; only a human_escalation or a "
            "clarification_request is answered",
            hint=f"`speedrift board {scope}` lists the questions waiting",
        )
    if not record.open:
        raise _already_closed(snapshot, record)
    answer_text = _answer_text(text)
    person = Author(Actor.HUMAN, name=name)
    question, escalations = _pair(snapshot, record)
    task_id = _task_of(question, record)
    try:  # closed first: of two answers at once, one lands and the other is told
        coord.update(record.id, Status.RESOLVED, author=person, only_if_open=True, now=now)
    except Refused:
        raise _already_closed(coord.read(), coord.get(record.id)) from None
    related = [r.id for r in (question, *escalations) if r is not None and r.id != record.id]
    feedback = coord.post(
        Draft(
            Kind.HUMAN_FEEDBACK,
            clip(answer_text, MAX_SUMMARY),
            person,
            detail=answer_text if len(answer_text) > MAX_SUMMARY else "",
            targets=(f"task:{task_id}",) if task_id else ("human",),
            depends_on=tuple(dict.fromkeys([record.id, *related])),
            data={"answer": answer_text, "question": question.id if question else record.id},
        ),
        now=now,
    )
    resolved = [record.id] + [
        i for i in related if close(coord, i, Status.RESOLVED, person, {"answered_by": feedback.id})
    ]
    reopened = False
    waiting: tuple[str, ...] = ()
    if task_id and store is not None:
        attempt = question.author.attempt if question is not None else None
        reopened, waiting = _deliver(store, config, coord, task_id, attempt, feedback, name)
    return Answered(record.id, feedback, tuple(resolved), task_id, reopened, waiting)


def _answer_text(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise UsageError("the answer is empty", hint='say what the agent should do: speedrift answer ID "…"')
    if len(stripped) > MAX_ANSWER:
        raise UsageError(f"the answer is {len(stripped):,} characters long; the limit is {MAX_ANSWER:,}")
    return ids.clean_text(stripped, "answer", limit=MAX_ANSWER, multiline=True)


def _already_closed(snapshot: Snapshot, record: Record) -> Refused:
    who = f" by {record.updated_by.words()}" if record.updated_by is not None else ""
    answers = [
        r.id
        for r in snapshot.records.values()
        if r.kind in (Kind.HUMAN_FEEDBACK, Kind.GUIDANCE) and record.id in r.depends_on
    ]
    said = f" (answered in {', '.join(answers)})" if answers else ""
    return Refused(
        f"{record.id} is already {record.status.value}{who} at {format_time(record.at)}{said}",
        hint=f"`speedrift board {split_id(record.id)[0]} --all` shows it; to tell a failed task more, "
        "`speedrift retry TASK --context '…'`",
    )


def _pair(snapshot: Snapshot, record: Record) -> tuple[Record | None, list[Record]]:
    """The question behind ``record`` and the open escalations of that question."""
    if record.kind is Kind.CLARIFICATION_REQUEST:
        question: Record | None = record
    else:
        found = [snapshot.records.get(i) for i in record.depends_on]
        question = next((r for r in found if r is not None and r.kind is Kind.CLARIFICATION_REQUEST), None)
    escalations = [
        r
        for r in snapshot.records.values()
        if r.kind is Kind.HUMAN_ESCALATION
        and (r.id == record.id or (question is not None and question.id in r.depends_on))
        and (r.open or r.id == record.id)
    ]
    return question, escalations


def _task_of(question: Record | None, record: Record) -> str | None:
    if question is not None and question.author.task:
        return question.author.task
    named = record.data.get("task")
    if isinstance(named, str) and named:
        return named
    return next((t[len("task:") :] for t in record.targets if t.startswith("task:")), None)


def _deliver(
    store: GraphStore,
    config: RepoConfig,
    coord: CoordStore,
    task_id: str,
    attempt: int | None,
    feedback: Record,
    name: str,
) -> tuple[bool, tuple[str, ...]]:
    """Reopen the task when it failed waiting on this answer and nothing else is still asked;
    else record what it still waits on. Returns (reopened, the escalations still open)."""
    task = store.load().get(task_id)
    if task is None or status_of(task) != FAILED or not _waits_on_answers(task, feedback):
        return False, ()
    snapshot = coord.read()
    pending = [
        r
        for r in snapshot.records.values()
        if r.kind is Kind.HUMAN_ESCALATION and r.open and r.data.get("task") == task_id
    ]
    if pending:
        question = waiting_question(pending)
        store.mutate(lambda g, now: ask_mutation(g, task_id, question, now), actor=ACTOR)
        return False, tuple(r.id for r in pending)
    context = retry_context(snapshot, task_id, attempt) if attempt else ""
    if feedback.id not in context:
        context = f"{context}\n- Answer ({feedback.id}, from {name}): {answer_of(feedback)}".strip()

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        mutation = recovery_graph.manual_retry_mutation(
            graph, task_id, context=context, force=False, config=config, now=now, actor=name
        )
        message = f"Answered by {name} ({feedback.id}): reopened with the answer as retry guidance"
        return ops.set_fields(graph, task_id, message=message, now=now, actor=name, within=mutation)

    try:
        store.mutate(build, actor=name)
    except Refused:
        return False, ()
    return True, ()


def _waits_on_answers(task: Task, feedback: Record) -> bool:
    """The failed task waits on this answer: it failed as spec_gap (its agent was blocked), or
    its recorded question names one of the records answered."""
    data = speedrift_data(task)
    if data.get("failure_class") == FailureClass.SPEC_GAP:
        return True
    recovery = data.get("recovery")
    question = recovery.get("question") if isinstance(recovery, dict) else None
    return isinstance(question, str) and any(_names(question, i) for i in feedback.depends_on)


def _names(text: str, record_id: str) -> bool:
    """``text`` names ``record_id`` as a whole id (repo-1 is not named by repo-12)."""
    return re.search(rf"(?<![\w.-]){re.escape(record_id)}(?![\w-])", text) is not None
