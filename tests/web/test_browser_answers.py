"""A question an agent asked, answered from the dashboard in a real headless Chromium: the human
queue's entry has an answer box, and sending it records the answer as the dashboard's user,
resolves the question and reopens the task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.control.cycle import run_once
from speedrift.coord.records import Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.web.server import start_in_thread
from tests.fleet.asking import asked

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000
TASK = "refund-cap"
QUESTION = "May a refund exceed the original charge?"
SAID = "No: cap every refund at the original charge."


@pytest.fixture
def served(demo_eco: Path) -> Iterator[tuple[str, Path, str]]:
    repo = demo_eco.parent / "billing"
    store = GraphStore.of_repo(repo)
    assert store is not None
    spec = ops.NewTask("Refund cap", task_id=TASK)
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    _question, escalation = asked(repo, store, TASK, QUESTION)
    run_once(demo_eco, execute_actions=False)  # the cycle that queues it
    server, _state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(demo_eco))
    try:
        yield f"{server.url}#token={token}", repo, escalation.id
    finally:
        server.stop()


def test_the_answer_box_sends_the_answer_and_the_task_reopens(
    browser: Any, served: tuple[str, Path, str], artifacts: Path
) -> None:
    url, repo, record = served
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        item = page.locator(f"#queue-list li.qitem[data-item='human:billing:{TASK}:{record}']")
        item.wait_for()
        item.scroll_into_view_if_needed()
        assert item.locator(".answer-command").inner_text() == f'speedrift answer {record} "…"'
        item.locator(f"textarea[data-answer-box='{record}']").fill(SAID)
        item.locator(f"button[data-send-answer='{record}']").click()
        page.wait_for_selector("#toast.show >> text=answered:")
        assert "is open again" in page.locator("#toast").inner_text()
        page.screenshot(path=str(artifacts / "answered.png"))
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
    store = CoordStore.for_scope(repo, "repo")
    assert store.get(record).status is Status.RESOLVED
    [feedback] = [r for r in store.read().records.values() if r.kind is Kind.HUMAN_FEEDBACK]
    assert feedback.data["answer"] == SAID and feedback.author.name.endswith("(dashboard)")
    graph = GraphStore.of_repo(repo)
    assert graph is not None and graph.load().tasks[TASK]["status"] == "open"
