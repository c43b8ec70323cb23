"""`speedrift agents list|status|run|pause|resume`: the ecosystem's standing agents.

The ecosystem is found like the other hub commands (``--ecosystem PATH``, else ./ecosystem.toml).
``run`` creates a run task in a served repo (fleetops/runs.py) and runs it through the supervisor
in the foreground — the very handler of ``speedrift run TASK`` in that repo — or, with
``--detach``, starts that ``speedrift run`` as a background child and returns. ``pause`` and
``resume`` change the agent's durable pause (fleetops/pausing.py) on the operator's authority.
Every change is one record in the hub's ledger. (``speedrift agents`` alone lists the attempts
running in this repo: worker_cmds.agents.)
"""

from __future__ import annotations

import sys
from argparse import Namespace
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import hubdir
from speedrift.cli.base import actor_name
from speedrift.cli.output import emit_json, printable, say, table, warn
from speedrift.control.ecosystem.load import load_ecosystem
from speedrift.errors import NotFound, Refused, UsageError
from speedrift.fleet.opsconfig import FleetOps
from speedrift.fleetops import pausing, status
from speedrift.fleetops.declared import Served, declared_agents, find
from speedrift.fleetops.runs import create_run
from speedrift.fleetops.state import StateStore
from speedrift.graph.store import GraphStore
from speedrift.register.ledger import Ledger
from speedrift.times import DurationTooLong, now_utc, parse_duration, parse_time, short_stamp


@dataclass(frozen=True)
class Fleet:
    ecosystem: Path
    hub: Path
    repos: dict[str, Path]
    ops: FleetOps


def fleet(args: Namespace) -> Fleet:
    explicit = getattr(args, "ecosystem", None)
    path = hubdir.find_ecosystem(Path(explicit) if explicit else None, Path.cwd())
    eco = load_ecosystem(path)
    return Fleet(path, hubdir.hub_dir(path), {e.name: e.path for e in eco.repos}, eco.ops)


def operator() -> str:
    return f"operator:{actor_name()}"


def _served(where: Fleet, name: str) -> Served:
    served, problems = declared_agents(where.ops, where.repos)
    item = find(served, name)
    if item is None:
        for problem in problems:
            if repr(name) in problem:
                warn(problem)
        raise status.unknown_agent(name, served)
    return item


# --- queries ------------------------------------------------------------------------------------------
def _state_words(row: dict[str, Any]) -> str:
    if not row["enabled"]:
        return "disabled"
    paused = row["paused"]
    if paused:
        until = f" until {paused['until']}" if paused["until"] else ""
        return f"paused by {paused['by']}{until}: {paused['reason']}"
    return "enabled"


def _schedule_words(row: dict[str, Any]) -> str:
    if row["layer"] == "core":
        return f"{row['schedule']} ({row['tz']}), next {row['next_slot'] or 'never'}"
    return "always on" if row["layer"] == "safety" else "on demand"


def _state_cell(row: dict[str, Any]) -> str:
    """State, drift (when not normal), concurrency and a safety agent's restarts, in one cell so
    the table fits a terminal; ``--json`` has each field apart."""
    parts = [_state_words(row)]
    level = (row["drift"] or {}).get("level", "normal")
    if level != "normal":
        parts.append(f"drift {level}")
    parts.append(f"{row['concurrency']} at once")
    if row["layer"] == "safety":
        parts.append(f"restarts {row['restarts_in_window']}/{row['max_restarts']}")
    return ", ".join(parts)


def _last_run(row: dict[str, Any]) -> str:
    last = row["last_run"]
    return f"{last['repo']}:{last['task']} {last['status']}" if last else "-"


