"""``speedrift spend``: what the agents' attempts cost — in total and by repo, agent, runtime and UTC
day — counted from the machine-wide attempt log, and today's daily budgets with what remains of
each (the repo's from its speedrift.toml, the ecosystem's and its agents' as the hub published
them). The numbers are fleet/spend.py's, the same admission refuses a dispatch by."""

from __future__ import annotations

from argparse import Namespace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import attemptlog
from speedrift.cli.output import emit_json, say, table
from speedrift.errors import NotFound, UsageError
from speedrift.fleet import budgetpub
from speedrift.fleet import spend as spending
from speedrift.fleet.budgetpub import PublishedBudgets, repo_key
from speedrift.fleet.config import BudgetConfig, load_config
from speedrift.fleet.spend import BudgetLine, SpendSummary, Tally, money
from speedrift.graph.store import GraphStore
from speedrift.times import format_time, now_utc, parse_time

DEFAULT_DAYS = 7
BREAKDOWNS = ("repo", "agent", "runtime", "day")


def _since(args: Namespace, now: datetime) -> datetime:
    if args.since is not None:
        moment = parse_time(args.since)
        if moment is None:
            raise UsageError(f"--since {args.since!r} is not a day or a time", hint="e.g. 2026-11-20")
        return moment
    days = args.days or DEFAULT_DAYS
    return spending.day_start(now) - timedelta(days=days - 1)


def _repo(args: Namespace) -> tuple[Path | None, Path | None]:
    """(the repo the spend is limited to, the repo whose budgets are shown): ``--repo``, else none
    and the repo here (if the current directory is in one)."""
    if args.repo is not None:
        path = Path(args.repo).expanduser()
        if not path.is_dir():
            raise NotFound(f"--repo {args.repo}: no such directory", hint="name a repository's root")
        return path, path
    try:
        here = GraphStore.locate(getattr(args, "dir", None)).directory.parent
    except NotFound:
        return None, None
    return None, here


def report(
    entries: list[attemptlog.AttemptEntry],
    *,
    now: datetime,
    since: datetime,
    only: Path | None,
    budgets_of: Path | None,
) -> tuple[SpendSummary, list[BudgetLine]]:
    """The summary of ``entries`` since ``since`` (only ``only``'s when given) and today's budget
    lines (``budgets_of``'s own, and the published ones that cover it, else every published one)."""
    summary = spending.summarize(entries, since=since, repos=[str(only)] if only is not None else None)
    published: list[PublishedBudgets]
    repos: dict[str, BudgetConfig] = {}
    if budgets_of is not None:
        repos[repo_key(budgets_of)] = load_config(budgets_of).budgets
        found = budgetpub.published_for(budgets_of)
        published = [found] if found is not None else []
    else:
        published = budgetpub.published_all()
    return summary, spending.daily_lines(entries, now=now, repos=repos, published=published)


def _row(name: str, tally: Tally) -> list[Any]:
    return [name, money(tally.usd, "usd"), f"{tally.tokens:,}", tally.attempts]


def _say(summary: SpendSummary, lines: list[BudgetLine], *, since: datetime, by: str | None) -> None:
    total = summary.total
    say(
        f"Spend since {format_time(since)}: {money(total.usd, 'usd')}, {total.tokens:,} tokens, "
        f"{total.attempts} attempt(s)"
    )
    if summary.unpriced:
        say(
            f"  {summary.unpriced} attempt(s) used tokens with no known cost: add their runtime to "
            '[prices."runtime:model"] in speedrift.toml or ecosystem.toml'
        )
    for name in (by,) if by is not None else BREAKDOWNS:
        rows = summary.breakdown(name)
        if rows:
            table(f"by {name}", [name, "usd", "tokens", "attempts"], [_row(k, rows[k]) for k in sorted(rows)])
    if not lines:
        say("No daily budget applies ([budgets] daily_usd, daily_tokens in speedrift.toml or ecosystem.toml)")
        return
    resets = format_time(lines[0].resets_at)
    table(
        f"budgets today (UTC; they reset at {resets})",
        ["budget", "scope", "limit", "spent", "remaining", "set in"],
        [
            [
                line.budget.kind.value,
                line.budget.scope,
                money(line.budget.limit, line.budget.unit),
                money(line.spent, line.budget.unit),
                money(line.remaining, line.budget.unit),
                line.budget.where,
            ]
            for line in lines
        ],
    )


def spend(args: Namespace) -> None:
    now = now_utc()
    since = _since(args, now)
    only, budgets_of = _repo(args)
    entries = attemptlog.read(min(since, spending.day_start(now)))  # today's budgets need today
    summary, lines = report(entries, now=now, since=since, only=only, budgets_of=budgets_of)
    if args.as_json:
        emit_json(
            {
                **summary.to_json(),
                "now": format_time(now),
                "repo": repo_key(only) if only is not None else None,
                "budgets": [line.to_json() for line in lines],
            }
        )
        return
    _say(summary, lines, since=since, by=args.by)
