"""Arguments of the control-plane commands: hub, mode, why, ledger, repos."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from speedrift.cli import argtypes

Command = Callable[[str, str, str], argparse.ArgumentParser]
_WAIT = argtypes.seconds(0, argtypes.DAY_S)  # intervals and timeouts: above 0, at most a day


def _ecosystem(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ecosystem",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="ecosystem.toml (default: ./ecosystem.toml)",
    )


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def _web(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="dashboard bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=argtypes.port, default=8777, help="dashboard port (default 8777)")
    parser.add_argument("--no-dashboard", action="store_true", help="run the cycles without the dashboard")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command("hub", "hub_cmds:status", "The control plane: up|once|status|stop|approve.")
    _ecosystem(p)
    _json(p)
    hub = p.add_subparsers(dest="hub_command", metavar="ACTION")
    q = hub.add_parser("up", help="run cycles (every --interval, sooner on change) with the dashboard")
    _ecosystem(q)
    q.add_argument("--interval", type=_WAIT, default=30.0, help="seconds between cycles (default 30)")
    q.add_argument("--detach", action="store_true", help="run in the background (log in .speedrift-hub/logs)")
    q.add_argument("--cycles", type=argtypes.at_least_one, default=None, help="stop after this many cycles")
    _web(q)
    q.set_defaults(handler="hub_cmds:up")
    q = hub.add_parser("once", help="run one cycle, record it and print it")
    _ecosystem(q)
    q.add_argument("--plan", action="store_true", help="plan and record, execute nothing")
    _json(q)
    q.set_defaults(handler="hub_cmds:once")
    q = hub.add_parser("status", help="is the hub running; its last cycle; the register, its leases and gaps")
    _ecosystem(q)
    q.add_argument(
        "--gaps", type=argtypes.count(0, 1000), default=5, help="recent register gaps shown (default 5)"
    )
    _json(q)
    q.set_defaults(handler="hub_cmds:status")
    q = hub.add_parser("stop", help="stop the running hub (it finishes its cycle)")
    _ecosystem(q)
    q.add_argument("--timeout", type=_WAIT, default=60.0, help="seconds to wait")
    q.set_defaults(handler="hub_cmds:stop")
    q = hub.add_parser("approve", help="approve a planned action: the next cycle runs it on your authority")
    _ecosystem(q)
    q.add_argument("action_id", metavar="ACTION", help="action id from the plan, e.g. shop:dispatch_ready")
    _json(q)
    q.set_defaults(handler="hub_cmds:approve")

    p = command("mode", "hub_cmds:mode", "Set what the hub may do in a repo (and its lease).")
    _ecosystem(p)
    p.add_argument("repo", help="repo name from ecosystem.toml")
    p.add_argument("mode", choices=["manual", "observe", "supervise", "autonomous"])
    p.add_argument("--lease-ttl", metavar="DURATION", help="lease length, e.g. 2h, 30m (default: no expiry)")
    p.add_argument("--owner", help="lease owner (default: you)")
    p.add_argument("--reason", help="why, for the ledger")
    _json(p)

    p = command("why", "why_cmd:why", "Why isn't this running? From the hub's last cycle.")
    _ecosystem(p)
    p.add_argument(
        "target", metavar="REPO[:TASK]", nargs="?", help="a repo, or a repo and task id (none: the agents)"
    )
    p.add_argument(
        "--all", action="store_true", help="a task's every attempt and hub action (default: the newest 10)"
    )
    _json(p)

    p = command("metrics", "metrics_cmd:metrics", "Flow metrics: landed, lead time, success rates, cost.")
    _ecosystem(p)
    p.add_argument("--repo", metavar="NAME", help="only this repo (default: every registered repo)")
    p.add_argument(
        "--since", metavar="DURATION", default="7d", help="the window, e.g. 24h, 7d, 4w (default 7d)"
    )
    _json(p)

    p = command("ledger", "hub_cmds:ledger_show", "The hub's decision ledger: show|tail.")
    _ecosystem(p)
    _json(p)
    ledger = p.add_subparsers(dest="ledger_command", metavar="ACTION")
    q = ledger.add_parser("show", help="the last cycles")
    _ecosystem(q)
    q.add_argument("--last", type=argtypes.at_least_one, default=5, help="how many records (default 5)")
    _json(q)
    q.set_defaults(handler="hub_cmds:ledger_show")
    q = ledger.add_parser("tail", help="print records as they are appended")
    _ecosystem(q)
    q.add_argument("-f", "--follow", action="store_true", help="keep following")
    _json(q)
    q.set_defaults(handler="hub_cmds:ledger_tail")

    p = command("repos", "repos_cmds:list_repos", "The registry (ecosystem.toml): add|remove|list.")
    _ecosystem(p)
    _json(p)
    repos = p.add_subparsers(dest="repos_command", metavar="ACTION")
    q = repos.add_parser("list", help="registered repos")
    _ecosystem(q)
    _json(q)
    q.set_defaults(handler="repos_cmds:list_repos")
    q = repos.add_parser("add", help="register a repo (keeps the file's comments)")
    _ecosystem(q)
    q.add_argument("name")
    q.add_argument("path", help="repository path (stored relative to ecosystem.toml when inside it)")
    q.add_argument("--role", default=None)
    q.add_argument("--tag", action="append", default=[], dest="tags")
    q.add_argument("--lifecycle", default=None)
    q.add_argument("--daemon-posture", default=None)
    q.add_argument("--upstream-remote", default=None)
    q.add_argument("--upstream-branch", default=None)
    q.add_argument("--depends-on", action="append", default=[], metavar="REPO")
    _json(q)
    q.set_defaults(handler="repos_cmds:add")
    q = repos.add_parser("remove", help="unregister a repo (its files are untouched)")
    _ecosystem(q)
    q.add_argument("name")
    q.add_argument("--force", action="store_true", help="even while other repos declare depends_on it")
    _json(q)
    q.set_defaults(handler="repos_cmds:remove")
