"""An upstream candidate on the dashboard, in a real headless Chromium: the fork's Upstream
candidates entry lists its proposals; its propose button (the token holder's approval) pushes the
proposal branch to the local bare fork and opens the draft through a fake ``gh`` on PATH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.control.cycle import run_once
from speedrift.web.server import start_in_thread
from tests.fleetops.forge_support import PR_URL, proposed_ecosystem
from tests.gitrepo import sh_git

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, Path, str]]:
    clone, _parent, fork, pid, eco = proposed_ecosystem(tmp_path, monkeypatch)
    run_once(eco, execute_actions=False)  # the cycle that queues the upstream candidate
    server, _state = start_in_thread(eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(eco))
    try:
        yield f"{server.url}#token={token}", clone, fork, pid
    finally:
        server.stop()


def test_the_upstream_queue_item_proposes_a_proposal_as_a_draft(
    browser: Any, served: tuple[str, Path, Path, str], artifacts: Path
) -> None:
    url, clone, fork, pid = served
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        item = page.locator("#queue-list [data-queue='upstream'] li.qitem").first
        item.wait_for()
        item.scroll_into_view_if_needed()
        item.locator("button[data-upstream='demo']").click()
        row = item.locator(f"li[data-proposal='{pid}']")
        row.wait_for()
        assert "branch_ready" in row.inner_text()
        row.locator(f"button[data-propose='{pid}']").click()
        page.wait_for_selector(f"#toast.show >> text=opened as a draft pull request: {PR_URL}")
        item.locator(f"li[data-proposal='{pid}'] >> text=proposed").wait_for()
        assert row.locator("a").get_attribute("href") == PR_URL
        page.screenshot(path=str(artifacts / "upstream-proposed.png"))
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
    branch = f"speedrift/upstream/{pid}"
    assert sh_git(fork, "rev-parse", branch) == sh_git(clone, "rev-parse", branch)
