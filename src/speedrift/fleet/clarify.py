"""Clarification triage and a person's answers: an agent's question reaches whoever can answer
it, and the answer reaches the task that waits for it.

:func:`settle` runs at the end of every attempt (the pipeline's conclusion). Each
``clarification_request`` the attempt's developer posted (through ``speedrift signal``) in the
task's coordination scope (fleet/coordination.py ``scope_of``) goes first to the
triage role (fleet/roles/data/triage.*), which answers only from what the repository already says
(fleet/clarify_inputs.py checks its quotes). An answer is posted as a ``guidance`` record and
resolves the question; anything else — no answer, low confidence, no quote found, an invalid
output, a failed run, ``[roles.triage] enabled = false`` — posts a ``human_escalation`` for the
dashboard's human queue and sets the question in_progress. An attempt that failed as spec_gap
(its agent reported itself blocked) whose every question triage answered has its task reopened at
once with the answers as retry guidance; one with a question for a person stays failed, its
recorded question naming the escalation and the ``speedrift answer`` command.

A person's answer (``speedrift answer``, the dashboard's answer box) is fleet/answers.py's; the
retry guidance and the waiting question it shares with this module are here
(:func:`retry_context`, :func:`waiting_question`).

Invariants: each question an attempt posted leaves :func:`settle` resolved (guidance) or
in_progress (a person is asked), never silently open; records are appended, never rewritten; an
agent's text reaches the store and the graph only clipped and redacted; triage reopens a task at
most :data:`MAX_TRIAGE_REOPENS` times, then a person decides (no endless ask-answer loop).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift import redact
from speedrift.agents.protocol import CANCELLED
from speedrift.coord.records import (
    MAX_DETAIL,
    MAX_SUMMARY,
    Actor,
    Author,
    Draft,
    Kind,
    Record,
    Status,
)
from speedrift.coord.store import CoordStore, Snapshot
from speedrift.errors import InvalidValue, NotFound, Refused, SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.fleet import attempts, clarify_inputs, coordination, recovery_graph
from speedrift.fleet.attempt import Attempt, AttemptResult
from speedrift.fleet.clarify_inputs import Judged
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.roles.names import RoleName
from speedrift.fleet.roles.runner import RoleCall, run_role
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import FAILED, Task, speedrift_data, status_of
from speedrift.graph.store import GraphStore
from speedrift.repo import git
from speedrift.textclip import clip

TRIAGE = Author(Actor.SPEEDRIFT, name="triage")
ACTOR = "speedrift (triage)"  # the graph actor of what triage changes
MAX_TRIAGE_REOPENS = 2  # per task: then its questions wait for a person
TRIAGE_REOPENS = "triage_reopens"  # speedrift.<this> on the task: how often triage reopened it
MAX_ANSWER = 8_000  # characters of a person's answer
LOGGED = "Needs a human: "  # the log line a failure's question is recorded with (recovery_graph)


@dataclass(frozen=True)
class Settled:
    """One question of an attempt after triage: answered (``guidance``) or asked of a person."""

    question: Record
    guidance: Record | None = None
    escalation: Record | None = None
    why: str = ""  # why a person is asked

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question.id,
            "guidance": self.guidance.id if self.guidance else None,
            "escalation": self.escalation.id if self.escalation else None,
            "why": self.why or None,
        }


def asked_by(snapshot: Snapshot, task_id: str, attempt: int) -> list[Record]:
    """The open clarification requests the developer of this attempt posted, oldest first."""
    return [
        r
        for r in snapshot.records.values()
        if r.kind is Kind.CLARIFICATION_REQUEST
        and r.open
        and r.author.actor is Actor.AGENT
        and r.author.task == task_id
        and r.author.attempt == attempt
        and r.author.role in (None, coordination.DEVELOPER)
    ]


# --- after an attempt --------------------------------------------------------------------------------
def settle(
    repo: Path, config: RepoConfig, store: GraphStore, attempt: Attempt, task: Task, result: AttemptResult
) -> AttemptResult:
    """The attempt's open clarification requests, triaged; the result, amended when the task was
    reopened with triage's answers or waits for a person (see the module docstring)."""
    try:
        coord = CoordStore.for_scope(repo, coordination.scope_of(task))
    except InvalidValue:  # no scope: nothing the attempt posted went anywhere (fleet/coordination.py)
        return result
    asked = asked_by(coord.read(), attempt.task_id, attempt.number)
    if not asked:
        return result
    commit = git.rev_parse(repo, attempt.target_branch) or attempt.base_commit
    if result.status == FAILED and result.reason == CANCELLED:  # stopping: no role is started now
        settled = [
            escalate(coord, q, attempt.task_id, "the attempt was cancelled before triage ran") for q in asked
        ]
    else:
        settled = [
            _triage(repo, config, coord, attempt, task, question, n, commit)
            for n, question in enumerate(asked, 1)
        ]
    attempts.write_attempt(attempt.run_dir, {"clarifications": [s.as_dict() for s in settled]})
    if result.status != FAILED or result.failure != FailureClass.SPEC_GAP:
        return result  # the questions stand on the board; the task goes on as its result says
    escalated = [s.escalation for s in settled if s.escalation is not None]
    if escalated:
        return _wait_for_person(store, attempt.task_id, result, escalated)
    return _reopen_answered(store, config, coord, attempt, result, [s for s in settled if s.guidance])


