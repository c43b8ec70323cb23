"""Repo leases in the register: which hub may act on which repo, when several hubs share one register.

A lease is a ``repo_leases`` row (repo, hub, host, pid, acquired_at, renewed_at, expires_at). A hub
takes or renews, in ONE transaction, every row that is its own or expired; a row another hub holds
and that has not expired is left alone. Invariant: two hubs never hold the same repo at once —
PostgreSQL locks the rows it takes (``SELECT … FOR UPDATE SKIP LOCKED``: a row another hub's
acquire has locked right now is skipped, not waited for), SQLite's ``BEGIN IMMEDIATE`` serializes
the whole transaction. Time is a parameter; times are stored as ``speedrift.times.sortable`` text,
so ``expires_at < now`` compares text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from speedrift.register.db import Tx, placeholders
from speedrift.times import sortable

CHUNK = 500  # repos per IN (…) list: well under every SQLite build's bound-parameter limit


@dataclass(frozen=True)
class LeaseRow:
    repo: str
    hub: str
    host: str | None
    pid: int | None
    acquired_at: str
    renewed_at: str
    expires_at: str

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> LeaseRow:
        pid = row["pid"]
        return cls(
            repo=str(row["repo"]),
            hub=str(row["hub"]),
            host=row["host"],
            pid=None if pid is None else int(pid),
            acquired_at=str(row["acquired_at"]),
            renewed_at=str(row["renewed_at"]),
            expires_at=str(row["expires_at"]),
        )


@dataclass(frozen=True)
class LeaseGrant:
    """What an acquire got: the repos this hub now holds, and each asked-for repo another hub holds
    (its live lease). A repo in neither was being taken by another hub at that very moment: ask again
    next round."""

    held: tuple[str, ...]
    others: dict[str, LeaseRow]


def _chunks(repos: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(repos), CHUNK):
        yield repos[start : start + CHUNK]


def acquire(
    tx: Tx, hub_id: str, repos: Sequence[str], now: datetime, ttl: timedelta, host: str, pid: int
) -> LeaseGrant:
    """Take or renew the leases on ``repos`` for ``hub_id`` (see the module docstring). Renewing keeps
    ``acquired_at``; taking a row over (expired, another hub's) starts it afresh."""
    wanted = sorted(set(repos))  # one order for every hub: concurrent inserts never wait in a cycle
    if not wanted:
        return LeaseGrant((), {})
    stamp, until = sortable(now), sortable(now + ttl)
    existing: set[str] = set()
    for chunk in _chunks(wanted):  # insert only the missing rows: a renewal round inserts nothing
        rows = tx.query(f"SELECT repo FROM repo_leases WHERE repo IN ({placeholders(len(chunk))})", chunk)  # noqa: S608
        existing.update(str(row["repo"]) for row in rows)
    tx.executemany(  # another hub inserting the same repo right now: ON CONFLICT leaves it theirs
        "INSERT INTO repo_leases (repo, hub, host, pid, acquired_at, renewed_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo) DO NOTHING",
        [(repo, hub_id, host, pid, stamp, stamp, until) for repo in wanted if repo not in existing],
    )
    held: list[str] = []
    for chunk in _chunks(wanted):
        locked = tx.query(
            f"SELECT repo FROM repo_leases WHERE repo IN ({placeholders(len(chunk))}) "  # noqa: S608
            "AND (hub = ? OR expires_at < ?) ORDER BY repo FOR UPDATE SKIP LOCKED",
            (*chunk, hub_id, stamp),
        )
        mine = [str(row["repo"]) for row in locked]
        if mine:
            tx.execute(
                "UPDATE repo_leases SET acquired_at = CASE WHEN hub = ? THEN acquired_at ELSE ? END, "  # noqa: S608
                "hub = ?, host = ?, pid = ?, renewed_at = ?, expires_at = ? "
                f"WHERE repo IN ({placeholders(len(mine))})",
                (hub_id, stamp, hub_id, host, pid, stamp, until, *mine),
            )
        held.extend(mine)
    taken = set(held)
    rest = [repo for repo in wanted if repo not in taken]
    others: dict[str, LeaseRow] = {}
    for chunk in _chunks(rest):
        for row in tx.query(
            f"SELECT * FROM repo_leases WHERE repo IN ({placeholders(len(chunk))}) "  # noqa: S608
            "AND hub <> ? AND expires_at >= ?",
            (*chunk, hub_id, stamp),
        ):
            others[str(row["repo"])] = LeaseRow.of(row)
    return LeaseGrant(tuple(held), others)


def release(tx: Tx, hub_id: str, repos: Sequence[str] | None) -> int:
    """Delete ``hub_id``'s rows (all, or those of ``repos``). Returns how many were deleted."""
    if repos is None:
        return tx.execute("DELETE FROM repo_leases WHERE hub = ?", (hub_id,))
    wanted = sorted(set(repos))
    return sum(
        tx.execute(
            f"DELETE FROM repo_leases WHERE hub = ? AND repo IN ({placeholders(len(chunk))})",  # noqa: S608
            (hub_id, *chunk),
        )
        for chunk in _chunks(wanted)
    )
