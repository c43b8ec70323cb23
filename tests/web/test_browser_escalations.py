"""A task waiting on a human, on the dashboard in a real headless Chromium: the "Waiting on a
human" queue shows its question, what to do first and the command that answers it, and the copy
button puts that command on the clipboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.control.cycle import run_once
from speedrift.failure_class import FailureClass
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.web.server import start_in_thread
from tests.control.escalate import ACTOR, escalate

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000
TASK = "deploy-keys"
COMMAND = f"speedrift retry {TASK} --context '<answer>'"


@pytest.fixture
def url(demo_eco: Path) -> Iterator[str]:
    store = GraphStore.of_repo(demo_eco.parent / "shop-api")
    assert store is not None
    spec = ops.NewTask("Deploy keys", task_id=TASK)
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor=ACTOR))
    escalate(store, TASK, FailureClass.SECRET_LEAK, files=("config/keys.py",))
    run_once(demo_eco, execute_actions=False)  # the cycle that queues it
    server, _state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(demo_eco))
    try:
        yield f"{server.url}#token={token}"
    finally:
        server.stop()


def test_the_human_queue_shows_the_question_and_copies_the_answer_command(
    browser: Any, url: str, artifacts: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        item = page.locator(f"#queue-list [data-queue='human'] li.qitem[data-item='human:shop-api:{TASK}']")
        item.wait_for()
        item.scroll_into_view_if_needed()

        assert "looks like a secret" in item.locator(".why").inner_text()
        assert item.locator(".answer-command").inner_text() == COMMAND
        assert item.locator(".answer .first").inner_text().startswith("first: Rotate the leaked credential")
        item.locator("button[data-answer]").click()
        page.wait_for_selector("#toast.show >> text=answer command copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == COMMAND
        page.screenshot(path=str(artifacts / "needs-human.png"))
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
