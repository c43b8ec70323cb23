"""Arguments of the ad-hoc run commands: `speedrift adhoc run|resume|list|show` (cli/adhoc_cmds.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from speedrift.cli import argtypes

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command(
        "adhoc",
        "adhoc_cmds:adhoc_list",
        "Ad-hoc runs: one transient wave for a task — drafted, verified, compiled, run and closed — "
        "outside the numbered roadmap.",
    )
    sub = p.add_subparsers(dest="adhoc_command", metavar="ACTION")

    q = sub.add_parser(
        "run",
        help="draft (Architect + Plan Verifier), compile and run one wave for the task, to its closure",
        parents=[common],
    )
    q.set_defaults(handler="adhoc_cmds:adhoc_run")
    q.add_argument("--task", required=True, help="what the run must deliver, in words")
    q.add_argument(
        "--template", default=None, metavar="PACK", help="a template pack (`speedrift plan templates`)"
    )
    q.add_argument(
        "--mode", choices=("oversight", "dark-factory"), default=None, help="default: the project's"
    )
    q.add_argument(
        "--max-rounds", type=argtypes.at_least_one, default=None, help="Architect rounds at most (default 3)"
    )
    _json(q)

    q = sub.add_parser(
        "resume",
        help="run a compiled ad-hoc wave again to its closure (after an approval, a fix or a stop)",
        parents=[common],
    )
    q.set_defaults(handler="adhoc_cmds:adhoc_resume")
    q.add_argument("run", metavar="RUN", help="a run id (or adhoc-<run id>)")
    _json(q)

    q = sub.add_parser("list", help="every ad-hoc run: its state and task counts", parents=[common])
    q.set_defaults(handler="adhoc_cmds:adhoc_list")
    _json(q)

    q = sub.add_parser(
        "show", help="one ad-hoc run: its spec, tasks and their states, closure, bundle", parents=[common]
    )
    q.set_defaults(handler="adhoc_cmds:adhoc_show")
    q.add_argument("run", metavar="RUN", help="a run id (or adhoc-<run id>)")
    _json(q)
    _json(p)
