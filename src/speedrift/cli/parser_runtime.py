"""Arguments of the agent-runtime commands: pauses, resume-runtime, doctor, spend."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from speedrift.agents.choose import RUNTIME_NAMES as RUNTIMES
from speedrift.cli import argtypes

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command(
        "pauses",
        "runtime_cmds:pauses",
        "Agent runtimes paused machine-wide (usage limit, rate limits, auth, failed preflight).",
    )
    p.add_argument("--all", dest="show_all", action="store_true", help="also lapsed and lifted pauses")
    _json(p)
    p = command(
        "resume-runtime",
        "runtime_cmds:resume_runtime",
        "Lift a runtime's pause for every repo on this machine (--list: show the pauses).",
    )
    p.add_argument("runtime", nargs="?", choices=RUNTIMES, metavar="NAME", help=", ".join(RUNTIMES))
    p.add_argument("--list", action="store_true", help="list the pauses instead")
    _json(p)
    p = command(
        "doctor",
        "runtime_cmds:doctor",
        "Preflight of every agent runtime and gate tool; exit 1 when a repo here lacks what it needs.",
    )
    p.add_argument(
        "--ecosystem",
        metavar="PATH",
        default=None,
        help="judge every repo registered in this ecosystem.toml (default: the repo here, else "
        "./ecosystem.toml's repos)",
    )
    _json(p)
    p = command(
        "spend",
        "spend_cmd:spend",
        "What the agents' attempts cost (by repo, agent, runtime, day); today's budgets and what remains.",
    )
    window = p.add_mutually_exclusive_group()
    window.add_argument(
        "--days",
        type=argtypes.count(1, 3660),
        default=None,
        help="the last N UTC days, today included (default 7)",
    )
    window.add_argument("--since", metavar="DATE", help="from this day or time (2026-11-20, RFC 3339)")
    p.add_argument("--repo", metavar="PATH", help="only this repo's attempts and budgets")
    p.add_argument("--by", choices=("repo", "agent", "runtime", "day"), help="show only this breakdown")
    _json(p)
