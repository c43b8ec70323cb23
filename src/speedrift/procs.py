"""Processes every plane starts, watches and stops (POSIX): the one process-group runner.

Job: start a command as the leader of its own session (so its process group is its own: pgid ==
pid), run it under a deadline with its output captured, signal or end its whole group, and start
detached processes that outlive the caller; and make speedrift's own long-running processes
non-dumpable (:func:`make_non_dumpable`), so no other process of the user reads their memory or
environment.

Invariants:

- Every child speedrift starts through here leads its own process group; a timeout, an
  interrupt or an explicit end reaches the whole group (helpers and grandchildren included),
  never only the leader, and the leader is always reaped.
- The runner (:func:`run`, :func:`start`) sends output to temporary files, never pipes: no pipe
  can fill up, and no grandchild that inherited stdout can keep a call open after its leader
  exited. Only a caller that must stream (an agent session) takes pipes, via :func:`popen_group`.
- Waiting is a plain blocking wait (no sleep-polling latency); deadlines are enforced by one
  watchdog thread, alive only while some process has a deadline, which signals the overdue groups.
- A detached child is reaped by a daemon thread, so once finished it never lingers as a zombie
  that still looks alive to :func:`pid_alive`.
"""

from __future__ import annotations

import contextlib
import ctypes
import locale
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, overload

from speedrift.errors import SpeedriftError

_POLL_S = 0.05  # how often a group's liveness is looked at while it is being ended
_REAP_S = 5.0  # after SIGKILL, how long to wait for the group to disappear
_EXITING_S = 0.02  # end_group: how long a leader may take to exit on its own before it is signalled
_IDLE_S = 1.0  # the watchdog thread lingers this long without work before it exits


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid exists (a pid we may not signal still counts)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- this process ---------------------------------------------------------------------------------
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


