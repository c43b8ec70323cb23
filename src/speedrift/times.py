"""Time, one home: the current moment, parsing and formatting every timestamp speedrift reads or writes.

Invariant: every moment speedrift handles is timezone-aware UTC. Parsers return ``None`` for an
absent or unparsable value (wg's rule: an unparsable time never blocks); a naive stamp is taken as
UTC; a moment past year 9000 or before year 1000 (``9999-12-31T23:59:59-05:00`` is legal RFC 3339)
is read as that bound, so adding a day or a lease to any parsed moment never overflows. The
written forms, each for one reason:

- :func:`format_time` — wg's RFC 3339 (``2026-11-20T12:00:00+00:00``), for graph fields and run records;
- :func:`iso_utc` — ISO 8601 with ``Z`` (``2026-11-20T12:00:00Z``), for the control plane's JSON;
- :func:`stamp` / :func:`sortable` — fixed-width forms whose text order is time order (file names, SQL).
- :func:`clock_words` — what a person reads in a sentence (``14:05 UTC``, another day's date added).

Durations typed by a user (``45s``, ``30m``, ``2h``, ``1d``, ``1w``) are read by :func:`parse_duration`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from speedrift.errors import UsageError

# Bounds every parsed moment is held within: far enough to mean "never" and "always", near
# enough that timedelta arithmetic of any size speedrift uses stays inside datetime's range.
FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)
FAR_PAST = datetime(1000, 1, 1, tzinfo=UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 / ISO 8601 timestamp (``Z`` or an offset; wg's nanoseconds), or None."""
    if not isinstance(value, str) or not value:
        return None
    parsed: datetime | None
    try:  # the common case first: 3.11's fromisoformat reads wg's usual stamps
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_lenient(value)
    if parsed is None:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:  # an offset pushes it past year 1 or 9999
        return FAR_FUTURE if parsed.year > 5000 else FAR_PAST
    if utc > FAR_FUTURE:
        return FAR_FUTURE
    if utc < FAR_PAST:
        return FAR_PAST
    return parsed


def _parse_lenient(value: str) -> datetime | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python < 3.12 accepts at most 6 fractional digits; wg writes nanoseconds.
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        if end - dot > 7:
            text = text[: dot + 7] + text[end:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def format_time(moment: datetime) -> str:
    """wg's form: RFC 3339 with a numeric UTC offset."""
    return _utc(moment).isoformat()


def iso_utc(moment: datetime, timespec: str = "auto") -> str:
    """``2026-11-20T12:00:00Z`` (microseconds kept when present, or to ``timespec`` such as
    ``"milliseconds"``): the control plane's JSON form."""
    return _utc(moment).isoformat(timespec=timespec).replace("+00:00", "Z")


def stamp(moment: datetime) -> str:
    """A filename-safe UTC stamp, fixed width so names sort in time order: ``20261120T120000.000000Z``."""
    return _utc(moment).strftime("%Y%m%dT%H%M%S.%fZ")


def short_stamp(moment: datetime) -> str:
    """A filename-safe UTC stamp to the second: ``20261120T120000Z`` (cycle ids, quarantine names)."""
    return _utc(moment).strftime("%Y%m%dT%H%M%SZ")


def sortable(moment: datetime | str | None) -> str | None:
    """A fixed-width text form (microseconds always present), so text order is time order (SQL columns)."""
    parsed = parse_time(moment) if isinstance(moment, str) else moment
    if parsed is None:
        return None
    return _utc(parsed).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def clock_words(moment: datetime, now: datetime) -> str:
    """``14:05 UTC`` today, ``2026-11-21 14:05 UTC`` on another day (seconds shown when not :00)."""
    moment = moment.astimezone(now.tzinfo) if now.tzinfo else moment
    fmt = "%H:%M:%S" if moment.second else "%H:%M"
    day = "" if moment.date() == now.date() else moment.strftime("%Y-%m-%d ")
    return f"{day}{moment.strftime(fmt)} UTC"


_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DurationTooLong(UsageError):
    """A well-formed duration past what a ``timedelta`` (or an ``int``) can hold."""


def parse_duration(text: str) -> timedelta:
    """``45s``, ``30m``, ``2h``, ``1d`` or ``1w``; anything else is a :class:`UsageError` saying so."""
    match = _DURATION.match(text.strip().lower())
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "…"
    if not match:
        raise UsageError(f"duration {shown} not understood", hint="use e.g. 45s, 30m, 2h, 1d or 1w")
    try:  # 10**20 weeks overflows timedelta; 5,000 digits is past int()'s limit
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except (OverflowError, ValueError):
        raise DurationTooLong(
            f"duration {shown} is too long", hint="use e.g. 45s, 30m, 2h, 1d or 1w (under 999,999,999 days)"
        ) from None


def parse_moment(text: str) -> datetime:
    """A timestamp typed by a user; a :class:`UsageError` naming the expected form when it is not one."""
    moment = parse_time(text)
    if moment is None:
        raise UsageError(f"timestamp {text!r} is not RFC 3339", hint="e.g. 2026-12-01T09:00:00Z")
    return moment
