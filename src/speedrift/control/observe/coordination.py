"""A repo's coordination stores as the observer reads them: the open ``human_escalation`` records
(questions agents asked that triage could not answer, fleet/clarify.py), for the human queue.

Read-only and lock-free like the rest of observation: each ``.speedrift/coord/<scope>.jsonl`` is
read in one go (appends are whole lines; a torn last line is skipped by the store's reader) and
nothing is created or locked. :func:`coord_key` is the part of the repo's fingerprint that changes
when any store does (a new scope file, an appended line), taken from ``stat`` alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from speedrift import layout
from speedrift.control.observe.git import stat_key
from speedrift.coord.records import Kind, Record
from speedrift.coord.store import CoordStore

StatKey = tuple[tuple[int, int, int] | None, ...]
MAX_SCOPES = 200  # stores read per repo (scopes in name order)


def coord_key(repo: Path) -> StatKey:
    """``stat`` of the coordination directory and of each store in it (empty: there is none)."""
    folder = layout.coord_dir(repo)
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".jsonl"))
    except OSError:
        return ()
    return (stat_key(folder), *(stat_key(folder / name) for name in names[:MAX_SCOPES]))


def open_escalations(repo: Path) -> tuple[Record, ...]:
    """Every open human_escalation record of the repo's stores, oldest first (bad lines skipped)."""
    found: list[Record] = []
    for scope in CoordStore.scopes(repo)[:MAX_SCOPES]:
        try:
            snapshot = CoordStore.for_scope(repo, scope).read()
        except (OSError, ValueError):  # a scope file with a name that is no scope, or unreadable
            continue
        found += [r for r in snapshot.records.values() if r.kind is Kind.HUMAN_ESCALATION and r.open]
    found.sort(key=lambda r: (r.created_at, r.id))
    return tuple(found)
