"""What every command shares: finding the graph, the acting identity, durations and times."""

from __future__ import annotations

import argparse
import os
import re
from datetime import datetime, timedelta

from speedrift.errors import UsageError
from speedrift.graph import ids
from speedrift.graph.model import parse_priority, parse_time
from speedrift.graph.store import GraphStore, current_user


def store(args: argparse.Namespace) -> GraphStore:
    return GraphStore.locate(getattr(args, "dir", None))


def actor_name(explicit: str | None = None) -> str:
    name = explicit or os.environ.get("WG_AGENT_ID") or current_user()
    return ids.clean_text(name, "actor", limit=200, multiline=False)


_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise UsageError(f"duration {text!r} not understood", hint="use e.g. 45s, 30m, 2h, 1d or 1w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_moment(text: str) -> datetime:
    moment = parse_time(text)
    if moment is None:
        raise UsageError(f"timestamp {text!r} is not RFC 3339", hint="e.g. 2026-12-01T09:00:00Z")
    return moment


def priority(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_priority(text)
    except ValueError:
        raise UsageError(
            f"priority {text!r} not understood",
            hint="use critical, high, normal, low, idle or an integer >= 0",
        ) from None


def split_ids(values: list[str] | None) -> list[str]:
    """`--after a,b --after c` -> [a, b, c] (wg accepts both forms)."""
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out
