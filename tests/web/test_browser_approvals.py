"""A task of an oversight wave waiting to merge, approved from the dashboard in a real headless
Chromium: its human-queue entry has an Approve button; clicking it records the approval as the
dashboard's user, and the entry is gone once the next cycle arrives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.control.cycle import run_once
from speedrift.fleet import approval
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.times import now_utc
from speedrift.web.live import DashboardState
from speedrift.web.server import start_in_thread
from tests.control.approving import add_gated, wait_to_merge

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000
TASK = "w3-api"
ITEM = f"approval:billing:{TASK}:merge"


@pytest.fixture
def served(demo_eco: Path) -> Iterator[tuple[str, GraphStore, DashboardState]]:
    store = GraphStore.of_repo(demo_eco.parent / "billing")
    assert store is not None
    now = now_utc()
    add_gated(store, TASK, "Invoice API", now=now - timedelta(hours=3))
    wait_to_merge(store, TASK, 2, started=now - timedelta(hours=2), pending=now - timedelta(hours=1))
    run_once(demo_eco, execute_actions=False)  # the cycle that queues it
    server, state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(demo_eco))
    try:
        yield f"{server.url}#token={token}", store, state
    finally:
        server.stop()


def test_the_approve_button_approves_the_merge_and_the_entry_leaves_with_the_next_cycle(
    browser: Any, served: tuple[str, GraphStore, DashboardState], demo_eco: Path, artifacts: Path
) -> None:
    url, store, state = served
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        item = page.locator(f"#queue-list li.qitem[data-item='{ITEM}']")
        item.wait_for()
        item.scroll_into_view_if_needed()
        assert item.locator(".what").inner_text() == "w3-api waits for approval to merge attempt 2 (wave 3)"
        assert item.locator(".answer-command").inner_text() == f"speedrift plan approve {TASK}"
        item.locator(f"button[data-approve-task='{TASK}']").click()
        page.wait_for_selector("#toast.show >> text=approved w3-api to merge attempt 2 by")
        assert item.locator(".approved").inner_text().startswith("approved w3-api")  # no second click
        page.screenshot(path=str(artifacts / "approved.png"))

        state.publish_cycle(run_once(demo_eco, execute_actions=False))  # the next refresh
        item.wait_for(state="detached")
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
    task = store.load().tasks[TASK]
    given = speedrift_data(task)["approved"]["merge"]
    assert given["attempt"] == 2 and given["by"].endswith("(dashboard)")
    assert approval.pending(task, approval.waiting_attempt(task)) is None
