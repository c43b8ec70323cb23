"""Coordination commands: signal (inside an attempt), board, answer, handoff show."""

from __future__ import annotations

import os
from argparse import Namespace

from speedrift.cli.output import say
from speedrift.errors import InvalidValue, UsageError
from speedrift.fleet import signals


def signal(args: Namespace) -> int:
    """``speedrift signal KIND --json '{…}'``: checked on receipt; every problem printed (exit 2)."""
    payload = signals.parse_payload(args.payload)
    try:
        said = signals.signal(args.kind, payload, os.environ)
    except InvalidValue as bad:  # what the agent sent is wrong: a usage error it can fix
        raise UsageError(bad.message, hint=bad.hint) from None
    say(said)
    return 0
