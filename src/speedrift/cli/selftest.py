"""`speedrift selftest chaos`: run the chaos and fuzz suite (:mod:`speedrift.cli.chaos`), print its figures.

Thin: parse, run, render — a Markdown table (the README shows it as printed) or ``--json``.
Exit 1 when any invariant was violated (or a secret was found, an update lost, a fuzz test failed,
or a part of the run could not measure); 0 otherwise.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from speedrift.cli.output import emit_json, say
from speedrift.errors import UsageError


def chaos(args: Namespace) -> int:
    from speedrift.cli.chaos import runner

    keep = Path(args.keep).expanduser().resolve() if args.keep else None
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise UsageError(f"{keep} is not empty", hint="name a new or empty directory for --keep")

    def progress(line: str) -> None:
        sys.stderr.write(f"chaos: {line}\n")
        sys.stderr.flush()

    figures = runner.run(
        args.minutes, seed=args.seed, keep=keep, fuzz_examples=args.fuzz_examples, progress=progress
    )
    if args.as_json:
        emit_json(figures.to_json())
    else:
        say(
            f"speedrift selftest chaos --minutes {args.minutes:g} (seed {figures.seed}): "
            f"{figures.elapsed_s:.0f}s, {figures.hub_lives} hub lives, {figures.tasks_landed} tasks landed"
        )
        say("")
        say(figures.markdown())
        for line in figures.details:
            say(f"violation: {line}")
        for line in figures.errors:
            say(f"run error: {line}")
        for line in figures.notes:
            say(f"note: {line}")
    if figures.failed():
        sys.stderr.write(
            f"chaos: FAILED — {figures.violation_total} invariant violation(s); rerun with --seed "
            f"{figures.seed} --keep DIR to look at what was left\n"
        )
        return 1
    return 0
