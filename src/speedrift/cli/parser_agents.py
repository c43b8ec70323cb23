"""Arguments of `speedrift agents`: alone, the attempts running in this repo; with an action, the
ecosystem's standing agents (list|status|run|pause|resume)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")


def _ecosystem(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ecosystem",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="ecosystem.toml (default: ./ecosystem.toml)",
    )


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command(
        "agents",
        "worker_cmds:agents",
        "Running attempts in this repo; the ecosystem's standing agents: list|status|run|pause|resume.",
    )
    _json(p)
    sub = p.add_subparsers(dest="agents_command", metavar="ACTION")

    def action(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        q.set_defaults(handler=f"agents_cmds:{handler}")
        _ecosystem(q)
        _json(q)
        return q

    action(
        "list",
        "list_agents",
        "Every standing agent: layer, schedule and next slot, repos, runtime, state, drift, last run.",
    )
    q = action("status", "show_status", "One standing agent: what it would do now, and its recent runs.")
    q.add_argument("name", metavar="NAME", help="the agent's name")
    q = action(
        "run",
        "run",
        "Run a standing agent now (growth, or any on demand): a run task in its repo, run through the "
        "supervisor in the foreground.",
    )
    q.add_argument("name", metavar="NAME", help="the agent's name")
    q.add_argument(
        "--repo", metavar="NAME", help="the served repo to run it in (needed when it serves several)"
    )
    q.add_argument("--detach", action="store_true", help="start `speedrift run` in the background and return")
    q.add_argument("--quiet", action="store_true", help="do not stream the agent's events")
    q = action("pause", "pause", "Pause a standing agent (durable; its waiting runs are paused too).")
    q.add_argument("name", metavar="NAME", help="the agent's name")
    q.add_argument("--reason", required=True, help="why, for the ledger and the dashboard")
    q.add_argument("--until", metavar="TIME", help="lift it by itself then: RFC 3339, or a duration (2h, 1d)")
    q = action(
        "resume",
        "resume",
        "Lift a standing agent's pause (a person's, the nightwatch's or the restart cap's).",
    )
    q.add_argument("name", metavar="NAME", help="the agent's name")
