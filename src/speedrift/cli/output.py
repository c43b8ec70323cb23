"""Rendering: ``--json`` writes plain JSON straight to stdout; humans get Rich (imported lazily)."""

from __future__ import annotations

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


def warn(message: str) -> None:
    console(stderr=True).print(f"[yellow]warning:[/yellow] {message}", markup=True, highlight=False)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        # Text(), not str: a title like "[red]x" must print as typed, never as markup
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console().print(grid)


def say(message: str) -> None:
    console().print(message, markup=False, highlight=False)
