"""Which repos this hub may act on in a cycle: the hub's identity, the lease step, and the actions a
lease holds back.

Several hubs may share one register. A repo is acted on by one hub at a time: before it executes,
a hub takes (or renews) a lease row per repo in the register (``Register.acquire_leases``); the
repos another live hub holds are not acted on, and a lease nobody renewed past its expiry is taken
over.

Invariant (fail-closed): an action runs only in a repo whose lease this hub confirmed in this same
cycle and that has not run out since, by this hub's clock. Every other action is kept as a
:class:`~speedrift.register.record.Skipped` with its :class:`HubRule` and a reason naming the hub
that holds the repo, so the cycle record, the ledger and the hints show it like any other cut.

Pure, time a parameter — except :func:`hub_identity`, which reads the environment and the host name
(both passed in by tests).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift.errors import UsageError
from speedrift.register.actions import Action
from speedrift.register.record import Skipped
from speedrift.register.store import LeaseGrant, LeaseRow
from speedrift.times import clock_words, iso_utc, parse_time

HUB_ID_ENV = "SPEEDRIFT_HUB_ID"
HUB_ID_MAX = 200  # characters: an id is shown in every reason a lease holds an action back
DEFAULT_LEASE_TTL = timedelta(seconds=300)
MIN_LEASE_TTL = timedelta(seconds=60)
LEASE_TTL_INTERVALS = 3  # `hub up` leases for three intervals: one missed cycle does not lose a repo


class HubRule(StrEnum):
    """The rules (``Skipped.rule``) by which a hub holds back actions the policy allowed."""

    HUB_LEASE = "hub_lease"  # another hub holds the repo's lease
    REGISTER_UNAVAILABLE = "register_unavailable"  # the lease could not be confirmed: fail closed


def hub_identity(hub_dir: Path, environ: Mapping[str, str] | None = None, host: str | None = None) -> str:
    """``$SPEEDRIFT_HUB_ID`` when set, else ``<host name>:<hub directory>``: the same across restarts,
    different for two hubs on one machine with different hub directories."""
    env = os.environ if environ is None else environ
    explicit = env.get(HUB_ID_ENV, "").strip()
    if explicit:
        if len(explicit) > HUB_ID_MAX or not explicit.isprintable():
            raise UsageError(
                f"${HUB_ID_ENV} must be printable text of at most {HUB_ID_MAX} characters",
                hint=f"e.g. {HUB_ID_ENV}=hub-eu-1, or unset it to use <host>:<hub directory>",
            )
        return explicit
    return f"{host or socket.gethostname()}:{hub_dir.resolve()}"


def lease_ttl_for(interval_seconds: float) -> timedelta:
    """How long `hub up` leases its repos: three intervals, at least a minute."""
    return max(timedelta(seconds=LEASE_TTL_INTERVALS * interval_seconds), MIN_LEASE_TTL)


def repos_to_lease(
    all_repos: Sequence[str], allowed: Sequence[Action], *, plan_only: bool
) -> tuple[str, ...]:
    """The repos a cycle leases: every repo of the ecosystem when it executes; in a plan-only cycle
    only the repos of the actions an operator approved (they run on the operator's authority), so a
    plan-only cycle with nothing approved takes no lease."""
    if not plan_only:
        return tuple(all_repos)
    return tuple(sorted({action.repo for action in allowed}))


@dataclass(frozen=True)
class Leased:
    """The repos this hub confirmed this cycle, when (by its clock) and for how long."""

    held: frozenset[str]
    others: Mapping[str, LeaseRow]
    confirmed_at: datetime
    ttl: timedelta
    unconfirmed: frozenset[str] = field(default_factory=frozenset)  # asked for, neither ours nor theirs

    @classmethod
    def of(cls, grant: LeaseGrant, asked: Iterable[str], now: datetime, ttl: timedelta) -> Leased:
        held = frozenset(grant.held)
        others = dict(grant.others)
        missing = frozenset(r for r in asked if r not in held and r not in others)
        return cls(held=held, others=others, confirmed_at=now, ttl=ttl, unconfirmed=missing)

    @property
    def expires_at(self) -> datetime:
        return self.confirmed_at + self.ttl

    def holds(self, repo: str, now: datetime) -> bool:
        return repo in self.held and now < self.expires_at

    def due_for_renewal(self, now: datetime) -> bool:
        """Half the lease has gone by (a long action ran): renew before acting again."""
        return now - self.confirmed_at >= self.ttl / 2


def lease_reason(repo: str, row: LeaseRow | None, now: datetime, *, ran_out: datetime | None = None) -> str:
    """Why an action in ``repo`` is held by :attr:`HubRule.HUB_LEASE`, in words."""
    if row is not None:
        until = parse_time(row.expires_at)
        when = clock_words(until, now) if until else row.expires_at
        return (
            f"{repo} is leased by hub {row.hub} (pid {row.pid} on {row.host}) until {when}: one hub acts "
            "on a repo at a time; this hub takes it over if that lease runs out unrenewed"
        )
    if ran_out is not None:
        return (
            f"this hub's lease on {repo} ran out at {clock_words(ran_out, now)} during the cycle and could "
            "not be renewed; the next cycle leases it again"
        )
    return f"this hub's lease on {repo} could not be confirmed this cycle; the next cycle tries again"


def unavailable_reason(detail: str) -> str:
    return (
        f"the register cannot be reached ({detail}): no lease can be confirmed, so the hub executes "
        "nothing and keeps observing; it resumes once the register answers"
    )


def split_by_lease(
    actions: Sequence[Action], leased: Leased, now: datetime
) -> tuple[tuple[Action, ...], tuple[Skipped, ...]]:
    """The actions in repos this hub holds, and the others held back with :attr:`HubRule.HUB_LEASE`."""
    keep: list[Action] = []
    cut: list[Skipped] = []
    for action in actions:
        if leased.holds(action.repo, now):
            keep.append(action)
        else:
            ran_out = leased.expires_at if action.repo in leased.held else None
            reason = lease_reason(action.repo, leased.others.get(action.repo), now, ran_out=ran_out)
            cut.append(Skipped(action, HubRule.HUB_LEASE.value, reason))
    return tuple(keep), tuple(cut)


def hold_all(actions: Sequence[Action], detail: str) -> tuple[Skipped, ...]:
    """Every action held back because the register (and so the lease) cannot be reached."""
    reason = unavailable_reason(detail)
    return tuple(Skipped(action, HubRule.REGISTER_UNAVAILABLE.value, reason) for action in actions)


def takeable(rows: Sequence[LeaseRow], hub_id: str, repos: Iterable[str], now: datetime) -> frozenset[str]:
    """The repos of ``repos`` this hub could lease right now: held by nobody, or by a lease run out.

    A change in this set (another hub released or stopped renewing) is worth a cycle; another hub
    renewing its own leases is not."""
    live = {
        row.repo
        for row in rows
        if row.hub != hub_id and (until := parse_time(row.expires_at)) is not None and until > now
    }
    mine = {row.repo for row in rows if row.hub == hub_id}
    return frozenset(r for r in repos if r not in live and r not in mine)


def lease_view(rows: Sequence[LeaseRow], hub_id: str, now: datetime) -> list[dict[str, Any]]:
    """The register's leases as `hub status` shows them, by repo (this hub's marked, run-out ones so)."""
    shown: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r.repo, r.hub)):
        until = parse_time(row.expires_at)
        shown.append(
            {
                "repo": row.repo,
                "hub": row.hub,
                "host": row.host,
                "pid": row.pid,
                "acquired_at": row.acquired_at,
                "renewed_at": row.renewed_at,
                "expires_at": iso_utc(until) if until else row.expires_at,
                "expired": until is None or until <= now,
                "this_hub": row.hub == hub_id,
            }
        )
    return shown
