"""Arguments of the repo-hooks commands (fleet/repohooks.py; see parser.py for the shared helpers)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from speedrift.fleet.config import HOOK_EVENTS

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    """Register `speedrift hooks list|test`."""
    p = command(
        "hooks", "hooks_cmds:list_hooks", "The repo's own hooks at fixed points of an attempt: list|test."
    )
    sub = p.add_subparsers(dest="hooks_command", metavar="ACTION")
    q = sub.add_parser(
        "list",
        help="the hooks declared, for which event and where ([hooks] in speedrift.toml, .speedrift/hooks/)",
        parents=[common],
    )
    _json(q)
    q.set_defaults(handler="hooks_cmds:list_hooks")
    q = sub.add_parser(
        "test",
        help="run EVENT's hooks on a synthetic event; print the JSON sent and each result",
        description="Run EVENT's hooks as an attempt would (its environment and sandbox), on a synthetic "
        "event, in the main checkout (read-only in the sandbox). Nothing is recorded and nothing lands. "
        "Exit 1 when a hook fails.",
        parents=[common],
    )
    q.add_argument("event", metavar="EVENT", choices=HOOK_EVENTS, help=" | ".join(HOOK_EVENTS))
    q.add_argument("--task", metavar="ID", help="describe this task in the event (default: a synthetic one)")
    _json(q)
    q.set_defaults(handler="hooks_cmds:test_hooks")
    _json(p)
