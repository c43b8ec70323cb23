"""Attempts in worker processes: a supervisor hands each attempt to a worker process, which runs
it (:meth:`Pipeline.run <speedrift.fleet.pipeline.Pipeline.run>`) and sends back a typed
:class:`WorkerReport`; the supervisor watches, reaps and learns how the attempt ended.

Why processes: attempts run as threads of one process serialize their Python work (graph loads
and writes, supervision, evidence) on the interpreter lock; in processes they run in parallel, and
a process that crashes, leaks or is killed takes only its own attempt with it.

Why a forkserver: a fresh ``python -m speedrift`` per attempt costs a whole interpreter start and
the imports (a few hundred ms); ``fork()`` of the service itself is unsafe, because the service is
multi-threaded (one watcher thread per attempt) and a fork copies locks other threads hold. The
forkserver is a single-threaded process started once per supervisor with the pipeline modules
already imported (:data:`PRELOAD`); each worker process is a ``fork()`` of it.

Why a worker process runs more than one attempt: a fresh fork pays for itself on every attempt —
the fork, the bootstrap, and copying each page of the forkserver it touches (~3,000 page faults):
about a quarter of a one-line shell attempt's own work. So a worker process whose attempt ended
cleanly (a result, not cancelled) waits for the next one, at most :data:`MAX_ATTEMPTS_PER_PROCESS`
times and :data:`IDLE_S` idle; anything else and it exits. On the dask executor it keeps its
client of the scheduler (fleet/remote/executor.py) too, instead of connecting again.

Invariants:

- A worker process runs one attempt at a time (or resumes one merge-pending landing). The
  supervisor learns of every way an attempt ends: a report, or the process's exit without one
  (killed, OOM, crashed) — :attr:`WorkerExit.report` is None and :meth:`WorkerExit.describe` says
  how it died. A process is reused only after a report that says so; after a cancel, a refusal
  or a bug (either may leave a claim that only the process's exit releases) it never is.
- Each attempt runs with the supervisor's environment and working directory as of its hand-over
  (the forkserver's own are those of its start, which may be older).
- SIGTERM to a worker process cancels its attempt: the agent's process group is ended and the
  attempt recorded as cancelled, then the process reports and exits; an idle one exits at once.
  SIGINT is ignored: a Ctrl-C reaches the whole foreground process group, and the supervisor
  decides what a stop means. An idle process whose supervisor is gone sees its pipe close and exits.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import importlib.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import types
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
    "speedrift.agents.demo",
    "speedrift.gates.suite",
    "speedrift.repo.landing",
    # what every worker otherwise imports on its own: the pipe's fd transfer on unpickling, the
    # user name (getpass), and the main-script re-run (runpy imports pkgutil when it runs)
    "multiprocessing.popen_forkserver",
    "pwd",
    "runpy",
    "pkgutil",
)
WAIT_TICK_S = 0.2  # how often a waiting supervisor looks at its cancel event
KILL_AFTER_S = 60.0  # after a cancel, the child's grace (beyond the agent's kill grace) before SIGKILL
MAX_ATTEMPTS_PER_PROCESS = 50  # then a fresh one: what an attempt leaves behind never piles up
IDLE_S = 120.0  # an idle worker process kept longer than this is let go
MAX_IDLE = 16  # idle worker processes kept at most

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
            ctx.set_forkserver_preload([*PRELOAD, *main_imports(), *extra])
            _context = ctx
        return _context


def main_imports() -> tuple[str, ...]:
    """The modules the program's main script imported, for the forkserver to import once.

    Before Python 3.13, every forkserver child runs the main script again (``runpy.run_path``:
    CPython gh-126631 made preloading ``__main__`` itself a no-op), and with it every import the
    script makes that the forkserver did not: for the ``speedrift`` console script that is the
    whole CLI, ~7 ms per worker process. Preloaded here, the re-run finds them imported. The names
    come from the script's own namespace (the modules it bound, and the modules of the classes and
    functions it imported), so nothing is imported that a child would not import anyway. A main
    run by module name (``python -m``) is not re-run, so nothing is needed then."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__file__", None) is None:
        return ()
    if getattr(getattr(main, "__spec__", None), "name", None) is not None:
        return ()
    names: set[str] = set()
    for value in vars(main).values():
        if isinstance(value, types.ModuleType):
            names.add(value.__name__)
        elif isinstance(value, type | types.FunctionType):
            names.add(value.__module__)
    return tuple(sorted(names - {"__main__", "builtins"}))


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
    reusable: bool = False  # the process waits for another attempt (else it exits after this report)


