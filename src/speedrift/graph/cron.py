"""Cron schedules, the one home for cron math: validation, slots in a time zone, DST, wg's dialect.

Invariant: every slot this module returns is an aware UTC datetime, computed from wall-clock time
in the schedule's time zone with one DST rule (see :func:`next_slot_after`), so a slot is never
run twice or skipped because of a clock change. Pure: the current time is always a parameter.

Schedules are 5 fields (``minute hour day-of-month month day-of-week``), 6 with a leading seconds
field as wg accepts (it must be ``0``: slots are whole minutes), or an alias (``@hourly``,
``@daily``/``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``/``@annually``). The parser is
cronsim (Debian cron's rules), which has no aliases: :data:`ALIASES` expands them.

A task's ``cron_schedule`` (wg's field) is in wg's dialect, read by wg's ``cron`` crate (0.12),
which differs from cron in two ways: it numbers the days of the week 1-7 from Sunday (cron: 0-6,
or 7, from Sunday, so ``1`` is Monday), and it runs a day only when BOTH a restricted
day-of-month and a restricted day-of-week match (cron: either). :func:`task_schedule` therefore
refuses numeric days of the week and that combination when a schedule is set, and
:func:`next_task_slot` reads a stored numeric day of the week as wg does. Task crons are UTC: wg
has no time-zone field and computes its slots in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from speedrift.errors import InvalidValue
from speedrift.times import format_time

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * SUN",  # by name: wg's crate and cron number the days differently
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EXAMPLE = 'e.g. "0 3 * * *" (03:00 every day), "*/15 * * * *", "30 2 * * MON-FRI" or @daily'
_FIELDS = "minute hour day-of-month month day-of-week"
_EPOCH = datetime(2000, 1, 1)
_NUMERIC_DAY = re.compile(r"(?<![#/\d])\d+")  # a day number: not a step (/2) nor an occurrence (#2)


def normalize(expression: str) -> str:
    """The 5-field form cronsim reads: an alias expanded, a leading seconds field dropped."""
    text = expression.strip()
    expression = ALIASES.get(text.lower(), text) if text.startswith("@") else text
    fields = expression.split()
    if len(fields) == 6:  # wg accepts a leading seconds field; cron granularity is minutes
        fields = fields[1:]
    return " ".join(fields)


def validate(expression: str) -> str:
    """``expression`` with its whitespace tidied (an alias lower-cased), or :class:`InvalidValue`
    saying what is wrong with it and how a schedule is written. For the CLI and config loaders."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidValue("the cron schedule is empty", hint=EXAMPLE)
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise InvalidValue(
                f"cron schedule {expression!r} is not a known alias",
                hint=f"use one of {', '.join(ALIASES)}, or 5 fields ({_FIELDS}), {EXAMPLE}",
            )
        return text.lower()
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise InvalidValue(
            f"cron schedule {expression!r} has {len(fields)} field(s); a schedule has 5 ({_FIELDS}),"
            " or 6 with a leading seconds field",
            hint=EXAMPLE,
        )
    if len(fields) == 6 and fields[0] not in ("0", "00"):
        raise InvalidValue(
            f"cron schedule {expression!r} fires at second {fields[0]!r}; speedrift's slots are"
            " whole minutes",
            hint=f"make the seconds field 0, or drop it: {' '.join(fields[1:])!r}",
        )
    try:
        next(CronSim(" ".join(fields[-5:]), _EPOCH))
    except CronSimError as exc:
        raise InvalidValue(f"cron schedule {expression!r} is not valid: {exc}", hint=EXAMPLE) from None
    except StopIteration:
        raise InvalidValue(f"cron schedule {expression!r} never fires", hint=EXAMPLE) from None
    return text


def zone_of(tz: str | tzinfo) -> tzinfo:
    """The time zone named ``tz`` (an IANA name such as ``Europe/Berlin``), or :class:`InvalidValue`."""
    if not isinstance(tz, str):
        return tz
    if tz.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidValue(
            f"time zone {tz!r} is not known", hint='use an IANA name, e.g. "UTC", "Europe/Berlin"'
        ) from None


