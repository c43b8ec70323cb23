"""`speedrift cluster up|status` as a person runs them, in real processes: status --json against a
real local cluster (the scheduler found on the flag, in the environment or in ecosystem.toml),
`cluster up` stopped with SIGTERM leaving no scheduler or worker behind, an unreachable scheduler
and a missing `distributed` each a clear error with the fix."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from speedrift.cli import parser_cluster
from speedrift.fleet.remote import cluster
from speedrift.procs import group_members
from tests.fleet.remote.test_cluster_status import TIMEOUT, need_distributed, wait_for

need_distributed()


def speedrift(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "speedrift", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def local() -> Iterator[cluster.LocalCluster]:
    with cluster.up(workers=2, port=0, resources={"runtime:shell": 1.0}, timeout=TIMEOUT) as started:
        yield started


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_status_json_lists_the_workers_of_the_scheduler_named_on_the_flag(
    local: cluster.LocalCluster,
) -> None:
    done = speedrift("cluster", "status", "--scheduler", local.address, "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["scheduler"] == local.address and found["scheduler_from"] == "--scheduler"
    assert sorted(w["name"] for w in found["workers"]) == sorted(local.names)
    assert all(w["resources"] == {"runtime:shell": 1.0} for w in found["workers"])
    assert found["running"] == [] and found["failures"] == []
    shown = speedrift("cluster", "status", "--scheduler", local.address)  # the human view
    assert shown.returncode == 0 and local.names[0] in shown.stdout and "2 worker(s)" in shown.stdout


def test_status_finds_the_scheduler_in_the_environment_else_in_the_ecosystems_executor_table(
    local: cluster.LocalCluster, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SPEEDRIFT_DASK_SCHEDULER", "SPEEDRIFT_EXECUTOR")}
    from_env = speedrift(
        "cluster", "status", "--json", cwd=tmp_path, env={**env, "SPEEDRIFT_DASK_SCHEDULER": local.address}
    )
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["scheduler_from"] == "$SPEEDRIFT_DASK_SCHEDULER"
    (tmp_path / "ecosystem.toml").write_text(
        f'schema = 1\n\n[executor]\nbackend = "dask"\nscheduler = "{local.address}"\n'
    )
    from_file = speedrift("cluster", "status", "--json", cwd=tmp_path, env=env)
    assert from_file.returncode == 0, from_file.stderr
    found = json.loads(from_file.stdout)
    assert found["scheduler"] == local.address and "[executor] scheduler in" in found["scheduler_from"]


def test_an_unreachable_scheduler_exits_non_zero_saying_how_to_start_or_name_one(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    done = speedrift("cluster", "status", "--scheduler", address, "--timeout", "2", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert f"no Dask scheduler answers at {address}" in done.stderr
    assert "speedrift cluster up" in done.stderr and "SPEEDRIFT_DASK_SCHEDULER" in done.stderr
    bad = speedrift("cluster", "status", "--scheduler", "localhost:8786", cwd=tmp_path)
    assert bad.returncode == 2 and "tcp://" in bad.stderr


def test_without_distributed_the_cluster_commands_name_the_scale_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['distributed'] = None\n"  # an import of it now fails, as when missing
        "from speedrift.cli.app import main\n"
        "sys.exit(main(['cluster', 'status', '--scheduler', 'tcp://127.0.0.1:8786']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'speedrift[scale]'" in done.stderr


def test_cluster_up_stopped_with_sigterm_leaves_no_scheduler_or_worker_behind(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "speedrift", "cluster", "up", "--workers", "2", "--port", "0", "--json"]
    up = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    members: list[int] = []
    try:
        assert up.stdout is not None
        ready = json.loads(up.stdout.readline() or "{}")
        assert ready.get("scheduler", "").startswith("tcp://127.0.0.1:"), (
            up.stderr.read() if up.stderr else ""
        )
        assert ready["env"] == {"SPEEDRIFT_DASK_SCHEDULER": ready["scheduler"]} and len(ready["workers"]) == 2
        members = group_members(ready["pids"])
        assert len(members) >= 5  # the scheduler, and each worker's nanny and worker process
        status = speedrift("cluster", "status", "--scheduler", ready["scheduler"], "--json")
        assert len(json.loads(status.stdout)["workers"]) == 2
        up.send_signal(signal.SIGTERM)
        out, _err = up.communicate(timeout=TIMEOUT)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
    assert up.returncode == 0
    assert json.loads(out.splitlines()[-1]) == {"stopped": True, "reason": "signal"}
    assert group_members(ready["pids"]) == []
    assert [pid for pid in members if running(pid)] == []  # a zombie not yet reaped by init is gone
    assert not Path(ready["logs"]).exists()


def test_cluster_up_prints_the_lines_that_point_an_ecosystem_at_it(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "speedrift", "cluster", "up", "--workers", "1", "--port", "0"]
    up = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    lines: list[str] = []
    try:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        up.send_signal(signal.SIGINT)
        out, _err = up.communicate(timeout=TIMEOUT)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
    text = "".join(lines)
    address = text.split()[2]
    assert address.startswith("tcp://127.0.0.1:")
    assert f"export SPEEDRIFT_DASK_SCHEDULER={address}" in text
    assert '[executor]\n  backend = "dask"\n' in text and f'scheduler = "{address}"' in text
    assert up.returncode == 0 and "Stopped the scheduler" in out


def test_the_parsers_default_port_is_the_clusters() -> None:
    assert parser_cluster.DEFAULT_PORT == cluster.DEFAULT_PORT


def test_cluster_up_killed_outright_still_takes_its_scheduler_and_workers_with_it(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "speedrift", "cluster", "up", "--workers", "1", "--port", "0", "--json"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # its logs, left behind by a kill, stay in the test's
    up = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env
    )
    try:
        assert up.stdout is not None
        ready = json.loads(up.stdout.readline() or "{}")
        assert Path(ready["logs"]).parent == tmp_path
        assert group_members(ready["pids"]), up.stderr.read() if up.stderr else ""
    finally:
        up.kill()  # SIGKILL: no handler runs; Linux's parent-death signal ends the children
        up.communicate()
    wait_for(lambda: group_members(ready["pids"]) == [])
