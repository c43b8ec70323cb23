"""Attempts developed on a real two-worker Dask cluster through the hub's pipeline: landed once by
the hub's merge queue, retried elsewhere after their worker was killed, cancelled with the agent
gone afterwards."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from speedrift.agents.protocol import CANCELLED
from speedrift.failure_class import FailureClass
from speedrift.fleet import followup
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.pipeline import RunOptions
from speedrift.fleet.remote.spec import STARTED_PREFIX
from speedrift.fleet.workers import Worker
from speedrift.repo import worktrees
from tests.daskcluster import DaskCluster
from tests.fleet.conftest import Workshop
from tests.fleet.remote.executor_helpers import (
    SETTINGS,
    CountingGates,
    attempt_record,
    commits_touching,
    dask_pipeline,
    evidence_of,
)
from tests.gitrepo import sh_git
from tests.waiting import wait_for

TIMEOUT_S = 180


def test_a_shell_task_developed_on_a_dask_worker_lands_once_and_its_tip_is_not_gated_twice(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    workshop.add("write-hello", "echo hello > hello.txt; echo wrote hello")
    gates = CountingGates()
    result = dask_pipeline(workshop, dask_cluster, gates).run("write-hello", RunOptions())
    assert result.status == "done", result.reason
    assert (workshop.repo / "hello.txt").read_text() == "hello\n"
    assert sh_git(workshop.repo, "rev-parse", "main") == result.landed_commit
    assert commits_touching(workshop.repo, "hello.txt") == 1
    record = attempt_record(result.run_dir or "")
    assert record["machine"]["executor"] == "dask"
    assert record["machine"]["worker"] in dask_cluster.workers()
    assert result.evidence["machine"]["worker"] == record["machine"]["worker"]
    events = Path(result.run_dir or "", "events.jsonl")
    assert "wrote hello" in events.read_text()
    # the worker's passing verdict on the tip it brought stands for the own-commits gate, and the
    # merge queue found nothing to rebase: the hub never gated that tip again
    assert result.landed_commit not in gates.checked
    (verdict,) = evidence_of(result.run_dir or "")["gates"]
    assert verdict["tip"] == result.landed_commit and verdict["passed"] is True
    assert verdict["worker"] == record["machine"]["worker"]
    assert worktrees.read_manifests(workshop.repo) == []


def test_a_file_written_into_the_hubs_worktree_meanwhile_is_not_landed_as_the_workers_work(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    workshop.add("remote-only", "echo remote > remote.txt")

    def stray(message: str) -> None:
        if message.startswith("agent finished"):  # the worker's commits are on the branch by now
            (manifest,) = worktrees.read_manifests(workshop.repo)
            Path(manifest.path, "stray.txt").write_text("not the agent's\n")

    result = dask_pipeline(workshop, dask_cluster).run("remote-only", RunOptions(on_step=stray))
    assert result.status == "done", result.reason
    landed = sh_git(workshop.repo, "ls-tree", "-r", "--name-only", result.landed_commit or "")
    assert "remote.txt" in landed.split() and "stray.txt" not in landed.split()
    assert sh_git(workshop.repo, "log", "-1", "--format=%B", "main").startswith("remote-only: ")


def test_a_failed_worker_verdict_is_not_trusted_the_hub_gates_the_tip_itself(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    workshop.add("untested", "echo hello > hello.txt")
    gates = CountingGates()
    # on the worker, a repo without tests may not land: its verdict fails; the hub's gates pass
    strict = {"gates": {**SETTINGS["gates"], "require_tests": "always"}}
    result = dask_pipeline(workshop, dask_cluster, gates, strict).run("untested", RunOptions())
    assert result.status == "done", result.reason
    assert gates.checked == [result.landed_commit]  # gated here, once
    (verdict,) = evidence_of(result.run_dir or "")["gates"]
    assert verdict["gated_by"] == "hub" and "worker" not in verdict


def test_a_services_worker_process_takes_the_dask_executor_with_its_pipeline(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    workshop.add("forked", "echo forked > forked.txt")
    pipeline = dask_pipeline(workshop, dask_cluster)
    pipeline.prepare()  # as a supervisor does before it starts a worker process
    worker = Worker(pipeline, "forked")  # the pipeline, with its executor, pickled into the child
    worker.start()
    ended = worker.wait()
    assert ended.report is not None and ended.report.result is not None, ended.describe()
    result = ended.report.result
    assert result.status == "done", result.reason
    assert attempt_record(result.run_dir or "")["machine"]["worker"] in dask_cluster.workers()
    assert (workshop.repo / "forked.txt").read_text() == "forked\n"


def test_a_worker_killed_mid_attempt_fails_it_as_transient_infra_and_the_retry_lands_once_elsewhere(
    workshop: Workshop, dask_cluster: DaskCluster
) -> None:
    # the first attempt sleeps long enough to be killed; its retry writes at once
    command = 'if [ "$SPEEDRIFT_ATTEMPT" = 1 ]; then sleep 300; fi; echo landed > once.txt'
    workshop.add("once", command)
    pipeline = dask_pipeline(workshop, dask_cluster)
    results: list[AttemptResult] = []
    runner = threading.Thread(target=lambda: results.append(pipeline.run("once", RunOptions())))
    runner.start()
    run_dir = workshop.repo / ".speedrift" / "runs" / "once" / "1"
    wait_for(lambda: _job_key(run_dir) is not None, "the job's submission", TIMEOUT_S)
    key = _job_key(run_dir)
    started: list[str] = []

    def job_started() -> bool:
        found = dask_cluster.client.get_metadata(STARTED_PREFIX + str(key), default=None)
        if found:
            started.append(str(found))
        return bool(found)

    wait_for(job_started, "the job to start on a worker", TIMEOUT_S)
    dead = started[-1]
    time.sleep(1.0)  # the agent's sleep is running by now (nothing asserts on it)
    dask_cluster.kill(dead)
    runner.join(TIMEOUT_S)
    assert not runner.is_alive()
    (first,) = results
    assert first.status == "failed"
    assert first.failure == FailureClass.TRANSIENT_INFRA
    assert dead in first.reason
    assert first.recovery is not None and first.recovery["automatic"] is True
    assert attempt_record(run_dir)["machine"]["worker"] == dead
    assert not (workshop.repo / "once.txt").exists()

    # the recovery policy's retry, as a supervisor carries it out: a new attempt, on a live worker
    done = followup.carry_out(workshop.repo, workshop.store, pipeline.config, "once", actor="test")
    assert done.outcome == "reopened", done.detail
    second = pipeline.run("once", RunOptions())
    assert second.status == "done", second.reason
    assert second.attempt == 2
    assert attempt_record(second.run_dir or "")["machine"]["worker"] not in (None, dead)
    assert (workshop.repo / "once.txt").read_text() == "landed\n"
    assert commits_touching(workshop.repo, "once.txt") == 1


def test_a_cancelled_attempt_ends_the_agents_process_on_the_worker_and_lands_nothing(
    workshop: Workshop, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    pid_file = tmp_path / "agent.pid"
    workshop.add("slow", f"echo $$ > {pid_file}; exec sleep 300")
    before = sh_git(workshop.repo, "rev-parse", "main")
    cancel = threading.Event()

    def cancel_once_it_sleeps() -> None:
        wait_for(lambda: pid_file.is_file() and pid_file.read_text().strip(), "the agent's pid", TIMEOUT_S)
        cancel.set()

    canceller = threading.Thread(target=cancel_once_it_sleeps)
    canceller.start()
    result = dask_pipeline(workshop, dask_cluster).run("slow", RunOptions(cancel=cancel))
    canceller.join(TIMEOUT_S)
    pid = int(pid_file.read_text())
    assert result.status == "failed"
    assert result.reason == CANCELLED
    wait_for(lambda: not _running(pid), f"the agent's sleep (pid {pid}) to be gone", 60)
    assert sh_git(workshop.repo, "rev-parse", "main") == before
    assert workshop.task("slow")["status"] != "done"


def _job_key(run_dir: Path) -> str | None:
    try:
        machine = attempt_record(run_dir).get("machine") or {}
    except (OSError, ValueError):
        return None
    key = machine.get("job")
    return key if isinstance(key, str) else None


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and os.path.exists(f"/proc/{pid}")
