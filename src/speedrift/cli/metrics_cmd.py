"""``speedrift metrics``: the factory's flow metrics (control/metrics/) for the ecosystem and each repo.

Human output is one table per metric, the ecosystem's row first, then each repo's; every value
shows its inputs (``75.0% (3/4)``) and the formulas follow the tables. ``--json`` is the whole
structure, exactly what the dashboard's ``/api/metrics`` serves. No data prints as ``—``.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift.cli.hub_cmds import ecosystem_path
from speedrift.cli.output import emit_json, say, table
from speedrift.times import now_utc, parse_duration

NO_DATA = "—"


def metrics(args: Namespace) -> int:
    from speedrift.control.ecosystem.load import load_ecosystem
    from speedrift.control.metrics.collect import metrics_of

    since = parse_duration(args.since)
    eco = load_ecosystem(ecosystem_path(args))
    entries = [eco.repo(args.repo)] if args.repo else list(eco.repos)
    repos: list[tuple[str, Path]] = [(e.name, e.path) for e in entries]
    result = metrics_of(repos, now_utc(), since)
    result["since"] = args.since
    if args.as_json:
        emit_json(result)
        return 0
    render(result)
    return 0


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NO_DATA
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _rate(metric: dict[str, Any], part: str, whole: str) -> str:
    value = metric["value"]
    inputs = metric["inputs"]
    shown = NO_DATA if value is None else f"{value:.1f}%"
    return f"{shown} ({inputs[part]}/{inputs[whole]})"


def _spread(metric: dict[str, Any]) -> str:
    return f"{duration(metric['p50'])} / {duration(metric['p95'])} (n={metric['count']})"


def _scopes(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("ecosystem", result["ecosystem"]), *sorted(result["repos"].items())]


def render(result: dict[str, Any]) -> None:
    window = result["window"]
    say(f"Flow metrics from {window['start']} to {window['end']} (--since {result.get('since', '?')})")
    rows = []
    for name, scope in _scopes(result):
        cost = scope["cost_per_landed"]
        esc = scope["escalations"]
        answer = esc["time_to_answer"]
        rows.append(
            [
                name,
                scope["landed"]["value"],
                _spread(scope["lead_time"]),
                _spread(scope["dispatch_latency"]),
                _rate(scope["first_attempt_success"], "landed", "first_attempts_ended"),
                _rate(scope["merge_success"], "merged", "landing_attempts"),
                f"{esc['open']} open, {esc['answered']} answered; "
                f"{duration(answer['p50'])} / {duration(answer['p95'])}",
                NO_DATA
                if cost["value"] is None
                else f"${cost['value']:.4f}, {cost['tokens']} tok "
                f"(${cost['inputs']['cost_usd']}/{cost['inputs']['landed']})",
            ]
        )
    columns = [
        "scope",
        "landed",
        "lead time p50/p95",
        "dispatch p50/p95",
        "first-attempt success",
        "merge success",
        "escalations; answer p50/p95",
        "cost per landed",
    ]
    table("Flow", columns, rows)
    days = result["ecosystem"]["landed_per_day"]["buckets"][-14:]
    day_rows = [
        [name, *(b["count"] for b in scope["landed_per_day"]["buckets"][-14:])]
        for name, scope in _scopes(result)
    ]
    table("Landed per day (UTC, last 14)", ["scope", *(b["start"][5:10] for b in days)], day_rows)
    hours = result["ecosystem"]["landed_per_hour"]["buckets"]
    hour_rows = [
        [name, *(b["count"] for b in scope["landed_per_hour"]["buckets"])] for name, scope in _scopes(result)
    ]
    table("Landed per hour (UTC)", ["scope", *(b["start"][11:13] for b in hours)], hour_rows)
    gate_rows = [
        [name, g["gate"], _rate(g, "blocked", "ran")]
        for name, scope in _scopes(result)
        for g in scope["gate_failure_rates"]["gates"]
    ]
    table("Gate failure rates", ["scope", "gate", "blocked / ran"], gate_rows or [["", NO_DATA, NO_DATA]])
    class_rows = [
        [name, cls, count]
        for name, scope in _scopes(result)
        for cls, count in sorted(scope["failure_classes"]["totals"].items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    table("Failure classes", ["scope", "class", "failed attempts"], class_rows or [["", NO_DATA, 0]])
    for problem in result["problems"]:
        say(f"  problem: {problem['repo']}: {problem['problem']}")
    for name in result["truncated"]:
        say(f"  {name}: more run directories than are read; the oldest are left out")
    say("Formulas:")
    for key, formula in result["formulas"].items():
        say(f"  {key}: {formula}")
