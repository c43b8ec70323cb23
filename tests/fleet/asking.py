"""A question an agent asked that triage could not answer, made the way an attempt leaves it: the
task failed as spec_gap (tests/control/escalate.py), the developer's clarification_request in the
task's coordination scope, the human_escalation fleet/clarify.py posts for it, and the task's
recorded question naming the `speedrift answer` command."""

from __future__ import annotations

from pathlib import Path

from speedrift.coord.records import Actor, Author, Draft, Kind, Record
from speedrift.coord.store import CoordStore
from speedrift.failure_class import FailureClass
from speedrift.fleet import clarify
from speedrift.graph.store import GraphStore
from tests.control.escalate import escalate


def asked(repo: Path, store: GraphStore, task_id: str, question: str) -> tuple[Record, Record]:
    """(the clarification_request, the human_escalation) of ``task_id``'s attempt 1."""
    escalate(store, task_id, FailureClass.SPEC_GAP)
    coord = CoordStore.for_scope(repo, "repo")
    agent = Author(Actor.AGENT, task=task_id, attempt=1, role="developer")
    clarification = coord.post(Draft(Kind.CLARIFICATION_REQUEST, question, agent))
    escalation = clarify.escalate(coord, clarification, task_id, "nothing in the repository says").escalation
    assert escalation is not None
    waiting = clarify.waiting_question([escalation])
    store.mutate(lambda g, now: clarify.ask_mutation(g, task_id, waiting, now), actor="test")
    return clarification, escalation