@dataclass(frozen=True)
class WorkerExit:
    """How an attempt ended: its report (None when its process died without one), the process's
    exit status (None while it lives on for the next attempt), and the wall time from the
    hand-over to the report or the exit, as the supervisor saw it."""

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


def _child_main(conn: multiprocessing.connection.Connection) -> None:
    """A worker process: attempts handed over ``conn``, one at a time, each answered by a report;
    it exits after an attempt that leaves it not reusable, or when ``conn`` closes (EOF)."""
    # everything the forkserver imported is shared with it copy-on-write; a collection would walk
    # (and so copy) all of it: collected only between attempts, and only what came after the fork
    gc.freeze()
    gc.disable()
    current: list[threading.Event] = []  # the running attempt's cancel, while one runs

    def on_term(_signum: int, _frame: object) -> None:
        if not current:
            raise SystemExit(0)  # idle: nothing to cancel, nothing to give back
        current[0].set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runs = 0
    while True:
        try:
            spec: _ChildSpec = conn.recv()
        except (EOFError, OSError):
            return  # the supervisor let this process go, or is gone
        runs += 1
        cancel = threading.Event()
        current.append(cancel)
        try:
            report = _one_attempt(conn, spec, cancel, runs)
            _send(conn, ("report", report))
        finally:
            current.clear()  # from here a SIGTERM ends the process: its report is sent
        if not report.reusable:
            conn.close()
            return
        gc.collect()  # what the attempt left in cycles, before the next one


def _send(conn: multiprocessing.connection.Connection, message: tuple[str, Any]) -> None:
    with contextlib.suppress(OSError, ValueError):  # the supervisor is gone: the graph says it all
        conn.send(message)


def _one_attempt(
    conn: multiprocessing.connection.Connection, spec: _ChildSpec, cancel: threading.Event, runs: int
) -> WorkerReport:
    os.environ.clear()
    os.environ.update(spec.env)
    with contextlib.suppress(OSError):
        os.chdir(spec.cwd)
    waited = git.admin_wait_s()  # this thread's total so far: the report carries this attempt's part
    options = RunOptions(cancel=cancel, force=spec.force, on_claimed=lambda n: _send(conn, ("claimed", n)))
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
    # a refusal or a bug may have left a claim behind, judged by this process's life: it exits
    reusable = report.kind == "result" and not cancel.is_set() and runs < MAX_ATTEMPTS_PER_PROCESS
    return dataclasses.replace(report, admin_wait_s=git.admin_wait_s() - waited, reusable=reusable)


@dataclass(eq=False)
class _Process:
    """A worker process as the supervisor holds it: its handle, its end of the pipe, its identity."""

    process: BaseProcess
    conn: multiprocessing.connection.Connection
    identity: ProcessIdentity
    idle_since: float = 0.0


_pool_lock = threading.Lock()
_idle: list[_Process] = []  # waiting for an attempt, the most recently used last


def _spawn(ctx: ForkServerContext) -> _Process:
    mine, theirs = ctx.Pipe(duplex=True)
    process = ctx.Process(target=_child_main, args=(theirs,), name="speedrift-worker")
    try:
        process.start()
    finally:
        theirs.close()  # the child has its own end; ours must go so EOF means "child gone"
    assert process.pid is not None
    return _Process(process, mine, identity_of(process.pid))


def _take(ctx: ForkServerContext) -> _Process:
    """An idle worker process that is still alive, else a new one."""
    with _pool_lock:
        while _idle:
            held = _idle.pop()
            if identity_alive(held.identity) and time.monotonic() - held.idle_since <= IDLE_S:
                return held
            _let_go(held)
    return _spawn(ctx)


