"""The Spend panel in a real headless Chromium: today's spend of the ecosystem's repos, by repo,
agent and runtime, and each daily budget with what remains — a spent budget marked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import attemptlog, hubdir
from speedrift.attemptlog import AttemptEntry, CostSource
from speedrift.control.cycle import run_once
from speedrift.fleet import budgetpub
from speedrift.times import now_utc
from speedrift.web.server import start_in_thread

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000


def spent(repo: Path, usd: float, **more: Any) -> None:
    values: dict[str, Any] = {"task": "t", "attempt": 1, "status": "done", "runtime": "claude"} | more
    attemptlog.append(
        AttemptEntry(
            at=now_utc() - timedelta(seconds=1),
            repo=budgetpub.repo_key(repo),
            cost_usd=usd,
            cost_source=CostSource.REPORTED,
            **values,
        )
    )


@pytest.fixture
def served(demo_eco: Path) -> Iterator[str]:
    billing, search = demo_eco.parent / "billing", demo_eco.parent / "search"
    (billing / "speedrift.toml").write_text("[budgets]\ndaily_usd = 1.0\n")
    (search / "speedrift.toml").write_text("[budgets]\ndaily_usd = 5.0\n")
    spent(billing, 1.0, agent="nightly")
    spent(search, 0.25, runtime="codex", model="gpt-5")
    run_once(demo_eco, execute_actions=False)
    server, _state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    token = hubdir.ensure_token(hubdir.hub_dir(demo_eco))
    try:
        yield f"{server.url}#token={token}"
    finally:
        server.stop()


def test_the_spend_panel_shows_today_by_repo_agent_and_runtime_and_what_remains(
    browser: Any, served: str, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(served)
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_selector("#spend-breakdowns table[data-by='repo']")
        assert page.locator("#spend-total").inner_text().startswith("$1.25 · 0 tokens · 2 attempts")
        repos = page.locator(
            "#spend-breakdowns table[data-by='repo'] tbody tr td:first-child"
        ).all_inner_texts()
        assert repos == ["billing", "search"]  # costliest first, by the names the dashboard shows
        assert "nightly" in page.locator("#spend-breakdowns table[data-by='agent']").inner_text()
        assert "codex:gpt-5" in page.locator("#spend-breakdowns table[data-by='runtime']").inner_text()
        spent_up = page.locator("#spend-budgets li.budget.spent")
        assert spent_up.count() == 1 and "billing: $1.00 of $1.00 spent, $0.00 left" in spent_up.inner_text()
        assert "search: $0.2500 of $5.00 spent, $4.75 left" in page.locator("#spend-budgets").inner_text()
        page.locator("#spend").screenshot(path=str(artifacts / "spend.png"))
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
