"""The per-repo service: keeps claiming ready tasks and running attempts, up to ``max_agents``.

State lives in ``<repo>/.speedrift/service/``: ``lock`` (held by the running service: one per
repo), ``pid``, ``heartbeat.json`` (written every tick), ``service.log``. On start it recovers
what a crash left: rebases cut off mid-way are aborted, work that reached the target branch is
recorded done, and tasks claimed by workers that are gone are released — no task stays claimed
by a dead process. It does not dispatch while a live ``wg service`` owns the repo, unless told to.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from speedrift import layout, records
from speedrift.errors import SpeedriftError
from speedrift.fleet import halt, recovery, recovery_graph
from speedrift.fleet.pipeline import AttemptResult, Pipeline, RunOptions, worker_actor
from speedrift.graph import ops, query
from speedrift.graph.codec import Graph
from speedrift.graph.model import FAILED, IN_PROGRESS, speedrift_data
from speedrift.layout import service_dir
from speedrift.procs import pid_alive
from speedrift.repo import git, landing, worktrees
from speedrift.repo.worktrees import ManifestState
from speedrift.times import format_time, now_utc, parse_time


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
    pid = state.get("pid") if state else None
    return isinstance(pid, int) and pid_alive(pid)


# --- recovery ------------------------------------------------------------------------------------
# a worktree in one of these states when the service starts may hold a rebase a crash cut off
INTERRUPTIBLE = (ManifestState.LANDING, ManifestState.ACTIVE, ManifestState.MERGE_PENDING)


def recover(pipeline: Pipeline) -> list[str]:
    """Make the repo consistent after a crash. Returns what was done, one line per action."""
    repo, store = pipeline.repo, pipeline.store
    notes: list[str] = []
    host = socket.gethostname()
    for manifest in worktrees.read_manifests(repo):
        worktree = Path(manifest.path)
        interrupted = manifest.state in INTERRUPTIBLE and worktree.is_dir()
        if interrupted and landing.abort_rebase_if_any(worktree):
            notes.append(f"aborted an interrupted rebase in {worktree}")
        if manifest.state is ManifestState.LANDING:
            tip = git.rev_parse(repo, f"refs/heads/{manifest.branch}")
            on_target = (
                bool(tip)
                and git.run(
                    ["merge-base", "--is-ancestor", str(tip), manifest.target_branch], repo, check=False
                ).returncode
                == 0
            )
            if on_target and tip != manifest.base_commit:
                manifest.state, manifest.landed_commit = ManifestState.LANDED, tip
                worktrees.write_manifest(repo, manifest)
                store.mutate(partial(_done_after_crash, manifest=manifest), actor=worker_actor())
                notes.append(f"{manifest.task_id}: had landed {str(tip)[:12]} before the crash; marked done")
            else:
                manifest.state = ManifestState.FAILED
                worktrees.write_manifest(repo, manifest)
    graph = store.load()
    for task_id, task in graph.tasks.items():
        worker = speedrift_data(task).get("worker")
        if task.get("status") != IN_PROGRESS or not isinstance(worker, dict):
            continue
        pid, where = worker.get("pid"), worker.get("host")
        if where == host and isinstance(pid, int) and not pid_alive(pid):
            store.mutate(partial(_release, task_id=task_id, pid=pid), actor=worker_actor())
            notes.append(f"{task_id}: released (its worker {pid} is gone)")
    return notes


def _done_after_crash(graph: Graph, now: datetime, manifest: worktrees.Manifest) -> ops.Mutation:
    task = graph.get(manifest.task_id)
    if task is None or task.get("status") != IN_PROGRESS:
        return ops.Mutation()
    actor = worker_actor()
    message = f"Landed {str(manifest.landed_commit)[:12]} (recorded after a restart)"
    mutation = ops.done(graph, manifest.task_id, now=now, actor=actor, force=True, message=message)
    landed = {"state": None, "worker": None, "landed_commit": manifest.landed_commit}
    return ops.set_fields(graph, manifest.task_id, speedrift=landed, now=now, actor=actor, within=mutation)


def _release(graph: Graph, now: datetime, task_id: str, pid: int) -> ops.Mutation:
    task = graph.get(task_id)
    if task is None or task.get("status") != IN_PROGRESS:
        return ops.Mutation()
    actor = worker_actor()
    message = f"Released: worker {pid} is gone; the task is open for a new attempt"
    mutation = ops.unclaim(graph, task_id, now=now, actor=actor, message=message)
    released = {"state": None, "worker": None}
    return ops.set_fields(graph, task_id, speedrift=released, now=now, actor=actor, within=mutation)


# --- retry policy ----------------------------------------------------------------------------------
STOPPED = "interrupted by a service stop"


def schedule_retry(
    pipeline: Pipeline,
    result: AttemptResult,
    paused_until: dict[str, datetime],
    withheld: set[str] | None = None,
) -> str | None:
    """Carry out an automatic recovery (fleet/recovery.py): reopen the task after its backoff, or
    after its runtime's usage-limit reset, with the decision's diagnosis and model tier. While the
    repo's retries are halted (fleet/halt.py) the task stays failed, marked withheld."""
    decision = recovery.Decision.from_dict(result.recovery) if result.recovery else None
    if decision is None or not decision.automatic:
        return None
    state = halt.retries_halted(pipeline.repo, pipeline.config.recovery)
    if state.halted:
        why = f"automatic retries are halted: {state.reason}"
        pipeline.store.mutate(
            lambda g, now: recovery_graph.withhold_mutation(
                g, result.task_id, why, now=now, actor=worker_actor()
            ),
            actor=worker_actor(),
        )
        if withheld is not None:
            withheld.add(result.task_id)
        return None
    now = now_utc()
    when = now + timedelta(seconds=decision.delay_seconds)
    if decision.recovery == "pause_runtime" and result.reset_at:
        when = parse_time(result.reset_at) or now + timedelta(hours=1)
        paused_until[str(result.evidence.get("runtime", ""))] = when
    pipeline.store.mutate(partial(_reopen, task_id=result.task_id, decision=decision, when=when))
    return format_time(when)


