"""Reset times and error texts: what turns a provider's refusal into a typed failure.

The CLIs print usage-limit reset times as local wall-clock text (claude with the zone in
parentheses, codex with no zone at all), so every parser here takes the reference time and the
child's zone, which the session pins (TZ=UTC unless configured).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from speedrift.agents._common import integer, number, obj, text
from speedrift.times import now_utc

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_EPOCH_MAX = 253_402_300_799  # 9999-12-31: anything later is not a reset time

# claude 2.1: "You've hit your session limit · resets 2:21am (UTC)",
# "… · resets Nov 22, 8:21pm (America/New_York)" (a year is added when it differs).
_CLAUDE_RESET = re.compile(
    r"resets (?:(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2})(?:, (?P<year>\d{4}))?,? )?"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?(?P<ampm>[ap]m)(?: \((?P<zone>[^)]+)\))?"
)
# codex 0.169: "… try again at 11:52 PM." or "… try again at Nov 21st, 2026 2:22 AM."
_CODEX_RESET = re.compile(
    r"[Tt]ry again at (?:(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2})(?:st|nd|rd|th)?, (?P<year>\d{4}) )?"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}) (?P<ampm>[AP]M)"
)
# OpenCode Zen/Go: "… usage limit reached. It will reset in 3 hours 20 minutes."
_RESET_IN = re.compile(r"reset in ((?:\d+ (?:day|hour|minute|second)s?,? ?(?:and )?)+)", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+) (day|hour|minute|second)")
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")  # OpenAI's x-ratelimit-reset-*: "6m0s"

# Claude's subscription usage-limit and credit texts (ASCII apostrophe, " · " separators).
CLAUDE_USAGE_LIMIT = re.compile(
    r"You['’]ve hit your (?:[\w .'’-]+ )?limit|You['’]re out of usage credits|"
    r"Your org is out of usage|Your seat type doesn['’]t include usage credits"
)
# Codex writes U+2019 in 0.169 and an ASCII apostrophe in public source; accept both.
CODEX_USAGE_LIMIT = re.compile(
    r"You[’']ve hit your usage limit|out of credits|hit your spend cap|Quota exceeded|"
    r"upgrade to Plus|usage_limit_reached",
    re.IGNORECASE,
)
AUTH_TEXT = re.compile(
    r"\b401\b|\b403\b|unauthori[sz]ed|invalid api key|incorrect api key|invalid x-api-key|"
    r"authentication|not logged in|please run /login|missing environment variable|api key|"
    r"permission denied \(forbidden\)|oauth",
    re.IGNORECASE,
)
# The provider faults' texts as the three CLIs (and the SDKs beneath them) print them, in one place:
# each runtime asks them in its own order, after what its structured fields already said.
RATE_LIMIT_TEXT = re.compile(
    r"\b429\b|too many requests|too_many_requests|rate[ _-]?limit|rate increased too quickly|"
    r"Request rejected \(429\)|temporarily limiting requests|not your usage limit",
    re.IGNORECASE,
)
UNREACHABLE_TEXT = re.compile(
    r"Unable to connect|Cannot connect to API|Connection error|Connection ?Refused|connection failed|"
    r"ECONNREFUSED|ENOTFOUND|EAI_AGAIN|getaddrinfo|EHOSTUNREACH|ENETUNREACH|network is unreachable|"
    r"FailedToOpenSocket|waiting for network|failed to lookup address|name does not resolve|"
    r"error sending request|dns error",
    re.IGNORECASE,
)
MALFORMED_TEXT = re.compile(
    r"empty or malformed response|stream disconnected before completion|stream closed before|"
    r"utf-?8 error|invalid utf-8|failed to parse sse|error decoding|JSON parsing failed|JSONParseError|"
    r"TypeValidationError|Invalid JSON response|JSON Parse error|Unexpected token|Unrecognized token",
    re.IGNORECASE,
)
TRANSIENT_TEXT = re.compile(
    r"\b5\d\d\b|overloaded|high demand|at capacity|temporar|timed? ?out|timeout|"
    r"connection|connect|network|disconnected|error sending request|unreachable|"
    r"econnre|socket|dns|name does not resolve|retry limit|rate limit|too many requests|\b429\b",
    re.IGNORECASE,
)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def reference_now(now: datetime | None) -> datetime:
    return now if now is not None else now_utc()


def from_epoch(value: Any) -> datetime | None:
    seconds = number(value)
    if not 0 < seconds < _EPOCH_MAX:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _hour24(hour: int, ampm: str) -> int:
    return hour % 12 + (12 if ampm.lower() == "pm" else 0)


def _wall_clock(m: re.Match[str], tz: ZoneInfo, now: datetime) -> datetime | None:
    """The earliest instant a printed reset time can safely denote: the next one at or after `now`
    when the date is left out (the CLIs drop it for resets within a day), rounded up to the end of
    the printed minute — the CLIs cut the seconds off, so "9:44 PM" is a reset somewhere in
    21:44:00-21:44:59, and resuming at 21:44:00 could be up to 59 s early."""
    start = _printed_minute(m, tz, now)
    return start + _MINUTE if start is not None else None


_MINUTE = timedelta(minutes=1)


def _printed_minute(m: re.Match[str], tz: ZoneInfo, now: datetime) -> datetime | None:
    hour = int(m["hour"])
    if not 1 <= hour <= 12:
        return None
    minute = int(m["minute"] or 0)
    if minute > 59:
        return None
    hour = _hour24(hour, m["ampm"])
    local_now = now.astimezone(tz)
    try:
        if m["mon"]:
            month = _MONTHS.get(m["mon"])
            if month is None:
                return None
            year = int(m["year"]) if m["year"] else local_now.year
            when = datetime.combine(date(year, month, int(m["day"])), datetime.min.time(), tz)
            when = when.replace(hour=hour, minute=minute)
            if not m["year"] and when < local_now - timedelta(days=1):
                when = when.replace(year=year + 1)  # "Jan 2" printed on Dec 31
            return when.astimezone(UTC)
        when = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        return None
    if when < local_now - timedelta(minutes=1):
        when += timedelta(days=1)
    return when.astimezone(UTC)


def claude_reset(message: str, now: datetime | None, default_tz: str) -> datetime | None:
    m = _CLAUDE_RESET.search(message)
    if m is None:
        return None
    return _wall_clock(m, zone(m["zone"] or default_tz), reference_now(now))


def codex_reset(message: str, now: datetime | None, tz: str) -> datetime | None:
    m = _CODEX_RESET.search(message)
    if m is None:
        return None
    return _wall_clock(m, zone(tz), reference_now(now))


def reset_in(message: str, now: datetime | None) -> datetime | None:
    """A relative reset ("It will reset in 3 hours 20 minutes")."""
    m = _RESET_IN.search(message)
    if m is None:
        return None
    unit_s = {"day": 86_400, "hour": 3_600, "minute": 60, "second": 1}
    seconds = sum(int(n) * unit_s[unit] for n, unit in _DURATION_PART.findall(m.group(1)))
    return reference_now(now) + timedelta(seconds=seconds) if seconds else None


# OpenAI-style waits in a 429's message: "Please try again in 20s." / "in 1.2s" / "in 1m30s".
_TRY_AGAIN_IN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)\b", re.IGNORECASE)


def said_reset(message: str, at: datetime) -> datetime | None:
    """The reset a provider's message names, counted from ``at`` (when it was said): OpenAI's
    "Please try again in 20s." / "in 1m30s", or a relative "It will reset in 3 hours"."""
    m = _TRY_AGAIN_IN.search(message)
    if m is not None:
        seconds = _go_duration(m.group(1))
        if seconds is not None:
            return at + timedelta(seconds=seconds)
    return reset_in(message, at)


def _go_duration(value: str) -> float | None:
    parts = _GO_DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def http_reset(headers: Mapping[str, Any], body: Any, now: datetime | None) -> datetime | None:
    """The latest reset time an HTTP 429 announces, from its headers or its JSON error body.

    The latest, because waiting past a short per-minute window is harmless while retrying before
    a long usage window ends just burns another attempt.
    """
    ref = reference_now(now)
    h = {str(k).lower(): text(v) for k, v in headers.items()}
    found: list[datetime] = []

    def after(seconds: float | None) -> None:
        if seconds is not None and 0 <= seconds < _EPOCH_MAX:
            found.append(ref + timedelta(seconds=seconds))

    if "retry-after-ms" in h:
        after(_float(h["retry-after-ms"], 0.001))
    if "retry-after" in h:
        seconds = _float(h["retry-after"], 1.0)
        if seconds is None:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                found.append(parsedate_to_datetime(h["retry-after"]).astimezone(UTC))
        else:
            after(seconds)
    for key in ("anthropic-ratelimit-unified-reset", "x-ratelimit-reset"):
        epoch = from_epoch(_float(h.get(key, ""), 1.0))
        if epoch is not None:
            found.append(epoch)
    for key in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        if key in h:
            after(_go_duration(h[key]))
    error = obj(obj(body).get("error"))
    epoch = from_epoch(error.get("resets_at"))
    if epoch is not None:
        found.append(epoch)
    elif integer(error.get("resets_in_seconds")):
        after(float(integer(error.get("resets_in_seconds"))))
    return max(found) if found else None


def _float(value: str, scale: float) -> float | None:
    try:
        parsed = float(value)
    except ValueError:
        return None
    return parsed * scale if math.isfinite(parsed) else None
