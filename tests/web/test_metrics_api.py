"""``GET /api/metrics`` and ``GET /metrics``: the ecosystem's flow metrics as `speedrift metrics --json`
gives them, kept a few seconds, behind the same guard as every other read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.web.live import DashboardState
from speedrift.web.metrics import MetricsCache
from tests.cli.support import Cli
from tests.web.support import BASE_URL, app_for, bearer


def _land(repo: Path, task_id: str) -> None:
    store = GraphStore.of_repo(repo)
    assert store is not None
    spec = ops.NewTask(task_id, task_id=task_id, exec_command=f"echo {task_id} > {task_id}.txt")
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    assert Pipeline(repo, store, RepoConfig()).run(task_id, RunOptions(force=True)).status == "done"


@pytest.fixture
def client(demo_eco: Path) -> Iterator[TestClient]:
    app = app_for(DashboardState(), ecosystem_path=demo_eco)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def test_the_api_answers_what_speedrift_metrics_json_prints(client: TestClient, demo_eco: Path) -> None:
    billing = demo_eco.parent / "billing"
    _land(billing, "metrics-api")
    served = client.get("/api/metrics").json()
    printed = Cli(demo_eco.parent).json("metrics", "--ecosystem", str(demo_eco))
    assert set(served) == set(printed) and served["since"] == printed["since"] == "7d"
    assert set(served["repos"]) == set(printed["repos"])
    for key in ("landed", "first_attempt_success", "merge_success", "cost_per_landed"):
        assert served["ecosystem"][key] == printed["ecosystem"][key]
    assert served["repos"]["billing"]["landed"]["value"] >= 1


def test_the_window_and_repo_narrow_the_answer(client: TestClient, demo_eco: Path) -> None:
    _land(demo_eco.parent / "billing", "metrics-narrow")
    narrow = client.get("/api/metrics", params={"since": "1d", "repo": "billing"}).json()
    assert set(narrow["repos"]) == {"billing"} and narrow["window"]["seconds"] == 86_400.0
    assert narrow["repos"]["billing"]["landed"]["value"] >= 1


def test_an_answer_is_kept_for_its_ttl_per_window_and_repo() -> None:
    now = [100.0]
    readings: list[int] = []

    def compute() -> dict[str, Any]:
        readings.append(1)
        return {"reading": len(readings)}

    cache = MetricsCache(ttl=5.0, clock=lambda: now[0])
    assert cache.get(("7d", None), compute) == {"reading": 1}
    now[0] = 104.9
    assert cache.get(("7d", None), compute) == {"reading": 1}  # kept
    assert cache.get(("1d", None), compute) == {"reading": 2}  # another window: read
    now[0] = 105.0
    assert cache.get(("7d", None), compute) == {"reading": 3}  # expired: read again


def test_bad_parameters_are_refused_naming_the_fix(client: TestClient) -> None:
    unknown = client.get("/api/metrics", params={"repo": "nope"})
    assert unknown.status_code == 404 and "no repo named 'nope'" in unknown.json()["error"]
    bad = client.get("/api/metrics", params={"since": "soon"})
    assert bad.status_code in (400, 422) and "45s, 30m" in bad.json()["hint"]


def test_the_page_is_served_with_a_link_back_to_the_dashboard(client: TestClient) -> None:
    page = client.get("/metrics")
    assert page.status_code == 200 and 'href="/"' in page.text and "/static/metrics.js" in page.text


def test_beyond_loopback_the_metrics_need_the_token(demo_eco: Path) -> None:
    app = app_for(DashboardState(), ecosystem_path=demo_eco, reads_need_token=True)
    with TestClient(app, base_url=BASE_URL) as guarded:
        assert guarded.get("/api/metrics").status_code == 401
        assert guarded.get("/api/metrics", headers=bearer()).status_code == 200
