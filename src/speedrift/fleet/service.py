"""The per-repo service: keeps claiming ready tasks and running attempts, up to ``max_agents``.

State lives in ``<repo>/.speedrift/service/``: ``lock`` (held by the running service: one per
repo), ``pid``, ``heartbeat.json`` (written every tick), ``service.log``. On start it recovers
what a crash left: rebases cut off mid-way are aborted, work that reached the target branch is
recorded done, and tasks claimed by workers that are gone are released — no task stays claimed
by a dead process. It does not dispatch while a live ``wg service`` owns the repo, unless told to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift import fsutil, layout, pausestore, records
from speedrift.agents.protocol import CANCELLED
from speedrift.errors import SpeedriftError
from speedrift.fleet import (
    approval,
    choosing,
    followup,
    halt,
    supervisor,
)
from speedrift.fleet.admission import budget_verdict
from speedrift.fleet.aftercare import (
    STOPPED,
    recover,
    reopen_interrupted,
    retry_withheld,
    schedule_retry,
    withheld_tasks,
    worker_died,
)
from speedrift.fleet.attempt import AttemptResult, worker_actor
from speedrift.fleet.pipeline import Pipeline
from speedrift.fleet.workers import Worker, WorkerReport
from speedrift.graph import query
from speedrift.graph.model import FAILED, IN_PROGRESS, Task, dispatch_hold, speedrift_data
from speedrift.layout import service_dir
from speedrift.procs import record_alive
from speedrift.repo import worktrees
from speedrift.repo.worktrees import ManifestState
from speedrift.times import format_time, now_utc


def hub_marker(repo: Path) -> Path:
    """Written by the hub's restart_service handler; a human start or stop removes it."""
    return layout.started_by_hub_path(repo)


def read_heartbeat(repo: Path) -> records.Heartbeat | None:
    return records.read_heartbeat(repo)


def running_pid(repo: Path) -> int | None:
    """The pid of the live service, judged by its lock (a stale pid file proves nothing)."""
    lock = layout.service_lock_path(repo)
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid_file = layout.service_pid_path(repo)
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wg_service_live(graph_dir: Path) -> bool:
    state = layout.read_record(graph_dir / "service" / "state.json")
    # wg records only its pid: a zombie (or a pid reused since) must not count, so the pid is
    # checked as an identity without a start time — alive, and not a zombie
    return record_alive({"pid": state.get("pid")} if state else None)


# --- the loop --------------------------------------------------------------------------------------
# how often a tick looks for claims of dead workers and recoveries nobody carried out: a graph load
# and a manifest listing each time, so not on every tick of a busy service (its own workers'
# deaths and failures are handled the moment they happen, by their watcher threads)
SUPERVISE_EVERY_S = 1.0
MERGE_SLOT = "merge"  # the admission name of a resumed landing (no agent runs: no runtime limit)
MERGE_RETRY_S = 5.0  # a landing still pending is resumed again after this, doubling each time…
MERGE_RETRY_MAX_S = 300.0  # …up to this
MERGE_PENDING = "merge-pending"


