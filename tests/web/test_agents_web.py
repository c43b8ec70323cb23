"""The dashboard's Agents panel and endpoints: the agents as `speedrift agents list` shows them, a
growth agent started from the page, a paused agent resumed — both only with the token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from speedrift import hubdir
from speedrift.fleetops.pausing import pause_agent
from speedrift.fleetops.state import StateStore
from speedrift.graph.store import GraphStore
from speedrift.register.ledger import Ledger
from speedrift.web.server import wire
from tests.gitrepo import make_repo
from tests.waiting import wait_for
from tests.web.support import BASE_URL, ORIGIN, app_for, bearer

ECOSYSTEM = """schema = 1
[repos.app]
path = "app"

[[agents]]
name = "helper"
layer = "growth"
repos = ["app"]
exec = "echo hi > hello.txt"

[[agents]]
name = "nightly"
layer = "core"
repos = ["app"]
schedule = "@daily"
prompt = "tidy up"
"""


class Dash:
    def __init__(self, eco: Path, client: TestClient) -> None:
        self.eco = eco
        self.hub = hubdir.hub_dir(eco)
        self.app = eco.parent / "app"
        self.client = client

    def post(self, path: str, token: bool = True) -> Any:
        headers = {"Origin": ORIGIN, **(bearer() if token else {})}
        return self.client.post(path, headers=headers, json={})

    def tasks(self) -> dict[str, dict[str, Any]]:
        found = GraphStore.of_repo(self.app)
        assert found is not None
        return found.load().tasks


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dash]:
    make_repo(tmp_path / "app")
    eco = tmp_path / "ecosystem.toml"
    eco.write_text(ECOSYSTEM)
    wiring = wire(eco, "127.0.0.1", 8777, state=None, standalone=False)
    with TestClient(app_for(wiring.state, ecosystem_path=eco, hub=wiring.hub), base_url=BASE_URL) as client:
        yield Dash(eco, client)


def test_the_page_has_the_agents_panel_and_its_script(dash: Dash) -> None:
    page = dash.client.get("/").text
    assert 'id="agents"' in page and "/static/agents.js" in page
    assert dash.client.get("/static/agents.js").status_code == 200


def test_api_agents_lists_the_agents_with_their_schedule_and_state(dash: Dash) -> None:
    body = dash.client.get("/api/agents").json()

    rows = {row["name"]: row for row in body["agents"]}
    assert body["problems"] == [] and sorted(rows) == ["helper", "nightly"]
    assert rows["nightly"]["layer"] == "core" and rows["nightly"]["next_slot"].endswith("T00:00:00Z")
    assert rows["helper"]["paused"] is None and rows["helper"]["last_run"] is None


def test_running_and_resuming_need_the_token(dash: Dash) -> None:
    assert dash.post("/api/agents/helper/run", token=False).status_code == 401
    assert dash.post("/api/agents/helper/resume", token=False).status_code == 401
    assert dash.tasks() == {}


def test_the_run_button_starts_the_agent_through_the_cli_and_it_lands(dash: Dash) -> None:
    response = dash.post("/api/agents/helper/run")

    assert response.status_code == 200, response.text
    started = response.json()
    assert started["kind"] == "agent_run" and started["repo"] == "app" and started["pid"] > 0
    wait_for(lambda: dash.tasks()[started["task"]]["status"] == "done", "the run started from the dashboard")
    assert (dash.app / "hello.txt").read_text() == "hi\n"
    row = next(r for r in dash.client.get("/api/agents").json()["agents"] if r["name"] == "helper")
    assert row["last_run"]["task"] == started["task"]


def test_running_an_unknown_agent_is_a_404_naming_the_known_ones(dash: Dash) -> None:
    response = dash.post("/api/agents/nope/run")
    assert response.status_code == 404
    assert "declared: helper, nightly" in response.json()["error"]


def test_the_resume_button_lifts_a_pause_and_records_it(dash: Dash) -> None:
    now = datetime.now(UTC)
    pause_agent(dash.hub, {"app": dash.app}, "nightly", by="nightwatch", reason="critical drift", now=now)
    row = next(r for r in dash.client.get("/api/agents").json()["agents"] if r["name"] == "nightly")
    assert row["paused"]["by"] == "nightwatch" and row["paused"]["reason"] == "critical drift"

    response = dash.post("/api/agents/nightly/resume")

    assert response.status_code == 200 and response.json()["changed"] is True
    assert StateStore(dash.hub).read().agents["nightly"].pause is None
    (entry,) = [r for r in Ledger(dash.hub).read(last=None) if r.get("kind") == "agent_resume"]
    assert entry["by"].startswith("operator:") and "(dashboard)" in entry["by"]