def list_agents(args: Namespace) -> None:
    where = fleet(args)
    rows, problems = status.agent_rows(where.ops, where.repos, where.hub, now_utc())
    if args.as_json:
        emit_json({"agents": rows, "problems": problems})
        return
    for problem in problems:
        warn(problem)
    if not rows:
        say("No standing agents are declared ([[agents]] in ecosystem.toml or a repo's speedrift.toml).")
        return
    table(
        "Standing agents",
        ["agent", "when", "serves", "state", "last run"],
        [
            (
                f"{r['name']} ({r['layer']})",
                _schedule_words(r),
                f"{', '.join(r['repos'])} on {r['model'] or r['runtime']}",
                _state_cell(r),
                _last_run(r),
            )
            for r in rows
        ],
    )


def show_status(args: Namespace) -> None:
    where = fleet(args)
    row = status.agent_status(where.ops, where.repos, where.hub, args.name, now_utc())
    if args.as_json:
        emit_json(row)
        return
    for problem in row["problems"]:
        warn(problem)
    say(f"{row['name']} ({row['layer']}, declared in {row['source']})")
    say(f"  schedule: {_schedule_words(row)}")
    say(f"  serves: {', '.join(row['repos'])}; runs on {row['model'] or row['runtime']}")
    say(f"  state: {_state_words(row)}; drift {(row['drift'] or {}).get('level', 'normal')}")
    say(f"  concurrency: {row['concurrency']} (max_concurrent {row['max_concurrent']})")
    if row["layer"] == "safety":
        say(f"  restarts in window: {row['restarts_in_window']}/{row['max_restarts']}")
    for decision in row["now"]:
        where_ = f" in {decision['repo']}" if decision["repo"] else ""
        say(f"  now{where_}: {decision['verdict']} — {printable(decision['reason'])}")
    if not row["recent_runs"]:
        say("  no runs yet")
        return
    table(
        "Recent runs",
        ["repo", "task", "status", "slot", "created", "ended"],
        [
            (
                r["repo"],
                r["task"],
                r["status"] + (" (paused)" if r["paused"] else ""),
                r["slot"] or "-",
                r["created_at"],
                r["ended_at"] or "-",
            )
            for r in row["recent_runs"]
        ],
    )


# --- changes ------------------------------------------------------------------------------------------
def run(args: Namespace) -> int:
    where = fleet(args)
    served = _served(where, args.name)
    now = now_utc()
    agent_state = StateStore(where.hub).read().agents.get(served.name)
    if agent_state is not None and agent_state.pause is not None and agent_state.paused(now):
        pause = agent_state.pause
        raise Refused(
            f"agent {served.name!r} is paused by {pause.by}: {pause.reason}",
            hint=f"`speedrift agents resume {served.name}` first",
        )
    if not served.agent.enabled:
        raise Refused(
            f"agent {served.name!r} is disabled (enabled = false in {served.source})",
            hint="set enabled = true (or remove the key) to run it",
        )
    repo_name = _repo_for(served, args.repo)
    repo = where.repos.get(repo_name)
    if repo is None:
        raise NotFound(f"repo {repo_name!r} is not registered in {where.ecosystem}")
    store = GraphStore.of_repo(repo)
    if store is None:
        raise NotFound(f"{repo_name} ({repo}) has no task graph", hint=f"run `speedrift init {repo}`")
    task_id = create_run(repo, served, slot=None, now=now, actor=actor_name())
    ref = f"{repo_name}:{task_id}"
    StateStore(where.hub).update(lambda state: state.agent(served.name).remember_run(ref, now))
    entry: dict[str, Any] = {
        "kind": "agent_run",
        "generated_at": now,
        "agent": served.name,
        "layer": served.agent.layer.value,
        "repo": repo_name,
        "task": task_id,
        "slot": None,
        "restart": None,
        "reason": "on demand",
        "by": operator(),
    }
    if args.detach:
        entry["pid"], entry["log"] = _detach(where, store, repo, task_id)
        Ledger(where.hub).append(entry)
        if args.as_json:
            emit_json(entry)
        else:
            say(f"Created {printable(ref)}; `speedrift run` started in the background (pid {entry['pid']}).")
            say(f"log: {entry['log']}")
        return 0
    Ledger(where.hub).append(entry)
    sys.stderr.write(f"speedrift: created {printable(ref)}; running it through the supervisor\n")
    from speedrift.cli import worker_cmds  # the very handler of `speedrift run TASK`

    return worker_cmds.run(
        Namespace(
            dir=str(store.directory),
            task_id=task_id,
            force=False,
            quiet=args.quiet,
            hub=False,
            as_json=args.as_json,
            ecosystem=str(where.ecosystem),
        )
    )


