"""Process-group plumbing for the session: pumps for the child's pipes and killing its group.

An agent CLI starts helpers (node workers, shells, test runners, `sleep`), so the unit of
control is the process group the session creates with `start_new_session=True`: signals go to
the group, and the group is only considered gone when no live member remains.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

MAX_LINE = 8 * 1024 * 1024  # a longer stdout "line" is not an event; it is skipped
STDERR_CAP = 1024 * 1024  # bytes of stderr kept in stderr.log; the rest is counted, not kept
_POLL_S = 0.05


def pump_lines(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    """Read stdout line by line into `lines`; None marks end of file. Never raises."""
    skipping = False
    try:
        while chunk := stream.readline(MAX_LINE):
            if skipping:  # the tail of an over-long line
                skipping = not chunk.endswith(b"\n")
                continue
            if len(chunk) >= MAX_LINE and not chunk.endswith(b"\n"):
                skipping = True
                continue
            lines.put(chunk)
    except (OSError, ValueError):
        pass  # the pipe was closed under us: end of stream all the same
    finally:
        lines.put(None)


class StderrSink:
    """Copies the child's stderr to a file, keeping the first STDERR_CAP bytes and a short tail."""

    def __init__(self, path: Path, cap: int = STDERR_CAP) -> None:
        self.path = path
        self.cap = cap
        self.dropped = 0
        self._tail: collections.deque[bytes] = collections.deque(maxlen=64)

    def pump(self, stream: IO[bytes]) -> None:
        kept = 0
        with self.path.open("ab") as out:
            try:
                while chunk := os.read(stream.fileno(), 65536):
                    self._tail.append(chunk)
                    room = max(0, self.cap - kept)
                    out.write(chunk[:room])
                    kept += min(room, len(chunk))
                    self.dropped += max(0, len(chunk) - room)
                    out.flush()
            except (OSError, ValueError):
                pass
            if self.dropped:
                out.write(f"\n[speedrift: {self.dropped} further bytes of stderr dropped]\n".encode())

    def last_line(self) -> str:
        tail = b"".join(self._tail).decode("utf-8", "replace")
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""


def feed_stdin(stream: IO[bytes], payload: bytes) -> None:
    """Write the prompt and close stdin; a child that exits without reading it is not an error."""
    with contextlib.suppress(OSError, ValueError):
        stream.write(payload)
    with contextlib.suppress(OSError, ValueError):
        stream.close()


def start_thread(target: Callable[..., object], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


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
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is parenthesised and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def end_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the whole group, wait up to `grace_s` for it to go, then SIGKILL what is left.

    Runs on every exit path, also after a normal exit: helpers left behind by an agent must not
    outlive its run. The leader is reaped as it goes so it does not count as alive.
    """
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    try:
        _end(proc, pgid, grace_s)
    finally:
        # Reap the leader: it may have died between a poll and the liveness check above.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _end(proc: subprocess.Popen[bytes], pgid: int, grace_s: float) -> None:
    proc.poll()
    if not group_alive(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        proc.poll()
        if not group_alive(pgid):
            return
        time.sleep(_POLL_S)
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while group_alive(pgid) and time.monotonic() < deadline:
        proc.poll()
        time.sleep(_POLL_S)
