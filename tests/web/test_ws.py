"""``/ws/status`` in-process: snapshot, numbered deltas, resync, origin and token checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from speedrift.web.live import DashboardState
from speedrift.web.views import RepoInfo, task_nodes
from speedrift.web.ws import Client
from tests.builders import graph_of, task
from tests.conftest import NOW
from tests.web.support import BASE_URL, ORIGIN, TOKEN, app_for, record, report, run_async, snapshot

WS = "ws://127.0.0.1:8777/ws/status"  # the Host header must name the bound address


def _nodes(*tasks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return task_nodes(graph_of(*tasks), NOW)


@pytest.fixture
def state() -> DashboardState:
    live = DashboardState("/eco/ecosystem.toml")
    live.set_repos([RepoInfo(name="shop", path="/r/shop"), RepoInfo(name="billing", path="/r/billing")])
    live.update_graph("shop", _nodes(task("a"), task("b", after=["a"])))
    live.update_graph("billing", _nodes(task("x")))
    return live


@pytest.fixture
def client(state: DashboardState) -> Iterator[TestClient]:
    with TestClient(app_for(state), base_url=BASE_URL) as test_client:
        yield test_client


def test_a_client_gets_a_snapshot_then_only_the_changed_task(
    state: DashboardState, client: TestClient
) -> None:
    with client.websocket_connect(WS, headers={"origin": ORIGIN}) as ws:
        first = ws.receive_json()
        assert first["type"] == "snapshot" and first["seq"] == state.seq
        assert {c["name"] for c in first["cards"]} == {"shop", "billing"}
        assert "graph" not in first  # graphs are fetched per repo, not pushed whole
        state.update_graph("shop", _nodes(task("a", "done"), task("b", after=["a"])))
        delta = ws.receive_json()
        assert delta["type"] == "delta" and delta["seq"] == first["seq"] + 1
        assert delta["graph"]["repo"] == "shop"
        assert sorted(n["id"] for n in delta["graph"]["upsert"]) == ["a", "b"]
        assert [c["name"] for c in delta["cards"]] == ["shop"]


def test_deltas_arrive_in_seq_order_from_any_thread(state: DashboardState, client: TestClient) -> None:
    with client.websocket_connect(WS) as ws:
        start = ws.receive_json()["seq"]
        state.update_graph("billing", _nodes(task("x", "in-progress")))
        state.publish_cycle(record([report(snapshot("shop")), report(snapshot("billing"))]))
        state.update_graph("billing", _nodes(task("x", "done")))
        seqs = [ws.receive_json()["seq"] for _ in range(3)]
        assert seqs == [start + 1, start + 2, start + 3]


def test_a_resync_request_is_answered_with_a_fresh_snapshot(
    state: DashboardState, client: TestClient
) -> None:
    with client.websocket_connect(WS) as ws:
        ws.receive_json()
        state.update_graph("billing", _nodes(task("x", "done")))
        ws.receive_json()
        ws.send_json({"type": "resync"})
        again = ws.receive_json()
        assert again["type"] == "snapshot" and again["seq"] == state.seq
        card = next(c for c in again["cards"] if c["name"] == "billing")
        assert card["tasks"]["counts"] == {"done": 1}


def test_ping_is_answered_and_junk_is_ignored(client: TestClient) -> None:
    with client.websocket_connect(WS) as ws:
        ws.receive_json()
        ws.send_text("not json")
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_a_foreign_origin_cannot_open_the_websocket(client: TestClient) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(WS, headers={"origin": "http://evil.example"}),
    ):
        pass
    assert refused.value.code == 1008


def test_a_foreign_host_cannot_open_the_websocket(client: TestClient) -> None:
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(WS, headers={"host": "evil.example:8777"}),
    ):
        pass


def test_beyond_loopback_the_websocket_wants_the_token_first(state: DashboardState) -> None:
    with TestClient(app_for(state, reads_need_token=True), base_url=BASE_URL) as client:
        with client.websocket_connect(WS) as ws:
            ws.send_json({"type": "resync"})  # not an auth message
            with pytest.raises(WebSocketDisconnect) as missing:
                ws.receive_json()
            assert missing.value.code == 4401
        with client.websocket_connect(WS) as ws:
            ws.send_json({"type": "auth", "token": "wrong"})
            with pytest.raises(WebSocketDisconnect) as wrong:
                ws.receive_json()
            assert wrong.value.code == 4403
        with client.websocket_connect(WS) as ws:
            ws.send_json({"type": "auth", "token": TOKEN})
            assert ws.receive_json()["type"] == "snapshot"


def test_a_client_that_falls_too_far_behind_is_resynced_instead_of_buffering_forever() -> None:
    async def scenario() -> Client:
        client = Client(max_pending=3)
        for seq in range(1, 10):
            client.offer(seq, f"delta {seq}")
        return client

    lagging = run_async(scenario())
    assert lagging.overflowed is True
    assert len(lagging.pending) == 0  # dropped: a snapshot replaces them
    assert lagging.wake.is_set()
