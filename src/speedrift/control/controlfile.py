"""``<repo>/.speedrift/control.json``: what the hub's automation may do in a repo (mode + lease).

Reading fails closed: a missing file is the default ``observe`` mode, and an unreadable or invalid
one is ``observe`` too, with the problem surfaced (``load_control`` returns it; ``read_control``
puts it in ``reason``) — a corrupt file can never grant authority. Writers serialize on
``.speedrift/control.lock`` (flock) and replace the file atomically; ``.speedrift/`` is kept out
of git through ``.git/info/exclude``.

File shape (schema 1)::

    {"schema": 1, "mode": "supervise", "lease_owner": "alice",
     "lease_expires_at": "2026-11-20T14:00:00Z" | null, "updated_at": "...Z",
     "updated_by": "alice", "reason": "night shift"}
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson

from speedrift import fsutil
from speedrift.errors import NotFound, Refused, SpeedriftError, UsageError
from speedrift.layout import STATE_PREFIX, control_lock_path, control_path
from speedrift.register.record import CONTROL_MODES, ControlMode, ControlState
from speedrift.repo import git
from speedrift.times import iso_utc, parse_time

FILE_SCHEMA = 1
LEASED_MODES = ("supervise", "autonomous")
MIN_LEASE = timedelta(seconds=1)
MAX_LEASE = timedelta(days=30)  # a lease is renewed, not granted for ever: longer is a mistake


def check_lease_ttl(ttl: timedelta) -> timedelta:
    """``ttl`` when it is a lease length speedrift grants (1 second to 30 days), else a UsageError
    naming the range; the CLI, the API and :func:`write_control` all check with this."""
    if not MIN_LEASE <= ttl <= MAX_LEASE:
        raise UsageError(
            f"the lease TTL must be between 1 second and {MAX_LEASE.days} days",
            hint="e.g. --lease-ttl 2h or 7d (leave it out: no expiry)",
        )
    return ttl


def _from_dict(data: Any) -> ControlState:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    mode = data.get("mode", "observe")
    if mode not in CONTROL_MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(CONTROL_MODES)}")
    owner = data.get("lease_owner")
    if owner is not None and (not isinstance(owner, str) or not owner):
        raise ValueError("lease_owner must be a non-empty string or null")
    expires_raw = data.get("lease_expires_at")
    expires = parse_time(expires_raw)
    if expires_raw is not None and expires is None:
        raise ValueError(f"lease_expires_at {expires_raw!r} is not an ISO-8601 time")
    texts = {key: data.get(key) for key in ("updated_by", "reason")}
    return ControlState(
        mode=cast(ControlMode, mode),
        lease_owner=owner,
        lease_expires_at=expires,
        updated_at=parse_time(data.get("updated_at")),
        updated_by=texts["updated_by"] if isinstance(texts["updated_by"], str) else None,
        reason=texts["reason"] if isinstance(texts["reason"], str) else None,
    )


def load_control(repo: Path) -> tuple[ControlState, str | None]:
    """The repo's control state and, when the file is unusable, the problem (state is then observe)."""
    path = control_path(repo)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ControlState(), None
    except OSError as error:
        return ControlState(), f"{path}: unreadable ({error.strerror}); treated as observe"
    try:
        return _from_dict(orjson.loads(raw)), None
    except (orjson.JSONDecodeError, ValueError) as error:
        return ControlState(), f"{path}: invalid ({error}); treated as observe — fix: `speedrift mode`"


def read_control(repo: Path) -> ControlState:
    """Fail-closed read: missing or corrupt means observe (the problem is carried in ``reason``)."""
    state, problem = load_control(repo)
    if problem is None:
        return state
    return ControlState(mode="observe", reason=problem)


def _locked(repo: Path) -> contextlib.AbstractContextManager[None]:
    return fsutil.flocked(control_lock_path(repo))


def _to_dict(state: ControlState) -> dict[str, Any]:
    return {
        "schema": FILE_SCHEMA,
        "mode": state.mode,
        "lease_owner": state.lease_owner,
        "lease_expires_at": iso_utc(state.lease_expires_at) if state.lease_expires_at else None,
        "updated_at": iso_utc(state.updated_at) if state.updated_at else None,
        "updated_by": state.updated_by,
        "reason": state.reason,
    }


def _write(repo: Path, state: ControlState) -> None:
    data = orjson.dumps(_to_dict(state), option=orjson.OPT_INDENT_2) + b"\n"
    fsutil.write_atomic(control_path(repo), data, keep_mode=False)


def _prepare(repo: Path) -> None:
    if not repo.is_dir():
        raise NotFound(f"{repo} is not a directory", hint="check the repo's path in ecosystem.toml")
    if (repo / ".git").exists():
        with contextlib.suppress(SpeedriftError, OSError):
            git.exclude_locally(repo, STATE_PREFIX)  # runtime state never shows as untracked


def write_control(
    repo: Path,
    mode: str,
    *,
    owner: str | None,
    lease_ttl: timedelta | None,
    actor: str,
    reason: str | None,
    now: datetime,
) -> ControlState:
    """Set the mode (and lease). supervise/autonomous without an owner: the actor holds the lease.

    ``lease_ttl`` None means no expiry; the lease starts at ``now``.
    """
    if mode not in CONTROL_MODES:
        raise UsageError(f"unknown control mode {mode!r}", hint=f"use one of {', '.join(CONTROL_MODES)}")
    if lease_ttl is not None:
        check_lease_ttl(lease_ttl)
    if not actor:
        raise UsageError("an actor is required to change the control mode", hint="pass --owner or set $USER")
    if mode in LEASED_MODES and not owner:
        owner = actor
    _prepare(repo)
    state = ControlState(
        mode=mode,
        lease_owner=owner or None,
        lease_expires_at=now + lease_ttl if lease_ttl is not None and owner else None,
        updated_at=now,
        updated_by=actor,
        reason=reason,
    )
    with _locked(repo):
        _write(repo, state)
    return state


def release_lease(
    repo: Path, *, actor: str, now: datetime, reason: str | None = None, owner: str | None = None
) -> ControlState:
    """Give up the lease (the mode stays; without a lease the hub has no authority).

    With ``owner``, refuses when someone else holds the lease. Releasing no lease is a no-op.
    """
    _prepare(repo)
    with _locked(repo):
        current, problem = load_control(repo)
        if problem is None and current.lease_owner is None:
            return current
        if owner is not None and current.lease_owner not in (None, owner):
            raise Refused(
                f"the lease in {repo} is held by {current.lease_owner}, not {owner}",
                hint=f"release it as {current.lease_owner}, or set the mode again with `speedrift mode`",
            )
        state = ControlState(
            mode=current.mode,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
            updated_by=actor,
            reason=reason or "lease released",
        )
        _write(repo, state)
    return state
