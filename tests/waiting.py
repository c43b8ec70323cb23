"""Waiting for a condition in tests: poll until it holds; the deadline only ends a broken run.

Never an assertion on speed: a loaded machine may take long, so the deadline is generous.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90, poll: float = 0.02) -> None:
    """Return once ``condition()`` is truthy; fail naming ``what`` if it never is."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


def release(fifo: Path) -> None:
    """Let a command blocked reading ``fifo`` go (a no-op when nothing reads it any more)."""
    with contextlib.suppress(OSError):
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"go\n")
        os.close(fd)
