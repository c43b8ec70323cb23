"""Every command's arguments, in one argparse tree. Handlers are named, not imported.

The CLI is a short-lived process that agents call constantly, so only the module of the chosen
command is imported (``handler`` is ``"module:function"``), and argparse (stdlib) parses: the
measured alternative, Typer, validated through pydantic and cost ~120 ms on every call.
"""

from __future__ import annotations

import argparse

from speedrift import __version__
from speedrift.cli import argtypes

_PRIORITY = "critical|high|normal|low|idle or an integer >= 0"
_BUDGET_USD = (
    "the task's money budget in US dollars, all its attempts together (refused before a claim past it)"
)
_BUDGET_TOKENS = "the task's token budget, all its attempts together"
_FALLBACK = "runtime fallback order, runtime[:model] comma-separated (claude:sonnet,codex:gpt-5)"
_CRON = 'recur on this UTC cron schedule ("0 3 * * *", @daily), re-armed on done (docs/recurring-tasks.md)'
REVIEW_MODES = ("off", "advisory", "blocking")  # fleet/review.py ReviewMode (a test keeps them equal)
_HUB_HELP = "act on the hub's authority: before every claim, re-check the repo's control mode and lease"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


_at_least_one = argtypes.at_least_one  # 1 to 1,000,000: every count flag is range-checked
_WAIT = argtypes.seconds(0, argtypes.DAY_S)  # intervals and timeouts: above 0, at most a day


def _common() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--dir",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="graph directory (.wg/ or .workgraph/); default: $WG_DIR, then search upward",
    )
    return parent


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def _rows(parser: argparse.ArgumentParser, every: bool = True) -> None:
    """A table's cap (cli/output.py table): ``--limit N`` rows (default 50), ``--all`` every one."""
    parser.add_argument(
        "--limit", dest="row_limit", type=_at_least_one, metavar="N", help="show at most N rows (default 50)"
    )
    if every:
        parser.add_argument("--all", dest="show_all", action="store_true", help="show every row")


def _id(parser: argparse.ArgumentParser, help_text: str = "task id") -> None:
    parser.add_argument("task_id", metavar="ID", help=help_text)


def _peer_ecosystem(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ecosystem",
        metavar="PATH",
        default=None,
        help="resolve `after` entries REPO:TASK against this ecosystem.toml's repos "
        "(default: $SPEEDRIFT_ECOSYSTEM; without one they block, as in wg)",
    )


