"""A local Dask cluster to try the ``dask`` executor with, and what any cluster is doing.

:func:`up` starts a scheduler and N workers on this machine as real processes of this Python
(``speedrift cluster up``); :func:`status` asks a scheduler for its workers, their resources and
the attempts running on them, and the attempt log for the recent infrastructure failures of
machines (``speedrift cluster status``).

Invariants:

- Every process :func:`up` starts leads its own process group and ends with
  :meth:`LocalCluster.stop` (SIGTERM to the group, SIGKILL after a grace period), and on Linux with
  the thread that started it (``PR_SET_PDEATHSIG``): nothing it started outlives it.
- Nothing listens beyond the requested host: the scheduler and workers bind to ``host``
  (127.0.0.1 by default) and their diagnostic dashboards to 127.0.0.1 on a free port (Dask's
  ``--no-dashboard`` still binds 0.0.0.0:8787, so it is never used).
- A worker offers ``runtime:<name>`` for each agent runtime whose CLI is on this machine's PATH
  (``runtime:shell`` always), so an attempt lands only where its runtime exists.
- ``distributed`` is imported only inside the functions that talk to a scheduler: without the
  ``scale`` extra this module still imports, and asking for a cluster is a UsageError naming it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import attemptlog, extras, procs
from speedrift.agents import choose
from speedrift.errors import Refused, UsageError
from speedrift.failure_class import FailureClass
from speedrift.fleet.remote import config as executor_config
from speedrift.fleet.remote.config import RUNTIME_RESOURCE
from speedrift.fleet.remote.spec import parse_key
from speedrift.times import format_time, now_utc

DEFAULT_PORT = 8786  # Dask's own default: `cluster up` listens there unless told otherwise
DEFAULT_SCHEDULER = f"tcp://127.0.0.1:{DEFAULT_PORT}"
FAILURE_WINDOW = timedelta(hours=24)  # `status` lists the machines' failures of this long
FAILURES_SHOWN = 20
STOP_GRACE_S = 10.0
# Dask's housekeeping on the processes `up` starts, sized for jobs that are whole attempts (seconds
# to hours), not millisecond tasks: by default every worker samples its threads for the profiler
# every 10 ms, every process checks its event loop every 20 ms, and every nanny measures its
# worker's memory every 100 ms — an idle 4-worker cluster then keeps about a sixth of a core
# busy. Each is set only where the environment does not set it already (DASK_* variables are
# Dask's own configuration, read by every Dask process at start).
QUIET_DASK = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",  # nothing reads the statistical profile
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "500ms",  # a blocked loop is still named after 3 s
    "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s",  # the memory limits still apply
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "2s",  # the dashboard's CPU/memory plots
}
_PR_SET_PDEATHSIG = 1


def require_distributed() -> Any:
    """Dask's ``distributed`` module; a UsageError naming the ``scale`` extra when it is missing."""
    return extras.require("distributed", "`speedrift cluster` and the dask executor")


def connect(address: str, timeout: float) -> Any:
    """A client of the scheduler at ``address`` (close it); a Refused naming the fix when it does
    not answer within ``timeout``."""
    check_address(address)
    make: Any = require_distributed().Client
    try:
        return make(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:  # refused, timed out, a malformed address
        raise unreachable(address, timeout, error) from None


# --- resources -------------------------------------------------------------------------------------
def runtime_resource(runtime: str) -> str:
    """The worker resource an attempt of ``runtime`` needs (``runtime:claude``)."""
    return RUNTIME_RESOURCE + runtime


def installed_runtimes(path: str | None = None) -> list[str]:
    """The agent runtimes whose CLI is on ``path`` (default: ours), ``shell`` always, ``demo``
    wherever speedrift runs (its executable is this interpreter); their CLIs are looked for, never
    run (``speedrift doctor`` checks them further)."""
    search = path if path is not None else os.environ.get("PATH", os.defpath)
    found = []
    for name in choose.RUNTIME_NAMES:
        if name == "shell" or shutil.which(choose.runtime_for(name).executable, path=search):
            found.append(name)
    return found


def default_resources(path: str | None = None) -> dict[str, float]:
    """``runtime:<name> = 1`` for each runtime installed here (:func:`installed_runtimes`)."""
    return {runtime_resource(name): 1.0 for name in installed_runtimes(path)}


def parse_resources(text: str) -> dict[str, float]:
    """``runtime:shell=1,gpu=2`` (commas or spaces) as a dict; a UsageError names a bad pair."""
    resources: dict[str, float] = {}
    for pair in text.replace(",", " ").split():
        name, sep, amount = pair.partition("=")
        try:
            value = float(amount) if sep and name else None
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):
            raise UsageError(
                f"--resources: {pair!r} is not NAME=AMOUNT with a positive amount",
                hint="e.g. --resources runtime:shell=1,runtime:claude=1,gpu=1",
            )
        resources[name] = value
    if not resources:
        raise UsageError("--resources names no resource", hint="e.g. --resources runtime:shell=1")
    return resources


