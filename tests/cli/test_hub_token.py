"""The dashboard's access token is in no log: `hub up --detach` writes the hub's output to
``hub.log``, which gives the dashboard's address and where the token is, never the token itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from speedrift import hubdir
from speedrift.demo import ecosystem as demo
from tests.cli.support import Cli


@pytest.fixture
def eco(tmp_path: Path) -> Path:
    demo.build(tmp_path / "eco")
    text = (tmp_path / "eco" / "ecosystem.toml").read_text()
    (tmp_path / "eco" / "ecosystem.toml").write_text(text.replace("plan_only = false", "plan_only = true"))
    return tmp_path / "eco"


def _log_with_dashboard_line(log: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Dashboard:" in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"the hub wrote no dashboard line to {log}")


def test_a_detached_hub_logs_the_dashboard_address_and_the_token_file_but_never_the_token(eco: Path) -> None:
    cli = Cli(eco, process=True)  # a real detached hub, whose output goes to hub.log
    started = cli.ok("hub", "up", "--detach", "--port", "0", "--interval", "0.5")
    hub = hubdir.hub_dir(eco / "ecosystem.toml")
    try:
        log = _log_with_dashboard_line(hubdir.hub_log_path(hub))
    finally:
        cli.ok("hub", "stop")

    token = hubdir.read_token(hub)
    assert token
    assert token not in log and "#token=" not in log
    assert str(hubdir.token_path(hub)) in log and "--print-url" in log
    assert "--print-url" in started.stdout  # the terminal that started it is told how to get the URL
    everything = [p for p in hub.rglob("*") if p.is_file() and p != hubdir.token_path(hub)]
    assert [str(p) for p in everything if token.encode() in p.read_bytes()] == []


def test_hub_up_writing_to_anything_but_a_terminal_prints_no_token(eco: Path) -> None:
    done = Cli(eco).ok("hub", "up", "--port", "0", "--cycles", "1")  # stdout captured: not a terminal

    token = hubdir.read_token(hubdir.hub_dir(eco / "ecosystem.toml"))
    assert token and token not in done.stdout and token not in done.stderr
    assert "Dashboard: http://127.0.0.1:" in done.stdout and "access token in " in done.stdout
