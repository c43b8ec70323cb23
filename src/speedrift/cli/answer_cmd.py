"""`speedrift answer RECORD_ID ANSWER [--as NAME] [--json]`: a person answers a question an agent
asked (a human_escalation, or the clarification_request behind it); fleet/answers.py does it, the
same function as the dashboard's answer box."""

from __future__ import annotations

from argparse import Namespace

from speedrift.cli.base import actor_name, store
from speedrift.cli.output import emit_json, printable, say
from speedrift.fleet import answers
from speedrift.fleet.config import load_config


def answer(args: Namespace) -> int:
    graph = store(args)
    repo = graph.directory.parent
    name = actor_name(args.actor)
    done = answers.answer(repo, graph, load_config(repo), args.record_id, args.text, name=name)
    if args.as_json:
        emit_json(done.as_dict())
        return 0
    others = [r for r in done.resolved if r != done.record]
    also = f" (and {', '.join(others)})" if others else ""
    say(printable(f"Answered {done.record}{also} as {name}: posted {done.feedback.id} (human_feedback)"))
    if done.reopened:
        say(printable(f"{done.task} is open again; its next attempt gets the answer"))
    elif done.waiting_on:
        say(printable(f"{done.task} still waits on {', '.join(done.waiting_on)}"))
    elif done.task:
        say(printable(f"{done.task} gets the answer in its next attempt's inbox"))
    return 0