def _give_back(held: _Process) -> None:
    held.idle_since = time.monotonic()
    with _pool_lock:
        _idle.append(held)
        now = time.monotonic()
        kept = [p for p in _idle if now - p.idle_since <= IDLE_S][-MAX_IDLE:]  # the newest
        for gone in _idle:
            if gone not in kept:
                _let_go(gone)
        _idle[:] = kept


def _let_go(held: _Process) -> None:
    """Close its pipe: an idle worker process sees EOF and exits (reaped by multiprocessing's own
    bookkeeping at the next process start, or by :func:`_let_all_go`)."""
    with contextlib.suppress(OSError):
        held.conn.close()


@atexit.register
def _let_all_go() -> None:
    """At exit, before multiprocessing joins its children (atexit runs last-registered first): the
    idle processes are let go, or the join would wait for them forever."""
    with _pool_lock:
        gone, _idle[:] = list(_idle), []
    for held in gone:
        _let_go(held)
    for held in gone:
        held.process.join(timeout=5)
        if held.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(held.identity.pid, signal.SIGKILL)


class Worker:
    """One attempt in a worker process: :meth:`start`, then :meth:`wait` (once)."""

    def __init__(
        self, pipeline: Pipeline, task_id: str, *, force: bool = False, resume: bool = False
    ) -> None:
        self.pipeline = pipeline
        self.task_id = task_id
        self.force = force
        self.resume = resume  # the child resumes the task's merge-pending landing (it gates again)
        self._held: _Process | None = None
        self._process: BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._started = 0.0
        self._ended_at: float | None = None  # set when wait() returns: the attempt is over
        self.identity: ProcessIdentity | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> ProcessIdentity:
        """Hand the attempt to a worker process (an idle one, else a new one); its identity."""
        ctx = context(preload_for(self.pipeline))
        spec = _ChildSpec(self.pipeline, self.task_id, dict(os.environ), os.getcwd(), self.force, self.resume)
        self._started = time.perf_counter()
        held = _take(ctx)
        try:
            held.conn.send(spec)
        except (OSError, ValueError):  # it died idle just now: a new one
            _let_go(held)
            held = _spawn(ctx)
            held.conn.send(spec)
        self._held, self._process, self._conn = held, held.process, held.conn
        self.identity = held.identity
        return self.identity

    def exited(self) -> bool:
        """Whether the child has ended, reaped or not. Safe from any thread: it looks at the
        process (pid + start time), never at the handle :meth:`wait` reads the exit status from."""
        return self.identity is not None and not identity_alive(self.identity)

    def signal(self, sig: signal.Signals) -> None:
        """Signal the worker process while it runs this attempt (never once it was given back: by
        then it may be running another)."""
        if self._ended_at is not None:
            return
        if self._process is not None and self._process.pid is not None and self._process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, sig)

    def wait(self, cancel: threading.Event | None = None) -> WorkerExit:
        """Until the attempt has ended: its report, or its process's end. A set ``cancel`` is passed
        on as SIGTERM (once); a process still running :data:`KILL_AFTER_S` past its agent's kill
        grace after that gets SIGKILL. A process whose report says it is reusable (and that was
        sent no signal) goes back to the idle ones; any other is waited for until it has exited."""
        held, process, conn = self._held, self._process, self._conn
        assert held is not None and process is not None and conn is not None, "start() first"
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
                        if report is not None and report.reusable and kill_at is None:
                            ended = self._ended(report, None, attempt)
                            _give_back(held)
                            return ended
                        if report is not None and report.reusable:  # signalled meanwhile: not reused,
                            _let_go(held)  # so it sees its pipe close and exits
                            open_conn = False
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
        return self._ended(report, process.exitcode, attempt)

    def _ended(self, report: WorkerReport | None, exitcode: int | None, attempt: int | None) -> WorkerExit:
        self._ended_at = time.perf_counter()
        wall = self._ended_at - self._started
        assert self._process is not None and self._process.pid is not None
        return WorkerExit(self._process.pid, report, exitcode, wall, attempt)