def _reopen(
    graph: Graph,
    now: datetime,
    task_id: str,
    decision: recovery.Decision | None,
    when: datetime | None,
    context: str | None = None,
) -> ops.Mutation:
    task = graph.get(task_id)
    if task is None or task.get("status") != FAILED:
        return ops.Mutation()  # recovered already (split, re-planned, retried by a human)
    return recovery_graph.retry_mutation(
        graph, task_id, decision, when=when, now=now, actor=worker_actor(), context=context
    )


def withheld_tasks(graph: Graph) -> set[str]:
    """Failed tasks whose automatic retry a halt withheld."""
    return {
        task_id
        for task_id, task in graph.tasks.items()
        if task.get("status") == FAILED and (speedrift_data(task).get("recovery") or {}).get("withheld")
    }


def retry_withheld(pipeline: Pipeline, task_id: str) -> bool:
    """Retries resumed: reopen a withheld task now, as its recorded decision said."""

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        task = graph.get(task_id)
        recorded = speedrift_data(task).get("recovery") if task is not None else None
        if not isinstance(recorded, dict) or not recorded.get("withheld"):
            return ops.Mutation()
        return _reopen(graph, now, task_id, recovery.Decision.from_dict(recorded), None)

    return bool(pipeline.store.mutate(build, actor=worker_actor()).tasks)


