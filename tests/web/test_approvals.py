"""Approval checkpoints on the dashboard, over real HTTP on 127.0.0.1: the hub's cycle lists a task of
an oversight wave waiting merge-pending for a person in the human queue, with the task the page's
Approve button posts to; the approve endpoint is a guarded mutation doing what `speedrift plan
approve --no-land` does, as the dashboard's user; the entry is gone from the next cycle's queue."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from speedrift import hubdir
from speedrift.control.cycle import run_once
from speedrift.fleet import approval
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.times import now_utc
from speedrift.web.live import DashboardState
from speedrift.web.server import DashboardServer, start_in_thread
from tests.control.approving import add_gated, wait_to_merge

TASK = "w3-api"
ITEM = f"approval:billing:{TASK}:merge"


@dataclass
class Served:
    eco: Path
    store: GraphStore
    server: DashboardServer
    state: DashboardState
    token: str

    def url(self, path: str) -> str:
        return f"{self.server.url}{path.lstrip('/')}"

    def approve(self, task: str = TASK, *, token: str | None = None, repo: str = "billing") -> httpx.Response:
        headers = {"Origin": self.server.url.rstrip("/")}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.url(f"api/repos/{repo}/tasks/{task}/approve"), headers=headers, timeout=30)

    def human_queue(self) -> dict[str, dict[str, Any]]:
        items = httpx.get(self.url("api/queues"), timeout=30).json()["queues"]["human"]["items"]
        return {item["id"]: item for item in items}

    def next_cycle(self) -> None:
        self.state.publish_cycle(run_once(self.eco, execute_actions=False))

    def waits_at(self, task: str = TASK) -> approval.Checkpoint | None:
        found = self.store.load().tasks[task]
        return approval.pending(found, approval.waiting_attempt(found))


@pytest.fixture
def served(demo_eco: Path) -> Iterator[Served]:
    store = GraphStore.of_repo(demo_eco.parent / "billing")
    assert store is not None
    now = now_utc()
    add_gated(store, TASK, "Invoice API", now=now - timedelta(hours=3))
    wait_to_merge(store, TASK, 2, started=now - timedelta(hours=2), pending=now - timedelta(hours=1))
    run_once(demo_eco, execute_actions=False)  # the cycle that queues it
    server, state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    try:
        yield Served(demo_eco, store, server, state, hubdir.ensure_token(hubdir.hub_dir(demo_eco)))
    finally:
        server.stop()


def test_the_human_queue_lists_the_waiting_task_with_what_the_approve_button_posts(served: Served) -> None:
    item = served.human_queue()[ITEM]

    assert item["what"] == "w3-api waits for approval to merge attempt 2 (wave 3)"
    assert item["task"] == TASK and item["repo"] == "billing"
    assert item["answer"] == {
        "command": f"speedrift plan approve {TASK}",
        "first": None,
        "approve": TASK,
        "checkpoint": "merge",
    }
    for prompt in item["prompts"].values():  # an agent reviews; only a person approves
        assert "Review attempt 2 of task w3-api (Invoice API) of wave 3 in billing" in prompt
        assert (
            f"Do not approve it yourself: the person who decides runs `speedrift plan approve {TASK}`"
            in prompt
        )


def test_the_approve_endpoint_needs_the_token_then_approves_as_the_dashboards_user(served: Served) -> None:
    assert served.approve().status_code == 401
    assert served.approve(token="wrong-token-0000000000").status_code == 403
    assert served.waits_at() is approval.Checkpoint.MERGE  # refused before anything was done

    response = served.approve(token=served.token)

    assert response.status_code == 200, response.text
    done = response.json()
    assert (done["task"], done["approved"], done["attempt"]) == (TASK, "merge", 2)
    assert done["by"].endswith("(dashboard)")
    given = speedrift_data(served.store.load().tasks[TASK])["approved"]["merge"]
    assert given["attempt"] == 2 and given["by"] == done["by"]
    assert served.waits_at() is None
    assert ITEM in served.human_queue()  # the page still shows the cycle it has …
    served.next_cycle()
    assert ITEM not in served.human_queue()  # … and the next one has no entry for it


def test_approving_a_task_that_waits_for_nothing_is_refused_with_the_reason(served: Served) -> None:
    assert served.approve(token=served.token).status_code == 200

    again = served.approve(token=served.token)
    assert again.status_code == 409
    assert again.json()["error"] == f"task {TASK!r} waits for no approval now"
    plain = served.approve("invoice-numbers", token=served.token)  # a demo task with no checkpoint
    assert plain.status_code == 409 and "waits for no approval" in plain.json()["error"]
    unknown = served.approve("no-such-task", token=served.token)
    assert unknown.status_code == 409 and unknown.json()["error"] == "no task 'no-such-task'"
    assert served.approve(token=served.token, repo="no-such-repo").status_code == 404
