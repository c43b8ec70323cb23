"""`speedrift hub up`: run cycles forever (every interval, sooner when a repo changes) with the
dashboard in the same process.

One hub per ecosystem: ``hub.pid`` is flocked for the daemon's lifetime, so a second `hub up`
is refused and `hub status` can tell a live hub from a stale pid file. SIGTERM/SIGINT finish the
running cycle and stop; SIGKILL is survivable (see control/cycle.py, restart safety).

The hub leases its repos for three intervals (at least a minute) and gives its leases back when it
stops (control/hublease.py). Between cycles it sleeps until the interval passes, a repo changes or
— with a PostgreSQL register — the register announces a change worth a cycle (:class:`RegisterWake`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from speedrift import hubdir, layout
from speedrift.control.assess.judgement import with_prompts
from speedrift.control.cycle import Hub
from speedrift.control.ecosystem.load import Ecosystem
from speedrift.control.handlers.warm import WARM
from speedrift.control.hublease import lease_ttl_for, takeable
from speedrift.errors import Refused, SpeedriftError, storage_failure
from speedrift.graph.store import graph_file_candidates
from speedrift.procs import pid_alive, spawn_detached
from speedrift.register.store import RegisterBackend, RegisterUnavailable
from speedrift.serialize import cycle_to_dict

WAKE_POLL_SECONDS = 1.0  # the longest a repo change waits to be noticed
WAKE_POLL_MIN_SECONDS = 0.05  # the shortest poll (a small ecosystem)
WAKE_POLL_COST_FACTOR = 50  # poll no more often than every 50x what one look costs (~2% of a core)
# register tables whose change may be worth a cycle: an operator's approval or mode change, a repo
# another hub gave up (PostgreSQL announces them; RegisterWake judges whether they are)
WAKE_TABLES = frozenset({"approvals", "mode_changes", "repo_leases"})


class RunningDashboard(Protocol):
    """What the hub needs of a dashboard it started: where it listens, a way to push, a way to stop."""

    @property
    def port(self) -> int: ...

    def publish_cycle(self, record: dict[str, Any]) -> object: ...

    def stop(self) -> None: ...


DashboardStarter = Callable[[Path, str, int], RunningDashboard]


@dataclass(frozen=True)
class HubOptions:
    interval: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8777
    # starts the dashboard beside the hub (the web layer's ``start_dashboard``; None: no dashboard).
    # Passed in by the caller, so the control plane never imports the web layer above it.
    dashboard: DashboardStarter | None = None
    max_cycles: int | None = None  # for tests and the demo's bounded runs
    on_dashboard: Callable[[int], None] | None = None  # told the port the dashboard listens on


def running_hub(hub: Path) -> int | None:
    """The live hub's pid, judged by its flock (a stale pid file proves nothing)."""
    path = hubdir.pid_path(hub)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = path.read_text().strip()
        return int(text) if text.isdigit() else None
    finally:
        os.close(fd)
    return None


class _PidLock:
    def __init__(self, hub: Path) -> None:
        self.path = hubdir.pid_path(hub)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            pid = self.path.read_text().strip()
            raise Refused(
                f"a hub is already running for this ecosystem (pid {pid}, {self.path}); "
                "stop it with `speedrift hub stop`"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        os.fsync(self.fd)

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)


def change_signature(ecosystem: Ecosystem) -> tuple[float, ...]:
    """Cheap stat-only signature of what makes a repo worth a sooner cycle (graph, HEAD, index, service)."""
    marks: list[float] = []
    for entry in ecosystem.repos:
        for path in (
            *graph_file_candidates(entry.path),
            entry.path / ".git/HEAD",
            entry.path / ".git/index",
            layout.heartbeat_path(entry.path),
            layout.control_path(entry.path),
        ):
            try:
                marks.append(os.stat(path).st_mtime)
            except OSError:
                marks.append(0.0)
    try:
        marks.append(os.stat(ecosystem.path).st_mtime)
    except OSError:
        marks.append(0.0)
    return tuple(marks)


