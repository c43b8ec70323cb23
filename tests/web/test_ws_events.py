"""Live agent output on ``/ws/status``: a client follows a running attempt's events by byte position,
gets them in order as they are written (rendered by eventview), and after a reconnect goes on from
where it was — no event twice, none missing — until the attempt's end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession

from speedrift import layout, records
from speedrift.web import runs
from speedrift.web.live import DashboardState
from speedrift.web.views import RepoInfo
from tests.web.support import BASE_URL, app_for

WS = "ws://127.0.0.1:8777/ws/status"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "shop"


@pytest.fixture
def client(repo: Path) -> Iterator[TestClient]:
    state = DashboardState("/eco/ecosystem.toml")
    state.set_repos([RepoInfo(name="shop", path=str(repo))])
    with TestClient(app_for(state), base_url=BASE_URL) as test_client:
        yield test_client


class Attempt:
    """A running attempt of ``build`` written as the worker writes one: its record, its event log."""

    def __init__(self, repo: Path) -> None:
        self.dir = layout.attempt_dir(repo, "build", 1)
        self.dir.mkdir(parents=True)
        records.update_attempt(self.dir, {"state": "running", "runtime": "claude"})  # this process: alive
        self.written: list[str] = []

    def write(self, *texts: str) -> None:
        with records.open_event_log(self.dir) as log:
            for text in texts:
                data = {"tool": "Bash", "id": text}
                records.append_event(log, records.Event("tool_use", text, data=data))
                self.written.append(text)

    def end(self, state: str = "done") -> None:
        records.update_attempt(self.dir, {"state": state, "reason": "landed"})


def _follow(ws: WebSocketTestSession, position: int) -> None:
    ws.send_json({"type": "follow", "repo": "shop", "task": "build", "attempt": 1, "position": position})


def _events_until(ws: WebSocketTestSession, count: int, got: list[dict[str, Any]], at: int) -> int:
    """Receive events messages until ``count`` events are held; each must start where the last ended."""
    while len(got) < count:
        message = ws.receive_json()
        if message["type"] != "events":
            continue
        assert message["from"] == at  # contiguous: no gap, no overlap
        got.extend(message["events"])
        at = message["position"]
    return at


def _end(ws: WebSocketTestSession, got: list[dict[str, Any]], at: int) -> dict[str, Any]:
    """Receive until the end; every event on the way is kept."""
    while True:
        message = ws.receive_json()
        assert message["type"] == "events" and message["from"] == at
        got.extend(message["events"])
        at = message["position"]
        if message["end"] is not None:
            end: dict[str, Any] = message["end"]
            return end


def test_a_followed_attempt_streams_its_events_in_order_across_a_reconnect_then_its_end(
    client: TestClient, repo: Path
) -> None:
    attempt = Attempt(repo)
    attempt.write("pytest -q", "ruff check")
    got: list[dict[str, Any]] = []
    with client.websocket_connect(WS) as ws:
        assert ws.receive_json()["type"] == "snapshot"
        _follow(ws, 0)
        position = _events_until(ws, 2, got, 0)
        attempt.write("make build")  # written while the page follows: it arrives by itself
        position = _events_until(ws, 3, got, position)
    attempt.write("git status", "git diff")  # written while the page is away
    with client.websocket_connect(WS) as ws:
        assert ws.receive_json()["type"] == "snapshot"
        _follow(ws, position)  # from where it was
        position = _events_until(ws, 5, got, position)
        attempt.write("echo done")
        attempt.end()
        assert _end(ws, got, position) == {"state": "done", "failure": None, "reason": "landed"}
    assert [e["text"] for e in got] == attempt.written  # each once, in order
    assert [e["view"]["line"] for e in got][:2] == ["Bash: pytest -q", "Bash: ruff check"]
    assert all(e["view"]["style"] == "tool" and e["ts"].endswith("Z") for e in got)


def test_a_large_log_arrives_in_bounded_contiguous_batches(
    client: TestClient, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "BATCH_BYTES", 2_000)
    attempt = Attempt(repo)
    attempt.write(*(f"step {n} " + "x" * 100 for n in range(100)))
    attempt.end("failed")
    got: list[dict[str, Any]] = []
    sizes: list[int] = []
    with client.websocket_connect(WS) as ws:
        ws.receive_json()
        _follow(ws, 0)
        at = 0
        while True:
            message = ws.receive_json()
            assert message["type"] == "events" and message["from"] == at
            sizes.append(message["position"] - message["from"])
            got.extend(message["events"])
            at = message["position"]
            if message["end"] is not None:
                break
    assert [e["text"] for e in got] == attempt.written
    assert len(sizes) > 5 and max(sizes) <= 2_000
    assert message["end"]["state"] == "failed"


def test_a_follow_of_an_unknown_repo_or_a_bad_position_is_answered_with_why(client: TestClient) -> None:
    with client.websocket_connect(WS) as ws:
        ws.receive_json()
        ws.send_json({"type": "follow", "repo": "nope", "task": "t", "attempt": 1, "position": 0})
        assert "no repo named 'nope'" in ws.receive_json()["message"]
        ws.send_json({"type": "follow", "repo": "shop", "task": "t", "attempt": 1, "position": -4})
        error = ws.receive_json()
        assert error["type"] == "events_error" and "byte position" in error["message"]


def test_the_run_detail_says_where_its_events_end_so_a_follower_starts_there(repo: Path) -> None:
    attempt = Attempt(repo)
    attempt.write("one", "two")
    with open(layout.events_path(attempt.dir), "ab") as log:
        log.write(b'{"ts": "2026-12-07T00:00:00Z", "kind": "mess')  # a line still being written
    detail = runs.attempt_detail(repo, "build", 1)
    assert detail is not None and detail["running"] is True
    assert [e["text"] for e in detail["events"]] == ["one", "two"]
    complete = layout.events_path(attempt.dir).read_bytes()
    assert detail["events_position"] == complete.rindex(b"\n") + 1  # not inside the torn line
    assert detail["events"][0]["view"] == {
        "ts": detail["events"][0]["ts"], "kind": "tool_use", "style": "tool", "line": "Bash: one",
    }  # fmt: skip
