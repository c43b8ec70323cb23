"""Range-checked argparse types for the numbers a command line carries (ports, seconds, counts).

Invariant: a number flag is either a value inside its stated range or a usage error (exit 2) that
names the range — never ``nan``, ``inf``, a negative wait, a port past 65535 or an integer too big
for the code below to take, and never a traceback.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_COUNT = 1_000_000
DAY_S = 86_400.0


def at_least_one(text: str) -> int:
    return count(1, MAX_COUNT)(text)


def count(low: int, high: int) -> Callable[[str], int]:
    """Whole numbers in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text) if len(text) <= 20 else None
        except ValueError:
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: it must be from {low:,} to {high:,}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its message
    return parse


def port(text: str) -> int:
    try:
        value = int(text) if len(text) <= 20 else None
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535; 0 picks a free one)")
    return value


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A finite number of seconds in ``[low, high]`` (``low`` excluded when it is 0: no busy loop)."""

    def parse(text: str) -> float:
        try:
            value = float(text) if len(text) <= 40 else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds")
        if not (low < value if low == 0 else low <= value) or value > high:
            shown = f"more than {low:g}" if low == 0 else f"from {low:g}"
            raise argparse.ArgumentTypeError(
                f"{value:g} seconds is out of range: it must be {shown} to {high:g}"
            )
        return value

    parse.__name__ = "seconds"
    return parse