# --- wall-clock slots ------------------------------------------------------------------------------
def _as_utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)  # naive: UTC


def _exists(wall: datetime, zone: tzinfo) -> bool:
    """Whether the wall-clock time ``wall`` (naive) happens in ``zone`` (not in a spring-forward gap)."""
    local = wall.replace(tzinfo=zone, fold=0)
    return local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _instant(wall: datetime, zone: tzinfo) -> datetime:
    """When the wall-clock slot ``wall`` fires: its first occurrence (fold 0) when the clocks fall
    back; the first whole minute after the gap when it falls in one (the clocks sprang forward)."""
    if zone is UTC:
        return wall.replace(tzinfo=UTC)
    while not _exists(wall, zone):
        wall += timedelta(minutes=1)
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _walls(expression: str, start: datetime, reverse: bool = False) -> Iterator[datetime]:
    """The schedule's wall-clock slots (naive) strictly after (or before) ``start`` (naive)."""
    yield from CronSim(normalize(validate(expression)), start, reverse)  # ends after 50 idle years


def _fold_shift(local: datetime) -> timedelta:
    """How far the wall clock was set back, when ``local`` is the second occurrence of its wall time."""
    if not local.fold:
        return timedelta(0)
    first = local.replace(fold=0).utcoffset() or timedelta(0)
    return first - (local.utcoffset() or timedelta(0))


def next_slot_after(expression: str, after: datetime, tz: str | tzinfo = "UTC") -> datetime:
    """The first slot strictly after ``after`` (aware; naive is UTC), as an aware UTC datetime.

    Slots are wall-clock times in ``tz``. The DST rule, for every schedule:

    - a wall-clock slot that does not exist (the clocks spring forward over it) fires once, at the
      first whole minute after the gap: ``30 2 * * *`` in Europe/Berlin on 2026-03-29 fires at
      03:00 CEST. Several slots in one gap (``*/15``) fire once, together.
    - a wall-clock slot that happens twice (the clocks fall back) fires once, at its first
      occurrence: ``30 2 * * *`` in Europe/Berlin on 2026-10-25 fires at 02:30 CEST, not again at
      02:30 CET. An hourly ``0 * * * *`` fires at 02:00 CEST and next at 03:00 CET.

    So a daily slot is never run twice or skipped. cronsim 2.9 on its own does this only for a
    5-field schedule whose minute and hour are both fixed (Debian cron's rule; it steps a minute
    at a time out of a gap and returns fold 0); for ``*`` minutes or hours and for 6-field
    schedules it steps in real time, so it fires twice in a repeated hour and never in a skipped
    one. Here cronsim only enumerates naive wall-clock times; this module maps them to instants.

    Raises :class:`InvalidValue` for an invalid schedule, an unknown time zone, or a schedule that
    never fires again.
    """
    zone = zone_of(tz)
    floor = _as_utc(after)
    local = floor.astimezone(zone)
    for wall in _walls(expression, local.replace(tzinfo=None)):
        instant = _instant(wall, zone)
        if instant > floor:  # a wall time after ``after``'s may still be earlier: the repeated hour
            return instant
    raise InvalidValue(f"cron schedule {expression!r} never fires after {floor.isoformat()}", hint=EXAMPLE)


def last_slot_at_or_before(expression: str, moment: datetime, tz: str | tzinfo = "UTC") -> datetime | None:
    """The newest slot at or before ``moment`` (the DST rule of :func:`next_slot_after`), or None."""
    zone = zone_of(tz)
    ceiling = _as_utc(moment)
    local = ceiling.astimezone(zone)
    # in the repeated hour, wall times up to an hour later (their first occurrence) are already past
    start = (local.replace(tzinfo=None) + _fold_shift(local)).replace(microsecond=0) + timedelta(seconds=1)
    for wall in _walls(expression, start, reverse=True):
        instant = _instant(wall, zone)
        if instant <= ceiling:
            return instant
    return None


