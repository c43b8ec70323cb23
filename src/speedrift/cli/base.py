"""What every command shares: finding the graph, the acting identity, durations and times."""

from __future__ import annotations

import argparse
import os

from speedrift.errors import UsageError
from speedrift.graph import ids
from speedrift.graph.model import parse_priority
from speedrift.graph.store import GraphStore, current_user


def store(args: argparse.Namespace) -> GraphStore:
    return GraphStore.locate(getattr(args, "dir", None))


def actor_name(explicit: str | None = None) -> str:
    name = explicit or os.environ.get("WG_AGENT_ID") or current_user()
    return ids.clean_text(name, "actor", limit=200, multiline=False)


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
