"""Hostile TOML (``speedrift.toml``, ``ecosystem.toml``) turned into a table or a
:class:`MalformedToml` naming the line, the column and the problem.

``tomllib`` raises ``RecursionError`` on an array or inline table nested a thousand deep, builds a
table nested thousands of levels deep from one line of dotted keys (``a.a.a….b = 1``, which then
breaks anything that walks or prints it), refuses a byte-order mark, and leaves invalid UTF-8 to
the caller. Here: a leading byte-order mark is dropped, invalid UTF-8 is reported at its line,
any nesting past :data:`MAX_DEPTH` levels is refused, and every other syntax error keeps
tomllib's line and column.

Invariant: :func:`decode` and :func:`loads` return data or raise :class:`MalformedToml`, whatever
the input; a table they return is nested at most :data:`MAX_DEPTH` levels deep (measured with a
loop, never by recursion).
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from speedrift.errors import SpeedriftError

MAX_DEPTH = 32  # no speedrift setting is deeper than 4 levels; 32 leaves room and stays safe
_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)")


class MalformedToml(SpeedriftError, ValueError):
    """A TOML text that is not a table speedrift will read; ``line`` is 1-based (0: unknown)."""

    def __init__(self, problem: str, line: int = 0, column: int = 0) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line
        self.column = column

    def where(self) -> str:
        """``:LINE:COL`` (or ``:LINE``, or nothing) to put after a file's path."""
        if not self.line:
            return ""
        return f":{self.line}:{self.column}" if self.column else f":{self.line}"


def decode(data: bytes) -> str:
    """The text of a TOML file (a leading byte-order mark dropped), or :class:`MalformedToml`
    naming the line of the first byte that is not UTF-8."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise MalformedToml(f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", line, column) from None


def _deepest_line(text: str) -> int:
    """The line where brackets nest deepest: where to look when the parser ran out of stack."""
    depth = deepest = 0
    line = found = 1
    for char in text:
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, found = depth, line
        elif char in "]}" and depth:
            depth -= 1
    return found


def _depth(table: dict[str, Any], limit: int) -> int:
    """How deep ``table`` nests (tables and arrays), counting no further than ``limit`` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(table, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values() if isinstance(item, dict | list))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    return deepest


def loads(text: str) -> dict[str, Any]:
    """``text`` parsed as TOML (a leading byte-order mark dropped), or :class:`MalformedToml`."""
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _POSITION.search(message)
        detail = _POSITION.sub("", message)
        if match and match.group(1):
            raise MalformedToml(
                f"TOML syntax error: {detail}", int(match.group(1)), int(match.group(2))
            ) from None
        raise MalformedToml(
            f"TOML syntax error at the end of the file: {detail}", text.count("\n") + 1
        ) from None
    except RecursionError:
        raise MalformedToml(
            f"arrays or inline tables nested too deeply to read (speedrift reads at most {MAX_DEPTH} levels)",
            _deepest_line(text),
        ) from None
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        lines = text.split("\n")
        dotted = max(range(len(lines)), key=lambda n: lines[n].count("."))  # a.a.a… = 1 on one line
        raise MalformedToml(
            f"keys or values nested more than {MAX_DEPTH} levels deep (dotted keys count: a.b.c is 3)",
            _deepest_line(text) if lines[dotted].count(".") < MAX_DEPTH else dotted + 1,
        )
    return data
