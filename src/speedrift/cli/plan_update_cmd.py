"""`speedrift plan update --from-wave N [--reason "…"] [--dry-run] [--max-rounds K] [--json]` and
`speedrift plan approve-replan REPLAN [--as WHO] [--reject] [--json]`.

``update``: forward replanning (plans/replan.py does the work): the waves from N on that are not
closed are rewritten by the Wave Architect, linted and verified; closed waves never. Exit 0: the
replan was applied (specs written, compiled waves compiled again), proposed (an oversight wave:
nothing applied; the output says how to approve it), found nothing to change, or shown
(--dry-run). Exit 1: a wave was not verified in K rounds (nothing written, the last round's
findings printed), a role gave no valid output, or the replan was refused (a closed wave, a
replan waiting for approval). Progress goes to stderr.

``approve-replan``: a person applies exactly the specs replan REPLAN proposed (refused, nothing
applied, when a target wave's spec changed or the wave closed since), or turns it down with
``--reject``. Both print the replan summary (``--json``: the same as an object).
"""

from __future__ import annotations

import sys
from argparse import Namespace
from typing import TYPE_CHECKING

from speedrift.cli.base import actor_name, store
from speedrift.cli.output import emit_json, printable, say, table
from speedrift.coord.records import Actor, Author
from speedrift.fleet.config import load_config
from speedrift.procs import make_non_dumpable

if TYPE_CHECKING:
    from speedrift.plans.replan import Replan


def plan_update(args: Namespace) -> int:
    from speedrift.plans.draft import DEFAULT_MAX_ROUNDS  # the roles: only when replanning
    from speedrift.plans.replan import State, update

    make_non_dumpable()  # it holds the secrets it hands to the agents: no one else reads them
    graph_store = store(args)
    repo = graph_store.directory.parent
    done = update(
        repo,
        load_config(repo),
        graph_store,
        args.from_wave,
        author=Author(Actor.HUMAN, name=actor_name()),
        reason=args.reason or "",
        dry_run=args.dry_run,
        max_rounds=args.max_rounds or DEFAULT_MAX_ROUNDS,
        progress=_progress,
    )
    if args.as_json:
        emit_json(done.as_dict())
    else:
        _show(done)
    return 1 if done.state is State.NOT_VERIFIED else 0


def plan_approve_replan(args: Namespace) -> int:
    from speedrift.plans.replan import approve, reject

    graph_store = store(args)
    repo = graph_store.directory.parent
    author = Author(Actor.HUMAN, name=actor_name(args.actor))
    if args.reject:
        done = reject(repo, args.replan, author=author)
    else:
        done = approve(repo, graph_store, args.replan, author=author)
    if args.as_json:
        emit_json(done.as_dict())
    else:
        _show(done)
    return 0


def _progress(message: str) -> None:
    sys.stderr.write(f"speedrift: {printable(message)}\n")
    sys.stderr.flush()


def _show(done: Replan) -> None:
    from speedrift.plans.draft import last_findings
    from speedrift.plans.replan_model import LISTS, State, words

    if done.failed is not None:
        wave = done.failed
        say(
            f"Wave {wave.wave} was not verified in {len(wave.rounds)} round(s); nothing was written. "
            "The last round's findings:"
        )
        for finding in last_findings(wave.rounds[-1]):
            say(f"- {printable(finding)}")
        say(f"record: {printable(str(wave.record_dir))}")
        return
    tail = " (--dry-run: nothing written)" if done.state is State.DRY_RUN else ""
    say(printable(words(done)) + tail)
    if done.reason:
        say(f"Reason: {printable(done.reason)}")
    if done.closed:
        say("Closed waves, left as they are: " + ", ".join(map(str, done.closed)))
    rows = [
        (f"wave {d.wave}", kind, task)
        for d in done.waves
        if d.changed
        for kind in LISTS
        for task in d.lists[kind]
    ]
    if rows:
        table(None, ["wave", "change", "task"], rows)
    for d in done.waves:
        if d.changed and not d.compiled:
            say(f"wave {d.wave} is not compiled: `speedrift plan compile {d.wave}` writes its tasks")
    unchanged = done.summary()["unchanged_waves"]
    if unchanged:
        say("Kept as they were: wave " + ", ".join(map(str, unchanged)))
    if done.state is State.PROPOSED:
        say(
            f"Nothing is applied: an oversight wave waits for a person. "
            f"`speedrift plan approve-replan {done.proposal}` applies it; add --reject to turn it down."
        )
    if done.record:
        scope = f"wave-{done.from_wave}"
        say(f"Recorded as {done.record} (`speedrift board {scope}`)")
