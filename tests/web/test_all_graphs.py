"""All repos' task graphs in one bounded answer: the pure cap (web/views.py all_task_graphs) and
``GET /api/graph/tasks`` over the demo ecosystem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from speedrift.web.server import wire
from speedrift.web.views import ALL_GRAPHS_MAX, all_task_graphs
from tests.web.support import BASE_URL, app_for


def node(task_id: str, status: str = "open", *, ready: bool = False, priority: int = 0) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": task_id,
        "status": status,
        "after": [],
        "ready": ready,
        "priority": priority,
    }


def graph(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"seq": 3, "graph": True, "nodes": list(nodes)}


def test_under_the_cap_every_repo_keeps_every_task_in_the_given_order() -> None:
    answer = all_task_graphs({"b": graph(node("x")), "a": graph(node("y"), node("z")), "c": None}, 10)
    assert [r["repo"] for r in answer["repos"]] == ["b", "a", "c"]
    assert [len(r["nodes"]) for r in answer["repos"]] == [1, 2, 0]
    assert answer["repos"][2]["graph"] is False
    assert (answer["total"], answer["shown"], answer["limit"]) == (3, 3, 10)


def test_over_the_cap_each_repo_is_represented_and_keeps_its_live_work_first() -> None:
    big = graph(
        *[node(f"done-{i}", "done") for i in range(20)], node("busy", "in-progress"), node("next", ready=True)
    )
    answer = all_task_graphs({"big": big, "small": graph(node("only", "failed"))}, 4)
    assert answer["total"] == 23 and answer["shown"] == 4  # the page's "showing 4 of 23"
    kept = {r["repo"]: [n["id"] for n in r["nodes"]] for r in answer["repos"]}
    assert kept["small"] == ["only"]
    assert kept["big"] == ["busy", "next", "done-0"]


def test_the_cap_is_bounded_on_both_sides() -> None:
    many = graph(*[node(f"t{i}") for i in range(ALL_GRAPHS_MAX + 5)])
    assert all_task_graphs({"r": many}, 10**9)["shown"] == ALL_GRAPHS_MAX
    assert all_task_graphs({"r": many}, 0)["shown"] == 1


@pytest.fixture
def client(demo_eco: Path) -> Iterator[TestClient]:
    wiring = wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=False)
    with TestClient(app_for(wiring.state, ecosystem_path=demo_eco, hub=wiring.hub), base_url=BASE_URL) as c:
        yield c


def test_the_endpoint_answers_every_repo_and_refuses_a_bad_limit(client: TestClient) -> None:
    answer = client.get("/api/graph/tasks").json()
    repos = {r["repo"]: r for r in answer["repos"]}
    assert {"billing", "shop-api", "search"} <= set(repos)
    assert {n["id"] for n in repos["billing"]["nodes"]} >= {"invoice-numbers", "statements"}
    assert answer["shown"] == answer["total"] == sum(r["total"] for r in answer["repos"])
    assert isinstance(answer["seq"], int)
    capped = client.get("/api/graph/tasks?limit=2").json()
    assert capped["shown"] == 2 and capped["total"] == answer["total"]
    for bad in ("0", "abc", str(ALL_GRAPHS_MAX + 1)):
        refused = client.get(f"/api/graph/tasks?limit={bad}")
        assert refused.status_code == 422 and refused.json()["field"] == "limit"


def test_the_favicon_route_answers_with_the_svg_icon(client: TestClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