def build() -> argparse.ArgumentParser:
    common = _common()
    root = argparse.ArgumentParser(
        prog="speedrift",
        description="A control plane for an AI dark factory. Graph verbs mirror `wg`; queries take --json.\n"
        "Exit codes: 0 success, 1 refused or failed, 2 usage error.",
        formatter_class=_Formatter,
    )
    root.add_argument("--version", action="version", version=f"speedrift {__version__}")
    root.add_argument("--dir", default=None, metavar="PATH", help="graph directory (see each command)")
    sub = root.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(
            name, help=help_text, description=help_text, parents=[common], formatter_class=_Formatter
        )
        parser.set_defaults(handler=handler)
        return parser

    # --- setup ------------------------------------------------------------------------------
    p = command("init", "admin_cmds:init", "Create .workgraph/ and git-exclude .speedrift/.")
    p.add_argument("path", nargs="?", default=".", help="repository root (default: current directory)")
    _json(p)
    p = command("repair", "admin_cmds:repair", "Move malformed graph lines aside with a report.")
    p.add_argument("--dry-run", action="store_true", help="only report the malformed lines")
    _json(p)
    p = command(
        "demo",
        "demo_cmd:demo",
        "Create (or reuse) a demo ecosystem and run the hub with its dashboard on it.",
    )
    p.add_argument("directory", nargs="?", default="speedrift-demo", help="where to create it")
    p.add_argument("--interval", type=_WAIT, default=5.0, help="seconds between hub cycles (default 5)")
    p.add_argument("--cycles", type=_at_least_one, default=None, help="stop after this many cycles")
    p.add_argument("--host", default="127.0.0.1", help="dashboard bind address (default 127.0.0.1)")
    p.add_argument("--port", type=argtypes.port, default=8777, help="dashboard port (default 8777)")
    p.add_argument("--no-dashboard", action="store_true", help="run the hub without the dashboard")

    # --- mutations ----------------------------------------------------------------------------
    p = command("add", "task_cmds:add", "Add a task (id slugged from the title unless --id).")
    p.add_argument("title", help="what the task is, in one line")
    p.add_argument("--id", dest="new_id", help="task id (default: slug of the title's first words)")
    p.add_argument("-d", "--description", help="longer description")
    p.add_argument("--after", "--blocked-by", action="append", help="run after these ids (a,b or repeat)")
    p.add_argument("--before", action="append", help="these tasks run after this one")
    p.add_argument("-t", "--tag", action="append", help="tag (repeatable)")
    p.add_argument("-p", "--priority", help=_PRIORITY)
    p.add_argument("--assign", help="assign to an actor")
    p.add_argument("--model", help="model, e.g. claude:sonnet or codex:gpt-5")
    p.add_argument("--exec", dest="exec_command", help="shell command line that does the task")
    p.add_argument("--paused", action="store_true", help="create paused")
    p.add_argument("--not-before", help="not ready before this RFC 3339 time")
    p.add_argument("--delay", help="not ready for this long (45s, 30m, 2h, 1d, 1w)")
    p.add_argument("--max-iterations", type=_at_least_one, help="declare a deliberate loop")
    p.add_argument("--cron", metavar="EXPR", help=_CRON)
    p.add_argument("--fallback", metavar="ORDER", help=_FALLBACK)
    p.add_argument("--budget-usd", type=float, metavar="USD", help=_BUDGET_USD)
    p.add_argument("--budget-tokens", type=int, metavar="N", help=_BUDGET_TOKENS)
    p.add_argument("--touch", action="append", help="declared scope: a glob of files it may change")
    p.add_argument("--deliverable", action="append", help="a file the task must produce")
    p.add_argument(
        "--review",
        choices=REVIEW_MODES,
        help="the Reviewer for this task, over [review] mode (docs/review.md)",
    )
    p.add_argument("--strict", action="store_true", help="unknown dependency ids are an error")
    _json(p)

    p = command("edit", "task_cmds:edit", "Change a task's fields; fields not named stay as they are.")
    _id(p)
    p.add_argument("--title")
    p.add_argument("-d", "--description")
    p.add_argument("-p", "--priority", help=_PRIORITY)
    p.add_argument("-t", "--add-tag", action="append")
    p.add_argument("--remove-tag", action="append")
    p.add_argument("--assign")
    p.add_argument("--model")
    p.add_argument("--exec", dest="exec_command")
    p.add_argument("--not-before")
    p.add_argument("--max-iterations", type=_at_least_one)
    cron = p.add_mutually_exclusive_group()
    cron.add_argument("--cron", metavar="EXPR", help=_CRON)
    cron.add_argument(
        "--no-cron", action="store_true", help="stop the task recurring (clears wg's cron fields)"
    )
    p.add_argument("--fallback", metavar="ORDER", help=_FALLBACK + '; "" removes it')
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-usd", type=float, metavar="USD", help=_BUDGET_USD)
    budget.add_argument("--no-budget", action="store_true", help="drop the task's own budget")
    p.add_argument("--budget-tokens", type=int, metavar="N", help=_BUDGET_TOKENS)
    p.add_argument("--touch", action="append", help="replace the declared scope globs")
    p.add_argument("--deliverable", action="append")
    p.add_argument(
        "--review",
        choices=(*REVIEW_MODES, "repo"),
        help="the task's own Reviewer mode; repo: none of its own, [review] mode decides",
    )
    _json(p)

    p = command("add-dep", "task_cmds:add_dep", "Make ID run after AFTER_ID (loops only if declared).")
    _id(p)
    p.add_argument("blocker", metavar="AFTER_ID")
    p.add_argument("--strict", action="store_true", help="unknown dependency ids are an error")
    _json(p)
    p = command("rm-dep", "task_cmds:rm_dep", "Remove the edge that makes ID run after AFTER_ID.")
    _id(p)
    p.add_argument("blocker", metavar="AFTER_ID")
    _json(p)

    p = command(
        "claim", "task_cmds:claim", "Atomically claim a task (open/blocked/incomplete -> in-progress)."
    )
    _id(p)
    p.add_argument("--actor", help="who claims (default: $WG_AGENT_ID, then the login name)")
    _json(p)
    for name, help_text in (
        ("unclaim", "Release a claimed task back to open."),
        ("pause", "Pause a task: it is never ready while paused."),
        ("resume", "Resume a paused task."),
    ):
        p = command(name, f"task_cmds:{name}", help_text)
        _id(p)
        _json(p)
    p = command(
        "done", "task_cmds:done", "Mark an open or in-progress task done (its blockers must be resolved)."
    )
    _id(p)
    p.add_argument("--force", action="store_true", help="mark it done even though blockers are unresolved")
    _json(p)
    p = command("fail", "task_cmds:fail", "Mark a task failed (dependents stay blocked).")
    _id(p)
    p.add_argument("--reason", help="why it failed")
    _json(p)
    p = command("abandon", "task_cmds:abandon", "Abandon a task (dependents are released, as in wg).")
    _id(p)
    p.add_argument("--reason")
    _json(p)
    p = command("retry", "task_cmds:retry", "Reopen a failed task; the failure and --context are kept.")
    _id(p)
    p.add_argument("--context", help="guidance kept for the next attempt (what to do differently)")
    p.add_argument(
        "--force", action="store_true", help="retry a non-retryable failure class without --context"
    )
    _json(p)
    p = command("log", "task_cmds:log_message", "Append a progress note to a task's log.")
    _id(p)
    p.add_argument("message")
    _json(p)

    # --- queries ------------------------------------------------------------------------------
    p = command("ready", "query_cmds:ready", "Ready tasks, in dispatch order.")
    _peer_ecosystem(p)
    _rows(p)
    _json(p)
    p = command("list", "query_cmds:list_tasks", "List tasks in file order (system tasks only with --all).")
    p.add_argument("--status", help="only tasks with this status")
    p.add_argument("-t", "--tag", action="append", help="only tasks with this tag (repeat: all of them)")
    p.add_argument(
        "--all", dest="show_all", action="store_true", help="every row, dot-prefixed system tasks included"
    )
    _rows(p, every=False)
    _json(p)
    p = command("show", "query_cmds:show", "The whole task, every field included.")
    _id(p)
    _peer_ecosystem(p)
    _json(p)
    p = command("blocked", "query_cmds:blocked", "Open tasks that are not ready, with what holds each.")
    _peer_ecosystem(p)
    _rows(p)
    _json(p)
    p = command("why-blocked", "query_cmds:why_blocked", "The transitive chain of what holds a task.")
    _id(p)
    _peer_ecosystem(p)
    _json(p)
    p = command("cycles", "query_cmds:cycles", "Loops in the graph; configured ones are deliberate.")
    _json(p)
    p = command("bottlenecks", "query_cmds:bottlenecks", "Unfinished tasks that the most work waits on.")
    p.add_argument("-n", "--limit", type=_at_least_one, default=10)
    _json(p)
    p = command("critical-path", "query_cmds:critical_path", "The longest chain of unfinished work.")
    _json(p)
    p = command("aging", "query_cmds:aging", "Unfinished tasks by age, oldest first.")
    _rows(p)
    _json(p)
    p = command("viz", "query_cmds:viz", "Draw the graph as a tree, Graphviz dot or Mermaid.")
    p.add_argument("-f", "--format", dest="fmt", choices=("tree", "dot", "mermaid"), default="tree")
    p.add_argument("--all", dest="show_all", action="store_true", help="include done and system tasks")
    # --- worker plane ---------------------------------------------------------------------------
    p = command("run", "worker_cmds:run", "Run one attempt at a task in its own worktree, in the foreground.")
    _id(p)
    p.add_argument("--force", action="store_true", help="run it even if it is not ready")
    _peer_ecosystem(p)
    p.add_argument("--quiet", action="store_true", help="do not stream the agent's events")
    p.add_argument("--hub", action="store_true", help=_HUB_HELP)
    _json(p)
    from speedrift.cli import parser_agents  # alone: running attempts; list|status|run…: standing agents

    parser_agents.add(command, common)
    p = command("tail", "tail_cmd:tail", "Show (and with -f follow) an attempt's events, readable.")
    _id(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep following while it runs")
    p.add_argument("--attempt", type=_at_least_one, help="attempt number (default: the latest)")
    _json(p)
    p = command("attach", "attach_cmd:attach", "Follow a running attempt live (--all: every one; --tmux).")
    p.add_argument("task_id", metavar="ID", nargs="?", help="task id (omit with --all)")
    p.add_argument("--attempt", type=_at_least_one, help="attempt number (default: the latest)")
    p.add_argument("--all", dest="attach_all", action="store_true", help="every running attempt")
    p.add_argument("--tmux", action="store_true", help="follow in a tmux window named after the task")
    p.add_argument(
        "--ecosystem",
        metavar="PATH",
        default=None,
        help="with --all: every repo of this ecosystem.toml (default: $SPEEDRIFT_ECOSYSTEM, else this repo)",
    )
    _json(p)
    p = command("cancel", "worker_cmds:cancel", "Kill a running attempt's process group; keep its worktree.")
    _id(p)
    p.add_argument("--timeout", type=_WAIT, default=30.0, help="seconds to wait for it to stop")
    p = command(
        "worktrees", "worker_cmds:worktrees_list", "List speedrift's worktrees, or garbage-collect them."
    )
    wt = p.add_subparsers(dest="worktrees_command", metavar="ACTION")
    q = wt.add_parser("list", help="list worktrees and what GC would do", parents=[common])
    q.set_defaults(handler="worker_cmds:worktrees_list")
    _rows(q)
    _json(q)
    q = wt.add_parser(
        "gc", help="remove landed/abandoned worktrees; never dirty or unlanded ones", parents=[common]
    )
    q.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    q.set_defaults(handler="worker_cmds:worktrees_gc")
    _json(q)
    q = wt.add_parser("quarantine", help="move a worktree aside, work intact", parents=[common])
    q.add_argument("name", help="worktree name from `worktrees list`")
    q.set_defaults(handler="worker_cmds:worktrees_quarantine")
    _json(p)

    p = command("service", "service_cmds:status", "The per-repo service: start|stop|status|restart.")
    sv = p.add_subparsers(dest="service_command", metavar="ACTION")
    for name, handler, help_text in (
        ("start", "service_cmds:start", "start the service in the background"),
        ("stop", "service_cmds:stop", "stop it; running attempts are cancelled and their tasks reopened"),
        ("status", "service_cmds:status", "is it running, and what is it doing"),
        ("restart", "service_cmds:restart", "stop, then start"),
        ("run", "service_cmds:serve", "run the service in the foreground (what start launches)"),
        ("resume-retries", "service_cmds:resume_retries", "resume automatic retries halted by failures"),
    ):
        q = sv.add_parser(name, help=help_text, parents=[common])
        q.set_defaults(handler=handler)
        q.add_argument("--timeout", type=_WAIT, default=60.0, help="seconds to wait for start/stop")
        if name in ("start", "run"):
            q.add_argument("--hub", action="store_true", help=_HUB_HELP + "; idle while it is not valid")
        _json(q)
    _json(p)

    # command groups of the other planes each live in their own parser module
    from speedrift.cli import (
        parser_adhoc,
        parser_cluster,
        parser_control,
        parser_fleet,
        parser_gates,
        parser_hooks,
        parser_lanes,
        parser_plans,
        parser_review,
        parser_runtime,
        parser_selftest,
        parser_upstream,
        parser_web,
    )

    parser_gates.add(command, common)
    parser_hooks.add(command, common)
    parser_lanes.add(command, common)
    parser_fleet.add(command, common)
    parser_plans.add(command, common)
    parser_plans.add_replay(command, common)
    parser_adhoc.add(command, common)
    parser_control.add(command, common)
    parser_web.add(command, common)
    parser_runtime.add(command, common)
    parser_review.add(command, common)
    parser_upstream.add(command, common)
    parser_selftest.add(command, common)
    parser_cluster.add(command, common)
    return root
