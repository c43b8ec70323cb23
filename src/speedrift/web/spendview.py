"""The dashboard's Spend panel (``GET /api/spend``): what the ecosystem's attempts cost — today by
default — by repo, agent and runtime, and today's daily budgets with what remains of each.

Read-only: the numbers are fleet/spend.py's over the machine-wide attempt log (the ones
``speedrift spend`` prints and admission refuses by); the repos' budgets come from their
speedrift.toml, the ecosystem's and its agents' as the hub published them (fleet/budgetpub.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import attemptlog
from speedrift.errors import SpeedriftError
from speedrift.fleet import budgetpub, spend
from speedrift.fleet.config import BudgetConfig, load_config
from speedrift.times import format_time

MAX_DAYS = 366


def spend_view(
    repos: Mapping[str, Path], ecosystem: Path | None, *, days: int, now: datetime
) -> dict[str, Any]:
    """``repos``: the dashboard's repos by name. The spend of the last ``days`` UTC days (1: today)
    in those repos, their daily budgets and the ecosystem's; a repo whose speedrift.toml cannot be
    read is named under ``problems``."""
    since = spend.day_start(now) - timedelta(days=days - 1)
    entries = attemptlog.read(since)
    keys = {budgetpub.repo_key(path): name for name, path in repos.items()}
    summary = spend.summarize(entries, since=since, repos=list(keys))
    configs: dict[str, BudgetConfig] = {}
    problems: list[str] = []
    for key, name in sorted(keys.items(), key=lambda item: item[1]):
        try:
            configs[key] = load_config(Path(key)).budgets
        except SpeedriftError as error:
            problems.append(f"{name}: {error.message}")
    published = budgetpub.published_ecosystem(ecosystem) if ecosystem is not None else None
    lines = spend.daily_lines(
        entries, now=now, repos=configs, published=[published] if published is not None else []
    )
    return {
        **summary.to_json(),
        "days": days,
        "now": format_time(now),
        "repo_names": keys,  # path -> the name the dashboard shows
        "budgets": [line.to_json() | {"scope_name": keys.get(line.budget.scope)} for line in lines],
        "problems": problems,
    }
