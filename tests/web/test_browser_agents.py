"""The Agents panel in a real headless Chromium: a growth agent's Run button starts a run that
lands, a paused agent's Resume button lifts its pause."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.fleetops.pausing import pause_agent
from speedrift.fleetops.state import StateStore
from speedrift.graph.store import GraphStore
from speedrift.web.server import start_in_thread
from tests.gitrepo import make_repo
from tests.waiting import wait_for
from tests.web.test_agents_web import ECOSYSTEM

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000


@pytest.fixture
def eco(tmp_path: Path) -> Path:
    make_repo(tmp_path / "app")
    path = tmp_path / "ecosystem.toml"
    path.write_text(ECOSYSTEM)
    return path


@pytest.fixture
def page(browser: Any, eco: Path) -> Iterator[Any]:
    server, _state = start_in_thread(eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(eco))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(f"{server.url}#token={token}")
    try:
        yield tab
    finally:
        context.close()
        server.stop()
    assert errors == [], f"script errors on the page: {errors}"


def test_the_run_button_of_a_growth_agent_starts_a_run_that_lands(page: Any, eco: Path) -> None:
    page.wait_for_selector("tr[data-agent='helper'] button.agent-run")
    assert page.locator("tr[data-agent='nightly'] button.agent-run").count() == 0  # core: the hub runs it
    assert "@daily" in page.locator("tr[data-agent='nightly']").inner_text()

    page.locator("tr[data-agent='helper'] button.agent-run").click()
    page.wait_for_selector("#toast.show >> text=started app:agent-helper-")

    store = GraphStore.of_repo(eco.parent / "app")
    assert store is not None
    wait_for(lambda: any(t.get("status") == "done" for t in store.load().tasks.values()), "the run to land")
    assert (eco.parent / "app" / "hello.txt").read_text() == "hi\n"


def test_the_resume_button_lifts_a_pause(page: Any, eco: Path) -> None:
    hub = hubdir.hub_dir(eco)
    pause_agent(
        hub,
        {"app": eco.parent / "app"},
        "nightly",
        by="nightwatch",
        reason="critical drift",
        now=datetime.now(UTC),
    )
    page.reload()
    row = page.locator("tr[data-agent='nightly']")
    page.wait_for_selector("tr[data-agent='nightly'] button.agent-resume")
    assert "paused by nightwatch: critical drift" in row.inner_text()

    row.locator("button.agent-resume").click()
    page.wait_for_selector("#toast.show >> text=resumed")

    assert StateStore(hub).read().agents["nightly"].pause is None
    page.wait_for_selector("tr[data-agent='nightly']:not(.paused)")
    assert page.locator("tr[data-agent='nightly'] button.agent-resume").count() == 0
