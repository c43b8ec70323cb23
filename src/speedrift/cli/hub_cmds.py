"""`speedrift hub up|once|status|stop|approve`, `speedrift mode`, `speedrift ledger show|tail`.

The dashboard's access token is printed only to a terminal, never into the hub's log.
"""

from __future__ import annotations

import gc
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift import hubdir
from speedrift.cli.base import actor_name
from speedrift.cli.output import emit_json, printable, say, table
from speedrift.errors import UsageError
from speedrift.times import parse_duration


def ecosystem_path(args: Namespace) -> Path:
    explicit = getattr(args, "ecosystem", None)
    return hubdir.find_ecosystem(Path(explicit) if explicit else None, Path.cwd())


def up(args: Namespace) -> int:
    from speedrift.control.daemon import start_detached
    from speedrift.procs import make_non_dumpable

    make_non_dumpable()  # long-lived, holding the dashboard's token and the services' secrets
    gc.enable()  # the CLI turns the collector off for short commands; the hub is long-lived

    path = ecosystem_path(args)
    if args.interval <= 0:
        raise UsageError("--interval must be positive", hint="e.g. --interval 30")
    if args.detach:
        argv = [sys.executable, "-m", "speedrift", "hub", "up", "--ecosystem", str(path)]
        argv += ["--interval", str(args.interval), "--host", args.host, "--port", str(args.port)]
        if args.no_dashboard:
            argv.append("--no-dashboard")
        if args.cycles is not None:
            argv += ["--cycles", str(args.cycles)]
        pid = start_detached(path, argv)
        say(f"Hub started (pid {pid}); log: {hubdir.hub_log_path(hubdir.hub_dir(path))}")
        if not args.no_dashboard:
            # this terminal may see the token; the hub's own output goes to its log, which never holds it
            where = (
                dashboard_url(path, args.host, args.port)
                if args.port
                else "its address is in the hub's log; `speedrift dashboard --print-url --port <port>` "
                "prints it with the access token"
            )
            say(f"Dashboard: {where}")
        return 0
    run_foreground(path, args)
    return 0


def run_foreground(path: Path, args: Namespace) -> None:
    """The hub in this process with `hub up`'s options (also what `speedrift demo` runs).

    The terminal shows what happened, not a heartbeat: each attempt dispatched, landed or failed
    (with its class and what happens next), each question for a person, and what the hub itself
    did (corrective tasks, retries); a quiet line only after a long while with no news
    (cli/hub_news.py). Ctrl-C (or SIGTERM) ends the loop, and the last lines say where the state
    is."""
    from speedrift.cli.hub_news import Happenings
    from speedrift.control.daemon import HubOptions, run_hub
    from speedrift.web.server import start_dashboard

    options = HubOptions(
        interval=args.interval,
        host=args.host,
        port=args.port,
        dashboard=None if args.no_dashboard else start_dashboard,
        max_cycles=args.cycles,
        on_dashboard=lambda port: say(_dashboard_line(path, args.host, port)),
    )
    news = Happenings()
    run_hub(path, options, on_cycle=news.cycle)
    hub = hubdir.hub_dir(path)
    say(
        f"Hub stopped. Its state stays: hub dir {hub} (decision ledger {hubdir.cycles_path(hub)}: "
        f"`speedrift ledger show`); each repo's attempts under <repo>/.speedrift/runs/. "
        f"`speedrift hub up --ecosystem {path}` resumes."
    )


def _dashboard_line(path: Path, host: str, port: int) -> str:
    from speedrift.cli import web_cmds

    return web_cmds.dashboard_line(path, host, port, terminal=sys.stdout.isatty())


def dashboard_url(path: Path, host: str, port: int) -> str:
    from speedrift.cli import web_cmds

    return web_cmds.dashboard_url(host, port, hubdir.ensure_token(hubdir.hub_dir(path)))


