"""Rendering: ``--json`` writes plain JSON straight to stdout; humans get Rich (imported lazily).

Everything printed for a human passes :func:`printable` (speedrift/termtext.py, re-exported here):
table cells and values from a graph as one line, whole messages with their own line breaks kept.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from speedrift.termtext import printable

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["MAX_CELL", "console", "emit_json", "printable", "say", "table", "warn"]


def emit_json(value: Any, *, pretty: bool = False) -> None:
    option = orjson.OPT_INDENT_2 if pretty else 0
    sys.stdout.buffer.write(orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


MAX_CELL = 200  # a table cell shows this much; --json always has the whole value


def _cell(value: object) -> str:
    text = printable("" if value is None else str(value))  # one line: a title's \n shows as \x0a
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {printable(message, newlines=True)}\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    shown = Text(printable(title)) if title is not None else None  # never markup, never raw
    grid = Table(title=shown, show_lines=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        # Text(), not str: a title like "[red]x" must print as typed, never as markup
        grid.add_row(*(Text(_cell(cell)) for cell in row))
    console().print(grid)


def say(message: str) -> None:
    """Plain lines need no Rich: keeping it off the mutation path saves ~15 ms a command.

    ``message`` may hold line breaks of speedrift's own; a value from a graph or an agent that is
    put into it goes through :func:`printable` first, so its ``\\n`` cannot forge a line."""
    sys.stdout.write(printable(message, newlines=True) + "\n")
