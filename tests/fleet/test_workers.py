"""The service runs each attempt in a worker process (fleet/workers.py) and supervises it: a worker
that dies is handled at once by its parent, claims of dead workers are released on every tick
(judged by pid and start time), and a stop ends the agents and gives the tasks back. Real
processes and real repos; waits are for conditions, never assertions on elapsed time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift import layout, records
from speedrift.fleet import supervisor
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops
from speedrift.procs import group_alive, identity_of
from speedrift.times import now_utc, parse_time
from tests.fleet.conftest import Workshop
from tests.waiting import wait_for


@pytest.fixture
def running() -> Iterator[Callable[[ServiceLoop], ServiceLoop]]:
    """Start a loop in a thread; it is stopped (and its workers with it) at the end of the test."""
    started: list[tuple[ServiceLoop, threading.Thread]] = []

    def start(loop: ServiceLoop) -> ServiceLoop:
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        started.append((loop, thread))
        return loop

    yield start
    for loop, thread in started:
        loop.stop.set()
        thread.join(timeout=60)


def agent_started(workshop: Workshop) -> bool:
    """The agent touched ``started`` in its worktree (a sandboxed agent can write nowhere else)."""
    return any(layout.worktrees_dir(workshop.repo).glob("*/started"))


def agent_group(workshop: Workshop, task_id: str, attempt: int = 1) -> int | None:
    record = records.read_attempt(layout.attempt_dir(workshop.repo, task_id, attempt))
    pgid = record.raw.get("agent_pgid") if record else None
    return pgid if isinstance(pgid, int) else None


def test_a_worker_killed_mid_attempt_is_handled_by_its_parent_at_once(
    workshop: Workshop, running: Callable[[ServiceLoop], ServiceLoop]
) -> None:
    workshop.add("doomed", "touch started; sleep 120")
    # a long backoff: the retry is scheduled, not run, so the test sees the decision carried out
    loop = running(ServiceLoop(workshop.pipeline(service={"poll_seconds": 0.05, "backoff_seconds": 3600})))
    wait_for(lambda: agent_started(workshop), "the agent to start")
    wait_for(lambda: agent_group(workshop, "doomed") is not None, "the agent's group to be recorded")
    pgid = agent_group(workshop, "doomed")
    assert pgid is not None and group_alive(pgid)
    worker = loop.workers["doomed"]
    assert worker.pid is not None and worker.pid != os.getpid()  # the attempt runs in a child process
    os.kill(worker.pid, signal.SIGKILL)
    # no restart: the running service notices, records the crash and schedules its recovery
    wait_for(lambda: workshop.task("doomed")["status"] == "open", "the parent to handle the dead worker")
    task = workshop.task("doomed")
    data: dict[str, Any] = task["speedrift"]  # type: ignore[assignment]
    last = data["failures"][-1]
    assert last["class"] == "transient_infra" and last["recovery"] == "retry"
    assert "killed by SIGKILL" in last["reason"]
    not_before = parse_time(task.get("not_before"))
    assert not_before is not None and not_before > now_utc()  # reopened after its backoff
    assert "worker" not in data and task.get("assigned") is None
    wait_for(lambda: not group_alive(pgid), "the orphaned agent's group to be ended")
    # its slot goes with it (released by the same handler, just after the graph write above)
    wait_for(lambda: supervisor.live_attempts(workshop.repo) == [], "the dead worker's slot to be freed")
    wait_for(lambda: loop.running == {}, "the service to forget the dead worker")


def _claim_by(workshop: Workshop, task_id: str, worker: dict[str, Any]) -> None:
    def build(graph: Any, now: Any) -> ops.Mutation:
        mutation = ops.claim(graph, task_id, now=now, actor="gone")
        ops.set_speedrift(mutation.tasks[0], worker=worker, attempt=1)
        return mutation

    workshop.store.mutate(build)


def test_claims_of_a_zombie_or_a_reused_pid_are_released_while_the_service_runs(
    workshop: Workshop, running: Callable[[ServiceLoop], ServiceLoop]
) -> None:
    workshop.add("idle", "true", paused=True)  # something in the graph; nothing to dispatch
    loop = running(ServiceLoop(workshop.pipeline(service={"poll_seconds": 0.05})))
    wait_for(lambda: (b := records.read_heartbeat(workshop.repo)) and b.state == "running", "the service")
    # claimed after the service started: its start-up recovery never saw these claims
    zombie = subprocess.Popen(["true"])
    wait_for(
        lambda: Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1][0] == "Z", "the child to exit"
    )
    try:
        host = socket.gethostname()
        workshop.add("by-zombie", "true", paused=True)
        workshop.add("by-reused-pid", "true", paused=True)
        _claim_by(
            workshop,
            "by-zombie",
            {"pid": zombie.pid, "proc_start": identity_of(zombie.pid).started, "host": host},
        )
        me = identity_of()
        reused = {
            "pid": me.pid,
            "proc_start": (me.started or 0) + 1,
            "host": host,
        }  # our pid, another process
        _claim_by(workshop, "by-reused-pid", reused)
        wait_for(
            lambda: (
                workshop.task("by-zombie")["status"] == "open"
                and workshop.task("by-reused-pid")["status"] == "open"
            ),
            "the next ticks to release both claims",
        )
    finally:
        zombie.wait()
    assert "worker" not in workshop.task("by-zombie").get("speedrift", {})  # type: ignore[operator]
    assert loop.stop.is_set() is False  # released by a running service, not at a restart


def test_a_live_claimant_keeps_its_claim(workshop: Workshop) -> None:
    workshop.add("busy", "true", paused=True)
    me = identity_of()
    _claim_by(workshop, "busy", {"pid": me.pid, "proc_start": me.started, "host": socket.gethostname()})
    loop = ServiceLoop(workshop.pipeline(service={"poll_seconds": 0.05}))
    loop.supervise_claims()
    assert workshop.task("busy")["status"] == "in-progress"


def test_stopping_the_service_ends_the_agents_and_gives_the_tasks_back(
    workshop: Workshop, running: Callable[[ServiceLoop], ServiceLoop]
) -> None:
    workshop.add("long", "touch started; sleep 120")
    loop = running(ServiceLoop(workshop.pipeline(service={"poll_seconds": 0.05})))
    wait_for(lambda: agent_started(workshop), "the agent to start")
    wait_for(lambda: agent_group(workshop, "long") is not None, "the agent's group to be recorded")
    pgid = agent_group(workshop, "long")
    assert pgid is not None
    loop.stop.set()  # what SIGTERM/SIGINT do to `speedrift service run`
    wait_for(lambda: not loop.running, "the service to wind down")
    task = workshop.task("long")
    assert task["status"] == "open" and task.get("assigned") is None
    assert not group_alive(pgid)
    assert supervisor.live_attempts(workshop.repo) == []


def test_attempts_run_in_parallel_worker_processes(workshop: Workshop) -> None:
    marks = workshop.repo.parent / "pids"
    marks.mkdir()
    for i in range(3):
        workshop.add(f"t{i}", f"echo $PPID > {marks}/t{i}; echo {i} > f{i}.txt")
    # unsandboxed: each agent names its parent in a folder outside its worktree (inside a
    # sandbox its parent is the sandbox's own init, pid 1)
    loop = ServiceLoop(
        workshop.pipeline(service={"max_agents": 3, "poll_seconds": 0.05}, sandbox={"mode": "off"})
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    wait_for(lambda: all(workshop.task(f"t{i}")["status"] == "done" for i in range(3)), "all three tasks")
    loop.stop.set()
    thread.join(timeout=60)
    assert sorted(r.task_id for r in loop.results) == ["t0", "t1", "t2"]
    assert set(loop.walls) == {"t0", "t1", "t2"}
    parents = {int((marks / f"t{i}").read_text()) for i in range(3)}  # the agent's parent: its worker
    assert len(parents) == 3 and os.getpid() not in parents  # one worker process per attempt
