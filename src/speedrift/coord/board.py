"""The board of a coordination scope: its records as Markdown for humans (``speedrift board``).

A header with the counts (per kind: open, closed, expired), the open records grouped by kind (id,
status, author in words, targets, summary, age), then an activity feed of the store's lines,
newest first. ``show_all`` adds the closed and the expired records (and the whole feed). Lines of
the store that could not be read are named with their line number, never hidden.

It is for people, not a decision input: attempts get their own compiled inbox (coord/inbox.py).
Everything a record says is data someone wrote — an agent, possibly — so every value is made
printable (speedrift/termtext.py), kept to one line, and kept from breaking the tables.

Also the one home of how a record reads in a line (:func:`age_words`, :func:`record_words`),
which the inbox shares.

Pure: the snapshot and the time come in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from speedrift.coord.records import Kind, Record
from speedrift.coord.store import Snapshot
from speedrift.termtext import printable
from speedrift.textclip import clip
from speedrift.times import clock_words, format_time

FEED_LINES = 30  # the activity feed's length unless everything is asked for
SUMMARY_CELL = 160


class Standing(StrEnum):
    """Where a record stands on the board."""

    OPEN = "open"
    CLOSED = "closed"
    EXPIRED = "expired"  # still open, but past its expiry: nobody is shown it any more


def standing(record: Record, now: datetime) -> Standing:
    if not record.open:
        return Standing.CLOSED
    return Standing.EXPIRED if record.expired(now) else Standing.OPEN


def age_words(since: datetime, now: datetime) -> str:
    """``just now``, ``5m``, ``3h``, ``2d`` — how long ago, in the largest whole unit."""
    seconds = int((now - since).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return "just now"  # unreachable: seconds >= 60 here


def text_line(text: str, limit: int) -> str:
    """Someone's text as one printable line of at most about ``limit`` characters."""
    return printable(clip(text, limit))


def record_words(record: Record) -> str:
    """``request repo-12 (open) from developer on t1 (attempt 1) to task:t2``."""
    head = f"{record.kind.value} {record.id} ({record.status.value}) from {printable(record.author.words())}"
    if record.targets:
        head += " to " + ", ".join(printable(t) for t in record.targets)
    return head


# --- the board -------------------------------------------------------------------------------------
def render(snapshot: Snapshot, *, now: datetime, show_all: bool = False) -> str:
    """The board as Markdown (see the module docstring)."""
    records = list(snapshot.records.values())
    by_standing = {s: [r for r in records if standing(r, now) is s] for s in Standing}
    out = [f"# Coordination board: {snapshot.scope}", ""]
    counts = ", ".join(f"{len(by_standing[s])} {s.value}" for s in Standing)
    out += [
        f"As of {clock_words(now, now)} · {len(records)} record(s): {counts} · "
        f"last sequence number {snapshot.last_seq}",
        "",
    ]
    if snapshot.bad:
        shown = "; ".join(f"line {b.lineno}: {printable(b.problem)}" for b in snapshot.bad[:10])
        more = f" (and {len(snapshot.bad) - 10} more)" if len(snapshot.bad) > 10 else ""
        out += [
            f"> {len(snapshot.bad)} line(s) of {snapshot.scope}.jsonl could not be read and are left "
            f"out: {shown}{more}",
            "",
        ]
    if not records:
        out += [
            "No records yet. Agents post them from inside an attempt with `speedrift signal KIND "
            "--json '{…}'`; speedrift adds handoffs and triage answers; a human answers with "
            "`speedrift answer RECORD_ID`.",
        ]
        return "\n".join(out) + "\n"
    out += _counts_table(records, now)
    sections = [Standing.OPEN, Standing.CLOSED, Standing.EXPIRED] if show_all else [Standing.OPEN]
    for section in sections:
        out += _section(section, by_standing[section], now)
    if not show_all and (by_standing[Standing.CLOSED] or by_standing[Standing.EXPIRED]):
        hidden = len(by_standing[Standing.CLOSED]) + len(by_standing[Standing.EXPIRED])
        out += [
            f"{hidden} closed or expired record(s) not shown: `speedrift board {snapshot.scope} --all`.",
            "",
        ]
    out += _feed(snapshot.lines, now, None if show_all else FEED_LINES)
    return "\n".join(out).rstrip("\n") + "\n"


