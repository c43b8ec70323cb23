"""Reading reset times: local wall-clock texts and HTTP rate-limit headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from speedrift.agents.limits import claude_reset, codex_reset, http_reset, reset_in

NOW = datetime(2026, 11, 21, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)  # a printed reset minute is read as its end (never early)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("resets 2:21am (UTC)", datetime(2026, 11, 21, 2, 21, tzinfo=UTC)),
        ("resets 12am (UTC)", datetime(2026, 11, 22, 0, 0, tzinfo=UTC)),  # midnight passed: tomorrow's
        ("resets 12:30am (UTC)", datetime(2026, 11, 21, 0, 30, tzinfo=UTC)),  # now counts as not passed
        ("resets 12pm (UTC)", datetime(2026, 11, 21, 12, 0, tzinfo=UTC)),
        ("resets Nov 22, 8:21pm (America/New_York)", datetime(2026, 11, 23, 1, 21, tzinfo=UTC)),
        ("resets Jan 2, 2027, 9am (UTC)", datetime(2027, 1, 2, 9, 0, tzinfo=UTC)),
        ("resets Mar 3, 9am (Not/AZone)", datetime(2027, 3, 3, 9, 0, tzinfo=UTC)),  # unknown zone: UTC
        ("resets 13:00am (UTC)", None),
        ("resets Foo 3, 9am (UTC)", None),
        ("no reset here", None),
    ],
)
def test_claude_reset_texts(text: str, expected: datetime | None) -> None:
    # the printed minute, rounded up to its end: the CLIs cut the seconds off
    assert claude_reset(f"You've hit your limit · {text}", NOW, "UTC") == (
        expected + MINUTE if expected else None
    )


def test_claude_date_without_year_rolls_over_the_new_year() -> None:
    assert claude_reset("resets Jan 2, 9am (UTC)", datetime(2026, 12, 31, tzinfo=UTC), "UTC") == datetime(
        2027, 1, 2, 9, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("try again at 11:52 PM.", "UTC", datetime(2026, 11, 21, 23, 52, tzinfo=UTC)),
        ("Try again at 1:05 AM.", "UTC", datetime(2026, 11, 21, 1, 5, tzinfo=UTC)),
        ("try again at 7:00 PM.", "America/New_York", datetime(2026, 11, 22, 0, 0, tzinfo=UTC)),
        ("try again at Dec 1st, 2026 2:22 AM.", "UTC", datetime(2026, 12, 1, 2, 22, tzinfo=UTC)),
        ("try again at Nov 22nd, 2026 2:22 PM.", "Asia/Tokyo", datetime(2026, 11, 22, 5, 22, tzinfo=UTC)),
        ("try again later.", "UTC", None),
    ],
)
def test_codex_reset_texts(text: str, tz: str, expected: datetime | None) -> None:
    assert codex_reset(f"You’ve hit your usage limit. {text}", NOW, tz) == (
        expected + MINUTE if expected else None
    )


def test_relative_resets() -> None:
    assert reset_in("It will reset in 3 hours 20 minutes.", NOW) == NOW + timedelta(hours=3, minutes=20)
    assert reset_in("It will reset in 1 day and 2 hours", NOW) == NOW + timedelta(days=1, hours=2)
    assert reset_in("resets soon", NOW) is None


def test_http_reset_takes_the_latest_announced_time() -> None:
    headers = {"Retry-After": "30", "x-ratelimit-reset-tokens": "1h2m3s"}
    body = {"error": {"resets_in_seconds": 600}}
    assert http_reset(headers, body, NOW) == NOW + timedelta(hours=1, minutes=2, seconds=3)


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "soon"},
        {"retry-after": "nan"},
        {"retry-after-ms": "-5"},
        {"x-ratelimit-reset": "1e400"},
        {"x-ratelimit-reset-requests": "6 minutes"},
        {},
    ],
)
def test_unreadable_headers_give_no_reset(headers: dict[str, str]) -> None:
    assert http_reset(headers, None, NOW) is None


def test_body_epoch_reset() -> None:
    body = {"error": {"type": "usage_limit_reached", "resets_at": 1795231479}}
    assert http_reset({}, body, NOW) == datetime.fromtimestamp(1795231479, UTC)
