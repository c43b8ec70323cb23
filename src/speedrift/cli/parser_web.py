"""Arguments of the web commands (see parser.py for the shared helpers)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def add(command: Command, common: argparse.ArgumentParser) -> None:
    """Register the web command group. `command(name, "module:function", help)` makes a subcommand."""
