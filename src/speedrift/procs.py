"""Process facts every plane needs (POSIX)."""

from __future__ import annotations

import os


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
