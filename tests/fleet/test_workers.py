"""The service runs each attempt in a worker process (fleet/workers.py) and supervises it: a worker
that dies is handled at once by its parent, claims of dead workers are released on every tick
(judged by pid and start time), and a stop ends the agents and gives the tasks back. A worker
process runs the next attempt after a clean one; a cancelled one exits, and one killed while idle
is replaced. Real processes and real repos; waits are for conditions, never assertions on elapsed
time."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift import layout, records
from speedrift.fleet import supervisor, workers
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops
from speedrift.procs import group_alive, identity_alive, identity_of, pid_alive
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
    identity = loop.workers["long"].identity
    assert identity is not None
    loop.stop.set()  # what SIGTERM/SIGINT do to `speedrift service run`
    wait_for(lambda: not loop.running, "the service to wind down")
    task = workshop.task("long")
    assert task["status"] == "open" and task.get("assigned") is None
    assert not group_alive(pgid)
    assert supervisor.live_attempts(workshop.repo) == []
    # a cancelled attempt's worker process is never reused: it exited
    wait_for(lambda: not identity_alive(identity), "the cancelled attempt's worker process to exit")


def _parent_of(marks: Path, task_id: str) -> int:
    return int((marks / task_id).read_text())


def _one_at_a_time(workshop: Workshop) -> ServiceLoop:
    """A loop running one attempt at a time, unsandboxed: each agent can name its worker process
    (inside a sandbox its parent is the sandbox's own init, pid 1)."""
    return ServiceLoop(
        workshop.pipeline(service={"max_agents": 1, "poll_seconds": 0.05}, sandbox={"mode": "off"})
    )


def _reported(loop: ServiceLoop) -> list[str]:
    return [r.task_id for r in loop.results]


def test_a_worker_process_runs_the_next_attempt_after_a_clean_one(
    workshop: Workshop, running: Callable[[ServiceLoop], ServiceLoop]
) -> None:
    marks = workshop.repo.parent / "pids"
    marks.mkdir()
    for i in range(3):
        workshop.add(f"t{i}", f"echo $PPID > {marks}/t{i}; echo {i} > f{i}.txt")
    loop = running(_one_at_a_time(workshop))
    wait_for(lambda: len(_reported(loop)) == 3, "all three attempts' reports")
    parents = [_parent_of(marks, f"t{i}") for i in range(3)]
    assert len(set(parents)) == 1 and parents[0] != os.getpid()  # one process, three attempts
    assert all(r.status == "done" for r in loop.results)
    # the attempts' timings are their own: each report carries its part of the admin-lock wait
    assert set(loop.walls) == {"t0", "t1", "t2"} and all(w >= 0 for w in loop.admin_waits.values())


def _one_attempt_done(
    workshop: Workshop, running: Callable[[ServiceLoop], ServiceLoop]
) -> tuple[ServiceLoop, Path, int]:
    """A loop that ran one attempt and got its report: the loop, the folder where agents name
    their worker process, and that process (idle now, waiting for its next attempt)."""
    marks = workshop.repo.parent / "pids"
    marks.mkdir()
    workshop.add("first", f"echo $PPID > {marks}/first; echo 1 > one.txt")
    loop = running(_one_at_a_time(workshop))
    wait_for(lambda: _reported(loop) == ["first"], "the first attempt's report")
    return loop, marks, _parent_of(marks, "first")


def test_a_worker_process_killed_while_idle_is_replaced(
    workshop: Workshop, running: Callable[[ServiceLoop], ServiceLoop]
) -> None:
    loop, marks, idle = _one_attempt_done(workshop, running)
    os.kill(idle, signal.SIGKILL)
    wait_for(lambda: not pid_alive(idle), "the idle worker process to be gone")
    workshop.add("second", f"echo $PPID > {marks}/second; echo 2 > two.txt")
    wait_for(lambda: _reported(loop) == ["first", "second"], "the second attempt's report")
    assert _parent_of(marks, "second") != idle  # a new process ran it, and nothing was recorded as a crash
    assert workshop.task("second")["status"] == "done"
    assert "failures" not in workshop.task("second").get("speedrift", {})  # type: ignore[operator]


def test_idle_worker_processes_exit_when_let_go(
    workshop: Workshop, running: Callable[[ServiceLoop], ServiceLoop]
) -> None:
    _loop, _marks, idle = _one_attempt_done(workshop, running)
    assert pid_alive(idle)  # kept for the next attempt
    workers._let_all_go()  # what exit does, before multiprocessing joins its children
    wait_for(lambda: not pid_alive(idle), "the idle worker process to exit")


def test_main_imports_are_the_modules_the_main_script_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = types.ModuleType("__main__")
    script.__file__ = str(tmp_path / "script.py")
    script.__spec__ = None
    script.json = json  # type: ignore[attr-defined]
    script.Path = Path  # type: ignore[attr-defined]
    script.local = lambda: None  # type: ignore[attr-defined]  # the script's own: not importable
    script.local.__module__ = "__main__"
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert workers.main_imports() == ("json", "pathlib")
    # run by module name (python -m): not re-run by the children, nothing to preload
    script.__spec__ = importlib.util.spec_from_loader("tool.main", loader=None)
    assert workers.main_imports() == ()


def test_attempts_run_in_parallel_worker_processes(workshop: Workshop) -> None:
    marks = workshop.repo.parent / "pids"
    marks.mkdir()
    for i in range(3):  # each waits until all three have started: they run at the same time
        workshop.add(
            f"t{i}",
            f"echo $PPID > {marks}/t{i}; until [ $(ls {marks} | wc -l) -ge 3 ]; do sleep 0.05; done; "
            f"echo {i} > f{i}.txt",
        )
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
    assert len(parents) == 3 and os.getpid() not in parents  # one worker process per running attempt
