"""Live agent output in a real headless Chromium: the run detail of a running attempt shows its events
as they are written — readable tool calls and file edits — without a reload, across a reconnect of
the page's websocket, each once and in order, and then the attempt's end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir, layout, records
from speedrift.web.server import DashboardServer, start_in_thread
from tests.web.conftest import browser_tab

pytestmark = pytest.mark.browser
ROWS = "#run-body .ev-list .ev"


@pytest.fixture
def server(demo_eco: Path) -> Iterator[tuple[DashboardServer, str]]:
    server, _state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(demo_eco))
    try:
        yield server, token
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with browser_tab(browser) as tab:
        yield tab


def _tool(log: Any, name: str, arguments: dict[str, Any], text: str) -> None:
    data = {"tool": name, "id": name} | arguments
    records.append_event(log, records.Event("tool_use", text, data=data))


def _lines(page: Any) -> list[str]:
    rows: list[str] = page.eval_on_selector_all(
        ROWS, "rows => rows.map(r => r.querySelector('.ev-line').textContent)"
    )
    return rows


def test_a_running_attempts_events_appear_in_its_run_detail_as_they_are_written(
    page: Any, server: tuple[DashboardServer, str], demo_eco: Path, artifacts: Path
) -> None:
    dashboard, token = server
    folder = layout.attempt_dir(demo_eco.parent / "billing", "refunds", 1)
    folder.mkdir(parents=True)
    records.update_attempt(folder, {"state": "running", "runtime": "claude"})  # this process: alive
    with records.open_event_log(folder) as log:
        records.append_event(log, records.Event("started", "claude started", data={"model": "sonnet"}))
        _tool(log, "Edit", {"path": "src/app.py", "added": 3, "removed": 1}, "src/app.py")
    page.goto(f"{dashboard.url}#token={token}")
    page.wait_for_selector("body[data-ready='1']")
    page.evaluate("() => window.SR.openRun('billing', 'refunds')")
    page.wait_for_selector(f"{ROWS}[data-style='edit'] >> text=Edit src/app.py (+3 −1)")
    assert page.locator("#run-body .ev-live").inner_text() == "live"

    with records.open_event_log(folder) as log:  # written while the dialog is open: no reload, no click
        _tool(log, "Bash", {}, "pytest -q")
    page.wait_for_selector(f"{ROWS}[data-style='tool'] >> text=Bash: pytest -q")

    page.evaluate("() => window.SR.S.ws.close()")  # the page's socket drops and reconnects
    with records.open_event_log(folder) as log:
        records.append_event(
            log, records.Event("tool_result", "3 passed", data={"id": "Bash", "tool": "Bash"})
        )
        records.append_event(log, records.Event("message", "All green."))
    page.wait_for_selector(f"{ROWS} >> text=All green.")
    page.screenshot(path=str(artifacts / "live-events.png"))

    records.update_attempt(folder, {"state": "done"})
    page.wait_for_selector(f"{ROWS} >> text=attempt 1 done")
    assert _lines(page) == [
        "claude started (model sonnet)",
        "Edit src/app.py (+3 −1)",
        "Bash: pytest -q",
        "Bash → 3 passed",
        "All green.",
        "attempt 1 done",
    ]  # each once, in the order written
    assert page.locator("#run-body .ev-live").inner_text() == "done"
