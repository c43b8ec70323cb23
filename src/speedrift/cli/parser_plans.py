"""Arguments of the plan commands: plan (lint, show, render, import, compile, status) and project."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command(
        "plan",
        "plan_compile_cmds:plan_status",
        "Waves of a plan: lint, show, render, import, draft, templates, compile, status, run, approve, "
        "update, approve-replan, metrics.",
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
        "draft",
        help="the Architect writes a wave from a spec or a request; linted, verified, never dispatched",
        parents=[common],
    )
    q.set_defaults(handler="plan_draft_cmd:plan_draft")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source", metavar="SPEC.md", help="a file holding the spec")
    source.add_argument("--task", metavar="TEXT", help="the request, in words")
    q.add_argument("--wave", type=int, default=None, help="the wave number (default: the next one)")
    q.add_argument("--template", metavar="PACK", default=None, help="a template pack (`plan templates`)")
    q.add_argument(
        "--mode", choices=("oversight", "dark-factory"), default=None, help="default: the project's"
    )
    q.add_argument(
        "--max-rounds",
        type=int,
        default=None,
        choices=range(1, 7),
        metavar="K",
        help="Architect rounds, 1-6 (default 3)",
    )
    _json(q)

    q = sub.add_parser("templates", help="the shipped template packs for `plan draft`", parents=[common])
    q.set_defaults(handler="plan_draft_cmd:plan_templates")
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

    q = sub.add_parser(
        "run",
        help="carry a compiled wave to its closure: dispatch, validate, integrate, document, evaluate",
        parents=[common],
    )
    q.set_defaults(handler="plan_run_cmds:plan_run")
    q.add_argument("wave", type=int, metavar="WAVE")
    _json(q)

    q = sub.add_parser(
        "approve",
        help="approve a task's checkpoint in an oversight wave: its merge (landed now) or its start",
        parents=[common],
    )
    q.set_defaults(handler="plan_run_cmds:plan_approve")
    q.add_argument("task", metavar="TASK")
    q.add_argument(
        "--as", dest="actor", default=None, help="who approves (default: $WG_AGENT_ID or the user)"
    )
    q.add_argument(
        "--no-land", action="store_true", help="record the approval; leave the landing to the service"
    )
    _json(q)

    q = sub.add_parser(
        "update",
        help="the Architect replans the waves from N on that are not closed; never a closed one",
        parents=[common],
    )
    q.set_defaults(handler="plan_update_cmd:plan_update")
    q.add_argument(
        "--from-wave", dest="from_wave", type=int, required=True, metavar="N", help="the first wave to replan"
    )
    q.add_argument("--reason", default="", help="why the plan changes (the Architect and the record read it)")
    q.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    q.add_argument(
        "--max-rounds",
        type=int,
        default=None,
        choices=range(1, 7),
        metavar="K",
        help="Architect rounds per wave, 1-6 (default 3)",
    )
    _json(q)

    q = sub.add_parser(
        "approve-replan",
        help="apply a replan an oversight wave waits on (`plan update` names it), or --reject it",
        parents=[common],
    )
    q.set_defaults(handler="plan_update_cmd:plan_approve_replan")
    q.add_argument("replan", type=int, metavar="REPLAN", help="the replan's number")
    q.add_argument(
        "--as", dest="actor", default=None, help="who approves (default: $WG_AGENT_ID or the user)"
    )
    q.add_argument("--reject", action="store_true", help="turn it down: nothing is applied")
    _json(q)

    q = sub.add_parser(
        "metrics",
        help="quality metrics of each wave's latest trace bundle, and across waves",
        parents=[common],
    )
    q.set_defaults(handler="replay_cmds:plan_metrics")
    q.add_argument("wave", nargs="?", type=int, default=None, metavar="WAVE")
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


def add_replay(command: Command, common: argparse.ArgumentParser) -> None:
    """``replay`` (top level: it needs no repository) and ``plan metrics``."""
    p = command(
        "replay",
        "replay_cmds:replay",
        "Re-derive a wave attempt's closure decision and quality metrics from its trace bundle alone; "
        "exit 1 on any difference.",
    )
    p.add_argument(
        "bundles", nargs="+", metavar="BUNDLE", help="a trace bundle directory (.speedrift/traces/…)"
    )
    _json(p)