def make_non_dumpable() -> bool:
    """Make this process non-dumpable where the platform allows (Linux: ``prctl(PR_SET_DUMPABLE,
    0)``); whether it now is. Called first by the long-running commands (``speedrift run``, the
    service, the hub, the dashboard) and by every attempt's worker: they hold the credentials in
    their environment that ``[env] secrets`` hands to agents, and the hub its access token.

    Then another process of the same (non-root) user can no longer read its
    ``/proc/<pid>/environ``, ``mem``, ``maps`` or ``fd`` (they belong to root), nor ptrace it, and
    it leaves no core dump. What stays: ``/proc/<pid>/stat`` (its liveness and start time, which
    :func:`identity_of` reads) is world-readable as before, and a process reads its own
    ``/proc/self/fd``. The flag is inherited by ``fork`` and reset by ``execve``: git, the agents
    and every other program speedrift starts are dumpable again, so scanning their open files
    (``repo/gitlocks.py``) still works."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return is_dumpable() is False


def is_dumpable() -> bool | None:
    """Whether this process is dumpable (None where that cannot be asked)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        answer = int(ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))
    except (OSError, AttributeError):
        return None
    return None if answer < 0 else answer != 0


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as the kernel knows it: its pid plus its start time (clock ticks since boot, field
    22 of ``/proc/<pid>/stat``). A pid alone is reused; the pair names one process for the life of
    the machine, so a record that stores it can tell "still running" from "pid taken by another"."""

    pid: int
    started: int | None  # None where /proc is unavailable: then only the pid is known

    def to_dict(self) -> dict[str, int | None]:
        return {"pid": self.pid, "started": self.started}

    @classmethod
    def from_dict(cls, value: object) -> ProcessIdentity | None:
        """Read back :meth:`to_dict` (None for anything else, so a hostile record never raises)."""
        if not isinstance(value, dict):
            return None
        pid, started = value.get("pid"), value.get("started")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return None
        return cls(pid, started if isinstance(started, int) and not isinstance(started, bool) else None)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) from ``/proc/<pid>/stat``, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after the parenthesised command name
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


_own: ProcessIdentity | None = None  # this process's, once read (a fork reads its own anew)


def identity_of(pid: int | None = None) -> ProcessIdentity:
    """This process's identity (or ``pid``'s). A process's start time never changes, so its own
    is read from /proc once (every git step of an attempt names its owner: a dozen reads saved)."""
    global _own
    me = os.getpid()
    if pid is None or pid == me:
        known = _own
        if known is not None and known.pid == me:
            return known
        found = _stat(me)
        if found is None:
            return ProcessIdentity(me, None)  # not kept: the next call reads again
        _own = ProcessIdentity(me, found[1])
        return _own
    found = _stat(pid)
    return ProcessIdentity(pid, found[1] if found else None)


def identity_alive(identity: ProcessIdentity | None) -> bool:
    """Whether exactly that process still runs: same pid, same start time, not a zombie. Where
    ``/proc`` is unavailable it falls back to :func:`pid_alive` (the only fact there is)."""
    if identity is None or not pid_alive(identity.pid):
        return False
    found = _stat(identity.pid)
    if found is None:
        return not Path("/proc").is_dir()
    state, started = found
    if state in ("Z", "X"):
        return False
    return identity.started is None or started == identity.started


def identity_in(
    record: object, pid_key: str = "pid", start_key: str = "proc_start"
) -> ProcessIdentity | None:
    """The identity a record stores as two fields (a claim's ``worker``, an attempt record); a record
    written before start times were kept has only the pid, which then is all there is to check."""
    if not isinstance(record, dict):
        return None
    return ProcessIdentity.from_dict({"pid": record.get(pid_key), "started": record.get(start_key)})


def record_alive(record: object, pid_key: str = "pid", start_key: str = "proc_start") -> bool:
    """Whether the process a record names (see :func:`identity_in`) still runs."""
    return identity_alive(identity_in(record, pid_key, start_key))


class ProcessTimeout(SpeedriftError):
    """A command ran past its timeout: its whole process group was killed and its leader reaped.
    ``stdout``/``stderr`` hold what it wrote before that."""

    def __init__(self, argv: Sequence[str], timeout: float, stdout: bytes = b"", stderr: bytes = b"") -> None:
        super().__init__(f"{' '.join(argv)} timed out after {timeout:g}s")
        self.argv = tuple(argv)
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


# --- process groups --------------------------------------------------------------------------------
def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to every process in group ``pgid``. False when the group no longer exists;
    PermissionError when it is not ours to signal."""
    if pgid <= 1:  # 0 would be our own group, 1 init's
        raise ValueError(f"not a process group to signal: {pgid}")
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _signal_quietly(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(PermissionError):
        signal_group(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in the group.

    `killpg(pgid, 0)` alone also counts zombies, which linger when nothing reaps orphans (as in
    some containers), so on Linux the members are checked in /proc.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True
    return bool(group_members({pgid}))


def group_members(pgids: Collection[int]) -> list[int]:
    """The pids of the live (non-zombie) processes in any of the process groups ``pgids``, read
    from /proc (empty where there is no /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is parenthesised and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) in pgids and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def terminate_group(pgid: int, grace_s: float) -> bool:
    """End a group we did not start (its leader is not our child, e.g. the agent of a worker that
    died): SIGTERM, up to ``grace_s`` for it to go, then SIGKILL. Whether anything was running."""
    if pgid <= 1 or not group_alive(pgid):
        return False
    _signal_quietly(pgid, signal.SIGTERM)
    until = time.monotonic() + grace_s
    while time.monotonic() < until and group_alive(pgid):
        time.sleep(_POLL_S)
    if group_alive(pgid):
        _signal_quietly(pgid, signal.SIGKILL)
        deadline = time.monotonic() + _REAP_S
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
    return True


def end_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the whole group of ``proc`` (a :func:`popen_group` leader), wait up to ``grace_s``
    for it to go, then SIGKILL what is left. The leader is reaped as it goes (it must not count
    as alive), and at the end in any case."""
    pgid = proc.pid  # a session leader's pid is its group id
    try:
        # a leader that closed its output is usually exiting: a moment for it to be gone, so the
        # group is not searched in /proc (every process's stat read) nor signalled for nothing
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_EXITING_S)
        if group_alive(pgid):
            _signal_quietly(pgid, signal.SIGTERM)
            _kill_after(proc, pgid, time.monotonic() + grace_s)
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_REAP_S)


def _kill_after(proc: subprocess.Popen[bytes], pgid: int, until: float) -> None:
    """Wait until the group is gone or ``until`` passes; then SIGKILL what is left and wait
    (bounded) for it to go."""
    while time.monotonic() < until:
        proc.poll()
        if not group_alive(pgid):
            return
        time.sleep(_POLL_S)
    _signal_quietly(pgid, signal.SIGKILL)
    deadline = time.monotonic() + _REAP_S
    while group_alive(pgid) and time.monotonic() < deadline:
        proc.poll()
        time.sleep(_POLL_S)


def popen_group(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    executable: str | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new session: its own process group (pgid == pid), no
    controlling terminal. ``env`` None inherits ours. ``preexec_fn`` runs in the child before exec
    (the agent's rlimits, agents/rlimits.py). For callers that must stream the child's pipes
    themselves; everything else uses :func:`run`, :func:`start` or :func:`spawn_detached`."""
    return subprocess.Popen(
        list(argv),
        executable=executable,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        close_fds=True,
        preexec_fn=preexec_fn,
    )


# --- running under a deadline ---------------------------------------------------------------------
class Running:
    """A command started by :func:`start`, running in its own group; collect it with :meth:`finish`
    (once)."""

    def __init__(
        self,
        argv: Sequence[str],
        proc: subprocess.Popen[bytes],
        out: IO[bytes],
        err: IO[bytes],
        timeout: float,
        deadline: float,
        grace_s: float,
    ) -> None:
        self.argv = tuple(argv)
        self.proc = proc
        self.timeout = timeout
        self.deadline = deadline  # time.monotonic(): SIGTERM (with a grace) or SIGKILL to the group
        self.kill_at = deadline + max(0.0, grace_s)  # SIGKILL to the group
        self.timed_out = False  # set by the watchdog, under its lock
        self._out = out
        self._err = err

    @property
    def pid(self) -> int:
        """The leader's pid, which is also the group's id."""
        return self.proc.pid

    def finish(self, *, end_group: bool = False) -> subprocess.CompletedProcess[bytes]:
        """Wait for the leader; its output. ``end_group``: kill whatever it left running in its
        group. Raises :class:`ProcessTimeout` when the deadline passed (the group is gone by then).
        An interrupt while waiting (KeyboardInterrupt…) kills the group before it propagates."""
        try:
            try:
                returncode = self.proc.wait()
            except BaseException:
                _WATCHDOG.forget(self)
                _signal_quietly(self.pid, signal.SIGKILL)
                self.proc.wait()
                raise
            timed_out = _WATCHDOG.forget(self)
            if timed_out:
                _kill_after(self.proc, self.pid, self.kill_at)
            elif end_group:
                _signal_quietly(self.pid, signal.SIGKILL)
            self._out.seek(0)
            self._err.seek(0)
            stdout, stderr = self._out.read(), self._err.read()
        finally:
            self._out.close()
            self._err.close()
        if timed_out:
            raise ProcessTimeout(self.argv, self.timeout, stdout, stderr)
        return subprocess.CompletedProcess(list(self.argv), returncode, stdout, stderr)


class _Watchdog:
    """Signals the groups of processes past their deadline (one thread for all of them).

    ``Popen.wait(timeout=...)`` polls for the child's exit with sleeps, which adds latency to
    every call; instead each call waits plainly and this thread, alive only while some process
    has a deadline (and a moment after), signals the overdue groups.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watched: set[Running] = set()
        self._thread: threading.Thread | None = None

    def watch(self, running: Running) -> None:
        with self._cond:
            self._watched.add(running)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="procs-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def forget(self, running: Running) -> bool:
        """Stop watching ``running``; whether its deadline had passed (its group was signalled)."""
        with self._cond:
            self._watched.discard(running)
            return running.timed_out

    def _loop(self) -> None:
        with self._cond:
            while True:
                if not self._watched:
                    self._cond.wait(_IDLE_S)
                    if not self._watched:
                        self._thread = None
                        return
                now = time.monotonic()
                due = min((self._fire(running, now) for running in list(self._watched)), default=math.inf)
                if due < math.inf:
                    self._cond.wait(max(0.0, due - now))

    def _fire(self, running: Running, now: float) -> float:
        """Signal ``running``'s group if it is overdue; when it is next due (inf: never)."""
        if now >= running.kill_at:
            running.timed_out = True
            _signal_quietly(running.pid, signal.SIGKILL)
            self._watched.discard(running)
            return math.inf
        if now >= running.deadline:
            if not running.timed_out:
                running.timed_out = True
                _signal_quietly(running.pid, signal.SIGTERM)
            return running.kill_at
        return running.deadline


_WATCHDOG = _Watchdog()


def start(
    argv: Sequence[str],
    *,
    deadline: float,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    grace_s: float = 0.0,
) -> Running:
    """Start ``argv`` now in its own process group and collect it later with :meth:`Running.finish`.

    ``deadline`` is a ``time.monotonic()`` value: past it the group gets SIGKILL (or SIGTERM, then
    SIGKILL ``grace_s`` later). Raises :class:`ProcessTimeout` without starting anything when the
    deadline has already passed, OSError when the command cannot be started.
    """
    return _start(argv, cwd, env, input, deadline, deadline - time.monotonic(), grace_s)


def _start(
    argv: Sequence[str],
    cwd: Path | str | None,
    env: Mapping[str, str] | None,
    input: bytes | None,
    deadline: float,
    timeout: float,
    grace_s: float,
) -> Running:
    if time.monotonic() > deadline:
        raise ProcessTimeout(argv, max(0.0, timeout))
    with contextlib.ExitStack() as on_failure:
        out = on_failure.enter_context(tempfile.TemporaryFile())
        err = on_failure.enter_context(tempfile.TemporaryFile())
        with contextlib.ExitStack() as scoped:  # stdin's file: the child has its own copy
            stdin: int | IO[bytes] = subprocess.DEVNULL
            if input:
                stdin = scoped.enter_context(tempfile.TemporaryFile())
                stdin.write(input)
                stdin.seek(0)
            proc = popen_group(argv, cwd=cwd, env=env, stdin=stdin, stdout=out, stderr=err)
        on_failure.pop_all()  # started: the output files now belong to the Running
    running = Running(argv, proc, out, err, timeout, deadline, grace_s)
    if deadline < math.inf:
        _WATCHDOG.watch(running)
    return running


@overload
def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = ...,
    env: Mapping[str, str] | None = ...,
    input: bytes | str | None = ...,
    timeout: float | None = ...,
    grace_s: float = ...,
    end_group: bool = ...,
    text: Literal[False] = ...,
) -> subprocess.CompletedProcess[bytes]: ...


@overload
def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = ...,
    env: Mapping[str, str] | None = ...,
    input: bytes | str | None = ...,
    timeout: float | None = ...,
    grace_s: float = ...,
    end_group: bool = ...,
    text: Literal[True],
) -> subprocess.CompletedProcess[str]: ...


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | str | None = None,
    timeout: float | None = None,
    grace_s: float = 0.0,
    end_group: bool = False,
    text: bool = False,
) -> subprocess.CompletedProcess[bytes] | subprocess.CompletedProcess[str]:
    """Run ``argv`` in its own process group and wait for it; never raises for its exit code.

    ``env`` None inherits ours; stdin is ``input`` (None or empty: /dev/null). Past ``timeout``
    seconds the whole group gets SIGKILL (or SIGTERM, then SIGKILL ``grace_s`` later) and
    :class:`ProcessTimeout` is raised once it is gone. ``end_group``: also kill whatever the
    command left running in its group when it exits by itself. ``text``: stdout and stderr
    decoded as ``subprocess.run(text=True)`` would (locale encoding, universal newlines).
    Raises OSError (FileNotFoundError…) when the command cannot be started.
    """
    data = input.encode(locale.getpreferredencoding(False)) if isinstance(input, str) else input
    limit = math.inf if timeout is None else timeout
    running = _start(argv, cwd, env, data, time.monotonic() + limit, limit, grace_s)
    done = running.finish(end_group=end_group)
    if not text:
        return done
    return subprocess.CompletedProcess(done.args, done.returncode, _text(done.stdout), _text(done.stderr))


def _text(data: bytes) -> str:
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


def spawn_detached(
    argv: Sequence[str],
    *,
    log: Path,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a process that outlives the caller: its own session, stdin from /dev/null, stdout and
    stderr appended to ``log``. A daemon thread reaps it, so once finished it never lingers as a
    zombie that still looks alive; the caller may still ``poll()`` it for its exit code."""
    with open(log, "ab") as out:
        child = popen_group(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
    return child
