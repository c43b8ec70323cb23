"""Pipe plumbing for the session: pumps for the child's stdout and stderr, and its stdin feed.

Job: move the agent's output into the session (events line by line, stderr capped into a file,
written a whole line at a time and redacted as it is written) without ever blocking on, or raising
from, a pipe. Invariant: every pump ends (and says so) when its pipe closes or breaks. The
child's process group — started, signalled and ended — is :mod:`speedrift.procs`'s business
(``popen_group``, ``end_group``).
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from speedrift import redact

MAX_LINE = 8 * 1024 * 1024  # a longer stdout "line" is not an event; it is skipped
STDERR_CAP = 1024 * 1024  # bytes of stderr kept in stderr.log; the rest is counted, not kept
STDERR_LINE = 64 * 1024  # bytes of one stderr line handed on as an event (the rest of it is dropped)
# bytes of stderr lines handed on to a runtime that reads them (codex: ~4 KB of tracing per model
# call), in all: the session drains them every tick, so this bounds a flood, not a long run
STDERR_LINES_CAP = 64 * 1024 * 1024


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
    """Copies the child's stderr to a file, keeping the first STDERR_CAP bytes and a short tail.

    With ``lines``, it also hands each stderr line (cut at STDERR_LINE bytes) to that queue as it
    arrives, for runtimes whose stderr is events — at most ``lines_cap`` bytes of them in all, so
    the queue stays bounded however much the child writes."""

    def __init__(
        self,
        path: Path,
        cap: int = STDERR_CAP,
        lines: queue.SimpleQueue[bytes] | None = None,
        lines_cap: int = STDERR_LINES_CAP,
    ) -> None:
        self.path = path
        self.cap = cap
        self.lines_cap = lines_cap
        self.dropped = 0
        self.lines = lines
        self.lines_dropped = 0  # lines past the cap, not handed on
        self._queued = 0
        self._partial = b""
        self._skipping = False  # inside an over-long line whose head was already handed on
        self._tail: collections.deque[bytes] = collections.deque(maxlen=64)

    def pump(self, stream: IO[bytes]) -> None:
        kept = 0
        pending = b""  # the start of a line not ended yet: written once whole, redacted
        with self.path.open("ab") as out:

            def write(data: bytes) -> None:
                nonlocal kept
                data = _redacted(data)
                room = max(0, self.cap - kept)
                out.write(data[:room])
                kept += min(room, len(data))
                self.dropped += max(0, len(data) - room)
                out.flush()

            try:
                while chunk := os.read(stream.fileno(), 65536):
                    self._tail.append(chunk)
                    pending += chunk
                    whole = pending.rfind(b"\n") + 1
                    if whole == 0 and len(pending) > STDERR_LINE:
                        whole = len(pending)  # an over-long line: written in pieces
                    if whole:
                        write(pending[:whole])
                        pending = pending[whole:]
                    if self.lines is not None:
                        self._split(chunk)
            except (OSError, ValueError):
                pass
            if pending:
                write(pending)
            if self.lines is not None and self._partial and not self._skipping:
                self._hand_on(self._partial)  # the last line, without its newline
            if self.dropped:
                out.write(f"\n[speedrift: {self.dropped} further bytes of stderr dropped]\n".encode())

    def _split(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if not self._skipping:
                self._hand_on(self._partial + chunk[start:end])
            self._partial, self._skipping = b"", False
            start = end + 1
        if self._skipping:
            return
        self._partial += chunk[start:]
        if len(self._partial) > STDERR_LINE:
            self._hand_on(self._partial)
            self._partial, self._skipping = b"", True

    def _hand_on(self, line: bytes) -> None:
        assert self.lines is not None
        line = line[:STDERR_LINE]
        if self._queued + len(line) > self.lines_cap:
            self.lines_dropped += 1
            return
        self._queued += len(line)
        self.lines.put(line)

    def last_line(self) -> str:
        tail = b"".join(self._tail).decode("utf-8", "replace")
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""


def _redacted(data: bytes) -> bytes:
    """Whole lines of stderr as written to stderr.log: no credential (speedrift/redact.py), so the
    file holds none even while the agent runs, or if speedrift is killed before the session ends."""
    text = data.decode("utf-8", "surrogateescape")
    cleaned = redact.redact_text(text)
    return data if cleaned == text else cleaned.encode("utf-8", "surrogateescape")


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
