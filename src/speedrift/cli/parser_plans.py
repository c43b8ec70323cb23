"""Arguments of the plan commands: plan (lint, show, render, import, compile, status) and project."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command(
        "plan", "plan_cmds:plan_status", "Waves of a plan: lint, show, render, import, compile, status."
    )
    sub = p.add_subparsers(dest="plan_command", metavar="ACTION")

    q = sub.add_parser(
        "lint",
        help="every problem of a wave (its JSON spec or Markdown), with file and JSON path or line",
        parents=[common],
    )
    q.set_defaults(handler="plan_cmds:plan_lint")
    q.add_argument("files", nargs="*", metavar="FILE", help="default: every wave of the repo")
    _json(q)

    q = sub.add_parser("show", help="one wave: its tasks, owned files, exit contracts", parents=[common])
    q.set_defaults(handler="plan_cmds:plan_show")
    q.add_argument("wave", metavar="WAVE", help="a wave number or a spec file")
    _json(q)

    q = sub.add_parser(
        "render",
        help="write the wave's Markdown from its JSON spec (plans/waves/wave-N.md)",
        parents=[common],
    )
    q.set_defaults(handler="plan_cmds:plan_render")
    q.add_argument("waves", nargs="*", metavar="WAVE", help="default: every wave of the repo")
    q.add_argument("--check", action="store_true", help="write nothing; exit 1 when a Markdown file is stale")
    _json(q)

    q = sub.add_parser(
        "import",
        help="read a wave-orchestration wave (Markdown) into a speedrift spec; report what did not map",
        parents=[common],
    )
    q.set_defaults(handler="plan_import_cmd:plan_import")
    q.add_argument("source", metavar="WAVE.md")
    q.add_argument("--wave", type=int, default=None, help="the wave number (default: from the file name)")
    q.add_argument(
        "--mode", choices=("oversight", "dark-factory"), default=None, help="default: the project's"
    )
    q.add_argument("--dry-run", action="store_true", help="print the spec; write nothing")
    q.add_argument("--force", action="store_true", help="replace a spec that exists")
    _json(q)

    q = sub.add_parser(
        "compile",
        help="write the wave's tasks and closure tasks into the graph (idempotent; edits update open tasks)",
        parents=[common],
    )
    q.set_defaults(handler="plan_compile_cmds:plan_compile")
    q.add_argument("wave", metavar="WAVE", help="a wave number")
    q.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    _json(q)

    q = sub.add_parser(
        "status",
        help="every task of a wave (or of every wave): state, closure stage, what blocks it",
        parents=[common],
    )
    q.set_defaults(handler="plan_compile_cmds:plan_status")
    q.add_argument("wave", nargs="?", default=None, metavar="WAVE")
    _json(q)
    _json(p)

    p = command(
        "project", "plan_cmds:project_show", "The committed project profile the planner reads (setup|show)."
    )
    sub = p.add_subparsers(dest="project_command", metavar="ACTION")
    q = sub.add_parser("show", help="the profile, and where each value came from", parents=[common])
    q.set_defaults(handler="plan_cmds:project_show")
    _json(q)
    q = sub.add_parser("setup", help="write plans/project.toml (asks, or takes the flags)", parents=[common])
    q.set_defaults(handler="plan_cmds:project_setup")
    q.add_argument("--name", default=None)
    q.add_argument("--new-project", choices=("yes", "no"), default=None)
    q.add_argument(
        "--mode", choices=("oversight", "dark-factory"), default=None, help="the default wave mode"
    )
    q.add_argument(
        "--runtime", action="append", default=None, help="a default runtime, in order (repeatable)"
    )
    q.add_argument("--test", dest="tests", action="append", default=None, help="a test command (repeatable)")
    q.add_argument("--yes", action="store_true", help="take defaults for what is not given; ask nothing")
    _json(q)
    _json(p)