def _print_cycle_line(record: dict[str, Any]) -> None:
    tiers: dict[str, int] = {}
    for repo in record.get("repos", []):
        tiers[repo["tier"]] = tiers.get(repo["tier"], 0) + 1
    executed = len(record.get("executed", []))
    skipped = len(record.get("skipped", []))
    mode = "observe (plan_only)" if record.get("plan_only") else "execute"
    say(
        f"{record['generated_at']} {record['cycle_id']} {mode}: "
        + ", ".join(f"{n} {tier}" for tier, n in sorted(tiers.items()))
        + f"; {len(record.get('planned', []))} planned, {executed} executed, {skipped} held back"
    )


def once(args: Namespace) -> int:
    from speedrift.control.cycle import run_once

    record = run_once(ecosystem_path(args), execute_actions=not args.plan)
    if args.as_json:
        emit_json(record)
        return 0
    render_cycle(record)
    return 0


def render_cycle(record: dict[str, Any]) -> None:
    say(record.get("narrative") or "")
    rows = [
        (
            r["name"],
            r["score"],
            r["tier"],
            r["trend"],
            r.get("stall") or (r["reasons"][0]["text"] if r["reasons"] else ""),
        )
        for r in record.get("repos", [])
    ]
    table(f"cycle {record['cycle_id']}", ["repo", "score", "tier", "trend", "why"], rows)
    metrics = record.get("metrics", {})
    table(
        "metrics",
        ["metric", "value", "tier", "trend"],
        [(m["label"], m["value"], m["tier"], m["trend"]) for m in metrics.values()],
    )
    executed = record.get("executed", [])
    if executed:
        table(
            "executed",
            ["action", "status", "detail"],
            [(o["action_id"], o["status"], o["detail"]) for o in executed],
        )
    skipped = record.get("skipped", [])
    if skipped:
        table(
            "held back",
            ["action", "rule", "reason"],
            [(s["action"]["id"], s["rule"], s["reason"]) for s in skipped[:30]],
        )


def status(args: Namespace) -> int:
    from speedrift.control.daemon import running_hub
    from speedrift.register.ledger import Ledger

    path = ecosystem_path(args)
    hub = hubdir.hub_dir(path)
    pid = running_hub(hub)
    last = [r for r in Ledger(hub).read(last=5) if r.get("cycle_id")]
    latest = last[-1] if last else None
    report = {
        "ecosystem": str(path),
        "hub_dir": str(hub),
        "running": pid is not None,
        "pid": pid,
        "last_cycle": None
        if latest is None
        else {
            "cycle_id": latest["cycle_id"],
            "generated_at": latest["generated_at"],
            "plan_only": latest["plan_only"],
            "narrative": latest.get("narrative"),
        },
        **_register_status(path, hub, getattr(args, "gaps", 5)),
    }
    if getattr(args, "as_json", False):
        emit_json(report)
        return 0
    say(f"Hub for {path}: " + (f"running (pid {pid})" if pid else "stopped"))
    if latest:
        say(f"Last cycle {latest['cycle_id']} at {latest['generated_at']}: {latest.get('narrative', '')}")
    else:
        say("No cycle recorded yet: run `speedrift hub once` or `speedrift hub up`.")
    _render_register_status(report)
    return 0


def _register_status(path: Path, hub: Path, gaps: int) -> dict[str, Any]:
    """This hub's id, the register it uses (reachable or not), who holds which repo, the recent gaps."""
    from speedrift.control.ecosystem.load import load_ecosystem
    from speedrift.control.hublease import hub_identity, lease_view
    from speedrift.control.registergap import RegisterGap
    from speedrift.register.ledger import Ledger
    from speedrift.register.store import Register, RegisterUnavailable
    from speedrift.times import iso_utc, now_utc

    hub_id = hub_identity(hub)
    register = Register.open(hub, url=load_ecosystem(path).register_url)
    open_gap = RegisterGap(hub, hub_id, Ledger(hub)).began_at  # the hub's own view: the gap it is in
    info: dict[str, Any] = {
        "hub_id": hub_id,
        "register": {
            "backend": str(register.backend),
            "where": register.where,
            "reachable": True,
            "error": None,
            "gap_since": iso_utc(open_gap) if open_gap else None,
        },
        "leases": [],
        "gaps": [],
    }
    try:
        with register:
            info["leases"] = lease_view(register.leases(), hub_id, now_utc())
            info["gaps"] = register.gaps(limit=gaps) if gaps else []
    except RegisterUnavailable as error:
        info["register"].update(reachable=False, error=error.message)
    return info


