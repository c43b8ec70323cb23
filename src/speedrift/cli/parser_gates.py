"""Arguments of the gates commands (see parser.py for the shared helpers)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    """Register the gates command group. `command(name, "module:function", help)` makes a subcommand."""
    p = command("gates", "gates_cmds:run", "Quality gates on a diff: run|list.")
    sub = p.add_subparsers(dest="gates_command", metavar="ACTION")
    q = sub.add_parser(
        "run",
        help="run every gate on a checkout's changes since the base; exit 1 when one blocks",
        description="Run the quality gates on WORKTREE's changes since BASE (uncommitted changes "
        "included) and print the evidence bundle. Exit 1 when a gate blocks.",
        parents=[common],
    )
    q.add_argument("--task", metavar="ID", help="the task whose scope and deliverables apply")
    q.add_argument("--worktree", metavar="PATH", help="the checkout to check (default: this repository)")
    q.add_argument(
        "--base", metavar="REF", help="compare with this commit (default: merge-base with the target branch)"
    )
    _json(q)
    q.set_defaults(handler="gates_cmds:run")
    q = sub.add_parser("list", help="the gates, and which of their tools are installed", parents=[common])
    q.add_argument("--worktree", metavar="PATH", help="the checkout to look at (default: this repository)")
    _json(q)
    q.set_defaults(handler="gates_cmds:list_gates")
    # `speedrift gates` alone runs them, like `gates run`
    p.add_argument("--task", metavar="ID", help=argparse.SUPPRESS)
    p.add_argument("--worktree", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--base", metavar="REF", help=argparse.SUPPRESS)
    _json(p)
