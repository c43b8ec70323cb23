"""The dashboard under hostile input: a bad graph is reported on its graph route (never a 500), a
body past 16 KB is refused without being read, and a lease outside its range is a 400 naming it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from speedrift import hubdir
from speedrift.control.controlfile import read_control
from speedrift.web.api import MAX_BODY
from speedrift.web.server import DashboardServer, start_in_thread, wire
from tests.web.support import BASE_URL, ORIGIN, app_for, bearer

SURROGATE_LINE = b'{"kind":"task","id":"lone","title":"x\\ud800y","status":"open"}\n'
DEEP_LINE = b'{"kind":"task","id":"deep","title":"t","x":' + b"[" * 1100 + b"]" * 1100 + b"}\n"


def _append(eco: Path, repo: str, line: bytes) -> None:
    with (eco.parent / repo / ".workgraph" / "graph.jsonl").open("ab") as handle:
        handle.write(line)


@pytest.fixture
def client(demo_eco: Path) -> Iterator[TestClient]:
    _append(demo_eco, "billing", SURROGATE_LINE)
    _append(demo_eco, "search", DEEP_LINE)
    graph = demo_eco.parent / "web-ui" / ".workgraph" / "graph.jsonl"
    graph.unlink()
    os.symlink("/proc/self/mem", graph)  # a regular file whose read fails, even for root
    wiring = wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=False)
    app = app_for(wiring.state, ecosystem_path=demo_eco, hub=wiring.hub)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def test_the_graph_route_reports_a_lone_surrogate_line_instead_of_a_500(client: TestClient) -> None:
    response = client.get("/api/repos/billing/graph")

    assert response.status_code == 200
    body = response.json()
    assert body["graph"] is True and {n["id"] for n in body["nodes"]} >= {"invoice-numbers"}
    assert "lone" not in {n["id"] for n in body["nodes"]}
    assert any("surrogate" in p and "speedrift repair" in p for p in body["problems"])


def test_the_graph_route_reports_a_line_nested_1100_deep(client: TestClient) -> None:
    body = client.get("/api/repos/search/graph").json()

    assert body["graph"] is True
    assert any("nested more than 128 levels deep" in p for p in body["problems"])


def test_the_graph_route_says_why_a_graph_cannot_be_read(client: TestClient) -> None:
    response = client.get("/api/repos/web-ui/graph")

    assert response.status_code == 200
    assert response.json()["graph"] is False
    assert response.json()["problems"] == ["graph.jsonl cannot be read: Input/output error"]


def test_every_read_route_answers_over_hostile_graphs(client: TestClient) -> None:
    for path in (
        "/api/status",
        "/api/snapshot",
        "/api/repos",
        "/api/graph",
        "/api/queues",
        "/api/repos/billing",
    ):
        assert client.get(path).status_code == 200, path


# --- leases ------------------------------------------------------------------------------------------
@pytest.fixture
def plain(demo_eco: Path) -> Iterator[TestClient]:
    wiring = wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=False)
    app = app_for(wiring.state, ecosystem_path=demo_eco, hub=wiring.hub)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "lease",
    [1e300, 10**30, "99999999999999999999w", "9" * 5000 + "s", "31d", 2_592_001, -5, 0, 0.5],
    ids=["1e300", "10**30", "overflowing-weeks", "5000-digits", "31d", "30d+1s", "negative", "zero", "half"],
)
def test_a_lease_outside_its_range_is_a_400_naming_the_range(
    plain: TestClient, demo_eco: Path, lease: Any
) -> None:
    response = plain.post(
        "/api/repos/billing/mode",
        json={"mode": "supervise", "lease_ttl": lease},
        headers={**bearer(), "origin": ORIGIN},
    )

    assert response.status_code == 400
    body = response.json()
    assert "between 1 second and 30 days" in body["error"] and body["field"] == "lease_ttl"
    assert read_control(demo_eco.parent / "billing").mode == "observe"


def test_a_lease_at_the_top_of_its_range_is_granted(plain: TestClient) -> None:
    response = plain.post(
        "/api/repos/billing/mode",
        json={"mode": "supervise", "lease_ttl": "30d"},
        headers={**bearer(), "origin": ORIGIN},
    )
    assert response.status_code == 200 and response.json()["lease_expires_at"]


# --- the body limit, on a real socket --------------------------------------------------------------
@pytest.fixture
def served(demo_eco: Path) -> Iterator[tuple[DashboardServer, str]]:
    server, _state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    try:
        token = hubdir.read_token(hubdir.hub_dir(demo_eco))
        assert token is not None
        yield server, token
    finally:
        server.stop()


def _request_head(server: DashboardServer, token: str, length_header: str) -> bytes:
    return (
        f"POST /api/repos/billing/mode HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Origin: http://127.0.0.1:{server.port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{length_header}\r\n"
    ).encode()


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data or (b"}" not in data.split(b"\r\n\r\n", 1)[1]):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_declared_body_over_16kb_is_refused_before_any_of_it_is_sent(
    served: tuple[DashboardServer, str],
) -> None:
    server, token = served
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_request_head(server, token, "Content-Length: 10000000\r\n"))  # headers only

        answer = _answer(sock)

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert f"request body over {MAX_BODY:,} bytes".encode() in answer


def test_a_chunked_body_is_refused_once_past_16kb_without_waiting_for_the_rest(
    served: tuple[DashboardServer, str],
) -> None:
    server, token = served
    chunk = b"x" * 8192
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_request_head(server, token, "Transfer-Encoding: chunked\r\n"))
        for _ in range(3):  # 24 KB of a body that never ends: the server must answer anyway
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            time.sleep(0.05)

        answer = _answer(sock)

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_body_just_under_the_limit_is_read_and_judged(served: tuple[DashboardServer, str]) -> None:
    server, token = served
    body = b'{"mode":"observe","reason":"' + b"a" * 400 + b'","pad":"' + b"p" * (MAX_BODY - 500) + b'"}'
    assert len(body) <= MAX_BODY
    response = httpx.post(
        f"{server.url}api/repos/billing/mode",
        content=body,
        headers={"authorization": f"Bearer {token}", "origin": server.url.rstrip("/")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
