"""Arguments of the resilience-fleet commands: roles, signal, board, answer, handoff, decompose."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from speedrift.fleet.roles.names import RoleName

Command = Callable[[str, str, str], argparse.ArgumentParser]
ROLES = tuple(role.value for role in RoleName)


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command("roles", "roles_cmds:roles_list", "The agent roles of the resilience fleet (list|show|run).")
    sub = p.add_subparsers(dest="roles_command", metavar="ACTION")
    q = sub.add_parser("list", help="every role: tier, inputs, what its output does", parents=[common])
    q.set_defaults(handler="roles_cmds:roles_list")
    _json(q)
    q = sub.add_parser(
        "show",
        help="one role: its template (the repo's, if it overrides it), schema, example",
        parents=[common],
    )
    q.set_defaults(handler="roles_cmds:roles_show")
    q.add_argument("role", metavar="ROLE", help=", ".join(ROLES))
    _json(q)
    q = sub.add_parser(
        "run",
        help="run one role now on a commit, with inputs from a JSON file; print its validated output",
        parents=[common],
    )
    q.set_defaults(handler="roles_cmds:roles_run")
    q.add_argument("role", metavar="ROLE", help=", ".join(ROLES))
    q.add_argument(
        "--inputs",
        metavar="FILE",
        required=True,
        help='a JSON object {"input name": "text", …} (- for standard input)',
    )
    q.add_argument("--commit", default="HEAD", help="the commit it runs on, read-only (default: HEAD)")
    q.add_argument("--task", dest="task_id", default=None, help="the task it is about (its records go there)")
    _json(q)
    _json(p)

    p = command(
        "signal",
        "coord_cmds:signal",
        "Inside an attempt: report a typed result, or post a coordination record "
        "(KIND: result, request, ack, claim, evidence, decision, blocker, handoff, clarification_request, "
        "integration_summary).",
    )
    p.add_argument("kind", metavar="KIND")
    p.add_argument(
        "--json", dest="payload", required=True, metavar="JSON", help="the record or result, as JSON"
    )

    p = command(
        "board", "coord_cmds:board", "The coordination board of a scope: open records first, as Markdown."
    )
    p.add_argument("scope", nargs="?", default=None, metavar="SCOPE", help="default: repo (ad-hoc work)")
    p.add_argument("--all", dest="show_all", action="store_true", help="also closed and expired records")
    _json(p)

    p = command(
        "answer",
        "answer_cmd:answer",
        "Answer a human escalation (or the clarification behind it); the waiting task gets the answer.",
    )
    p.add_argument("record_id", metavar="RECORD_ID", help="e.g. repo-12 (`speedrift board` lists them)")
    p.add_argument("text", metavar="ANSWER")
    p.add_argument("--as", dest="actor", default=None, help="who answers (default: $WG_AGENT_ID or the user)")
    _json(p)

    p = command("handoff", "coord_cmds:handoff_show", "Handoffs between attempts, agents and roles (show).")
    sub = p.add_subparsers(dest="handoff_command", metavar="ACTION")
    q = sub.add_parser("show", help="the handoffs of a task, newest last", parents=[common])
    q.set_defaults(handler="coord_cmds:handoff_show")
    q.add_argument("task_id", metavar="TASK")
    q.add_argument("--all", dest="show_all", action="store_true", help="also closed and expired handoffs")
    _json(q)

    p = command(
        "decompose",
        "decompose_cmd:decompose",
        "Split a task into subtasks with the Architect, checked by the Plan Verifier; written to the graph.",
    )
    p.add_argument("task_id", metavar="TASK")
    p.add_argument("--dry-run", action="store_true", help="show the verified split; write nothing")
    p.add_argument(
        "--max-rounds",
        type=int,
        default=2,
        choices=range(1, 6),
        metavar="N",
        help="Architect ↔ Verifier rounds before a human is asked (default 2)",
    )
    _json(p)