@dataclass
class ServiceLoop:
    pipeline: Pipeline
    log: Any = None  # callable(str) for the service log
    stop: threading.Event = field(default_factory=threading.Event)
    running: dict[str, threading.Thread] = field(default_factory=dict)
    cancels: dict[str, threading.Event] = field(default_factory=dict)
    results: list[AttemptResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    retries: halt.HaltState | None = None  # the last halt verdict (fleet/halt.py)
    withheld: set[str] = field(default_factory=set)  # failed tasks whose retry a halt withheld
    # --hub: asked before every claim; (False, reason) keeps the service idle ("paused: reason")
    admission: Callable[[], tuple[bool, str]] | None = None
    paused: str | None = None
    workers: dict[str, Worker] = field(default_factory=dict)  # the worker process of each attempt
    walls: dict[str, float] = field(default_factory=dict)  # task -> its worker's wall time (start to end)
    admin_waits: dict[str, float] = field(default_factory=dict)  # task -> its wait for worktree locks
    held: str | None = None  # why admission (fleet/supervisor.py) holds further attempts back
    not_ours: set[str] = field(default_factory=set)  # ready tasks never dispatched (said once each)
    over_budget: dict[str, str] = field(default_factory=dict)  # task -> the budget refusal last said
    # `speedrift plan run`: dispatch only the tasks this says are its own (one wave's); None: all
    only: Callable[[Task], bool] | None = None
    _next_supervision: float = 0.0  # time.monotonic() of the next supervise_claims pass
    # merge-pending landings: task -> (time.monotonic() of the next resume, the delay before it)
    merge_retry: dict[str, tuple[float, float]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic  # when merge-pending resumes are due (injectable)

    def say(self, message: str) -> None:
        if self.log:
            self.log(message)

    def heartbeat(self, state: str) -> None:
        beat = records.Heartbeat(
            pid=os.getpid(),
            host=socket.gethostname(),
            at=format_time(now_utc()),
            state=state,
            running=tuple(sorted(self.running)),
            max_agents=self.pipeline.config.service.max_agents,
            paused_runtimes={  # the machine-wide pauses (pausestore.py) every supervisor respects
                p.runtime: format_time(p.until) if p.until else "until resumed"
                for p in pausestore.active(now_utc())
            },
            retries=self.retries.as_dict() if self.retries else None,
            hub=self.admission is not None,
            paused=self.paused,
        )
        records.write_heartbeat(self.pipeline.repo, beat)

    def _attempt(
        self, task_id: str, cancel: threading.Event, slot: supervisor.Slot, resume: bool = False
    ) -> None:
        """One attempt in a worker process (fleet/workers.py): start it, hand it the admitted slot,
        wait, and act on how it ended — its result, or its death without one, handled at once.
        ``resume``: the worker resumes the task's merge-pending landing instead."""
        worker = Worker(self.pipeline, task_id, resume=resume)
        with contextlib.suppress(SpeedriftError):  # resolved once here, handed to every worker
            self.pipeline.prepare()  # (a repo without a commit: the worker says so itself)
        try:
            slot.hand_to(worker.start(), "service")  # the slot lives exactly as long as the attempt
            with self.lock:
                self.workers[task_id] = worker
            ended = worker.wait(cancel)
            report = ended.report
            with self.lock:
                self.walls[task_id] = ended.wall_s
                self.admin_waits[task_id] = report.admin_wait_s if report else 0.0
            if report is None:
                for note in worker_died(self.pipeline, task_id, ended):
                    self.say(note)
                self.carry_out(task_id)  # the crash's recovery: scheduled now, not at the next start
            elif report.kind == "refused":
                self.say(f"{task_id}: not run: {report.message}")
            elif report.kind == "error":
                self.say(f"{task_id}: internal error: {report.message}")
            elif report.result is not None:
                self._finished(task_id, report.result)
            if resume:
                self._merge_tried(task_id, report)
        except SpeedriftError as error:
            self.say(f"{task_id}: not run: {error.message}")
        except Exception as error:  # a bug must not take the service down
            self.say(f"{task_id}: internal error: {type(error).__name__}: {error}")
        finally:
            slot.release()
            with self.lock:
                self.running.pop(task_id, None)
                self.cancels.pop(task_id, None)
                self.workers.pop(task_id, None)

    def _finished(self, task_id: str, result: AttemptResult) -> None:
        self.say(f"{task_id}: attempt {result.attempt} {result.status}: {result.reason}")
        if result.status == FAILED and self.stop.is_set() and result.reason == CANCELLED:
            # cut off by our own shutdown: not the task's fault, so it goes straight back to open
            # (a failure that merely finished while the service stops keeps its recovery)
            reopen_interrupted(self.pipeline.store, task_id, STOPPED)
        elif result.status == FAILED:
            when = schedule_retry(self.pipeline, result, self.withheld)
            if when:
                self.say(f"{task_id}: retry scheduled for {when}")
        with self.lock:
            self.results.append(result)

    def carry_out(self, task_id: str) -> None:
        """Carry out a failed task's recorded automatic recovery (fleet/followup.py)."""
        done = followup.carry_out(
            self.pipeline.repo, self.pipeline.store, self.pipeline.config, task_id, actor=worker_actor()
        )
        if done.outcome == "withheld":
            with self.lock:
                self.withheld.add(task_id)
        if done.outcome != "nothing":
            self.say(f"{task_id}: {done.detail}")

    def supervise_claims(self) -> None:
        """Every tick, not only at start: when a task is claimed by a worker that is gone — judged
        by pid and start time, so a zombie or a reused pid never holds a task — crash recovery
        settles it (fleet/crash_recovery.py: done if its work landed, else released), without
        waiting behind a landing in progress. This service's own workers are handled by their
        watcher threads (:func:`worker_died`), so a tick leaves them alone while one is being
        reaped. Then the recovery decisions recorded by attempts this service did not run
        (``speedrift run``, the hub's workers) are carried out."""
        graph = self.pipeline.store.load()
        host = socket.gethostname()
        with self.lock:
            mine = set(self.running)
            reaping = any(worker.exited() for worker in self.workers.values())
        dead = False
        for task_id, task in graph.tasks.items():
            if task.get("status") != IN_PROGRESS or task_id in mine:
                continue
            data = speedrift_data(task)
            worker = data.get("worker")
            if data.get("state") == "merge-pending" or not isinstance(worker, dict):
                continue  # merge-pending work waits for the merge queue (retry_pending_merges)
            if worker.get("host") == host and isinstance(worker.get("pid"), int) and not record_alive(worker):
                dead = True
                break
        if dead and not reaping:
            for note in recover(self.pipeline, wait=False):
                self.say(f"recovery: {note}")
        if self.admission is not None and self.paused:
            return  # --hub without authority: no graph writes on the hub's behalf
        for task_id in followup.pending(graph):
            if task_id not in mine:
                self.carry_out(task_id)

    def check_retries(self) -> None:
        """Recompute the halt verdict; when retries may run again, reopen what a halt withheld."""
        state = halt.retries_halted(self.pipeline.repo, self.pipeline.config.recovery)
        was = self.retries.halted if self.retries else False
        if state.halted != was:
            self.say(f"automatic retries {'halted' if state.halted else 'resumed'}: {state.reason}")
        self.retries = state
        if state.halted:
            return
        with self.lock:
            waiting = sorted(self.withheld)
            self.withheld.clear()
        for task_id in waiting:
            if retry_withheld(self.pipeline, task_id):
                self.say(f"{task_id}: withheld retry released")

    def admitted(self) -> bool:
        """Re-read the hub's authority (fail-closed); logs each change between paused and running."""
        if self.admission is None:
            return True
        try:
            allowed, reason = self.admission()
        except Exception as error:  # an unreadable control file means no authority
            allowed, reason = False, f"control state unavailable: {error}"
        paused = None if allowed else reason
        if paused != self.paused:
            self.say(f"paused: {paused}" if paused else f"resumed: {reason}")
        self.paused = paused
        return allowed

    def dispatch(self) -> int:
        """Start attempts for ready tasks while there is capacity. Returns how many started."""
        config = self.pipeline.config
        if (
            wg_service_live(self.pipeline.store.directory)
            and not config.service.dispatch_when_wg_service_live
        ):
            return 0
        with self.lock:
            if len(self.running) >= config.service.max_agents:
                return 0  # no capacity: don't spend a graph load (and the GIL) finding work
        graph = self.pipeline.store.load()
        now = now_utc()
        started = 0
        for task in query.ready(graph, now, self.pipeline.peer_statuses(graph)):
            with self.lock:
                if len(self.running) >= config.service.max_agents:
                    break
                if task["id"] in self.running:
                    continue
            if self.only is not None and not self.only(task):
                continue
            # a wave's closure stage (`speedrift plan run` carries it out), or a start a person approves
            hold = dispatch_hold(task)
            if hold is not None:
                if task["id"] not in self.not_ours:
                    self.not_ours.add(task["id"])
                    self.say(f"not dispatching {task['id']}: {hold}")
                continue
            runtime = choosing.dispatch_runtime(task, config, now)  # routing, then its fallback order
            if runtime is None:
                continue  # every runtime it may use is paused (a usage limit, a failed preflight…)
            if self._over_budget(task, now):
                continue  # a money budget it would exceed (fleet/spend.py): said once per change
            if not self.admitted():  # before every claim: a lease may expire between two tasks
                break
            # the machine-wide limits (fleet/supervisor.py): counted from every live attempt
            admission = supervisor.admit(
                self.pipeline.repo,
                task["id"],
                runtime,
                supervisor.Limits.for_attempt(config, runtime),
                holder="service",
            )
            if admission.slot is None:
                if admission.reason != self.held:
                    self.say(f"holding {task['id']}: {admission.reason}")
                self.held = admission.reason
                if admission.limit == "runtime":
                    continue  # another runtime's task may still start
                break  # the service simply waits for a slot
            self.held = None
            cancel = threading.Event()
            thread = threading.Thread(
                target=self._attempt, args=(task["id"], cancel, admission.slot), daemon=True
            )
            with self.lock:
                self.running[task["id"]] = thread
                self.cancels[task["id"]] = cancel
            thread.start()
            started += 1
        return started

    def _over_budget(self, task: Task, now: datetime) -> bool:
        """Whether dispatching ``task`` would exceed a money budget (fleet/admission.py): not
        dispatched then, and said in the service log once per refusal (and once when it clears)."""
        refusal = budget_verdict(self.pipeline.repo, self.pipeline.config, task, now)
        said = self.over_budget.get(task["id"])
        if refusal is None:
            if said is not None:
                del self.over_budget[task["id"]]
                self.say(f"{task['id']}: within its budgets again")
            return False
        if said != refusal.sentence:
            self.over_budget[task["id"]] = refusal.sentence
            self.say(f"not dispatching {task['id']}: {refusal.sentence}; fix: {refusal.fix}")
        return True

    def retry_pending_merges(self) -> None:
        """Resume each merge-pending landing (the checkout holding the target refused the
        fast-forward) in a worker process, admitted like an attempt: it is gated again on the tree
        that lands now (fleet/merging.py). One that stays pending is tried again after a backoff."""
        now = self.clock()
        pending = [
            m for m in worktrees.read_manifests(self.pipeline.repo) if m.state is ManifestState.MERGE_PENDING
        ]
        graph = self.pipeline.store.load() if pending else None
        for manifest in pending:
            task_id = manifest.task_id
            task = graph.get(task_id) if graph is not None else None
            data = speedrift_data(task) if task is not None else {}
            if task is None or task.get("status") != IN_PROGRESS or data.get("state") != MERGE_PENDING:
                continue  # the task moved on (a human's retry, abandon): its worktree waits for gc
            if approval.merge_wait(task, manifest.attempt) is not None:
                continue  # it waits for a person's approval: no worker until then (the graph says when)
            with self.lock:
                if task_id in self.running or self.merge_retry.get(task_id, (0.0, 0.0))[0] > now:
                    continue
            if not self.admitted():
                return
            limits = supervisor.Limits.for_attempt(self.pipeline.config, MERGE_SLOT)
            admission = supervisor.admit(
                self.pipeline.repo,
                task_id,
                MERGE_SLOT,
                dataclasses.replace(limits, runtime=None),
                holder="service",
            )
            if admission.slot is None:
                return  # no capacity now: the next tick asks again
            cancel = threading.Event()
            thread = threading.Thread(
                target=self._attempt, args=(task_id, cancel, admission.slot, True), daemon=True
            )
            with self.lock:
                self.running[task_id] = thread
                self.cancels[task_id] = cancel
            thread.start()

    def _merge_tried(self, task_id: str, report: WorkerReport | None) -> None:
        """After a resumed landing: landed, failed or waiting ends the retries; still pending — or
        not resumed at all (refused: the task moved on meanwhile; the worker died) — the next try
        backs off, doubling up to :data:`MERGE_RETRY_MAX_S`, so a stale pending landing never
        spawns a worker on every tick."""
        result = report.result if report is not None else None
        with self.lock:
            if result is not None and result.status != MERGE_PENDING:
                self.merge_retry.pop(task_id, None)
                return
            delay = min(MERGE_RETRY_MAX_S, 2 * self.merge_retry.get(task_id, (0.0, MERGE_RETRY_S / 2))[1])
            self.merge_retry[task_id] = (self.clock() + delay, delay)
        said = result.reason if result is not None else (report.message if report else "its worker died")
        self.say(f"{task_id}: still waiting to land: {said}; next try in {delay:.0f}s")

    def run(self, once: bool = False) -> None:
        for note in recover(self.pipeline):
            self.say(f"recovery: {note}")
        self.withheld |= withheld_tasks(self.pipeline.store.load())
        graph_file = self.pipeline.store.graph_path
        last_mtime = 0.0
        poll = self.pipeline.config.service.poll_seconds
        while not self.stop.is_set():
            self.check_retries()
            self.heartbeat("running" if self.admitted() else f"paused: {self.paused}")
            if time.monotonic() >= self._next_supervision:  # at most every SUPERVISE_EVERY_S
                self._next_supervision = time.monotonic() + SUPERVISE_EVERY_S
                self.supervise_claims()
            self.retry_pending_merges()
            self.dispatch()
            if once:
                break
            deadline = time.monotonic() + poll
            while time.monotonic() < deadline and not self.stop.is_set():
                with contextlib.suppress(OSError):
                    mtime = graph_file.stat().st_mtime
                    if mtime != last_mtime:  # a graph change (new task, a done) triggers a tick now
                        last_mtime = mtime
                        break
                self.stop.wait(0.2)
        self.shutdown()

    def wait_idle(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.lock:
                threads = list(self.running.values())
            if not threads:
                return
            for thread in threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                return

    def shutdown(self) -> None:
        self.heartbeat("stopping")
        with self.lock:
            cancels = list(self.cancels.values())
        for cancel in cancels:
            cancel.set()
        self.wait_idle()
        self.heartbeat("stopped")


def serve(pipeline: Pipeline, log_path: Path, admission: Callable[[], tuple[bool, str]] | None = None) -> int:
    """Run the service in this process until SIGTERM/SIGINT. Returns the exit code.
    ``admission`` (``--hub``) is asked before every claim; see :attr:`ServiceLoop.admission`."""
    folder = service_dir(pipeline.repo)
    folder.mkdir(parents=True, exist_ok=True)
    fd = fsutil.try_flock(layout.service_lock_path(pipeline.repo))
    if fd is None:
        raise SpeedriftError(f"a speedrift service is already running for {pipeline.repo}")
    pid_file = layout.service_pid_path(pipeline.repo)
    pid_file.write_text(str(os.getpid()))
    handle = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the service

    def log(message: str) -> None:
        handle.write(f"{format_time(now_utc())} {message}\n")

    loop = ServiceLoop(pipeline, log=log, admission=admission)

    def on_signal(_signum: int, _frame: Any) -> None:
        loop.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hub = ", on the hub's authority: claims only while the repo's lease is valid" if admission else ""
    log(f"service started (pid {os.getpid()}, max_agents {pipeline.config.service.max_agents}{hub})")
    try:
        loop.run()
    finally:
        log("service stopped")
        handle.close()
        pid_file.unlink(missing_ok=True)
        fsutil.release_flock(fd)
    return 0
