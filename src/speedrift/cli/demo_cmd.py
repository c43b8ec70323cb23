"""`speedrift demo [DIR]`: the main job out of the box.

Builds (or reuses) the demo ecosystem in DIR (see demo/ecosystem.py) and runs the hub on it with
the dashboard at http://127.0.0.1:8777 — the whole observe -> plan -> execute -> record loop,
live, within a minute. Ctrl-C stops it; a rerun reuses the directory and the hub's history.
"""

from __future__ import annotations

import gc
from argparse import Namespace
from pathlib import Path

from speedrift.cli.hub_cmds import run_foreground
from speedrift.cli.output import say
from speedrift.demo import ecosystem as demo_ecosystem


def demo(args: Namespace) -> int:
    gc.enable()  # the CLI turns the collector off for short commands; the hub is long-lived
    root = Path(args.directory).resolve()
    created = demo_ecosystem.build(root)
    ecosystem = root / "ecosystem.toml"
    if created:
        say(f"Created the demo ecosystem in {root}: {', '.join(created)}")
    else:
        say(f"Reusing the demo ecosystem in {root}")
    say(
        "Five repos: shop-api (healthy), billing (stalled: ready work, no service), web-ui (uncommitted\n"
        "edits), search (a missing dependency), factory (autonomous: the hub dispatches its tasks)."
    )
    say(
        f"Stop with Ctrl-C. Then try:\n  cd {root}\n  speedrift why billing\n  speedrift ledger show\n"
        "  speedrift hub once --json\n  speedrift mode billing supervise --lease-ttl 1h"
    )
    run_foreground(ecosystem, args)
    return 0