def as_json(snapshot: Snapshot, *, now: datetime, show_all: bool = False) -> dict[str, Any]:
    """The board's data for ``--json``: counts, the records shown (folded), the feed, bad lines."""
    records = list(snapshot.records.values())
    shown = [r for r in records if show_all or standing(r, now) is Standing.OPEN]
    lines = snapshot.lines if show_all else snapshot.lines[-FEED_LINES:]
    return {
        "scope": snapshot.scope,
        "as_of": format_time(now),
        "last_seq": snapshot.last_seq,
        "counts": {s.value: sum(1 for r in records if standing(r, now) is s) for s in Standing},
        "by_kind": {
            kind.value: {s.value: n for s, n in row.items()} for kind, row in _tally(records, now).items()
        },
        "records": [r.as_dict() | {"standing": standing(r, now).value} for r in shown],
        "activity": [line.as_line() for line in reversed(lines)],
        "bad_lines": [{"line": b.lineno, "problem": b.problem} for b in snapshot.bad],
    }


def _tally(records: Iterable[Record], now: datetime) -> dict[Kind, dict[Standing, int]]:
    rows: dict[Kind, dict[Standing, int]] = {}
    for record in records:
        row = rows.setdefault(record.kind, dict.fromkeys(Standing, 0))
        row[standing(record, now)] += 1
    return {kind: rows[kind] for kind in Kind if kind in rows}


def _counts_table(records: Sequence[Record], now: datetime) -> list[str]:
    out = ["| kind | open | closed | expired |", "|---|---:|---:|---:|"]
    for kind, row in _tally(records, now).items():
        out.append(f"| {kind.value} | " + " | ".join(str(row[s]) for s in Standing) + " |")
    return [*out, ""]


def _section(section: Standing, records: Sequence[Record], now: datetime) -> list[str]:
    out = [f"## {section.value.capitalize()} ({len(records)})", ""]
    if not records:
        return [*out, "None.", ""]
    for kind in Kind:
        group = sorted((r for r in records if r.kind is kind), key=lambda r: r.seq)
        if not group:
            continue
        out += [
            f"### {kind.value} ({len(group)})",
            "",
            "| id | status | author | targets | summary | age |",
            "|---|---|---|---|---|---|",
        ]
        for record in group:
            cells = [
                record.id,
                record.status.value,
                record.author.words(),
                ", ".join(record.targets) or "—",
                clip(record.summary, SUMMARY_CELL),
                age_words(record.created_at, now),
            ]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    return out


def _feed(lines: Sequence[Record], now: datetime, limit: int | None) -> list[str]:
    shown = list(lines if limit is None else lines[-limit:])
    title = (
        "## Activity (newest first)"
        if limit is None or len(lines) <= limit
        else (f"## Activity (the last {len(shown)} of {len(lines)} lines, newest first)")
    )
    out = [title, ""]
    for line in reversed(shown):
        when = clock_words(line.at, now)
        who = printable(line.author.words())
        if line.updates:
            said = f": {text_line(line.summary, 200)}" if line.summary else ""
            out.append(f"- {when} · {line.id} {line.kind.value} → {line.status.value} by {who}{said}")
        else:
            out.append(
                f"- {when} · {line.id} {line.kind.value} ({line.status.value}) posted by {who}: "
                f"{text_line(line.summary, 200)}"
            )
    return [*out, ""]


def _cell(value: str) -> str:
    """One table cell: printable, on one line, and no ``|`` to split the row."""
    return printable(" ".join(value.split())).replace("|", "\\|")
