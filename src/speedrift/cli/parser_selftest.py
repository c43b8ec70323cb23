"""Arguments of `speedrift selftest`: speedrift's own suites against real processes (chaos)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not 0 < value <= 24 * 60:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range: more than 0, at most 1440 minutes")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000000")
    return int(text)


def add(command: Command, common: argparse.ArgumentParser) -> None:
    del common  # the suites act on a temporary directory of their own, never on a graph
    p = command("selftest", "selftest:chaos", "Speedrift's own suites against real processes: chaos.")
    suites = p.add_subparsers(dest="selftest_command", metavar="SUITE", required=True)
    q = suites.add_parser(
        "chaos",
        help="kill -9, concurrent writers, a full disk, fuzzing and a secrets sweep, in a temp dir",
        description="Run the chaos and fuzz suite in a temporary directory within --minutes and print "
        "its figures: kills survived, invariant violations, fuzz inputs tried, lost updates, forbidden "
        "operations refused, secrets found in speedrift's own files. Exit 1 if an invariant broke.",
    )
    q.add_argument("--minutes", type=_minutes, default=3.0, help="the time budget (default 3; 0.5 works)")
    q.add_argument(
        "--fuzz-examples",
        type=_count,
        default=None,
        metavar="N",
        help="examples per fuzz property (default: from --minutes; the suite's own CI default is 200)",
    )
    q.add_argument("--seed", type=int, default=None, help="the random seed (default: a fresh one, printed)")
    q.add_argument("--keep", metavar="DIR", default=None, help="run in DIR (new or empty) and keep its files")
    q.add_argument("--json", dest="as_json", action="store_true", help="print the figures as JSON")
    q.set_defaults(handler="selftest:chaos")
