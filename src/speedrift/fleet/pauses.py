"""What pauses an agent runtime for the whole machine, and what every supervisor asks before a claim.

The store itself (one JSON file in the state home, flock + atomic writes) is
:mod:`speedrift.pausestore`; this module decides:

- **usage limit** (class ``usage_limit``): the runtime pauses until the reset time the provider
  named, or :data:`USAGE_LIMIT_FALLBACK` from now when it named none;
- **rate limit** (the runtime's verdict ``rate_limit``, agents/protocol.py): the runtime is held
  until the reset the provider named (retry-after, its reset headers), or for
  :data:`RATE_LIMIT_HOLD` when it named none — the next task must not walk into the same limit;
- **repeated rate limits**: :data:`RATE_LIMIT_STRIKES` attempts on one runtime failing on a rate
  limit (HTTP 429, "rate limit", "too many requests") within :data:`RATE_LIMIT_WINDOW` pause it for
  :data:`RATE_LIMIT_PAUSE` (or until the provider's reset, when later);
- **auth failure** (class ``auth_failure``): paused until a human lifts it — one escalation with
  the login command, instead of every task failing on the same refused key;
- **failed preflight** (:mod:`speedrift.agents.preflight`: the CLI is missing, does not run, or
  says it is not logged in), before the first dispatch to a runtime and again after a failure
  classed ``auth_failure`` or ``env_bootstrap``: paused until a human lifts it, with the fix
  (install command, login command, environment variable).

:func:`blocking_pause` is what every supervisor calls before it claims a task (``Pipeline.run``
does, so ``speedrift run``, the service and the hub's workers are all covered); the service skips
a paused runtime's tasks and the hub holds them with rule ``runtime_paused``. ``[policy]
auto_resume = false`` (published into the store by the hub) keeps every pause until
``speedrift resume-runtime NAME``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import pausestore
from speedrift.agents import preflight
from speedrift.agents.preflight import Preflight
from speedrift.agents.protocol import FailureKind
from speedrift.errors import Refused
from speedrift.failure_class import FailureClass
from speedrift.pausestore import PauseCause, RuntimePause
from speedrift.times import now_utc

USAGE_LIMIT_FALLBACK = timedelta(hours=1)
RATE_LIMIT_STRIKES = 3
RATE_LIMIT_WINDOW = timedelta(minutes=15)
RATE_LIMIT_PAUSE = timedelta(minutes=10)
RATE_LIMIT_HOLD = timedelta(minutes=1)  # a 429 that named no reset: rate windows are per minute
_RATE_LIMITED = re.compile(r"\b429\b|rate[ _-]?limit|too many requests", re.IGNORECASE)


class RuntimePaused(Refused):
    """A task was not claimed because its runtime is paused: no attempt was burned."""

    def __init__(self, pause: RuntimePause, now: datetime, *, auto_resume: bool = True) -> None:
        hint = pause.fix or f"wait, or lift it now with `speedrift resume-runtime {pause.runtime}`"
        if pause.fix and (pause.needs_human or not auto_resume):
            hint += f"; then `speedrift resume-runtime {pause.runtime}`"
        super().__init__(pause.sentence(now, auto_resume), hint=hint)
        self.pause = pause


def provider_of(runtime: str, model: str | None) -> str | None:
    """The provider a model names, where the runtime spells it (opencode's ``provider/model``)."""
    if runtime == "opencode" and model and "/" in model:
        return model.split("/", 1)[0] or None
    return None


def blocking_pause(
    runtime: str, model: str | None = None, now: datetime | None = None
) -> RuntimePause | None:
    """The pause that keeps a task on ``runtime`` (asking for ``model``) from being dispatched now."""
    return pausestore.blocking(runtime, provider_of(runtime, model), now or now_utc())


def refuse_if_paused(runtime: str, model: str | None, now: datetime) -> None:
    """Raise :class:`RuntimePaused` when ``runtime`` is paused at ``now``."""
    book = pausestore.read()
    pause = book.blocking(runtime, provider_of(runtime, model), now)
    if pause is not None:
        raise RuntimePaused(pause, now, auto_resume=book.auto_resume)


def _repo(repo: Path | None) -> str | None:
    return str(repo) if repo else None


def pause_for_preflight(
    check: Preflight,
    *,
    model: str | None,
    set_by: str,
    now: datetime,
    repo: Path | None = None,
    task: str | None = None,
) -> tuple[RuntimePause, bool]:
    """Pause ``check.runtime`` for a failed preflight (until a human lifts it). Returns the pause
    in force and whether it is new (an escalation raised once, however many tasks were waiting)."""
    pause = RuntimePause(
        runtime=check.runtime,
        cause="preflight",
        reason=check.problem,
        since=now,
        until=None,
        fix=check.fix,
        provider=None,  # the CLI itself is the problem: every provider behind it is unusable
        model=model,
        needs_human=True,
        set_by=set_by,
        repo=_repo(repo),
        task=task,
    )
    return pausestore.put(pause, now)


def is_rate_limit(reason: str) -> bool:
    return bool(_RATE_LIMITED.search(reason))


def note_failure(
    *,
    runtime: str,
    model: str | None,
    failure_class: FailureClass | str,
    reason: str,
    reset_at: datetime | None,
    set_by: str,
    now: datetime,
    repo: Path | None = None,
    task: str | None = None,
    recheck: Callable[[], Preflight] | None = None,
    runtime_failure: FailureKind | None = None,
) -> tuple[RuntimePause, bool] | None:
    """What a failed attempt means for its runtime: a pause recorded (and whether it is new), or
    None. ``recheck`` runs the runtime's preflight again (after auth_failure / env_bootstrap);
    ``runtime_failure`` is the runtime's own verdict (a rate limit holds the runtime at once)."""
    provider = provider_of(runtime, model)
    cls = str(failure_class)

    def record(
        cause: PauseCause, why: str, until: datetime | None, **extra: Any
    ) -> tuple[RuntimePause, bool]:
        pause = RuntimePause(
            runtime=runtime,
            cause=cause,
            reason=why,
            since=now,
            until=until,
            provider=provider,
            model=model,
            set_by=set_by,
            repo=_repo(repo),
            task=task,
            **extra,
        )
        return pausestore.put(pause, now)

    if cls == FailureClass.USAGE_LIMIT:
        until = reset_at if reset_at is not None and reset_at > now else now + USAGE_LIMIT_FALLBACK
        named = (
            ""
            if reset_at is not None
            else f" (no reset time given: paused for {_hours(USAGE_LIMIT_FALLBACK)})"
        )
        return record("usage_limit", reason + named, until, fix="", reset_at=reset_at)
    if cls == FailureClass.AUTH_FAILURE:
        found = recheck() if recheck is not None else None
        fix = found.fix if found is not None and found.fix else _login_fix(runtime)
        detail = f"; preflight: {found.problem}" if found is not None and found.problem else ""
        why = f"the provider refused the credentials: {reason}{detail}"
        return record("auth_failure", why, None, fix=fix, needs_human=True)
    if cls == FailureClass.ENV_BOOTSTRAP and recheck is not None:
        found = recheck()
        if not found.ready:
            return pause_for_preflight(found, model=model, set_by=set_by, now=now, repo=repo, task=task)
        return None
    rate_limited = runtime_failure is FailureKind.RATE_LIMIT
    if cls == FailureClass.TRANSIENT_INFRA and (rate_limited or is_rate_limit(reason)):
        strikes = pausestore.strike(
            pausestore.Strike(runtime, provider, now, reason[:300]), RATE_LIMIT_WINDOW
        )
        if len(strikes) >= RATE_LIMIT_STRIKES:
            until = max(now + RATE_LIMIT_PAUSE, reset_at) if reset_at is not None else now + RATE_LIMIT_PAUSE
            why = f"{len(strikes)} attempts rate-limited within {_minutes(RATE_LIMIT_WINDOW)}; last: {reason}"
            return record("rate_limit", why, until, fix="", reset_at=reset_at)
        if rate_limited:
            # held until the provider takes requests again: the next task must not hit the same 429
            ahead = reset_at is not None and reset_at > now
            until = reset_at if ahead and reset_at is not None else now + RATE_LIMIT_HOLD
            why = reason if ahead else f"{reason} (no reset time given: held for {_minutes(RATE_LIMIT_HOLD)})"
            return record("rate_limit", why, until, fix="", reset_at=reset_at)
    return None


def _login_fix(runtime: str) -> str:
    return preflight.LOGIN_FIX.get(runtime, "") or f"check {runtime}'s credentials"


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} hour" + ("" if hours == 1 else "s")


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} minutes"


def resume(runtime: str, *, by: str, now: datetime | None = None) -> list[RuntimePause]:
    """Lift every pause of ``runtime`` (``speedrift resume-runtime``); returns what was lifted."""
    preflight.forget(runtime)  # the human fixed something: the next dispatch checks again
    return pausestore.lift(runtime, by=by, now=now or now_utc())
