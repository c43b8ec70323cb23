"""`speedrift answer RECORD_ID ANSWER`: a person answers a question an agent asked; the answer is
recorded as human_feedback, both records are resolved and the failed task is open again with it.
What cannot be answered is refused with the reason and what to do."""

from __future__ import annotations

from pathlib import Path

from speedrift.coord.records import Actor, Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.graph import ops
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from tests.cli.support import Cli
from tests.fleet.asking import asked

QUESTION = "May a refund exceed the original charge?"
SAID = "No: cap every refund at the original charge."


def _store(repo: Path) -> GraphStore:
    store = GraphStore(repo / ".workgraph")
    spec = ops.NewTask("Refunds", task_id="refunds")
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    return store


def test_answering_an_escalation_records_the_answer_and_reopens_the_task(cli: Cli, repo: Path) -> None:
    store = _store(repo)
    clarification, escalation = asked(repo, store, "refunds", QUESTION)
    assert escalation.id in cli.json("show", "refunds")["speedrift"]["recovery"]["question"]

    done = cli.json("answer", escalation.id, SAID, "--as", "alice")

    assert done["record"] == escalation.id and done["task"] == "refunds" and done["reopened"] is True
    assert set(done["resolved"]) == {escalation.id, clarification.id}
    feedback = done["feedback"]
    assert feedback["kind"] == "human_feedback" and feedback["summary"] == SAID
    assert feedback["author"] == {"actor": "human", "name": "alice"}
    assert feedback["targets"] == ["task:refunds"]
    records = CoordStore.for_scope(repo, "repo").read().records
    assert records[escalation.id].status is Status.RESOLVED
    assert records[clarification.id].status is Status.RESOLVED
    assert records[feedback["id"]].author.actor is Actor.HUMAN
    task = store.load().tasks["refunds"]
    assert task["status"] == "open" and "needs-human" not in (task.get("tags") or [])
    context = speedrift_data(task)["retry_context"]
    assert SAID in context and clarification.id in context


def test_the_text_output_says_what_was_answered_and_what_happens_to_the_task(cli: Cli, repo: Path) -> None:
    _clarification, escalation = asked(repo, _store(repo), "refunds", QUESTION)
    out = cli.ok("answer", escalation.id, SAID, "--as", "alice").stdout
    assert f"Answered {escalation.id}" in out and "as alice" in out
    assert "refunds is open again; its next attempt gets the answer" in out


def test_answering_the_clarification_itself_resolves_its_escalation_too(cli: Cli, repo: Path) -> None:
    clarification, escalation = asked(repo, _store(repo), "refunds", QUESTION)
    done = cli.json("answer", clarification.id, SAID)
    assert set(done["resolved"]) == {clarification.id, escalation.id} and done["reopened"] is True
    kinds = [r.kind for r in CoordStore.for_scope(repo, "repo").read().records.values()]
    assert kinds.count(Kind.HUMAN_FEEDBACK) == 1


def test_a_record_already_answered_is_refused_naming_its_status_and_who_closed_it(
    cli: Cli, repo: Path
) -> None:
    _clarification, escalation = asked(repo, _store(repo), "refunds", QUESTION)
    cli.ok("answer", escalation.id, SAID, "--as", "alice")
    again = cli.fails(1, "answer", escalation.id, "Yes, any amount.", "--as", "bob")
    assert f"{escalation.id} is already resolved by human alice" in again.stderr
    assert "speedrift board repo --all" in again.stderr
    kinds = [r.kind for r in CoordStore.for_scope(repo, "repo").read().records.values()]
    assert kinds.count(Kind.HUMAN_FEEDBACK) == 1


def test_an_unknown_id_a_malformed_id_and_an_empty_answer_are_refused(cli: Cli, repo: Path) -> None:
    asked(repo, _store(repo), "refunds", QUESTION)
    missing = cli.fails(1, "answer", "repo-99", SAID)
    assert "no coordination record repo-99" in missing.stderr and "speedrift board repo" in missing.stderr
    malformed = cli.fails(1, "answer", "refunds", SAID)
    assert "is not a coordination record id" in malformed.stderr
    empty = cli.fails(2, "answer", "repo-2", "   ")
    assert "the answer is empty" in empty.stderr
