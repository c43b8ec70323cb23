"""The attempt job through a real Dask cluster (one worker process on 127.0.0.1): a job submitted as
the hub submits it, the rerun sentinel of a job whose first worker vanished, and a cancel through
the job's ``distributed.Event`` that must end the agent's child process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from speedrift.fleet.remote.job import run_job
from speedrift.fleet.remote.spec import CANCEL_PREFIX, HEARTBEAT_PREFIX, STARTED_PREFIX, JobResult
from tests.fleet.remote.job_helpers import leftovers, make_spec, user_repo
from tests.gitrepo import sh_git

distributed = pytest.importorskip("distributed")

TIMEOUT_S = 180


def test_jobs_run_on_a_real_dask_worker_rerun_nothing_and_stop_on_the_cancel_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "worker-cache"
    monkeypatch.setenv("SPEEDRIFT_WORKER_CACHE", str(cache))  # before the cluster: its workers inherit it
    repo = user_repo(tmp_path / "repo")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])

        # a job Dask runs again after its first worker vanished: nothing runs, the hub is told
        rerun = make_spec(repo, "touch must-not-run.txt", task_id="t-rerun")
        client.set_metadata(STARTED_PREFIX + rerun.key, "tcp://127.0.0.1:9")
        again: JobResult = client.submit(run_job, rerun, key=rerun.key, pure=False).result(timeout=TIMEOUT_S)
        assert again.rerun_of == "tcp://127.0.0.1:9" and again.outcome == {} and again.bundle is None
        assert not (cache / "repos").exists()

        # a job as the hub submits it, the hub's heartbeat set
        spec = make_spec(repo, "echo from-dask > dask.txt", task_id="t-dask")
        client.set_metadata(HEARTBEAT_PREFIX + spec.key, time.time())
        done: JobResult = client.submit(run_job, spec, key=spec.key, pure=False).result(timeout=TIMEOUT_S)
        assert done.outcome["success"] is True, done.outcome
        assert done.worker in workers and client.get_metadata(STARTED_PREFIX + spec.key) == done.worker
        assert done.bundle is not None and done.tip is not None
        bundle = tmp_path / "dask.bundle"
        bundle.write_bytes(done.bundle)
        sh_git(repo, "fetch", "-q", str(bundle), "HEAD:refs/remotes/dask/t")
        assert sh_git(repo, "show", "refs/remotes/dask/t:dask.txt") == "from-dask"

        # the hub cancels: the agent's child process is gone afterwards
        pid_file = tmp_path / "sleeper.pid"
        slow = make_spec(repo, f"sleep 300 & echo $! > {pid_file}; wait", task_id="t-slow")
        client.set_metadata(HEARTBEAT_PREFIX + slow.key, time.time())
        future = client.submit(run_job, slow, key=slow.key, pure=False)
        deadline = time.monotonic() + TIMEOUT_S
        while not (pid_file.is_file() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        distributed.Event(CANCEL_PREFIX + slow.key, client=client).set()
        stopped: JobResult = future.result(timeout=TIMEOUT_S)
        assert stopped.outcome["success"] is False
        assert stopped.outcome["reason"] == "cancelled", stopped.outcome  # as the hub's own cancel says
        assert not _running(int(pid_file.read_text()))
        assert stopped.bundle is None and leftovers(cache) == []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
