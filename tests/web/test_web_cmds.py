"""`speedrift dashboard` and `speedrift token rotate` as a user runs them (through the CLI's
`main`, in this process; serving until Ctrl-C takes a real process)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from speedrift import hubdir
from tests.cli.support import Cli, Result


def _speedrift(*args: str, cwd: Path) -> Result:
    return Cli(cwd)(*args)


def test_print_url_carries_the_token_in_the_fragment(demo_eco: Path) -> None:
    done = _speedrift("dashboard", "--print-url", cwd=demo_eco.parent)
    assert done.returncode == 0, done.stderr
    token = hubdir.read_token(hubdir.hub_dir(demo_eco))
    assert token
    assert done.stdout.strip() == f"http://127.0.0.1:8777/#token={token}"
    mode = os.stat(hubdir.token_path(hubdir.hub_dir(demo_eco))).st_mode & 0o777
    assert mode == 0o600


def test_token_rotate_replaces_the_token(demo_eco: Path) -> None:
    _speedrift("dashboard", "--print-url", "--ecosystem", str(demo_eco), cwd=demo_eco.parent.parent)
    hub = hubdir.hub_dir(demo_eco)
    before = hubdir.read_token(hub)
    done = _speedrift("token", "rotate", "--ecosystem", str(demo_eco), cwd=demo_eco.parent.parent)
    assert done.returncode == 0, done.stderr
    after = hubdir.read_token(hub)
    assert after and after != before
    assert f"#token={after}" in done.stdout


def test_token_without_an_action_is_a_usage_error(demo_eco: Path) -> None:
    done = _speedrift("token", cwd=demo_eco.parent)
    assert done.returncode == 2
    assert "speedrift token rotate" in done.stderr


def test_a_busy_port_exits_1_and_says_how_to_pick_another(demo_eco: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        done = _speedrift("dashboard", "--port", str(port), cwd=demo_eco.parent)
    finally:
        holder.close()
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "--port" in done.stderr


def test_a_busy_port_while_the_hub_runs_points_at_the_hubs_dashboard(demo_eco: Path) -> None:
    import fcntl

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    fd = os.open(hubdir.pid_path(hubdir.hub_dir(demo_eco)), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running hub holds
        os.write(fd, f"{os.getpid()}\n".encode())
        done = _speedrift("dashboard", "--port", str(port), cwd=demo_eco.parent)
    finally:
        os.close(fd)
        holder.close()
    assert done.returncode == 1
    assert f"the hub for this ecosystem (pid {os.getpid()})" in done.stderr
    assert "--print-url" in done.stderr


def test_no_ecosystem_is_a_clear_error(tmp_path: Path) -> None:
    done = _speedrift("dashboard", cwd=tmp_path)
    assert done.returncode == 1
    assert "ecosystem.toml" in done.stderr


def test_the_dashboard_serves_until_interrupted(demo_eco: Path) -> None:
    # a real process: it serves until SIGINT
    process = subprocess.Popen(
        [sys.executable, "-m", "speedrift", "dashboard", "--port", "0"],
        cwd=demo_eco.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.match(r"Dashboard: (http://127\.0\.0\.1:\d+/)#token=(\S+)", line)
        assert match, line
        base, token = match.groups()
        assert token == hubdir.read_token(hubdir.hub_dir(demo_eco))
        status = httpx.get(base + "api/status", timeout=10)
        assert status.status_code == 200
        assert status.json()["overview"]["repos"] == 5
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
