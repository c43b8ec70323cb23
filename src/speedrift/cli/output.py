"""Rendering: ``--json`` writes plain JSON straight to stdout; humans get aligned tables and lines.

Everything printed for a human passes :func:`printable` (speedrift/termtext.py, re-exported here):
table cells and values from a graph as one line, whole messages with their own line breaks kept.

Invariants of the one table renderer (:func:`table`), so every table command behaves the same:

* at most ``limit`` rows are shown, then one line counting the rest and naming ``--all`` and
  ``--json`` (``limit=None``: every row); the rows left out are never rendered, so a capped table
  costs the same whatever the graph's size;
* the first column is the row's key (an id): it is never cut or folded;
* on a terminal the other columns fold (at spaces when they can) to fit its width; in a pipe
  nothing folds unless ``$COLUMNS`` asks for a width, so a script or ``grep`` sees whole rows;
* :func:`emit_json` is pretty (indented) on a terminal and one compact line in a pipe, unless the
  caller forces ``pretty``: one JSON document either way, as ``jq`` reads it.
"""

from __future__ import annotations

import os
import shutil
import sys
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from speedrift.termtext import printable

if TYPE_CHECKING:
    from argparse import Namespace

    from rich.console import Console

__all__ = [
    "DEFAULT_ROWS",
    "MAX_CELL",
    "console",
    "emit_json",
    "printable",
    "row_limit",
    "say",
    "table",
    "warn",
]

DEFAULT_ROWS = 50  # a table shows this many rows unless --limit N or --all says otherwise
MAX_CELL = 200  # a table cell shows this much; --json always has the whole value
_GAP = "  "
_MIN_FOLD = 12  # a folding column keeps at least this many cells of width


def emit_json(value: Any, *, pretty: bool | None = None) -> None:
    """``value`` as one JSON document on stdout: indented on a terminal, compact in a pipe
    (``pretty`` forces either)."""
    indent = sys.stdout.isatty() if pretty is None else pretty
    option = orjson.OPT_INDENT_2 if indent else 0
    sys.stdout.buffer.write(orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def row_limit(args: Namespace) -> int | None:
    """How many rows a table command shows: ``--all`` every one, else ``--limit N`` (default 50)."""
    if getattr(args, "show_all", False):
        return None
    limit = getattr(args, "row_limit", None)
    return DEFAULT_ROWS if limit is None else int(limit)


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {printable(message, newlines=True)}\n")


def _cell(value: object) -> str:
    text = "" if value is None else value if isinstance(value, str) else str(value)
    if not text.isprintable():  # printable text holds nothing printable() escapes: skip the regex
        text = printable(text)  # one line: a title's \n shows as \x0a
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def _width(text: str) -> int:
    """Terminal cells ``text`` takes (wide East Asian characters two, combining marks none)."""
    return len(text) if text.isascii() else sum(_char_width(c) for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _fold(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken at spaces when a word fits."""
    lines: list[str] = []
    line, used = "", 0
    for word in text.split(" "):
        size = _width(word)
        if line and used + 1 + size <= width:
            line, used = f"{line} {word}", used + 1 + size
            continue
        if line:
            lines.append(line)
        line, used = "", 0
        while size > width:  # a word longer than the column: cut it, cell by cell
            head, taken = "", 0
            for char in word:
                cells = _char_width(char)
                if taken + cells > width:
                    break
                head, taken = head + char, taken + cells
            lines.append(head)
            word = word[len(head) :]
            size = _width(word)
        line, used = word, size
    lines.append(line)
    return lines


def _available() -> int | None:
    """Columns to fit: the terminal's; in a pipe ``$COLUMNS`` when set, else no limit."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    given = os.environ.get("COLUMNS", "")
    return int(given) if given.isdigit() and int(given) > 0 else None


def _fit(widths: list[int], available: int | None) -> list[int]:
    """Column widths that fit ``available``: the key column (first) as it is, the widest others
    narrowed to one common cap, never below :data:`_MIN_FOLD` (the terminal wraps what is left)."""
    total = sum(widths) + len(_GAP) * (len(widths) - 1)
    if available is None or total <= available or len(widths) < 2:
        return widths
    room = available - widths[0] - len(_GAP) * (len(widths) - 1)
    low, high = _MIN_FOLD, max(widths[1:])  # the largest cap whose narrowed columns fit the room
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(w, middle) for w in widths[1:]) <= room:
            low = middle
        else:
            high = middle - 1
    return [widths[0], *(min(w, low) for w in widths[1:])]


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    limit: int | None = None,
    total: int | None = None,
) -> None:
    """Print ``rows`` under ``columns``: at most ``limit`` of them (None: all), then how many more
    there are and how to see them. ``total``: how many rows there are in all, when the caller
    built only the first ``limit`` (the rest are never formatted). The first column (the row's
    key) is never cut."""
    shown = rows if limit is None else rows[:limit]
    cells = [[_cell(value) for value in row] for row in shown]
    heads = [printable(c) for c in columns]
    widths = [_width(h) for h in heads]
    ascii_rows: set[int] = set()  # rows padded with str.ljust (len is their width)
    for number, row in enumerate(cells):
        plain = True
        for index, text in enumerate(row):
            if text.isascii():
                size = len(text)
            else:
                size, plain = _width(text), False
            if size > widths[index]:
                widths[index] = size
        if plain:
            ascii_rows.add(number)
    natural = widths
    widths = _fit(natural, _available())
    terminal = sys.stdout.isatty()
    bold = terminal and not os.environ.get("NO_COLOR")
    last = len(widths) - 1
    out: list[str] = []
    if title is not None:
        out.append(printable(title))
    header = _GAP.join(h if i == last else _pad(h, widths[i]) for i, h in enumerate(heads))
    out.append(f"\x1b[1m{header}\x1b[0m" if bold else header)
    out.append(_GAP.join("─" * w for w in widths))
    pads = list(zip(widths[:last], range(last), strict=True))
    for number, row in enumerate(cells):
        if widths is natural and number in ascii_rows:
            out.append((_GAP.join([*(row[i].ljust(w) for w, i in pads), row[last]])).rstrip())
            continue
        if widths is natural or all(_width(t) <= widths[i] for i, t in enumerate(row)):
            out.append(_GAP.join(t if i == last else _pad(t, widths[i]) for i, t in enumerate(row)).rstrip())
            continue
        folded = [[t] if i == 0 else _fold(t, widths[i]) for i, t in enumerate(row)]
        for depth in range(max(len(f) for f in folded)):
            parts = [f[depth] if depth < len(f) else "" for f in folded]
            out.append(
                _GAP.join(p if i == last else _pad(p, widths[i]) for i, p in enumerate(parts)).rstrip()
            )
    every = len(rows) if total is None else max(total, len(rows))
    hidden = every - len(shown)
    if hidden > 0:
        out.append(
            f"… {hidden:,} more row(s), {every:,} in all: `--all` shows every row, `--json` is for scripts"
        )
    sys.stdout.write("\n".join(out) + "\n")


def say(message: str) -> None:
    """Plain lines need no Rich: keeping it off the mutation path saves ~15 ms a command.

    ``message`` may hold line breaks of speedrift's own; a value from a graph or an agent that is
    put into it goes through :func:`printable` first, so its ``\\n`` cannot forge a line."""
    sys.stdout.write(printable(message, newlines=True) + "\n")
