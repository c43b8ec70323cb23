"""Errors every layer raises; the CLI maps them to exit codes and readable messages."""

from __future__ import annotations

import errno
from pathlib import Path

# write failures that are the machine's state, not a bug: a full disk, a quota, a read-only
# filesystem. Speedrift's writes are atomic (or cut back on failure), so the files are as they
# were and the same write can simply be made again once the disk is usable.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def storage_failure(error: BaseException) -> bool:
    """Whether ``error`` is a write the disk refused (see :data:`STORAGE_ERRNOS`)."""
    return isinstance(error, OSError) and error.errno in STORAGE_ERRNOS


class SpeedriftError(Exception):
    """A failure the user can act on. ``exit_code`` 1 = refused/failed, 2 = usage."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class UsageError(SpeedriftError):
    """The command line itself is wrong (bad id, bad value)."""

    exit_code = 2


class Refused(SpeedriftError):
    """A well-formed request the current state does not allow (claiming a done task, ...)."""


class NotFound(SpeedriftError):
    """A task, graph or file that does not exist."""


class InvalidValue(SpeedriftError, ValueError):
    """A configured value speedrift cannot use (a runtime option, an unknown runtime name).

    Also a ``ValueError``: callers that validate with ``except ValueError`` keep catching it.
    """


class GraphFormatError(SpeedriftError):
    """A graph file with lines speedrift cannot parse; names every bad line."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]) -> None:
        shown = "\n".join(f"  {path}:{lineno}: {problem}" for lineno, problem in problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(
            f"{path} has {len(problems)} malformed line(s); speedrift will not rewrite it:\n{shown}{more}",
            hint="fix the lines by hand, or run `speedrift repair` to set them aside in a side file",
        )
        self.path = path
        self.problems = problems
