"""`speedrift demo [DIR]`: the main job out of the box.

Builds (or reuses) the demo ecosystem in DIR (see demo/ecosystem.py), starts the feeder that keeps
adding work (demo/feeder.py) and runs the hub on it with the dashboard at http://127.0.0.1:8777 —
the whole observe -> plan -> execute -> record loop, live, for as long as it runs: scripted agents
(the `demo` runtime) land changes, fail gates and recover, ask a person, and the hub writes
corrective tasks. ``SPEEDRIFT_DEMO_PACE`` scales every agent run and the feeder (default 1).
Ctrl-C stops it and says where the state is; a rerun reuses the directory and the hub's history.
"""

from __future__ import annotations

import gc
from argparse import Namespace
from pathlib import Path

from speedrift.agents.demo import demo_pace
from speedrift.cli.hub_cmds import run_foreground
from speedrift.cli.output import say
from speedrift.demo import ecosystem as demo_ecosystem
from speedrift.demo.feeder import Feeder


def demo(args: Namespace) -> int:
    gc.enable()  # the CLI turns the collector off for short commands; the hub is long-lived
    pace = demo_pace()  # checked first: a bad SPEEDRIFT_DEMO_PACE is an error, not a slow demo
    root = Path(args.directory).resolve()
    created = demo_ecosystem.build(root)
    ecosystem = root / "ecosystem.toml"
    if created:
        say(f"Created the demo ecosystem in {root}: {', '.join(created)}")
    else:
        say(f"Reusing the demo ecosystem in {root}")
    say(
        "Five repos. factory, shop-api and web-ui are autonomous: scripted agents (the `demo` runtime,\n"
        "no model) take their tasks, stream their work, land it, fail a gate and recover, ask you a\n"
        "question — and new tasks keep arriving. billing is stalled (observe mode); search has a missing\n"
        f"dependency and uncommitted edits. Pace: SPEEDRIFT_DEMO_PACE={pace:g}."
    )
    say(
        f"Stop with Ctrl-C. Meanwhile, in another terminal:\n  cd {root}\n"
        "  speedrift why billing                              # why billing is stalled\n"
        "  speedrift mode billing autonomous --lease-ttl 1h   # ...and watch its tasks start\n"
        "  speedrift tail -f --dir web-ui/.workgraph cart-page # an agent's events as they happen\n"
        "  speedrift ledger show                              # the hub's last decisions\n"
        '  speedrift answer --dir factory/.workgraph ID "Drop them"  # answer the question an agent asks\n'
        "                                                     # (ID: the `escalated` line below names it)"
    )
    feeder = Feeder(root, pace)
    feeder.start()
    try:
        run_foreground(ecosystem, args)
    finally:
        feeder.stop()
    say(f"The demo's repos stay in {root}: `speedrift demo {args.directory}` picks up where it left off.")
    return 0
