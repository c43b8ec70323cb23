"""Arguments of the control commands (see parser.py for the shared helpers)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def add(command: Command, common: argparse.ArgumentParser) -> None:
    """Register the control command group. `command(name, "module:function", help)` makes a subcommand."""