def run_hub(
    ecosystem_path: Path,
    options: HubOptions,
    *,
    on_cycle: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the hub in the foreground until stopped. Returns the number of cycles run."""
    stop = stop or threading.Event()
    lock = _PidLock(hubdir.hub_dir(ecosystem_path))  # before Hub(): its recovery must not race a live hub
    try:
        hub = Hub(ecosystem_path)
    except BaseException:
        lock.release()
        raise
    hub.warm_workers = True  # long-lived: worth a warm worker for the next dispatch
    hub.lease_ttl = lease_ttl_for(options.interval)  # a missed cycle or two does not lose a repo
    wake = register_wake(hub)
    server = None
    publish: Callable[[dict[str, Any]], object] | None = None
    if options.dashboard is not None:
        server = options.dashboard(hub.ecosystem_path, options.host, options.port)
        publish = server.publish_cycle
        if options.on_dashboard is not None:  # the real port: --port 0 takes any free one
            options.on_dashboard(server.port)

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    previous_handlers = (
        {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        if threading.current_thread() is threading.main_thread()
        else {}
    )
    cycles = 0
    try:
        while not stop.is_set():
            try:
                hub.reload()
                cycle = hub.cycle()
                # only the live consumers need the dict form; the ledger and register take the record
                record = cycle_to_dict(with_prompts(cycle)) if (publish or on_cycle) else None
            except SpeedriftError as error:  # a broken ecosystem.toml edit: say so, keep serving
                print(f"speedrift hub: cycle skipped: {error.message}", file=sys.stderr, flush=True)
                record = None
            except OSError as error:  # a full disk or a read-only filesystem: keep serving, retry
                if not storage_failure(error):
                    raise
                with contextlib.suppress(OSError):  # the log itself may sit on the full disk
                    print(f"speedrift hub: cycle skipped: a write failed: {error}", file=sys.stderr)
                    sys.stderr.flush()
                record = None
            cycles += 1
            if record is not None:  # a dict only when someone consumes it
                if publish is not None:
                    publish(record)
                if on_cycle is not None:
                    on_cycle(record)
            if options.max_cycles is not None and cycles >= options.max_cycles:
                break
            _wait(hub.ecosystem, options.interval, stop, wake)
    finally:
        hub.release_leases()  # best effort: another hub need not wait for them to run out
        hub.fleet.stop()  # a compound review's role agent is stopped with the hub
        WARM.close()  # a warm worker nobody took exits
        if server is not None:
            server.stop()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        with contextlib.suppress(RegisterUnavailable):
            hub.register.close()
        lock.release()
    return cycles


def register_wake(hub: Hub) -> RegisterWake | None:
    """What ends the hub's sleep early besides its repos: a PostgreSQL register's announcements;
    None on SQLite, which announces nothing (the hub sleeps its interval, polling only its repos)."""
    return RegisterWake(hub) if hub.register.backend is RegisterBackend.POSTGRESQL else None


class RegisterWake:
    """Sleeping on the register's change notifications (PostgreSQL ``LISTEN``/``NOTIFY``).

    A notification is worth a cycle when it changed what a cycle would act on: the pending
    approvals, the newest mode change, or the repos this hub could lease now (another hub released
    one). Another hub renewing its own leases notifies too, and is not: without this check two hubs
    would wake each other after every cycle."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def signature(self) -> tuple[object, ...] | None:
        """What a woken hub compares; None when the register cannot be reached."""
        register = self.hub.register
        try:
            approvals = tuple(register.pending_approvals())
            modes = register.mode_changes(limit=1)
            rows = register.leases()
        except RegisterUnavailable:
            return None
        repos = [entry.name for entry in self.hub.ecosystem.repos]
        newest = modes[0].get("id") if modes else None
        return approvals, newest, takeable(rows, self.hub.hub_id, repos, self.hub.clock())

    def changed(self, seconds: float, before: tuple[object, ...], stop: threading.Event) -> bool:
        """Wait up to ``seconds`` for a notification; True when it changed the :meth:`signature`."""
        try:
            woken = self.hub.register.wait_for_change(seconds, tables=WAKE_TABLES)
        except RegisterUnavailable:  # a lost server: sleep as on SQLite, the next poll listens again
            stop.wait(seconds)
            return False
        if not woken:
            return False
        after = self.signature()
        return after is not None and after != before


def _wait(
    ecosystem: Ecosystem, interval: float, stop: threading.Event, wake: RegisterWake | None = None
) -> None:
    """Sleep until the interval passes, a repo changes, the register changes (``wake``: PostgreSQL),
    or we are stopped.

    A change is noticed within one poll: the poll is as short as :data:`WAKE_POLL_MIN_SECONDS`
    (a task written ready starts its agent within about a second) while looking costs little, and
    stretches toward :data:`WAKE_POLL_SECONDS` as the ecosystem grows, so that looking never takes
    more than about 1/:data:`WAKE_POLL_COST_FACTOR` of the hub's time. With ``wake`` each poll is
    spent listening to the register instead of sleeping, so an approval starts the next cycle at once."""
    deadline = time.monotonic() + interval
    started = time.perf_counter()
    before = change_signature(ecosystem)
    cost = time.perf_counter() - started
    poll = min(WAKE_POLL_SECONDS, max(WAKE_POLL_MIN_SECONDS, cost * WAKE_POLL_COST_FACTOR))
    registered = wake.signature() if wake is not None else None
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if wake is not None and registered is not None:
            if wake.changed(min(poll, remaining), registered, stop) or stop.is_set():
                return
        elif stop.wait(min(poll, remaining)):
            return
        if change_signature(ecosystem) != before:
            return


def start_detached(ecosystem_path: Path, argv: list[str], timeout: float = 30.0) -> int:
    """Start `hub up` in its own session, output to the hub's log; return its pid once it holds the lock."""
    hub = hubdir.hub_dir(ecosystem_path)
    if (pid := running_hub(hub)) is not None:
        raise Refused(f"a hub is already running for {ecosystem_path} (pid {pid})")
    log_path = hubdir.hub_log_path(hub)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child = spawn_detached(argv, log=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_hub(hub) == child.pid:
            return child.pid
        if child.poll() is not None:
            raise SpeedriftError(f"the hub exited at start (code {child.returncode}); see {log_path}")
        time.sleep(0.1)
    raise SpeedriftError(f"the hub did not start within {timeout:.0f}s; see {log_path}")


def stop_hub(hub: Path, timeout: float = 30.0) -> int | None:
    pid = running_hub(hub)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_hub(hub) is None or not pid_alive(pid):
            return pid
        time.sleep(0.1)
    raise SpeedriftError(f"the hub (pid {pid}) did not stop within {timeout:.0f}s")