def due_slot(
    expression: str,
    last_fired: datetime | None,
    now: datetime,
    tz: str | tzinfo = "UTC",
    created: datetime | None = None,
) -> datetime | None:
    """The slot to fire now: the newest slot in (``last_fired``, ``now``], or in [``created``,
    ``now``] when it never fired, or None. Missed slots collapse into the newest: a scheduler that
    fires what this returns and records it as ``last_fired`` fires at most once per call and once
    per slot. With neither ``last_fired`` nor ``created``, the newest slot at or before ``now``."""
    newest = last_slot_at_or_before(expression, now, tz)
    if newest is None:
        return None
    if last_fired is not None:
        return newest if newest > _as_utc(last_fired) else None
    if created is not None:
        return newest if newest >= _as_utc(created) else None
    return newest


def next_fire_after(expression: str, after: datetime) -> datetime | None:
    """The first UTC slot strictly after ``after``, or None for an invalid expression."""
    try:
        return next_slot_after(expression, after)
    except InvalidValue:
        return None


# --- a task's cron_schedule: wg's dialect -----------------------------------------------------------
def task_schedule(expression: str) -> str:
    """What to store in a task's ``cron_schedule`` for ``expression``, so that wg reads the same
    schedule: validated, an alias expanded (wg reads no aliases). :class:`InvalidValue` also for
    a numeric day of the week, or both days restricted (wg and cron read those differently)."""
    text = validate(expression)
    if text.startswith("@"):
        return ALIASES[text]
    fields = text.split(" ")
    day_of_month, day_of_week = fields[-3], fields[-1]
    if _NUMERIC_DAY.search(day_of_week):
        named = _NUMERIC_DAY.sub(lambda m: _DAY_NAMES[int(m.group()) % 7], day_of_week)
        raise InvalidValue(
            f"cron schedule {expression!r} names a day of the week by number, which wg reads as a"
            " different day (wg counts 1 = Sunday, cron 1 = Monday)",
            hint=f"name the day instead: {' '.join([*fields[:-1], named])!r}",
        )
    if not day_of_month.startswith(("*", "?")) and not day_of_week.startswith(("*", "?")):
        raise InvalidValue(
            f"cron schedule {expression!r} restricts both the day of the month and the day of the"
            " week; cron runs on either, wg only when both match",
            hint="restrict only one of them (a separate task for the other)",
        )
    return text


_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _from_wg(schedule: str) -> str:
    """A stored task schedule in cron's numbering of the days of the week (wg's 1 = Sunday = 0)."""
    fields = normalize(schedule).split()
    if len(fields) != 5 or not _NUMERIC_DAY.search(fields[4]):
        return " ".join(fields) if len(fields) == 5 else schedule
    fields[4] = _NUMERIC_DAY.sub(lambda m: str(int(m.group()) - 1), fields[4])
    return " ".join(fields)


def next_task_slot(schedule: object, after: datetime) -> datetime | None:
    """The next slot of a task's ``cron_schedule`` (wg's dialect, UTC) strictly after ``after``, or
    None when there is none or the value is not a schedule: graph data never raises here."""
    if not isinstance(schedule, str):
        return None
    return next_fire_after(_from_wg(schedule), after)


def schedule_fields(schedule: str, now: datetime) -> dict[str, object]:
    """wg's fields for a task that recurs on ``schedule`` (from :func:`task_schedule`) from ``now``:
    what ``wg add --cron`` / ``wg edit --cron`` set (``last_cron_fire`` is left as it is)."""
    slot = next_task_slot(schedule, now)
    if slot is None:
        raise InvalidValue(f"cron schedule {schedule!r} never fires after {now.isoformat()}", hint=EXAMPLE)
    return {"cron_schedule": schedule, "cron_enabled": True, "next_cron_fire": format_time(slot)}


UNSCHEDULED: dict[str, object] = {
    "cron_schedule": None,
    "cron_enabled": None,
    "last_cron_fire": None,
    "next_cron_fire": None,
}
"""The fields ``wg edit --cron ""`` clears (None: removed; wg omits a false ``cron_enabled``)."""
