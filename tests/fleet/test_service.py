"""The per-repo service: dispatch up to max_agents, retries, and recovery after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from speedrift.fleet import aftercare, service
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops
from speedrift.repo import worktrees
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git


def run_until_settled(loop: ServiceLoop, ids: list[str], timeout: float = 60) -> None:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = loop.pipeline.store.load().tasks
        if all(tasks[i].get("status") in ("done", "failed", "abandoned") for i in ids):
            break
        time.sleep(0.05)
    loop.stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_the_service_runs_ready_work_in_dependency_order(workshop: Workshop) -> None:
    workshop.add("first", "echo 1 > one.txt")
    workshop.add("second", "test -f one.txt && echo 2 > two.txt", after=["first"])
    workshop.add("other", "echo x > other.txt")
    loop = ServiceLoop(workshop.pipeline(service={"max_agents": 2, "poll_seconds": 0.05}))
    run_until_settled(loop, ["first", "second", "other"])
    tasks = workshop.store.load().tasks
    assert [tasks[t]["status"] for t in ("first", "second", "other")] == ["done", "done", "done"]
    assert (workshop.repo / "two.txt").read_text() == "2\n"  # second ran on top of first's landed work
    beat = service.read_heartbeat(workshop.repo)
    assert beat is not None and beat.state == "stopped" and beat.pid == os.getpid()


def test_the_service_never_runs_more_than_max_agents_at_once(workshop: Workshop) -> None:
    marker = workshop.repo.parent / "concurrency"
    marker.mkdir()
    probe = (
        f"touch {marker}/$SPEEDRIFT_TASK_ID; sleep 0.4; "
        f"echo $(ls {marker} | wc -l) > seen.txt; rm {marker}/$SPEEDRIFT_TASK_ID"
    )
    for i in range(5):
        workshop.add(f"t{i}", probe.replace("seen.txt", f"seen{i}.txt"))
    # unsandboxed: the agents count each other in a folder outside their worktrees
    loop = ServiceLoop(
        workshop.pipeline(service={"max_agents": 2, "poll_seconds": 0.05}, sandbox={"mode": "off"})
    )
    run_until_settled(loop, [f"t{i}" for i in range(5)])
    seen = [int((workshop.repo / f"seen{i}.txt").read_text()) for i in range(5)]
    assert max(seen) <= 2 and all(s >= 1 for s in seen)


def test_a_retryable_failure_is_retried_after_a_backoff(workshop: Workshop) -> None:
    flag = workshop.repo.parent / "second-try"
    workshop.add("flaky", f"if [ -f {flag} ]; then echo ok > ok.txt; else touch {flag}; kill -9 $$; fi")
    # unsandboxed: the command keeps its flag outside its worktree, across attempts
    loop = ServiceLoop(
        workshop.pipeline(service={"poll_seconds": 0.05, "backoff_seconds": 0}, sandbox={"mode": "off"})
    )
    run_until_settled(loop, ["flaky"])
    deadline = time.monotonic() + 30
    while workshop.task("flaky")["status"] != "done" and time.monotonic() < deadline:
        run_until_settled(ServiceLoop(loop.pipeline), ["flaky"])
    task = workshop.task("flaky")
    assert task["status"] == "done"
    assert task["retry_count"] == 1


def test_a_non_retryable_failure_waits_for_a_human(workshop: Workshop) -> None:
    workshop.add("bad", "exit 1")
    loop = ServiceLoop(workshop.pipeline(service={"poll_seconds": 0.05, "backoff_seconds": 0}))
    run_until_settled(loop, ["bad"])
    assert workshop.task("bad")["status"] == "failed"
    assert "retry_count" not in workshop.task("bad")


def test_recovery_releases_tasks_claimed_by_a_dead_worker(workshop: Workshop) -> None:
    workshop.add("orphan", "true")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(dead.stdout)

    def claim_by_dead(graph: object, now: object) -> ops.Mutation:
        mutation = ops.claim(graph, "orphan", now=now, actor="gone")  # type: ignore[arg-type]
        import socket

        ops.set_speedrift(mutation.tasks[0], worker={"pid": pid, "host": socket.gethostname()})
        return mutation

    workshop.store.mutate(claim_by_dead)
    notes = aftercare.recover(workshop.pipeline())
    assert notes == [f"orphan: released (its worker {pid} is gone)"]
    task = workshop.task("orphan")
    assert task["status"] == "open" and "worker" not in task.get("speedrift", {})  # type: ignore[operator]


def test_recovery_records_work_that_landed_just_before_a_crash(workshop: Workshop) -> None:
    workshop.add("landed", "true")
    workshop.store.mutate(lambda g, now: ops.claim(g, "landed", now=now, actor="x"))
    manifest = worktrees.create(workshop.repo, "landed", 1, "main")
    (Path(manifest.path) / "f.txt").write_text("f")
    sh_git(Path(manifest.path), "add", "f.txt")
    sh_git(Path(manifest.path), "commit", "-qm", "f")
    sh_git(workshop.repo, "merge", "--ff-only", "-q", manifest.branch)  # the crash came after this
    manifest.state = worktrees.ManifestState.LANDING
    manifest.pid = 999_999_999  # the process that was landing is gone
    worktrees.write_manifest(workshop.repo, manifest)
    notes = aftercare.recover(workshop.pipeline())
    assert any("marked done" in n for n in notes)
    assert workshop.task("landed")["status"] == "done"


def test_no_dispatch_while_a_live_wg_service_owns_the_repo(workshop: Workshop) -> None:
    workshop.add("t", "true")
    state = workshop.store.directory / "service"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"pid": os.getpid()}))
    loop = ServiceLoop(workshop.pipeline())
    assert loop.dispatch() == 0
    allowed = ServiceLoop(workshop.pipeline(service={"dispatch_when_wg_service_live": True}))
    assert allowed.dispatch() == 1
    allowed.wait_idle(timeout=30)
    assert workshop.task("t")["status"] == "done"
