"""Arguments of the drift-lane commands: ``drift check`` and ``lanes list`` (see parser.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _json(parser: argparse.ArgumentParser, help_text: str = "print JSON instead of text") -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help=help_text)


def _repo(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument(
        "--repo",
        metavar="PATH",
        default=None,
        help=help_text
        or "the repository (default: the graph's — --dir, $WG_DIR or found upward — else the git "
        "repository around the working directory)",
    )


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command("drift", "lanes_cmds:drift_check", "Drift lanes on a repo: check.")
    sub = p.add_subparsers(dest="drift_command", metavar="ACTION", required=True)
    q = sub.add_parser(
        "check",
        help="run the policy's drift lanes; exit 0 clean, 3 findings, 2 a lane error or a usage error",
        description="Run the drift lanes of .workgraph/drift-policy.toml on a repo (its tree, a diff "
        "range, a task) and print their findings; the guard logs them and creates follow-ups when "
        "asked. Exit 0 clean, 3 findings (advisory), 2 a lane could not judge or a usage error.",
        parents=[common],
    )
    q.set_defaults(handler="lanes_cmds:drift_check")
    _repo(q)
    q.add_argument("--task", metavar="ID", help="judge this task: its fences, and its changes")
    q.add_argument(
        "--lane", action="append", metavar="LANE", help="run only this lane (repeatable; default: the order)"
    )
    q.add_argument(
        "--base", metavar="REV", help="the diff range's start (default: the task's landed range, if any)"
    )
    q.add_argument("--tip", metavar="REV", help="the diff range's end (default: the working tree)")
    q.add_argument("--head", metavar="REV", default="HEAD", help="the commit tree lanes judge (default HEAD)")
    q.add_argument("--write-log", action="store_true", help="log the findings to the task (by lane mode)")
    q.add_argument(
        "--create-followups",
        action="store_true",
        help="create the follow-up tasks for actionable findings, through the guard (by lane mode)",
    )
    q.add_argument("--no-cache", action="store_true", help="recompute every lane's result")
    _json(q, "print the report and the guard's outcomes as JSON")

    p = command("lanes", "lanes_cmds:lanes_list", "The drift lanes of a repo: list.")
    sub = p.add_subparsers(dest="lanes_command", metavar="ACTION")
    q = sub.add_parser(
        "list",
        help="every lane: scope, built-in or external, mode, fence, cron, blocking, settings",
        parents=[common],
    )
    q.set_defaults(handler="lanes_cmds:lanes_list")
    _repo(q)
    _json(q)
    # `speedrift lanes` alone lists them, like `lanes list`
    _repo(p, argparse.SUPPRESS)
    _json(p, argparse.SUPPRESS)