def _triage(
    repo: Path,
    config: RepoConfig,
    coord: CoordStore,
    attempt: Attempt,
    task: Task,
    question: Record,
    n: int,
    commit: str,
) -> Settled:
    if config.role(RoleName.TRIAGE.value).enabled is False:
        return escalate(coord, question, attempt.task_id, "triage is off ([roles.triage] enabled = false)")
    call_dir = attempt.run_dir / "roles" / f"triage-{n}"
    try:
        inputs = clarify_inputs.gather(repo, commit, task, coord.read(), question)
        call = RoleCall(
            RoleName.TRIAGE, inputs, call_dir, commit, attempt.task_id, attempt.number, scope=coord.scope
        )
        done = run_role(repo, config, call)
    except (SpeedriftError, OSError, subprocess.SubprocessError) as error:
        return escalate(
            coord, question, attempt.task_id, f"the triage could not run: {clip(str(error), 500)}"
        )
    if done.output is None:
        return escalate(coord, question, attempt.task_id, done.reason())
    judged = clarify_inputs.judge(done.output, inputs, repo, commit)
    if judged.answer is None:
        return escalate(coord, question, attempt.task_id, judged.why_not, judged.suggestion)
    return _answered(coord, question, attempt.task_id, judged)


def _answered(coord: CoordStore, question: Record, task_id: str, judged: Judged) -> Settled:
    answer = judged.answer or ""
    cited = "\n".join(f"- {s['ref']} ({s['kind']}): “{s['quote']}”" for s in judged.sources)
    detail = f"{answer}\n\nSources:\n{cited}\n\nAnswers {question.id}: {clip(question.summary, 500)}"
    guidance = coord.post(
        Draft(
            Kind.GUIDANCE,
            clip(answer, MAX_SUMMARY),
            TRIAGE,
            detail=clip(detail, MAX_DETAIL, flatten=False),
            targets=(f"task:{task_id}",),
            depends_on=(question.id,),
            data={"answer": answer, "sources": judged.sources, "confidence": judged.confidence.value},
        )
    )
    close(coord, question.id, Status.RESOLVED, TRIAGE, {"answered_by": guidance.id})
    return Settled(question, guidance=guidance)


def escalate(
    coord: CoordStore, question: Record, task_id: str, why: str, suggestion: str | None = None
) -> Settled:
    """Ask a person: a human_escalation of ``question`` (for the dashboard's human queue, answered
    with ``speedrift answer``), the question set in_progress. ``why``: why triage did not answer."""
    lines = [f"{question.author.words()} asked this ({question.id}) while working on task {task_id}."]
    if question.detail.strip():
        lines += ["", question.detail.strip()]
    lines += ["", f"Triage: {why}."]
    if suggestion:
        lines += [f"Its suggestion (not taken as an answer): {suggestion}"]
    lines += [
        "",
        f'Answer with `speedrift answer {question.id} "…"` (this record\'s id works too), or in the '
        "dashboard's human queue: the answer is recorded as human_feedback and reaches the task.",
    ]
    data: dict[str, Any] = {"task": task_id, "question": question.id, "why": why}
    if suggestion:
        data["suggestion"] = suggestion
    escalation = coord.post(
        Draft(
            Kind.HUMAN_ESCALATION,
            redact.recordable(clip(question.summary, MAX_SUMMARY)),
            TRIAGE,
            detail=redact.recordable(clip("\n".join(lines), MAX_DETAIL, flatten=False)),
            targets=("human",),
            depends_on=(question.id,),
            data=data,
        )
    )
    close(coord, question.id, Status.IN_PROGRESS, TRIAGE, {"escalated_to": escalation.id})
    return Settled(question, escalation=escalation, why=why)


def close(coord: CoordStore, ident: str, status: Status, author: Author, data: dict[str, object]) -> bool:
    """Change an open record's status; False when someone closed it first (left as they did)."""
    try:
        coord.update(ident, status, author=author, data=data, only_if_open=True)
    except (Refused, NotFound):
        return False
    return True


