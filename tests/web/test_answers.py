"""Questions agents asked that triage could not answer, on the dashboard: the hub's cycle lists each
open human_escalation in the human queue with its question, the `speedrift answer` command and the
record the page's answer box posts to; the answer endpoint is a guarded mutation doing what
`speedrift answer` does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from speedrift.control.cycle import run_once
from speedrift.coord.records import Actor, Author, Draft, Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.fleet import clarify
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.web.live import DashboardState
from speedrift.web.server import wire
from tests.fleet.asking import asked
from tests.web.support import BASE_URL, ORIGIN, app_for, bearer

QUESTION = "May a refund exceed the original charge?"
OTHER = "Which currency do invoices for Swiss customers use?"


class Desk:
    def __init__(self, eco: Path, repo: Path, state: DashboardState, client: TestClient) -> None:
        self.eco, self.repo, self.state, self.client = eco, repo, state, client
        store = GraphStore.of_repo(repo)
        assert store is not None
        self.store = store
        self.coord = CoordStore.for_scope(repo, "repo")

    def add(self, task_id: str) -> None:
        spec = ops.NewTask(task_id.replace("-", " "), task_id=task_id)
        self.store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))

    def human_queue(self) -> dict[str, dict[str, Any]]:
        self.state.publish_cycle(run_once(self.eco, execute_actions=False))
        items = self.client.get("/api/queues").json()["queues"]["human"]["items"]
        return {item["id"]: item for item in items}

    def answer(self, record_id: str, body: object, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(f"/api/repos/billing/answer/{record_id}", json=body, headers=headers or {})


@pytest.fixture
def desk(demo_eco: Path) -> Iterator[Desk]:
    wiring = wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=False)
    app = app_for(wiring.state, ecosystem_path=demo_eco, hub=wiring.hub)
    with TestClient(app, base_url=BASE_URL) as client:
        yield Desk(demo_eco, demo_eco.parent / "billing", wiring.state, client)


def test_open_escalations_wait_in_the_human_queue_with_the_question_and_the_answer_command(
    desk: Desk,
) -> None:
    desk.add("refund-cap")
    desk.add("swiss-invoices")
    _question, escalation = asked(desk.repo, desk.store, "refund-cap", QUESTION)
    # a question of a task that did not fail on it: the record alone waits for a person
    agent = Author(Actor.AGENT, task="swiss-invoices", attempt=1, role="developer")
    other = desk.coord.post(Draft(Kind.CLARIFICATION_REQUEST, OTHER, agent))
    lone = clarify.escalate(desk.coord, other, "swiss-invoices", "triage is off").escalation
    assert lone is not None

    queue = desk.human_queue()

    waiting = queue[f"human:billing:refund-cap:{escalation.id}"]  # the failed task and its question, once
    assert QUESTION in waiting["why"] and waiting["task"] == "refund-cap"
    assert waiting["answer"]["command"] == f'speedrift answer {escalation.id} "…"'
    assert waiting["answer"]["record"] == escalation.id
    alone = queue[f"human:billing:swiss-invoices:{lone.id}"]
    assert alone["why"] == OTHER and alone["answer"] == {
        "command": f'speedrift answer {lone.id} "…"',
        "first": None,
        "record": lone.id,
    }
    assert f"speedrift answer {lone.id}" in alone["prompts"]["claude"]
    assert [i for i in queue if "refund-cap" in i] == [f"human:billing:refund-cap:{escalation.id}"]


def test_the_answer_endpoint_needs_the_token_then_answers_like_the_cli(desk: Desk) -> None:
    desk.add("refund-cap")
    question, escalation = asked(desk.repo, desk.store, "refund-cap", QUESTION)
    said = {"answer": "No: cap every refund at the original charge."}

    assert desk.answer(escalation.id, said).status_code == 401
    assert desk.answer(escalation.id, said, bearer("wrong-token-0000000000")).status_code == 403
    assert desk.coord.get(escalation.id).open  # refused before anything was done

    response = desk.answer(escalation.id, said, {**bearer(), "origin": ORIGIN})
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["reopened"] is True and done["task"] == "refund-cap"
    assert done["feedback"]["author"]["actor"] == "human"
    assert done["feedback"]["author"]["name"].endswith("(dashboard)")
    assert desk.coord.get(escalation.id).status is Status.RESOLVED
    assert desk.coord.get(question.id).status is Status.RESOLVED
    assert desk.store.load().tasks["refund-cap"]["status"] == "open"
    assert not [i for i in desk.human_queue() if "refund-cap" in i]  # answered: gone from the queue

    again = desk.answer(escalation.id, said, bearer())
    assert again.status_code == 409 and "already resolved" in again.json()["error"]


@pytest.mark.parametrize(
    ("record", "body", "code"),
    [
        ("repo-2", {"answer": "  "}, 422),
        ("repo-2", {"text": "No."}, 422),
        ("repo-99", {"answer": "No."}, 404),
        ("not-an-id", {"answer": "No."}, 404),
    ],
)
def test_an_answer_that_cannot_be_taken_is_refused_with_a_reason(
    desk: Desk, record: str, body: dict[str, str], code: int
) -> None:
    desk.add("refund-cap")
    asked(desk.repo, desk.store, "refund-cap", QUESTION)
    response = desk.answer(record, body, bearer())
    assert response.status_code == code, response.text
    assert response.json()["error"]
    assert [r.kind for r in desk.coord.read().records.values()].count(Kind.HUMAN_FEEDBACK) == 0
