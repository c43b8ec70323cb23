"""Attempts in worker processes: a supervisor starts one child per attempt, the child runs that one
attempt (:meth:`Pipeline.run <speedrift.fleet.pipeline.Pipeline.run>`) and sends back a typed
:class:`WorkerReport`; the supervisor watches, reaps and learns how the child ended.

Why processes: attempts run as threads of one process serialize their Python work (graph loads
and writes, supervision, evidence) on the interpreter lock; in processes they run in parallel, and
a child that crashes, leaks or is killed takes only its own attempt with it.

Why a forkserver: a fresh ``python -m speedrift`` per attempt costs a whole interpreter start and
the imports (a few hundred ms); ``fork()`` of the service itself is unsafe, because the service is
multi-threaded (one watcher thread per attempt) and a fork copies locks other threads hold. The
forkserver is a single-threaded process started once per supervisor with the pipeline modules
already imported (:data:`PRELOAD`); each attempt is a ``fork()`` of it, which costs milliseconds.

Invariants:

- A child runs exactly one attempt (or resumes one merge-pending landing) and exits. The
  supervisor learns of every way it ends: a report, or an exit without one (killed, OOM,
  crashed) — :attr:`WorkerExit.report` is None and :meth:`WorkerExit.describe` says how it died.
- The child runs with the supervisor's environment and working directory as of the spawn (the
  forkserver's own are those of its start, which may be older).
- SIGTERM to a child cancels its attempt: the agent's process group is ended and the attempt
  recorded as cancelled, then the child reports. SIGINT is ignored by the child: a Ctrl-C reaches
  the whole foreground process group, and the supervisor decides what a stop means.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from speedrift.errors import SpeedriftError
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.fleet.remote.spec import ExecutorKind
from speedrift.procs import ProcessIdentity, identity_alive, identity_of
from speedrift.repo import git

# imported once by the forkserver, so every attempt's fork has them already (nodump first: the
# forkserver makes itself non-dumpable, and every worker forked from it inherits that)
PRELOAD = (
    "speedrift.fleet.nodump",
    "speedrift.fleet.workers",
    "speedrift.fleet.service",
    "speedrift.fleet.pipeline",
    "speedrift.fleet.failures",
    "speedrift.agents.choose",
    "speedrift.agents.session",
    "speedrift.agents.shell",
    "speedrift.agents.claude",
    "speedrift.agents.codex",
    "speedrift.agents.opencode",
    "speedrift.gates.suite",
    "speedrift.repo.landing",
)
WAIT_TICK_S = 0.2  # how often a waiting supervisor looks at its cancel event
KILL_AFTER_S = 60.0  # after a cancel, the child's grace (beyond the agent's kill grace) before SIGKILL

_context_lock = threading.Lock()
_context: ForkServerContext | None = None

ReportKind = Literal["result", "refused", "error"]


def context(extra: tuple[str, ...] = ()) -> ForkServerContext:
    """The forkserver context every supervisor in this process shares (started on first use).
    ``extra``: modules the forkserver imports too when this call starts it (a later call's are
    imported by each child instead: slower, never wrong)."""
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([*PRELOAD, *extra])
            _context = ctx
        return _context


def preload_for(pipeline: Pipeline) -> tuple[str, ...]:
    """What a pipeline's attempts import beyond :data:`PRELOAD`: Dask's client for the dask
    executor (a third of a second per attempt otherwise). Importing it starts no thread, so the
    forkserver stays single-threaded."""
    if pipeline.executor.kind is ExecutorKind.DASK and importlib.util.find_spec("distributed") is not None:
        return ("distributed",)
    return ()


@dataclass(frozen=True)
class WorkerReport:
    """What a child sends back: the attempt's result, or why it did not run (``refused``: a
    :class:`SpeedriftError` before or at the claim; ``error``: a bug, the claim already released)."""

    kind: ReportKind
    result: AttemptResult | None = None
    message: str = ""
    admin_wait_s: float = 0.0  # queued behind other attempts for the repo's worktree-admin lock


@dataclass(frozen=True)
class WorkerExit:
    """How a child ended: its report (None when it died without one), its exit status, and the
    wall time from its start to its end as the supervisor saw it."""

    pid: int
    report: WorkerReport | None
    exitcode: int | None
    wall_s: float
    attempt: int | None = None  # the attempt number the child claimed, when it said so

    def describe(self) -> str:
        code = self.exitcode
        if code is None:
            return "its exit status is unknown"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"it was killed by {name}"
        return f"it exited with status {code}"


@dataclass(frozen=True)
class _ChildSpec:
    pipeline: Pipeline
    task_id: str
    env: dict[str, str]
    cwd: str
    force: bool
    resume: bool  # resume a merge-pending landing instead of a new attempt


def _child_main(conn: multiprocessing.connection.Connection, spec: _ChildSpec) -> None:
    """The child: one attempt, one report."""
    # everything the forkserver imported is shared with it copy-on-write; a collection would walk
    # (and so copy) all of it, and one attempt allocates little: no collector in a worker
    gc.freeze()
    gc.disable()
    os.environ.clear()
    os.environ.update(spec.env)
    with contextlib.suppress(OSError):
        os.chdir(spec.cwd)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: cancel.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def send(message: tuple[str, Any]) -> None:
        with contextlib.suppress(OSError, ValueError):  # the supervisor is gone: the graph says it all
            conn.send(message)

    options = RunOptions(cancel=cancel, force=spec.force, on_claimed=lambda n: send(("claimed", n)))
    try:
        if spec.resume:
            result = spec.pipeline.resume_landing(spec.task_id)
        else:
            result = spec.pipeline.run(spec.task_id, options)
        report = WorkerReport("result", result=result)
    except SpeedriftError as error:
        report = WorkerReport("refused", message=error.message)
    except Exception as error:  # the pipeline released the claim; the supervisor logs it
        report = WorkerReport("error", message=f"{type(error).__name__}: {error}")
    send(("report", dataclasses.replace(report, admin_wait_s=git.admin_wait_s())))
    conn.close()


class Worker:
    """One attempt in a child process: :meth:`start`, then :meth:`wait` (once)."""

    def __init__(
        self, pipeline: Pipeline, task_id: str, *, force: bool = False, resume: bool = False
    ) -> None:
        self.pipeline = pipeline
        self.task_id = task_id
        self.force = force
        self.resume = resume  # the child resumes the task's merge-pending landing (it gates again)
        self._process: BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._started = 0.0
        self.identity: ProcessIdentity | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> ProcessIdentity:
        ctx = context(preload_for(self.pipeline))
        receiver, sender = ctx.Pipe(duplex=False)
        spec = _ChildSpec(self.pipeline, self.task_id, dict(os.environ), os.getcwd(), self.force, self.resume)
        process = ctx.Process(
            target=_child_main, args=(sender, spec), name=f"speedrift-attempt-{self.task_id}"
        )
        self._started = time.perf_counter()
        try:
            process.start()
        finally:
            sender.close()  # the child has its own end; ours must go so EOF means "child gone"
        self._process, self._conn = process, receiver
        assert process.pid is not None
        self.identity = identity_of(process.pid)
        return self.identity

    def exited(self) -> bool:
        """Whether the child has ended, reaped or not. Safe from any thread: it looks at the
        process (pid + start time), never at the handle :meth:`wait` reads the exit status from."""
        return self.identity is not None and not identity_alive(self.identity)

    def signal(self, sig: signal.Signals) -> None:
        if self._process is not None and self._process.pid is not None and self._process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, sig)

    def wait(self, cancel: threading.Event | None = None) -> WorkerExit:
        """Until the child has ended. A set ``cancel`` is passed on as SIGTERM (once); a child still
        running :data:`KILL_AFTER_S` past its agent's kill grace after that gets SIGKILL."""
        process, conn = self._process, self._conn
        assert process is not None and conn is not None, "start() first"
        report: WorkerReport | None = None
        attempt: int | None = None
        kill_at: float | None = None
        grace = self.pipeline.config.budgets.kill_grace_seconds + KILL_AFTER_S
        open_conn = True
        while True:
            waiting: list[Any] = [process.sentinel] + ([conn] if open_conn else [])
            ready = multiprocessing.connection.wait(waiting, timeout=WAIT_TICK_S)
            if open_conn and conn in ready:
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    open_conn = False
                else:
                    if kind == "claimed":
                        attempt = int(payload)
                    elif kind == "report":
                        report = payload
            if process.sentinel in ready:
                break
            if cancel is not None and cancel.is_set() and kill_at is None:
                self.signal(signal.SIGTERM)
                kill_at = time.monotonic() + grace
            if kill_at is not None and time.monotonic() >= kill_at:
                self.signal(signal.SIGKILL)
                kill_at = float("inf")
        process.join()
        while open_conn and report is None:  # whatever it sent before it went
            try:
                if not conn.poll():
                    break
                kind, payload = conn.recv()
            except (EOFError, OSError):
                break
            if kind == "claimed":
                attempt = int(payload)
            elif kind == "report":
                report = payload
        conn.close()
        wall = time.perf_counter() - self._started
        assert process.pid is not None
        return WorkerExit(process.pid, report, process.exitcode, wall, attempt)
