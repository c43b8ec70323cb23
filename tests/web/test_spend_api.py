"""The dashboard's Spend panel over a real demo ecosystem: ``/api/spend`` adds up the attempt log
for the ecosystem's repos (today by default), with each repo's daily budget and the ecosystem's
as its hub published them; the page carries the panel and its script."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from speedrift import attemptlog
from speedrift.attemptlog import AttemptEntry, CostSource
from speedrift.fleet import budgetpub
from speedrift.fleet.opsconfig import EcosystemBudgets, FleetOps
from speedrift.times import now_utc
from speedrift.web.live import DashboardState
from speedrift.web.server import wire
from tests.web.support import BASE_URL, app_for


@pytest.fixture
def dash(demo_eco: Path) -> Iterator[tuple[TestClient, DashboardState]]:
    wiring = wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=False)
    app = app_for(wiring.state, ecosystem_path=demo_eco, hub=wiring.hub)
    with TestClient(app, base_url=BASE_URL) as client:
        yield client, wiring.state


def repo_path(state: DashboardState, name: str) -> Path:
    info = state.repo_info(name)
    assert info is not None
    return Path(info.path)


def spent(repo: Path | str, usd: float, *, days_ago: int = 0, **more: object) -> None:
    values: dict[str, object] = {"task": "t", "attempt": 1, "status": "done", "runtime": "claude"} | more
    attemptlog.append(
        AttemptEntry(
            at=now_utc() - timedelta(days=days_ago, seconds=1),
            repo=budgetpub.repo_key(repo),
            cost_usd=usd,
            cost_source=CostSource.REPORTED,
            **values,  # type: ignore[arg-type]
        )
    )


def test_spend_adds_up_todays_attempts_of_the_ecosystems_repos_with_their_budgets(
    dash: tuple[TestClient, DashboardState], demo_eco: Path
) -> None:
    client, state = dash
    billing, search = repo_path(state, "billing"), repo_path(state, "search")
    (billing / "speedrift.toml").write_text("[budgets]\ndaily_usd = 2.0\n")
    budgetpub.publish_budgets(demo_eco, [billing, search], FleetOps(budgets=EcosystemBudgets(daily_usd=10)))
    spent(billing, 0.5, agent="nightly", runtime="codex", model="gpt-5")
    spent(search, 1.25)
    spent(billing, 7.0, days_ago=3)  # not today
    spent("/somewhere/else", 99.0)  # not the ecosystem's
    view = client.get("/api/spend").json()
    assert view["days"] == 1 and view["total"] == {"usd": 1.75, "tokens": 0, "attempts": 2}
    names = view["repo_names"]
    assert {names[path]: row["usd"] for path, row in view["by_repo"].items()} == {
        "billing": 0.5,
        "search": 1.25,
    }
    assert view["by_agent"]["nightly"]["usd"] == 0.5 and view["by_runtime"]["codex:gpt-5"]["attempts"] == 1
    budgets = {(b["budget"], b["scope_name"] or b["scope"]): b for b in view["budgets"]}
    assert budgets[("repo_daily", "billing")]["remaining"] == 1.5
    assert budgets[("ecosystem_daily", str(demo_eco))]["spent"] == 1.75
    assert budgets[("ecosystem_daily", str(demo_eco))]["remaining"] == 8.25
    week = client.get("/api/spend", params={"days": 7}).json()
    assert week["total"]["usd"] == 8.75 and len(week["by_day"]) == 2


def test_a_bad_days_value_is_turned_down_and_a_broken_config_is_named(
    dash: tuple[TestClient, DashboardState],
) -> None:
    client, state = dash
    for bad in ("abc", "0", "400"):
        response = client.get("/api/spend", params={"days": bad})
        assert response.status_code == 422 and "days" in response.json()["error"]
    (repo_path(state, "search") / "speedrift.toml").write_text("[budgets]\ndaily_usd = -1\n")
    view = client.get("/api/spend").json()
    assert any(problem.startswith("search: ") for problem in view["problems"])


def test_the_page_carries_the_spend_panel_and_its_script(dash: tuple[TestClient, DashboardState]) -> None:
    client, _state = dash
    page = client.get("/").text
    assert 'id="spend"' in page and "/static/spend.js" in page
    script = client.get("/static/spend.js")
    assert script.status_code == 200 and "/api/spend" in script.text