def _reopen_answered(
    store: GraphStore,
    config: RepoConfig,
    coord: CoordStore,
    attempt: Attempt,
    result: AttemptResult,
    answered: list[Settled],
) -> AttemptResult:
    task_id = attempt.task_id
    named = ", ".join(s.guidance.id for s in answered if s.guidance is not None)
    task = store.load().get(task_id) or {}
    reopens = speedrift_data(task).get(TRIAGE_REOPENS)
    count = reopens if isinstance(reopens, int) and not isinstance(reopens, bool) else 0
    if count >= MAX_TRIAGE_REOPENS:
        said = (
            f"Triage answered this attempt's questions ({named}), but it reopened this task {count} times "
            f"already: a person decides (`speedrift retry {task_id} --context '…'`)"
        )
        store.mutate(lambda g, now: ops.log_message(g, task_id, said, now=now, actor=ACTOR), actor=ACTOR)
        return replace(result, reason=f"{result.reason} — answered by triage ({named}), not reopened: {said}")
    context = retry_context(coord.read(), task_id, attempt.number)

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        mutation = recovery_graph.manual_retry_mutation(
            graph, task_id, context=context, force=False, config=config, now=now, actor=ACTOR
        )
        message = f"Answered by triage ({named}): reopened with the answers as retry guidance"
        fields = {TRIAGE_REOPENS: count + 1}
        return ops.set_fields(
            graph, task_id, speedrift=fields, message=message, now=now, actor=ACTOR, within=mutation
        )

    try:
        store.mutate(build, actor=ACTOR)
    except Refused:  # no longer failed: someone acted on it meanwhile
        return result
    note = f"answered by triage ({named}): the task is open again with the answers as retry guidance"
    recovery = {**(result.recovery or {}), "recovery": "retry", "retryable": True, "automatic": True}
    recovery.pop("question", None)
    recovery["note"] = note
    return replace(result, reason=f"{result.reason} — {note}", recovery=recovery)


def _wait_for_person(
    store: GraphStore, task_id: str, result: AttemptResult, escalated: list[Record]
) -> AttemptResult:
    question = waiting_question(escalated)
    store.mutate(lambda g, now: ask_mutation(g, task_id, question, now), actor=ACTOR)
    recovery = {**(result.recovery or {}), "question": question}
    waits = ", ".join(e.id for e in escalated)
    return replace(
        result, reason=f"{result.reason} — waits for a person's answer ({waits})", recovery=recovery
    )


def waiting_question(pending: list[Record]) -> str:
    """The question a task failed on its agent's questions records while people are asked."""

    def asked(record: Record) -> str:
        about = record.data.get("question") or (record.depends_on[0] if record.depends_on else record.id)
        return f"“{redact.recordable(clip(record.summary, 400))}” ({about})"

    if len(pending) == 1:
        only = pending[0]
        return (
            f"The agent asked {asked(only)}, which triage could not answer from the repository. "
            f'Answer with `speedrift answer {only.id} "…"`: the task reopens with the answer.'
        )
    listed = "; ".join(f'({n}) {asked(r)}: `speedrift answer {r.id} "…"`' for n, r in enumerate(pending, 1))
    return (
        f"The agent asked {len(pending)} questions triage could not answer from the repository: {listed}. "
        "The task reopens with the answers once all are answered."
    )


def ask_mutation(graph: Graph, task_id: str, question: str, now: datetime) -> ops.Mutation:
    """Record ``question`` as what the failed task asks of a person (its recovery's question and
    a "Needs a human" log line); nothing when it is not failed waiting on a person."""
    task = graph.get(task_id)
    if task is None or status_of(task) != FAILED:
        return ops.Mutation()
    recorded = speedrift_data(task).get("recovery")
    recovery = dict(recorded) if isinstance(recorded, dict) else {}
    if recovery.get("recovery") != "escalate_human":
        return ops.Mutation()
    recovery["question"] = question
    return ops.set_fields(
        graph, task_id, speedrift={"recovery": recovery}, message=LOGGED + question, now=now, actor=ACTOR
    )


def retry_context(snapshot: Snapshot, task_id: str, attempt: int | None) -> str:
    """Every answer to the questions an attempt of ``task_id`` asked, as retry guidance."""
    asked = [
        r
        for r in snapshot.records.values()
        if r.kind is Kind.CLARIFICATION_REQUEST and r.author.task == task_id and r.author.attempt == attempt
    ]
    lines = [
        f"Your attempt {attempt} asked; here are the answers. Act on them and do not ask again:"
        if attempt
        else "Answers to this task's questions. Act on them and do not ask again:"
    ]
    for question in asked:
        answers = [
            r
            for r in snapshot.records.values()
            if r.kind in (Kind.GUIDANCE, Kind.HUMAN_FEEDBACK) and question.id in r.depends_on
        ]
        if not answers:
            continue
        lines.append(f"- You asked ({question.id}): {clip(question.summary, 1000)}")
        for found in answers:
            lines.append(f"  Answer ({found.id}, {_answered_by(found)}): {answer_of(found)}")
    return redact.recordable("\n".join(lines))


def _answered_by(record: Record) -> str:
    if record.kind is Kind.GUIDANCE:
        sources = record.data.get("sources")
        cited = (
            [f"{s.get('ref')}: “{s.get('quote')}”" for s in sources if isinstance(s, dict)]
            if isinstance(sources, list)
            else []
        )
        return "from the repository, by triage" + (f" — {'; '.join(cited[:3])}" if cited else "")
    return f"from {record.author.name or 'a person'}"


def answer_of(record: Record) -> str:
    answer = record.data.get("answer")
    text = answer if isinstance(answer, str) and answer.strip() else record.summary
    return clip(text, MAX_ANSWER, flatten=False).replace("\n", "\n    ")