def _render_register_status(report: dict[str, Any]) -> None:
    register = report["register"]
    say(f"This hub: {report['hub_id']}")
    where = f"Register: {register['backend']} at {register['where']}"
    if not register["reachable"]:
        say(f"{where}: unreachable ({register['error']}); leases and gaps unknown")
        return
    say(
        where
        + (f"; this hub could not reach it since {register['gap_since']}" if register["gap_since"] else "")
    )
    leases = report["leases"]
    if leases:
        table(
            "repo leases",
            ["repo", "hub", "expires", ""],
            [
                (
                    row["repo"],
                    row["hub"],
                    row["expires_at"],
                    ", ".join(
                        n for n, on in (("this hub", row["this_hub"]), ("expired", row["expired"])) if on
                    ),
                )
                for row in leases
            ],
        )
    else:
        say("No repo is leased: no hub is executing with this register.")
    if report["gaps"]:
        table(
            "register gaps",
            ["hub", "began", "ended", "cycles copied"],
            [(g["hub"], g["began_at"], g["ended_at"], g["cycles_backfilled"]) for g in report["gaps"]],
        )


def stop(args: Namespace) -> int:
    from speedrift.control.daemon import stop_hub

    pid = stop_hub(hubdir.hub_dir(ecosystem_path(args)), timeout=args.timeout)
    say("No hub is running." if pid is None else f"Hub stopped (pid {pid}).")
    return 0


def approve(args: Namespace) -> int:
    from speedrift.control.operator import approve_action

    result = approve_action(ecosystem_path(args), args.action_id, actor_name(), source="cli")
    if args.as_json:
        emit_json(result)
    else:
        say(f"Approved {args.action_id}: the next cycle runs it on your authority.")
    return 0


def mode(args: Namespace) -> int:
    from speedrift.control.controlfile import check_lease_ttl
    from speedrift.control.operator import set_mode

    # checked before anything is loaded: a 10**20-week lease is a usage error, not a traceback
    ttl = check_lease_ttl(parse_duration(args.lease_ttl)) if args.lease_ttl else None
    result = set_mode(
        ecosystem_path(args),
        args.repo,
        args.mode,
        lease_ttl=ttl,
        owner=args.owner,
        actor=actor_name(),
        source="cli",
        reason=args.reason,
    )
    if args.as_json:
        emit_json(result)
    else:
        lease = result.get("lease_expires_at") or "no expiry"
        say(f"{args.repo}: mode {args.mode}, lease held by {result.get('lease_owner')} ({lease}).")
    return 0


def ledger_show(args: Namespace) -> int:
    from speedrift.register.ledger import Ledger

    records = Ledger(hubdir.hub_dir(ecosystem_path(args))).read(last=getattr(args, "last", 5))
    if getattr(args, "as_json", False):
        emit_json(records)
        return 0
    for record in records:
        _print_record(record)
    if not records:
        say("The ledger is empty: no cycle has run yet.")
    return 0


def _print_record(record: dict[str, Any]) -> None:
    if record.get("cycle_id"):
        _print_cycle_line(record)
    else:
        line = f"{record.get('generated_at', '')} {record.get('kind', 'entry')}: {record.get('detail', '')}"
        say(printable(line))  # one line: a detail quoting a task cannot forge another


def ledger_tail(args: Namespace) -> int:
    from speedrift.register.ledger import Ledger

    for record in Ledger(hubdir.hub_dir(ecosystem_path(args))).tail(follow=args.follow, last=10):
        if args.as_json:
            emit_json(record)
        else:
            _print_record(record)
    return 0
