"""Cron schedules for wg's `cron_schedule` tasks (cronsim, plus the @-aliases it lacks)."""

from __future__ import annotations

from datetime import datetime

from cronsim import CronSim, CronSimError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def normalize(expression: str) -> str:
    expression = ALIASES.get(expression.strip(), expression.strip())
    fields = expression.split()
    if len(fields) == 6:  # wg accepts a leading seconds field; cron granularity is minutes
        fields = fields[1:]
    return " ".join(fields)


def next_fire_after(expression: str, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after``, or None for an invalid expression."""
    try:
        return next(CronSim(normalize(expression), after))
    except (CronSimError, StopIteration):
        return None
