"""A real local Dask cluster (`cluster.up`: a scheduler and two worker processes on 127.0.0.1)
described by `cluster.status`: its workers with their resources, our attempts running on them by
their keys, and the machines' infrastructure failures from the attempt log; resources as workers
offer them; a taken port refused with the fix."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import attemptlog
from speedrift.agents import choose
from speedrift.attemptlog import AttemptEntry
from speedrift.errors import Refused, UsageError
from speedrift.fleet.remote import cluster
from speedrift.fleet.remote.spec import make_key
from speedrift.procs import group_members
from speedrift.times import now_utc
from tests.daskcluster import FIX


def need_distributed() -> None:
    """Skip where `distributed` is missing (the fix named); fail under $CI, which must have it."""
    if importlib.util.find_spec("distributed") is None:
        if os.environ.get("CI"):
            pytest.fail(f"distributed is not installed: {FIX}", pytrace=False)
        pytest.skip(f"distributed is not installed: {FIX}", allow_module_level=True)


need_distributed()
TIMEOUT = 120.0
RESOURCES = {"runtime:shell": 1.0, "gpu": 1.0}


@pytest.fixture(scope="module")
def local() -> Iterator[cluster.LocalCluster]:
    with cluster.up(workers=2, port=0, resources=RESOURCES, timeout=TIMEOUT) as started:
        yield started


def wait_for(check: Any, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("the condition never held")


def test_a_two_worker_local_cluster_lists_both_workers_with_the_resources_they_offer(
    local: cluster.LocalCluster,
) -> None:
    found = cluster.status(local.address, timeout=60)
    assert found.scheduler == local.address and local.address.startswith("tcp://127.0.0.1:")
    assert sorted(w.name for w in found.workers) == sorted(local.names) and len(found.workers) == 2
    for worker in found.workers:
        assert worker.resources == RESOURCES
        assert worker.nthreads == 1 and worker.host == "127.0.0.1"
        assert worker.hostname == socket.gethostname() and worker.memory_limit > 0
    assert found.running == [] and found.failures == []
    assert found.to_json()["workers"][0]["resources"] == RESOURCES


def _config_seen(key: str) -> object:
    import dask

    return dask.config.get(key)


def test_the_workers_it_starts_skip_dasks_millisecond_housekeeping(local: cluster.LocalCluster) -> None:
    client = cluster.connect(local.address, timeout=60)
    try:
        profiling = client.run(_config_seen, "distributed.worker.profile.enabled")
        tick = client.run(_config_seen, "distributed.admin.tick.interval")
        on_scheduler = client.run_on_scheduler(_config_seen, "distributed.admin.tick.interval")
    finally:
        client.close()
    assert len(profiling) == 2 and set(profiling.values()) == {False}
    assert set(tick.values()) == {"500ms"} and on_scheduler == "500ms"


def test_a_dask_setting_the_environment_makes_itself_is_kept() -> None:
    mine = {"DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "50ms", "PATH": "/bin"}
    env = cluster.quiet_env(mine)
    assert env["DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL"] == "50ms" and env["PATH"] == "/bin"
    assert env["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] == "False"
    assert set(cluster.QUIET_DASK) <= set(env)


def test_our_attempt_running_on_a_worker_is_named_by_repo_task_and_attempt_and_others_are_not(
    local: cluster.LocalCluster, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    wait = f"for i in $(seq 1200); do [ -e {release} ] && exit 0; sleep 0.1; done"
    key = make_key("billing", "refunds", 2, "n0nce")
    with cluster.connect(local.address, 60) as client:
        ours = client.submit(subprocess.run, ["sh", "-c", wait], key=key, pure=False, resources={"gpu": 1})
        other = client.submit(subprocess.run, ["sh", "-c", wait], key="not-ours-1", pure=False)
        try:
            found = wait_for(lambda: (s := cluster.status(local.address, 60)) and len(s.running) and s)
            [running] = found.running
            assert (running.repo, running.task, running.attempt, running.key) == (
                "billing",
                "refunds",
                2,
                key,
            )
            assert running.worker in {w.address for w in found.workers}
            busy = {w.address: w.running for w in found.workers}
            assert key in busy[running.worker]
            wait_for(
                lambda: any("not-ours-1" in w.running for w in cluster.status(local.address, 60).workers)
            )
        finally:
            release.touch()
            ours.result(timeout=TIMEOUT)
            other.result(timeout=TIMEOUT)


def test_a_machines_infrastructure_failure_in_the_attempt_log_is_listed_newest_first(
    local: cluster.LocalCluster,
) -> None:
    now = now_utc()

    def entry(task: str, ago_h: float, failure: str | None, machine: str | None) -> AttemptEntry:
        at = now - timedelta(hours=ago_h)
        return AttemptEntry(at, "/r/billing", task, 1, "failed", "shell", failure=failure, machine=machine)

    for written in (
        entry("old", 30, "transient_infra", "tcp://10.0.0.9:4000"),  # past the window
        entry("bug", 1, "regression", "tcp://10.0.0.9:4000"),  # not the infrastructure
        entry("unknown", 1, "transient_infra", None),  # no machine named
        entry("earlier", 2, "transient_infra", "tcp://10.0.0.9:4000"),
        entry("latest", 0.5, "transient_infra", "box-2"),
    ):
        attemptlog.append(written)
    failures = cluster.status(local.address, timeout=60, now=now).failures
    assert [(f.task, f.machine) for f in failures] == [
        ("latest", "box-2"),
        ("earlier", "tcp://10.0.0.9:4000"),
    ]
    assert failures[0].repo == "/r/billing" and failures[0].runtime == "shell"


def test_stop_ends_every_process_of_the_cluster_and_removes_its_directory() -> None:
    started = cluster.up(workers=1, port=0, timeout=TIMEOUT)
    members = group_members(started.pids)
    assert len(members) >= 3  # the scheduler, the worker's nanny and the worker itself
    assert (started.directory / "scheduler.log").is_file()
    started.stop()
    assert group_members(started.pids) == []
    assert not started.directory.exists()
    started.stop()  # again: nothing left to do, no error


def test_a_taken_port_is_refused_with_the_fix_and_the_log_that_says_why_is_kept(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Refused) as refused:
            cluster.up(workers=1, port=port, timeout=TIMEOUT, directory=tmp_path / "cluster")
    assert "Address already in use" in str(refused.value)
    assert refused.value.hint is not None and "--port 0" in refused.value.hint
    assert "Address already in use" in (tmp_path / "cluster" / "scheduler.log").read_text()


def test_each_installed_agent_cli_becomes_a_runtime_resource_and_shell_and_demo_are_always_offered(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    cli = folder / choose.runtime_for("claude").executable
    cli.write_text("#!/bin/sh\nexit 99\n")  # never run: only looked for
    cli.chmod(0o755)
    # demo runs speedrift's own interpreter (an absolute path): offered wherever speedrift runs
    assert cluster.installed_runtimes(str(folder)) == ["claude", "shell", "demo"]
    assert cluster.default_resources(str(folder)) == {
        "runtime:claude": 1.0,
        "runtime:shell": 1.0,
        "runtime:demo": 1.0,
    }
    assert cluster.default_resources(str(tmp_path / "empty")) == {"runtime:shell": 1.0, "runtime:demo": 1.0}


def test_resources_are_read_as_name_amount_pairs_and_a_bad_pair_is_named() -> None:
    assert cluster.parse_resources("runtime:shell=1, gpu=2 memory=4096") == {
        "runtime:shell": 1.0,
        "gpu": 2.0,
        "memory": 4096.0,
    }
    assert cluster.format_resources({"runtime:shell": 1.0, "memory": 4096.0}) == "runtime:shell=1,memory=4096"
    for bad in ("gpu", "gpu=", "gpu=-1", "=1", "gpu=nan", "gpu=inf", " , "):
        with pytest.raises(UsageError):
            cluster.parse_resources(bad)


def test_a_malformed_scheduler_address_is_a_usage_error_before_any_connection() -> None:
    for bad in ("localhost:8786", "tcp://127.0.0.1", "tcp://127.0.0.1:port", "tcp://127.0.0.1:70000"):
        with pytest.raises(UsageError):
            cluster.check_address(bad)
    assert cluster.check_address("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
