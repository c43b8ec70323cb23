"""Arguments of ``speedrift upstream list|show|prepare|propose`` (cli/upstream_cmds.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command("upstream", "upstream_cmds:list_", "Upstream proposals: a fork's commits as a draft PR.")
    sub = p.add_subparsers(dest="upstream_command", metavar="{list,show,prepare,propose}", required=True)
    verbs = {
        "list": ("list_", "the repo's upstream proposals"),
        "show": ("show", "one proposal: its state, branch and the draft's body"),
        "prepare": (
            "prepare",
            "package the commits ahead of the upstream as a proposal and its local branch",
        ),
        "propose": (
            "propose",
            "push the proposal branch to your fork and open a draft PR (needs [upstream] propose = true)",
        ),
    }
    for verb, (handler, text) in verbs.items():
        q = sub.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".", parents=[common])
        q.set_defaults(handler=f"upstream_cmds:{handler}")
        if verb in ("show", "propose"):
            q.add_argument("proposal_id", metavar="ID", help="the proposal's id (`speedrift upstream list`)")
        q.add_argument(
            "--repo", metavar="PATH|NAME", help="a repository by path or an ecosystem repo by name"
        )
        q.add_argument(
            "--ecosystem", metavar="PATH", default=None, help="ecosystem.toml (default: ./ecosystem.toml)"
        )
        q.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