# --- the loop --------------------------------------------------------------------------------------
@dataclass
class ServiceLoop:
    pipeline: Pipeline
    log: Any = None  # callable(str) for the service log
    stop: threading.Event = field(default_factory=threading.Event)
    running: dict[str, threading.Thread] = field(default_factory=dict)
    cancels: dict[str, threading.Event] = field(default_factory=dict)
    paused_until: dict[str, datetime] = field(default_factory=dict)
    results: list[AttemptResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    retries: halt.HaltState | None = None  # the last halt verdict (fleet/halt.py)
    withheld: set[str] = field(default_factory=set)  # failed tasks whose retry a halt withheld
    # --hub: asked before every claim; (False, reason) keeps the service idle ("paused: reason")
    admission: Callable[[], tuple[bool, str]] | None = None
    paused: str | None = None

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
            paused_runtimes={k: format_time(v) for k, v in self.paused_until.items()},
            retries=self.retries.as_dict() if self.retries else None,
            hub=self.admission is not None,
            paused=self.paused,
        )
        records.write_heartbeat(self.pipeline.repo, beat)

    def _attempt(self, task_id: str, cancel: threading.Event) -> None:
        try:
            result = self.pipeline.run(task_id, RunOptions(cancel=cancel))
            self.say(f"{task_id}: attempt {result.attempt} {result.status}: {result.reason}")
            if result.status == FAILED and self.stop.is_set() and result.reason == "cancelled":
                # cut off by our own shutdown: not the task's fault, so it goes straight back to open
                # (a failure that merely finished while the service stops keeps its recovery)
                self.pipeline.store.mutate(
                    partial(_reopen, task_id=task_id, decision=None, when=None, context=STOPPED),
                    actor=worker_actor(),
                )
            elif result.status == FAILED:
                when = schedule_retry(self.pipeline, result, self.paused_until, self.withheld)
                if when:
                    self.say(f"{task_id}: retry scheduled for {when}")
            with self.lock:
                self.results.append(result)
        except SpeedriftError as error:
            self.say(f"{task_id}: not run: {error.message}")
        except Exception as error:  # a bug must not take the service down; the pipeline released the task
            self.say(f"{task_id}: internal error: {type(error).__name__}: {error}")
        finally:
            with self.lock:
                self.running.pop(task_id, None)
                self.cancels.pop(task_id, None)

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
        from speedrift.agents import choose as registry

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
        for task in query.ready(graph, now):
            with self.lock:
                if len(self.running) >= config.service.max_agents:
                    break
                if task["id"] in self.running:
                    continue
            runtime, _model = registry.select_runtime(task, config.default_runtime)
            if self.paused_until.get(runtime, now) > now:
                continue
            if not self.admitted():  # before every claim: a lease may expire between two tasks
                break
            cancel = threading.Event()
            thread = threading.Thread(target=self._attempt, args=(task["id"], cancel), daemon=True)
            with self.lock:
                self.running[task["id"]] = thread
                self.cancels[task["id"]] = cancel
            thread.start()
            started += 1
        return started

    def retry_pending_merges(self) -> None:
        for manifest in worktrees.read_manifests(self.pipeline.repo):
            if manifest.state is not ManifestState.MERGE_PENDING or manifest.task_id in self.running:
                continue
            landing.abort_rebase_if_any(Path(manifest.path))
            try:
                tip = landing.land(self.pipeline.repo, manifest, lambda _m, _t: None)
            except (landing.MergePending, landing.MergeConflict) as error:
                self.say(f"{manifest.task_id}: still waiting to land: {error.message}")
                continue
            manifest.state, manifest.landed_commit = ManifestState.LANDED, tip
            worktrees.write_manifest(self.pipeline.repo, manifest)
            self.pipeline.store.mutate(partial(_done_after_crash, manifest=manifest), actor=worker_actor())
            halt.record_outcome(self.pipeline.repo, manifest.task_id, manifest.attempt, "done")
            self.say(f"{manifest.task_id}: landed {tip[:12]} after waiting")

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
    fd = os.open(layout.service_lock_path(pipeline.repo), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpeedriftError(f"a speedrift service is already running for {pipeline.repo}") from None
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
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return 0
