"""Cron math (graph/cron.py): validation, aliases, slots in a time zone and the DST rule — a slot
is never run twice or skipped because the clocks change — and wg's dialect for task schedules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from speedrift.errors import InvalidValue
from speedrift.graph import cron

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def slots(expression: str, start: datetime, until: datetime, tz: str = "UTC") -> Iterator[datetime]:
    moment = start
    while True:
        moment = cron.next_slot_after(expression, moment, tz)
        if moment > until:
            return
        yield moment


def local_times(expression: str, tz: str, start: datetime, until: datetime) -> list[str]:
    zone = ZoneInfo(tz)
    return [s.astimezone(zone).strftime("%m-%d %H:%M %Z") for s in slots(expression, start, until, tz)]


# --- DST: a daily 02:30 -----------------------------------------------------------------------------
def test_a_daily_slot_in_the_spring_forward_gap_fires_once_at_the_end_of_the_gap_in_berlin() -> None:
    # 2026-03-29: Berlin's clocks go from 02:00 CET straight to 03:00 CEST; 02:30 does not exist
    fired = local_times(
        "30 2 * * *", "Europe/Berlin", datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    )
    assert fired == ["03-27 02:30 CET", "03-28 02:30 CET", "03-29 03:00 CEST", "03-30 02:30 CEST"]


def test_a_daily_slot_in_the_repeated_hour_fires_once_at_its_first_occurrence_in_berlin() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice
    start, until = datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC)
    fired = list(slots("30 2 * * *", start, until, "Europe/Berlin"))
    assert [s.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for s in fired] == [
        "10-23 02:30 CEST",
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",
        "10-26 02:30 CET",
    ]
    assert fired[2] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30, not 01:30 UTC


def test_from_inside_the_repeated_hour_the_slot_already_fired_is_not_fired_again() -> None:
    second_0210 = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, the second 02:10
    assert second_0210.astimezone(BERLIN).fold == 1
    following = cron.next_slot_after("30 2 * * *", second_0210, "Europe/Berlin")
    assert following == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # tomorrow's 02:30 CET


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (datetime(2026, 3, 7, tzinfo=UTC), ["03-07 02:30 EST", "03-08 03:00 EDT", "03-09 02:30 EDT"]),
        (datetime(2026, 10, 31, tzinfo=UTC), ["10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST"]),
    ],
)
def test_new_york_transitions_neither_skip_nor_repeat_a_daily_slot(
    start: datetime, expected: list[str]
) -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST (01:30 happens twice)
    expression = "30 2 * * *" if start.month == 3 else "30 1 * * *"
    fired = local_times(expression, "America/New_York", start, start + timedelta(days=2, hours=12))
    assert fired == expected


def test_an_hourly_slot_fires_once_per_wall_clock_hour_across_both_transitions() -> None:
    spring = local_times(
        "0 * * * *",
        "Europe/Berlin",
        datetime(2026, 3, 28, 23, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=UTC),
    )
    assert spring == ["03-29 01:00 CET", "03-29 03:00 CEST", "03-29 04:00 CEST"]  # 02:00 folds into 03:00
    autumn = local_times(
        "0 * * * *",
        "Europe/Berlin",
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 3, 30, tzinfo=UTC),
    )
    assert autumn == ["10-25 02:00 CEST", "10-25 03:00 CET", "10-25 04:00 CET"]  # 02:00 once


def test_several_slots_in_one_gap_fire_once_together() -> None:
    fired = list(
        slots(
            "*/15 * * * *",
            datetime(2026, 3, 29, 0, 40, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 20, tzinfo=UTC),
            "Europe/Berlin",
        )
    )
    assert [s.astimezone(BERLIN).strftime("%H:%M") for s in fired] == ["01:45", "03:00", "03:15"]
    assert len(set(fired)) == len(fired)


def test_slots_are_aware_utc_and_strictly_after_the_given_moment() -> None:
    at_slot = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    following = cron.next_slot_after("0 3 * * *", at_slot)
    assert following == datetime(2026, 12, 9, 3, 0, tzinfo=UTC) and following.tzinfo is UTC
    naive = cron.next_slot_after("0 3 * * *", datetime(2026, 12, 8, 2, 0))  # naive: read as UTC
    assert naive == at_slot
    assert cron.next_slot_after("0 3 * * *", at_slot - timedelta(microseconds=1)) == at_slot
    assert cron.next_slot_after("0 3 * * *", at_slot, BERLIN) == datetime(2026, 12, 9, 2, 0, tzinfo=UTC)


# --- aliases and validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("alias", "after", "expected"),
    [
        ("@hourly", datetime(2026, 12, 8, 3, 10), datetime(2026, 12, 8, 4, 0)),
        ("@daily", datetime(2026, 12, 8, 3, 10), datetime(2026, 12, 9, 0, 0)),
        ("@midnight", datetime(2026, 12, 8, 3, 10), datetime(2026, 12, 9, 0, 0)),
        ("@weekly", datetime(2026, 12, 8, 3, 10), datetime(2026, 12, 13, 0, 0)),  # a Sunday
        ("@monthly", datetime(2026, 12, 8, 3, 10), datetime(2027, 1, 1, 0, 0)),
        ("@yearly", datetime(2026, 12, 8, 3, 10), datetime(2027, 1, 1, 0, 0)),
        ("@annually", datetime(2026, 12, 8, 3, 10), datetime(2027, 1, 1, 0, 0)),
        ("@DAILY", datetime(2026, 12, 8, 3, 10), datetime(2026, 12, 9, 0, 0)),
    ],
)
def test_each_alias_fires_where_its_five_fields_do(alias: str, after: datetime, expected: datetime) -> None:
    assert cron.validate(alias) == alias.lower()
    assert cron.next_slot_after(alias, after.replace(tzinfo=UTC)) == expected.replace(tzinfo=UTC)


def test_a_six_field_schedule_with_a_zero_seconds_field_is_accepted_as_wg_writes_it() -> None:
    assert cron.validate("0  0 3 * * *") == "0 0 3 * * *"
    assert cron.next_slot_after("0 0 3 * * *", datetime(2026, 12, 8, tzinfo=UTC)) == datetime(
        2026, 12, 8, 3, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("", "the cron schedule is empty"),
        ("@fortnightly", "is not a known alias"),
        ("0 3 * *", "has 4 field(s)"),
        ("0 0 3 * * * 2027", "has 7 field(s)"),
        ("61 * * * *", "is not valid: Bad minute"),
        ("0 3 30 2 *", "is not valid"),
        ("30 0 3 * * *", "fires at second '30'"),
    ],
)
def test_an_invalid_schedule_is_refused_with_what_is_wrong_and_an_example(expression: str, said: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        cron.validate(expression)
    assert said in caught.value.message
    assert caught.value.hint is not None and "0 3 * * *" in caught.value.hint  # an example to follow
    with pytest.raises(InvalidValue):
        cron.next_slot_after(expression, datetime(2026, 12, 8, tzinfo=UTC))
    assert cron.next_fire_after(expression, datetime(2026, 12, 8, tzinfo=UTC)) is None


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "Europe", "../../etc/passwd"])
def test_an_unknown_time_zone_is_refused_naming_it(tz: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        cron.next_slot_after("0 3 * * *", datetime(2026, 12, 8, tzinfo=UTC), tz)
    assert f"time zone {tz!r} is not known" in caught.value.message
    with pytest.raises(InvalidValue):
        cron.due_slot("0 3 * * *", None, datetime(2026, 12, 8, tzinfo=UTC), tz)


# --- due_slot ----------------------------------------------------------------------------------------
def test_due_slot_collapses_missed_slots_into_the_newest() -> None:
    last = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)  # a week of daily slots missed
    assert cron.due_slot("0 3 * * *", last, now) == datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    # once that one is fired and recorded, nothing more is due until the next slot
    assert cron.due_slot("0 3 * * *", datetime(2026, 12, 8, 3, 0, tzinfo=UTC), now) is None
    assert cron.due_slot("0 3 * * *", datetime(2026, 12, 8, 3, 0, tzinfo=UTC), now + timedelta(days=1)) == (
        datetime(2026, 12, 9, 3, 0, tzinfo=UTC)
    )


def test_due_slot_includes_a_slot_exactly_at_now_and_excludes_one_exactly_at_the_last_fire() -> None:
    slot = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    assert cron.due_slot("0 3 * * *", slot - timedelta(days=1), slot) == slot
    assert cron.due_slot("0 3 * * *", slot, slot) is None


def test_due_slot_of_a_never_fired_schedule_counts_from_its_creation() -> None:
    created = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert cron.due_slot("0 3 * * *", None, created + timedelta(hours=5), created=created) is None
    assert cron.due_slot("0 3 * * *", None, created + timedelta(days=2), created=created) == datetime(
        2026, 12, 10, 3, 0, tzinfo=UTC
    )
    # with no history at all, the newest slot so far
    assert cron.due_slot("0 3 * * *", None, created) == datetime(2026, 12, 8, 3, 0, tzinfo=UTC)


def test_due_slot_fires_a_berlin_daily_slot_once_across_the_autumn_change() -> None:
    """A scheduler polling every 10 minutes through 2026-10-25 fires 02:30 exactly once."""
    fired: list[datetime] = []
    last: datetime | None = datetime(2026, 10, 24, 0, 30, tzinfo=UTC)
    now = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    while now < datetime(2026, 10, 26, 12, 0, tzinfo=UTC):
        slot = cron.due_slot("30 2 * * *", last, now, "Europe/Berlin")
        if slot is not None:
            fired.append(slot)
            last = slot
        now += timedelta(minutes=10)
    assert fired == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]


def test_due_slot_fires_a_berlin_daily_slot_once_across_the_spring_change() -> None:
    fired: list[datetime] = []
    last: datetime | None = datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    while now < datetime(2026, 3, 30, 12, 0, tzinfo=UTC):
        slot = cron.due_slot("30 2 * * *", last, now, "Europe/Berlin")
        if slot is not None:
            fired.append(slot)
            last = slot
        now += timedelta(minutes=10)
    assert [s.astimezone(BERLIN).strftime("%d %H:%M") for s in fired] == ["29 03:00", "30 02:30"]


def test_the_newest_slot_inside_the_repeated_hour_is_its_first_occurrence() -> None:
    second_0240 = datetime(2026, 10, 25, 1, 40, tzinfo=UTC)  # 02:40 CET; 02:30 CEST was 70 minutes ago
    assert cron.last_slot_at_or_before("30 2 * * *", second_0240, "Europe/Berlin") == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    assert cron.last_slot_at_or_before("45 2 * * *", second_0240, "Europe/Berlin") == datetime(
        2026, 10, 25, 0, 45, tzinfo=UTC
    )


# --- task schedules: wg's dialect -------------------------------------------------------------------
def test_a_task_schedule_expands_an_alias_because_wg_reads_none() -> None:
    assert cron.task_schedule("@daily") == "0 0 * * *"
    assert cron.task_schedule("@weekly") == "0 0 * * SUN"
    assert cron.task_schedule(" 0  3 * * MON-FRI ") == "0 3 * * MON-FRI"


def test_a_task_schedule_with_a_numeric_weekday_is_refused_with_the_day_named() -> None:
    with pytest.raises(InvalidValue) as caught:
        cron.task_schedule("0 3 * * 1-5")
    assert "wg counts 1 = Sunday" in caught.value.message
    assert caught.value.hint == "name the day instead: '0 3 * * MON-FRI'"
    assert cron.task_schedule("0 3 * * */2") == "0 3 * * */2"  # a step is not a day


def test_a_task_schedule_restricting_both_days_is_refused() -> None:
    with pytest.raises(InvalidValue, match="restricts both the day of the month and the day of the week"):
        cron.task_schedule("0 3 1 * MON")


def test_a_stored_numeric_weekday_is_read_as_wg_reads_it() -> None:
    tuesday = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    assert tuesday.strftime("%A") == "Tuesday"
    # wg's crate: 2 = Monday (cron would say Tuesday), 1-5 = Sunday..Thursday
    assert cron.next_task_slot("0 0 3 * * 2", tuesday) == datetime(2026, 12, 14, 3, 0, tzinfo=UTC)
    assert cron.next_task_slot("0 3 * * 6", tuesday) == datetime(2026, 12, 11, 3, 0, tzinfo=UTC)  # Friday
    assert cron.next_task_slot("0 3 * * MON", tuesday) == datetime(2026, 12, 14, 3, 0, tzinfo=UTC)
    assert cron.next_task_slot("not a schedule", tuesday) is None
    assert cron.next_task_slot(42, tuesday) is None


def test_schedule_fields_are_wgs_field_names_with_the_first_slot() -> None:
    now = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    assert cron.schedule_fields("0 3 * * *", now) == {
        "cron_schedule": "0 3 * * *",
        "cron_enabled": True,
        "next_cron_fire": "2026-12-08T03:00:00+00:00",
    }
    assert set(cron.UNSCHEDULED) == {"cron_schedule", "cron_enabled", "last_cron_fire", "next_cron_fire"}


def test_normalize_keeps_serving_the_lanes_cron() -> None:
    assert cron.normalize("@hourly") == "0 * * * *"
    assert cron.normalize("0 0 3 * * *") == "0 3 * * *"
    assert cron.normalize(" 5 4 * * * ") == "5 4 * * *"