def format_resources(resources: Mapping[str, float]) -> str:
    """As Dask's ``--resources`` takes them: ``runtime:shell=1,gpu=2``."""
    return ",".join(f"{name}={amount:g}" for name, amount in resources.items())


# --- up --------------------------------------------------------------------------------------------
@dataclass
class LocalCluster:
    """A scheduler and its workers started by :func:`up`. ``stop`` ends them all (idempotent)."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    names: list[str]
    resources: dict[str, float]
    directory: Path  # logs and the workers' scratch space; removed by stop() when up() made it
    owns_directory: bool = True
    stopped: bool = False

    @property
    def pids(self) -> list[int]:
        return [self.scheduler.pid, *(w.pid for w in self.workers)]

    def dead(self) -> list[str]:
        """What has exited of what was started (``scheduler``, worker names)."""
        gone = ["scheduler"] if self.scheduler.poll() is not None else []
        return gone + [name for name, w in zip(self.names, self.workers, strict=True) if w.poll() is not None]

    def stop(self, grace_s: float = STOP_GRACE_S, *, keep_logs: bool = False) -> None:
        """End every process started (workers first, then the scheduler); each whole group. The
        directory goes too when up() made it, unless ``keep_logs``."""
        if self.stopped:
            return
        self.stopped = True
        try:
            for worker in self.workers:  # all at once: each takes a moment to close
                with contextlib.suppress(ValueError, PermissionError):
                    procs.signal_group(worker.pid, signal.SIGTERM)
            for proc in [*self.workers, self.scheduler]:
                procs.end_group(proc, grace_s)
        finally:
            if self.owns_directory and not keep_logs:
                shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _die_with_parent() -> Callable[[], object] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the thread that started it ends."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _start(argv: list[str], log: Path, env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return procs.popen_group(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent()
        )


def _reason(log: Path) -> str:
    """The last error line a process left in its log (the one that says why), else its last line."""
    try:
        lines = [line.strip() for line in log.read_text("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line for line in lines if line.startswith(("OSError", "RuntimeError", "ValueError", "Error"))]
    errors += [line for line in lines if "Error:" in line and line not in errors]
    return (errors[0] if errors else lines[-1] if lines else "(empty log)")[:300]


def _wait_for_scheduler(
    proc: subprocess.Popen[bytes], file: Path, log: Path, port: int, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            address = json.loads(file.read_text()).get("address")
            if isinstance(address, str) and address:
                return address
        if proc.poll() is not None:
            why = _reason(log)
            busy = "address already in use" in why.lower()
            raise Refused(
                f"the Dask scheduler exited at start (code {proc.returncode}): {why}",
                hint=f"port {port} is taken: pass --port 0 (a free one) or another port"
                if busy
                else f"see {log}",
            )
        time.sleep(0.05)
    raise Refused(f"the Dask scheduler did not start within {timeout:g} s", hint=f"see {log}")


def quiet_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """``env`` (default: ours) with :data:`QUIET_DASK` wherever it does not set a value itself."""
    base = dict(os.environ if env is None else env)
    return {**QUIET_DASK, **base}


def up(
    workers: int,
    host: str = "127.0.0.1",
    port: int = 0,
    resources: Mapping[str, float] | None = None,
    *,
    nthreads: int = 1,
    timeout: float = 60.0,
    directory: Path | None = None,
    env: Mapping[str, str] | None = None,
    python: str | None = None,
) -> LocalCluster:
    """Start a scheduler on ``host:port`` (0: a free port) and ``workers`` worker processes on this
    machine, each with ``nthreads`` threads and ``resources`` (default :func:`default_resources`),
    in ``env`` (default ours) with :data:`QUIET_DASK` where it sets nothing itself; return once
    every worker has joined. On any failure everything started is stopped again."""
    require_distributed()
    if workers < 1:
        raise UsageError("a cluster needs at least one worker", hint="--workers 2")
    env = quiet_env(env)
    offered = dict(resources) if resources is not None else default_resources()
    python = python or sys.executable
    owns = directory is None
    folder = Path(tempfile.mkdtemp(prefix="speedrift-cluster-")) if directory is None else directory
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "scheduler.json"
    file.unlink(missing_ok=True)
    dashboard = ["--dashboard-address", "127.0.0.1:0"]  # never --no-dashboard: it binds 0.0.0.0:8787
    scheduler = _start(
        [python, "-m", "distributed.cli.dask_scheduler", "--host", host, "--port", str(port),
         *dashboard, "--scheduler-file", str(file)],
        folder / "scheduler.log",
        env,
    )  # fmt: skip
    cluster = LocalCluster("", scheduler, [], [], offered, folder, owns)
    try:
        cluster.address = _wait_for_scheduler(scheduler, file, folder / "scheduler.log", port, timeout)
        bind = [] if host in ("", "0.0.0.0", "::") else ["--host", host]  # noqa: S104 (a value compared)
        short = socket.gethostname().split(".")[0]
        for index in range(1, workers + 1):
            name = f"{short}-w{index}"
            argv = [
                python, "-m", "distributed.cli.dask_worker", cluster.address, *bind,
                "--nthreads", str(nthreads), "--name", name, *dashboard,
                "--resources", format_resources(offered), "--local-directory", str(folder / name),
                # a (re)started worker first ends the agents a dead one left (fleet/remote/orphans.py)
                "--preload", "speedrift.fleet.remote.orphans",
            ]  # fmt: skip
            cluster.workers.append(_start(argv, folder / f"{name}.log", env))
            cluster.names.append(name)
        _wait_for_workers(cluster, workers, timeout)
    except Refused:
        cluster.stop(keep_logs=True)  # the error points at them
        raise
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_for_workers(cluster: LocalCluster, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with connect(cluster.address, timeout) as client:
        while len(client.scheduler_info(n_workers=-1).get("workers", {})) < count:
            gone = cluster.dead()
            if gone:
                name = gone[0]
                log = cluster.directory / ("scheduler.log" if name == "scheduler" else f"{name}.log")
                raise Refused(f"{name} exited at start: {_reason(log)}", hint=f"see {log}")
            if time.monotonic() > deadline:
                raise Refused(
                    f"only {len(client.scheduler_info(n_workers=-1).get('workers', {}))} of {count} "
                    f"Dask workers joined within {timeout:g} s",
                    hint=f"see the workers' logs in {cluster.directory}",
                )
            time.sleep(0.1)


# --- status ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerInfo:
    address: str
    name: str
    host: str  # the address's host, as the scheduler sees it
    hostname: str | None  # the machine's own name (asked of the worker; None if it did not answer)
    nthreads: int
    memory_limit: int
    resources: dict[str, float]
    status: str
    running: tuple[str, ...]  # the keys of the tasks it runs now (ours and any other)


@dataclass(frozen=True)
class RunningAttempt:
    key: str
    worker: str
    repo: str
    task: str
    attempt: int


@dataclass(frozen=True)
class MachineFailure:
    """An attempt the attempt log says failed for the infrastructure, on a named machine."""

    at: str
    machine: str
    repo: str
    task: str
    attempt: int
    runtime: str


@dataclass(frozen=True)
class ClusterStatus:
    scheduler: str
    checked_at: str
    workers: list[WorkerInfo]
    running: list[RunningAttempt]
    failures: list[MachineFailure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_address(address: str) -> str:
    """``address`` when it is a scheduler address (``tcp://host:port``); else a UsageError."""
    problem = executor_config.scheduler_problem(address)
    port = address.rsplit(":", 1)[-1]
    if problem is None and not (port.isdigit() and 0 < int(port) < 65536):
        problem = f"{address!r} does not end in a port number"
    if problem is not None:
        raise UsageError(
            problem, hint=f"write it as {executor_config.SCHEDULER_EXAMPLE}, e.g. {DEFAULT_SCHEDULER}"
        )
    return address.strip()


def _hostname() -> str:
    """Run on each worker by :func:`status`: the machine's own name."""
    return socket.gethostname()


def unreachable(address: str, timeout: float, error: BaseException | str) -> Refused:
    return Refused(
        f"no Dask scheduler answers at {address} (waited {timeout:g} s): {error}",
        hint="start one (`speedrift cluster up --workers 2`), or name the right one: --scheduler, "
        '$SPEEDRIFT_DASK_SCHEDULER, or [executor] scheduler = "tcp://host:8786" in ecosystem.toml',
    )


def running_attempts(processing: Mapping[str, Sequence[object]]) -> list[RunningAttempt]:
    """Our jobs among the keys each worker is processing (``client.processing()``), by their key."""
    found = []
    for worker, keys in processing.items():
        for key in keys:
            parts = parse_key(key)
            if parts is not None:
                found.append(RunningAttempt(str(key), worker, parts.repo, parts.task_id, parts.attempt))
    return sorted(found, key=lambda r: (r.repo, r.task, r.attempt))


def machine_failures(
    entries: Sequence[attemptlog.AttemptEntry], limit: int = FAILURES_SHOWN
) -> list[MachineFailure]:
    """The entries that failed for the infrastructure on a named machine, newest first."""
    failed = [e for e in entries if e.failure == FailureClass.TRANSIENT_INFRA and e.machine]
    failed.sort(key=lambda e: e.at, reverse=True)
    return [
        MachineFailure(format_time(e.at), e.machine or "", e.repo, e.task, e.attempt, e.runtime)
        for e in failed[:limit]
    ]


def _worker(
    address: str, info: Mapping[str, Any], keys: Sequence[object], names: Mapping[str, str]
) -> WorkerInfo:
    resources = info.get("resources") or {}
    return WorkerInfo(
        address=address,
        name=str(info.get("name", address)),
        host=str(info.get("host", "")),
        hostname=names.get(address),
        nthreads=int(info.get("nthreads") or 0),
        memory_limit=int(info.get("memory_limit") or 0),
        resources={str(k): float(v) for k, v in resources.items()},
        status=str(info.get("status", "")),
        running=tuple(str(k) for k in keys),
    )


def status(address: str, timeout: float = 10.0, *, now: datetime | None = None) -> ClusterStatus:
    """What the scheduler at ``address`` says of its workers and the attempts they run, with the
    recent infrastructure failures of machines from this machine's attempt log. A scheduler that
    does not answer within ``timeout`` is a Refused naming the fix."""
    now = now or now_utc()
    client = connect(address, timeout)
    try:
        info = client.scheduler_info(n_workers=-1)
        processing = {str(k): tuple(v) for k, v in client.processing().items()}
        try:
            names = {str(k): str(v) for k, v in client.run(_hostname, on_error="return").items()}
        except Exception:  # a worker that does not answer only loses its hostname
            names = {}
    except (OSError, TimeoutError) as error:
        raise unreachable(address, timeout, error) from None
    finally:
        client.close()
    workers = [
        _worker(addr, worker, processing.get(addr, ()), names)
        for addr, worker in sorted(info.get("workers", {}).items(), key=lambda kv: str(kv[1].get("name")))
    ]
    return ClusterStatus(
        scheduler=str(info.get("address") or address),
        checked_at=format_time(now),
        workers=workers,
        running=running_attempts(processing),
        failures=machine_failures(attemptlog.read(now - FAILURE_WINDOW)),
    )
