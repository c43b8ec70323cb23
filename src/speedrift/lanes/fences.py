"""Per-task lane configuration: fenced TOML blocks in a task's description, as the original lanes
read them (```` ```wg-contract ````, ```` ```specdrift ````, ```` ```depsdrift ````, …).

A fence is found by its info string (the text right after the opening backticks) and ends at the
first closing fence; its body is TOML. :func:`fence` returns the table, ``None`` when the task has
no such fence, or raises :class:`FenceError` naming the fence, the line *of the description* and
the TOML problem — the lanes turn that into an ``invalid_*_config`` finding, never a crash.
"""

from __future__ import annotations

import re
from typing import Any

from speedrift import safetoml
from speedrift.errors import SpeedriftError

_OPEN = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([A-Za-z0-9_.-]*)[ \t]*$")


class FenceError(SpeedriftError, ValueError):
    def __init__(self, name: str, line: int, problem: str) -> None:
        super().__init__(f"```{name}``` block at description line {line}: {problem}")
        self.name = name
        self.line = line
        self.problem = problem


def fence_names(description: str) -> list[str]:
    """The info strings of every fenced block, in order (``wg-contract``, ``specdrift``, …)."""
    return [name for name, _line, _body in _blocks(description) if name]


def fence(description: object, name: str) -> dict[str, Any] | None:
    """The first ```` ```name ```` block's TOML table, ``None`` without one; :class:`FenceError`
    when it is not a TOML table (the line is the description's, 1-based)."""
    if not isinstance(description, str):
        return None
    for found, line, body in _blocks(description):
        if found != name:
            continue
        try:
            return safetoml.loads(body)
        except safetoml.MalformedToml as exc:
            at = line + exc.line if exc.line else line
            raise FenceError(name, at, exc.problem) from None
    return None


def _closes(line: str, marker: str) -> bool:
    """A closing fence: only the opening fence's character, at least as many (no info string)."""
    stripped = line.strip()
    return len(stripped) >= len(marker) and stripped == marker[0] * len(stripped)


def _blocks(description: str) -> list[tuple[str, int, str]]:
    """(info string, line of the opening fence, body) for every fenced block."""
    blocks: list[tuple[str, int, str]] = []
    # only "\n" ends a line (str.splitlines would also split at U+2028 inside a TOML string)
    lines = [line.removesuffix("\r") for line in description.removesuffix("\n").split("\n")]
    index = 0
    while index < len(lines):
        opened = _OPEN.match(lines[index])
        if not opened:
            index += 1
            continue
        marker, name = opened.group(1), opened.group(2)
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not _closes(lines[end], marker):
            body.append(lines[end])
            end += 1
        blocks.append((name, index + 1, "\n".join(body)))
        index = end + 1
    return blocks
