"""Rendering: ``--json`` writes plain JSON straight to stdout; humans get Rich (imported lazily)."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from rich.console import Console


def emit_json(value: Any, *, pretty: bool = False) -> None:
    option = orjson.OPT_INDENT_2 if pretty else 0
    sys.stdout.buffer.write(orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MAX_CELL = 200  # a table cell shows this much; --json always has the whole value


def printable(text: str) -> str:
    """Text from a graph may hold escape sequences; a terminal must never receive them raw."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _cell(value: object) -> str:
    text = printable("" if value is None else str(value))
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {printable(message)}\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        # Text(), not str: a title like "[red]x" must print as typed, never as markup
        grid.add_row(*(Text(_cell(cell)) for cell in row))
    console().print(grid)


def say(message: str) -> None:
    """Plain lines need no Rich: keeping it off the mutation path saves ~15 ms a command."""
    sys.stdout.write(printable(message) + "\n")
