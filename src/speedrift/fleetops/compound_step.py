"""Compound review in the hub loop: each repo reviewed once per slot of its schedule.

:func:`hub_step` runs every hub cycle. For each registered repo, when compound review is enabled
(``[compound_review] enabled`` in ecosystem.toml, and not switched off in the repo's own
speedrift.toml) and its schedule (``schedule`` + ``tz``; the repo's own keys override the
ecosystem's) has a slot due since the last one fired (graph/cron.py ``due_slot``), the slot is
claimed in the agents state (``slots["compound:<repo>"]``, fleetops/state.py: flock + atomic
replace) BEFORE the review runs — so a slot fires exactly once, across hub restarts and two hub
processes alike; a review a crash cut off is not retried for that slot, and loses nothing: the
next review starts after the last commit a finished review recorded.

On a repo's first sight (no slot fired yet) the newest slot at or before now fires: a hub that
starts at noon with a nightly schedule reviews at once, then nightly.

The hub reviews only the repos whose mode grants it automation (``ctx.may_write``: supervise or
autonomous with a live lease): a repo in ``observe`` or ``manual`` is left untouched — no report
written, no agent run, and no slot claimed, so its first due slot fires once it is opted in. A
person reviews any repo with ``speedrift review compound``. Each review is a ledger
record (``kind = "compound_review"``); a review that fails (a git error, a bad speedrift.toml) is a
record with its ``error`` and never stops the other repos'.
"""

from __future__ import annotations

import functools
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.errors import SpeedriftError
from speedrift.fleet.opsconfig import CompoundReviewConfig
from speedrift.fleetops import compound
from speedrift.fleetops.hubctx import HubContext
from speedrift.fleetops.state import FleetState, StateStore
from speedrift.graph import cron
from speedrift.procs import ProcessTimeout

SLOT_PREFIX = "compound:"  # state.slots key: "compound:<repo name>"


def slot_key(repo: str) -> str:
    return f"{SLOT_PREFIX}{repo}"


def hub_step(ctx: HubContext, cancel: threading.Event | None = None) -> list[dict[str, Any]]:
    """Review every repo whose slot is due; the ledger records of what was done. ``cancel`` set
    (the hub stopping) stops a running role agent and the reviews not yet begun."""
    base = ctx.ops.compound_review
    store = StateStore(ctx.hub)
    out: list[dict[str, Any]] = []
    for name, path in sorted(ctx.repos.items()):
        if cancel is not None and cancel.is_set():
            break
        if not ctx.may_write(name)[0]:
            continue  # a repo not opted in is left untouched: no report, no slot (a person can run it)
        problem = ""
        try:
            _config, settings = compound.settings_of(path, base)
        except SpeedriftError as error:  # judged on the ecosystem's schedule, said once per slot
            settings, problem = base, f"its speedrift.toml cannot be read: {error}"
        if not settings.enabled:
            continue
        slot = store.update(functools.partial(claim, repo=name, settings=settings, now=ctx.now))
        if slot is None:
            continue
        out.append(
            _failed(ctx, name, slot, problem) if problem else run_one(ctx, name, path, base, slot, cancel)
        )
    return out


def claim(state: FleetState, repo: str, settings: CompoundReviewConfig, now: datetime) -> datetime | None:
    """Under the state lock: the due slot of ``repo``, marked fired; None when none is due."""
    key = slot_key(repo)
    slot = cron.due_slot(settings.schedule, state.slots.get(key), now, settings.tz)
    if slot is not None:
        state.slots[key] = slot
    return slot


def run_one(
    ctx: HubContext,
    name: str,
    path: Path,
    base: CompoundReviewConfig,
    slot: datetime,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    options = compound.Options(
        may_write=ctx.may_write(name), base=base, name=name, actor="hub:compound-review", cancel=cancel
    )
    try:
        done = compound.review(path, now=ctx.now, options=options)
    except (SpeedriftError, ProcessTimeout, OSError) as error:
        return _failed(ctx, name, slot, str(error))
    return compound.ledger_record(done, slot)


def _failed(ctx: HubContext, name: str, slot: datetime | None, error: str) -> dict[str, Any]:
    return {
        "kind": "compound_review",
        "generated_at": ctx.now,
        "repo": name,
        "slot": slot,
        "commits": None,
        "flags": None,
        "report": None,
        "tasks": None,
        "pr": None,
        "error": error,
    }
