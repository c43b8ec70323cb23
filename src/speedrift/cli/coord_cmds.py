"""Coordination commands: signal (inside an attempt), board, handoff show.

``board`` and ``handoff show`` print what agents, speedrift and humans wrote: printable
(speedrift/termtext.py), and redacted as every record is on its way into the store
(coord/store.py redacts whoever posts) — not a second time on the way out, which would cost a
scan of every string of a large board.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.cli.base import store as graph_store
from speedrift.cli.output import emit_json, printable, say
from speedrift.coord import board as coord_board
from speedrift.coord.records import REPO_SCOPE, Kind, Record
from speedrift.coord.store import CoordStore
from speedrift.errors import InvalidValue, NotFound, UsageError
from speedrift.times import clock_words, now_utc


def signal(args: Namespace) -> int:
    """``speedrift signal KIND --json '{…}'``: checked on receipt; every problem printed (exit 2)."""
    from speedrift.fleet import signals  # the board needs none of the fleet: imported per command

    payload = signals.parse_payload(args.payload)
    try:
        said = signals.signal(args.kind, payload, os.environ)
    except InvalidValue as bad:  # what the agent sent is wrong: a usage error it can fix
        raise UsageError(bad.message, hint=bad.hint) from None
    say(said)
    return 0


def board(args: Namespace) -> int:
    """``speedrift board [SCOPE] [--all] [--json]``: the scope's board, open records first."""
    repo = graph_store(args).directory.parent
    scope = args.scope or REPO_SCOPE
    store = CoordStore.for_scope(repo, scope)
    if args.scope and not store.path.exists():
        known = CoordStore.scopes(repo)
        raise NotFound(
            f"no coordination scope {scope!r} in {repo}",
            hint=f"scopes with records: {', '.join(known)}" if known else "no scope has records yet",
        )
    snapshot = store.read()
    now = now_utc()
    if args.as_json:
        emit_json(coord_board.as_json(snapshot, now=now, show_all=args.show_all))
        return 0
    _write(coord_board.render(snapshot, now=now, show_all=args.show_all))
    return 0


def handoff_show(args: Namespace) -> int:
    """``speedrift handoff show TASK [--all] [--json]``: the task's handoffs, newest last — those
    its next attempt gets (open, not expired), or with ``--all`` every one it ever had."""

    if getattr(args, "handoff_command", None) != "show":
        raise UsageError("speedrift handoff: say what to do", hint="speedrift handoff show TASK")
    graph = graph_store(args)
    repo = graph.directory.parent
    task = graph.load().get(args.task_id)
    scopes = _scopes_of(repo, task)
    now = now_utc()
    found: list[Record] = []
    for scope in scopes:
        records = CoordStore.for_scope(repo, scope).read().records.values()
        found += [r for r in records if _handoff_to(r, args.task_id)]
    shown = [r for r in found if args.show_all or (r.open and not r.expired(now))]
    shown.sort(key=lambda r: (r.created_at, r.seq))
    if task is None and not found:
        raise NotFound(f"no task {args.task_id!r}", hint="`speedrift list` shows the tasks")
    if args.as_json:
        rows = [r.as_dict() | {"standing": coord_board.standing(r, now).value} for r in shown]
        emit_json({"task": args.task_id, "handoffs": rows, "hidden": len(found) - len(shown)})
        return 0
    _write(_handoffs_text(args.task_id, shown, len(found) - len(shown), now))
    return 0


def _scopes_of(repo: Path, task: dict[str, Any] | None) -> list[str]:
    """The task's own scope first, then every other scope with records."""
    from speedrift.fleet import coordination  # the board needs none of the fleet

    own = REPO_SCOPE
    if task is not None:
        try:
            own = coordination.scope_of(task)
        except InvalidValue:
            own = REPO_SCOPE
    return [own, *(s for s in CoordStore.scopes(repo) if s != own)]


def _handoff_to(record: Record, task_id: str) -> bool:
    if record.kind is not Kind.HANDOFF:
        return False
    return f"task:{task_id}" in record.targets or (not record.targets and record.author.task == task_id)


def _handoffs_text(task_id: str, shown: list[Record], hidden: int, now: datetime) -> str:
    out = [f"# Handoffs to {task_id}", ""]
    if not shown:
        out.append("None open." if hidden else "None.")
    for record in shown:
        state = coord_board.standing(record, now).value
        expiry = ""
        if record.expires_at is not None:
            verb = "expired" if record.expired(now) else "expires"
            expiry = f" · {verb} {clock_words(record.expires_at, now)}"
        out += [
            f"## {record.id} · {state} · from {printable(record.author.words())} · "
            f"{clock_words(record.created_at, now)}{expiry}",
            "",
            printable(record.summary),
            "",
        ]
        if record.detail.strip():  # someone's text, quoted: it cannot forge a heading here
            out += [*(f"> {line}" for line in record.detail.strip().splitlines()), ""]
    if hidden:
        out += ["", f"{hidden} closed or expired handoff(s) not shown: add --all."]
    return "\n".join(out).rstrip("\n") + "\n"


def _write(text: str) -> None:
    sys.stdout.write(printable(text, newlines=True))
    sys.stdout.flush()