def _repo_for(served: Served, wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in served.repos:
            raise UsageError(
                f"agent {served.name!r} does not serve {wanted!r}",
                hint=f"it serves {', '.join(served.repos)}",
            )
        return wanted
    if len(served.repos) > 1:
        raise UsageError(
            f"agent {served.name!r} serves {len(served.repos)} repos: say which with --repo",
            hint=f"--repo {' | '.join(served.repos)}",
        )
    return served.repos[0]


def _detach(where: Fleet, store: GraphStore, repo: Path, task_id: str) -> tuple[int, str]:
    from speedrift.procs import spawn_detached

    logs = hubdir.logs_dir(where.hub)
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"agent-run-{task_id}-{short_stamp(now_utc())}.log"
    argv = [sys.executable, "-m", "speedrift", "--dir", str(store.directory), "run", "--quiet"]
    argv += ["--ecosystem", str(where.ecosystem), "--", task_id]
    child = spawn_detached(argv, cwd=repo, log=log)
    return child.pid, str(log)


def _until(text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    moment = parse_time(text)
    if moment is None:
        try:
            moment = now + parse_duration(text)
        except DurationTooLong:
            raise
        except UsageError:
            raise UsageError(
                f"--until {text!r} is neither a time nor a duration",
                hint="e.g. --until 2026-12-01T09:00:00Z, or --until 2h",
            ) from None
    if moment <= now:
        raise UsageError(f"--until {text!r} has already passed", hint="give a later time, or leave it out")
    return moment


def pause(args: Namespace) -> None:
    where = fleet(args)
    served = _served(where, args.name)
    now = now_utc()
    until = _until(args.until, now)
    if until is not None and until - now > timedelta(days=3650):
        raise UsageError("--until must be within 10 years")
    entry = pausing.pause_agent(
        where.hub,
        {r: where.repos[r] for r in served.repos if r in where.repos},
        served.name,
        by=operator(),
        reason=args.reason,
        now=now,
        until=until,
    )
    Ledger(where.hub).append(entry)
    if args.as_json:
        emit_json(entry)
        return
    when = f" until {until.isoformat()}" if until else " until `speedrift agents resume`"
    say(f"Paused {served.name}{when}: {printable(args.reason)}")
    if entry["tasks"]:
        say(f"  waiting runs paused: {', '.join(entry['tasks'])}")
    for problem in entry.get("problems", []):
        warn(problem)


def resume(args: Namespace) -> None:
    where = fleet(args)
    served_list, _problems = declared_agents(where.ops, where.repos)
    item = find(served_list, args.name)
    state = StateStore(where.hub).read()
    if item is None and args.name not in state.agents:
        raise status.unknown_agent(args.name, served_list)
    repos = (
        {r: where.repos[r] for r in item.repos if r in where.repos} if item is not None else dict(where.repos)
    )
    entry = pausing.resume_agent(where.hub, repos, args.name, by=operator(), now=now_utc())
    if entry["changed"] or entry["tasks"]:
        Ledger(where.hub).append(entry)
    if args.as_json:
        emit_json(entry)
        return
    say(printable(entry["message"]))
    if entry["tasks"]:
        say(f"  runs resumed: {', '.join(entry['tasks'])}")
    for problem in entry.get("problems", []):
        warn(problem)
