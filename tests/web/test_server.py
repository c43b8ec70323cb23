"""The real server on 127.0.0.1: binding, live deltas over a real socket, slow clients, refresh."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from speedrift import hubdir
from speedrift.control.cycle import run_once
from speedrift.errors import Refused
from speedrift.register.ledger import Ledger
from speedrift.web.live import DashboardState
from speedrift.web.refresh import Refresher
from speedrift.web.server import DashboardServer, make_server, start_in_thread, wire
from speedrift.web.views import task_nodes
from speedrift.web.watch import GraphWatcher
from tests.builders import graph_of, task
from tests.conftest import NOW
from tests.web.support import run_async


@pytest.fixture
def served(demo_eco: Path) -> Iterator[tuple[DashboardServer, DashboardState]]:
    server, state = start_in_thread(demo_eco, "127.0.0.1", 0, watch_interval=0.05)
    try:
        yield server, state
    finally:
        server.stop()


def test_a_busy_port_is_a_clear_error_naming_the_port_and_the_way_out(demo_eco: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(Refused) as refused:
            make_server(demo_eco, "127.0.0.1", port)
    finally:
        holder.close()
    assert f"port {port} on 127.0.0.1 is already in use" in str(refused.value)
    assert "--port" in str(refused.value)


def test_the_server_answers_http_and_pushes_a_disk_change_to_a_websocket(
    served: tuple[DashboardServer, DashboardState], demo_eco: Path
) -> None:
    server, _state = served
    status = httpx.get(f"{server.url}api/status", timeout=10).json()
    assert status["overview"]["repos"] == 5

    async def scenario() -> dict[str, Any]:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/status") as ws:
            snapshot = json.loads(await ws.recv())
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "speedrift",
                    "--dir",
                    str(demo_eco.parent / "billing" / ".workgraph"),
                    "done",
                    "invoice-numbers",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            while True:
                message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert message["seq"] > snapshot["seq"]
                if message.get("graph"):
                    return message

    delta = run_async(scenario())
    assert delta["graph"]["repo"] == "billing"
    changed = {n["id"]: n for n in delta["graph"]["upsert"]}
    assert changed["invoice-numbers"]["status"] == "done"
    assert changed["statements"]["ready"] is True  # its blocker is done: it became ready
    assert set(changed) == {"invoice-numbers", "statements"}


def test_a_client_that_stops_reading_is_resynced_and_never_holds_up_the_others(
    served: tuple[DashboardServer, DashboardState],
) -> None:
    server, state = served
    assert server.broadcaster is not None
    server.broadcaster.max_pending = 8
    bulky = [task_nodes(graph_of(*(task(f"t{i}", title="x" * 100) for i in range(1500))), NOW)]
    bulky.append(task_nodes(graph_of(*(task(f"t{i}", "done", title="x" * 100) for i in range(1500))), NOW))
    rounds = 120

    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        url = f"ws://127.0.0.1:{server.port}/ws/status"
        async with (
            websockets.connect(url, max_size=None) as fast,
            websockets.connect(url, max_size=None, max_queue=1) as slow,
        ):
            start = json.loads(await fast.recv())["seq"]
            json.loads(await slow.recv())
            fast_seqs = []
            for index in range(rounds):  # in step with the fast reader; the slow one reads nothing
                state.update_graph("shop-api", bulky[index % 2])
                fast_seqs.append(json.loads(await asyncio.wait_for(fast.recv(), 30))["seq"])
            assert fast_seqs == list(range(start + 1, start + rounds + 1))
            slow_messages: list[dict[str, Any]] = []
            while not slow_messages or slow_messages[-1]["seq"] < start + rounds:
                slow_messages.append(json.loads(await asyncio.wait_for(slow.recv(), 30)))
            return fast_seqs, slow_messages

    _fast, slow = run_async(scenario())
    assert any(m["type"] == "snapshot" for m in slow), "the lagging client got a fresh snapshot"
    previous = slow[0]["seq"] - 1
    for message in slow:  # never a gap it was not told about
        assert message["type"] == "snapshot" or message["seq"] == previous + 1
        previous = message["seq"]


def test_beyond_loopback_the_server_warns_and_wants_the_token_for_reads(
    demo_eco: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, _state = make_server(demo_eco, "0.0.0.0", 0)
    server.sock.close()
    assert "beyond loopback" in capsys.readouterr().err
    wiring = wire(demo_eco, "0.0.0.0", 8777, state=None, standalone=False)
    assert wiring.policy.reads_need_token is True
    assert wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=False).policy.reads_need_token is False


def test_standalone_without_a_hub_observes_and_scores_but_records_nothing(demo_eco: Path) -> None:
    wiring = wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=True)
    _watcher, refresher = wiring.services
    assert isinstance(refresher, Refresher)
    refresher.tick()
    overview = wiring.state.status()["overview"]
    assert overview["cycle_id"].startswith("view-")
    assert overview["narrative"]
    cards = {c["name"]: c for c in wiring.state.cards()["cards"]}
    assert cards["search"]["tier"] is not None
    assert Ledger(wiring.hub).read(last=None) == []


def test_standalone_with_a_hub_running_follows_its_ledger(demo_eco: Path) -> None:
    wiring = wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=True)
    _watcher, refresher = wiring.services
    assert isinstance(refresher, Refresher)
    pid_file = hubdir.pid_path(wiring.hub)
    fd = os.open(pid_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running hub holds
        os.write(fd, f"{os.getpid()}\n".encode())
        record = run_once(demo_eco, execute_actions=False)
        refresher.tick()
        assert wiring.state.status()["overview"]["cycle_id"] == record["cycle_id"]
    finally:
        os.close(fd)


def test_a_repo_added_to_ecosystem_toml_appears_and_is_watched(demo_eco: Path) -> None:
    from tests.gitrepo import make_repo

    wiring = wire(demo_eco, "127.0.0.1", 8777, state=None, standalone=False)
    watcher, refresher = wiring.services
    assert isinstance(refresher, Refresher) and isinstance(watcher, GraphWatcher)
    make_repo(demo_eco.parent / "late")
    time.sleep(0.01)  # a distinct mtime for the edited file
    with open(demo_eco, "a") as handle:
        handle.write('\n[repos.late]\npath = "late"\n')
    refresher.tick()
    assert "late" in wiring.state.repo_names()
    assert watcher.poll_once() == ["late"]  # the watch thread's next pass
    graph = wiring.state.repo_graph("late")
    assert graph is not None and graph["graph"] is True
