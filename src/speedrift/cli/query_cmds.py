"""Read-only commands: ready, list, show, blocked, why-blocked, cycles, bottlenecks, critical-path,
aging, viz. None of them takes a lock or writes a byte."""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from speedrift.cli.base import store
from speedrift.cli.output import emit_json, printable, row_limit, say, table, warn
from speedrift.errors import NotFound
from speedrift.graph import peers, query
from speedrift.graph import viz as viz_render
from speedrift.graph.codec import Graph
from speedrift.graph.model import (
    Task,
    after_of,
    dispatch_hold,
    is_system,
    priority_of,
    speedrift_data,
    status_of,
    str_list,
)
from speedrift.times import now_utc


def _load(args: Namespace) -> Graph:
    graph_store = store(args)
    graph = graph_store.load()
    report_graph(graph_store.graph_path, graph)
    return graph


def report_graph(path: Path, graph: Graph, limit: int = 5) -> None:
    """Warn about what reading the graph met: malformed lines (skipped), duplicate ids (the last
    wins), what wg cannot read but speedrift corrects on its next write (a byte-order mark)."""
    for lineno, problem in graph.problems[:limit]:
        warn(f"{path}:{lineno}: {problem} (line skipped; `speedrift repair` sets it aside)")
    if len(graph.problems) > limit:
        warn(f"… and {len(graph.problems) - limit} more malformed lines")
    for message in graph.warnings[:limit]:
        warn(f"{path}: {message}")
    if len(graph.warnings) > limit:
        warn(f"… and {len(graph.warnings) - limit} more duplicate task ids")
    for lineno, fix in graph.fixes[:limit]:
        warn(f"{path}:{lineno}: {fix}; `speedrift repair` does it now")


def _peers(args: Namespace, graph: Graph, task: Task | None = None) -> query.PeerStatuses | None:
    """Statuses of the peer tasks (``after = ["REPO:TASK"]``) when an ecosystem is named
    (``--ecosystem`` or ``$SPEEDRIFT_ECOSYSTEM``): only the referenced repos' graphs are read.
    Without one, such blockers stay missing, as in workgraph. With ``task``, only that task's own
    peer tasks (a finished task's too: ``show`` names them all)."""
    explicit = getattr(args, "ecosystem", None)
    if not explicit and not os.environ.get("SPEEDRIFT_ECOSYSTEM"):  # hubdir.ECOSYSTEM_ENV, unimported:
        return None  # a command naming no ecosystem loads nothing more than before
    from speedrift.control.ecosystem.peers import named_ecosystem, peer_statuses, repo_paths

    path = named_ecosystem(explicit, Path.cwd())
    if path is None:
        return None
    if task is None:
        return peer_statuses(graph, path)
    wanted = peers.referenced(graph, task)
    return peers.resolve(wanted, repo_paths(path)) if wanted else {}


def _after_words(task: Task, graph: Graph, peer_statuses: query.PeerStatuses | None) -> str:
    """The task's ``after`` list; with an ecosystem named, each REPO:TASK entry with its status there."""
    words: list[str] = []
    for blocker in after_of(task):
        if peer_statuses is None or blocker in graph.tasks or peers.split(blocker) is None:
            words.append(blocker)
        else:  # its status there, else why it is not there: "no task T in R", "no repo R in the ecosystem"
            status = peer_statuses.get(blocker)
            words.append(f"{blocker} ({status or query.peer_problem(blocker, peer_statuses)})")
    return ", ".join(words)


def row(task: Task) -> dict[str, Any]:
    """A list/ready row, mirroring wg's `list --json` keys."""
    out: dict[str, Any] = {
        "id": task["id"],
        "title": task.get("title", ""),
        "status": status_of(task),
        "priority": priority_of(task),
        "assigned": task.get("assigned"),
        "after": after_of(task),
        "tags": str_list(task, "tags"),
    }
    for key in ("not_before", "ready_after", "paused", "estimate", "model", "exec", "verify_failures"):
        if key in task:
            out[key] = task[key]
    if task.get("cron_enabled") is True:  # as wg's list --json: a recurring task's cron fields
        out |= {k: task[k] for k in ("cron_enabled", "cron_schedule", "next_cron_fire") if k in task}
    return out


def ready(args: Namespace) -> None:
    """Tasks ready to start, in dispatch order (priority with age bump, then fewest dispatches)."""
    graph = _load(args)
    tasks = query.ready(graph, now_utc(), _peers(args, graph))
    # ready by the graph, but no developer attempt starts it: a wave's closure stage, or a start a
    # person approves first (the service and the hub skip these for that reason)
    held = {t["id"]: reason for t in tasks if (reason := dispatch_hold(t))}
    if args.as_json:
        emit_json(
            [{**row(t), "ready": True, **({"held": held[t["id"]]} if t["id"] in held else {})} for t in tasks]
        )
        return
    if not tasks:
        say("No tasks are ready.")
        return
    columns = ["id", "title", "priority", "assigned"] + (["held"] if held else [])
    limit = row_limit(args)
    rows: list[tuple[Any, ...]] = [
        (
            t["id"],
            t.get("title"),
            priority_of(t),
            t.get("assigned"),
            *([held.get(t["id"], "")] if held else []),
        )
        for t in (tasks if limit is None else tasks[:limit])
    ]
    table("Ready", columns, rows, limit=limit, total=len(tasks))


def list_tasks(args: Namespace) -> None:
    """List tasks in file order. System tasks (.evaluate-x, ...) are hidden unless --all."""
    graph = _load(args)
    wanted_tags = set(args.tag or [])
    status = args.status
    rows = [
        row(t)
        for t in graph.iter_tasks()
        if (args.show_all or not is_system(t["id"]))
        and (status is None or status in (status_of(t), t.get("status")))
        and wanted_tags.issubset(str_list(t, "tags"))
    ]
    if args.as_json:
        emit_json(rows)
        return
    limit = row_limit(args)
    table(
        None,
        ["id", "title", "status", "priority", "assigned", "after"],
        [
            (r["id"], r["title"], r["status"], r["priority"], r["assigned"], ", ".join(r["after"]))
            for r in (rows if limit is None else rows[:limit])
        ],
        limit=limit,
        total=len(rows),
    )


def show(args: Namespace) -> None:
    """The whole task, every field included (unknown ones too)."""
    graph = _load(args)
    task_id = args.task_id
    task = graph.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r} in the graph", hint="`speedrift list --all` shows every id")
    if args.as_json:
        emit_json(task)
        return
    peer_statuses = _peers(args, graph, task)
    reasons = (
        query.direct_reasons(graph, task, now_utc(), peer_statuses)
        if status_of(task) in ("open", "incomplete")
        else []
    )
    data = speedrift_data(task)
    unverified = status_of(task) == "done" and data.get("verified") is False
    lines = [
        f"{printable(task['id'])}: {printable(str(task.get('title', '')))}",
        f"  status: {status_of(task)}{' (unverified)' if unverified else ''}   priority: {priority_of(task)}",
    ]
    if unverified:  # landed without its tests having run: say why
        lines.append(
            f"  unverified: {printable(str(data.get('unverified_reason') or 'the tests did not run'))}"
        )
    for key in ("assigned", "model", "exec", "created_at", "started_at", "completed_at", "failure_reason"):
        if key in task:
            lines.append(f"  {key}: {printable(str(task[key]))}")
    if after_of(task):
        lines.append(f"  after: {printable(_after_words(task, graph, peer_statuses))}")
    for reason in reasons:
        blocker, detail = reason.get("blocker", ""), reason["detail"]
        if peer_statuses is None and detail == "missing" and peers.split(blocker) is not None:
            detail = query.PEER_HINT  # as why-blocked says it: name the ecosystem to resolve it
        lines.append(f"  not ready: {printable(f'{blocker} {detail}')}".rstrip())
    if task.get("description"):
        lines += ["", printable(str(task["description"]), newlines=True)]  # its own lines, kept
    log = task.get("log")
    for entry in log if isinstance(log, list) else []:  # any JSON value may sit there
        if isinstance(entry, dict):
            lines.append(
                printable(
                    f"  [{entry.get('timestamp', '')}] {entry.get('actor', '')}: {entry.get('message', '')}"
                )
            )
    extra = sorted(k for k in task if k not in viz_render.SHOWN_KEYS)
    if extra:
        lines.append(f"  other fields: {printable(', '.join(extra))}")
    say("\n".join(lines))


def blocked(args: Namespace) -> None:
    """Open tasks that are not ready, with what holds each."""
    graph = _load(args)
    rows = query.blocked(graph, now_utc(), _peers(args, graph))
    if args.as_json:
        emit_json(rows)
        return
    limit = row_limit(args)
    table(
        "Blocked",
        ["id", "title", "held by"],
        [
            (
                r["id"],
                r["title"],
                "; ".join(f"{x.get('blocker', x['kind'])}: {x['detail']}" for x in r["reasons"]),
            )
            for r in (rows if limit is None else rows[:limit])
        ],
        limit=limit,
        total=len(rows),
    )


def why_blocked(args: Namespace) -> None:
    """The transitive chain of what holds a task, down to root causes."""
    graph = _load(args)
    task_id = args.task_id
    if task_id not in graph:
        raise NotFound(f"no task {task_id!r} in the graph")
    tree = query.why_blocked(graph, task_id, now_utc(), _peers(args, graph))
    if args.as_json:
        emit_json(tree.to_dict())
        return
    say(viz_render.render_block_tree(tree))


def cycles(args: Namespace) -> None:
    """Loops in the dependency graph; configured ones (cycle_config) are deliberate."""
    analysis = query.cycle_analysis(_load(args))
    rows: list[dict[str, Any]] = [
        {
            "members": list(c.members),
            "header": c.header,
            "configured": c.configured,
            "back_edges": sorted([b, d] for b, d in analysis.back_edges if d in c.members and b in c.members),
        }
        for c in analysis.cycles
    ]
    if args.as_json:
        emit_json(rows)
        return
    if not rows:
        say("No cycles.")
    for r in rows:
        kind = "loop (cycle_config)" if r["configured"] else "UNCONFIGURED cycle"
        say(f"{kind}: {printable(' -> '.join([*r['members'], r['header']]))}")


def bottlenecks(args: Namespace) -> None:
    """Unfinished tasks that the most other work waits on."""
    rows = query.bottlenecks(_load(args), args.limit)
    if args.as_json:
        emit_json(rows)
        return
    table(
        "Bottlenecks",
        ["id", "title", "status", "waiting (direct)", "waiting (all)"],
        [
            (r["id"], r["title"], r["status"], r["direct_dependents"], r["transitive_dependents"])
            for r in rows
        ],
    )


def critical_path(args: Namespace) -> None:
    """The longest chain of unfinished work, by estimated hours (1 when unestimated)."""
    graph = _load(args)
    chain, hours = query.critical_path(graph)
    if args.as_json:
        emit_json({"path": chain, "hours": hours})
        return
    if not chain:
        say("No unfinished work.")
        return
    say(f"Critical path ({hours:g} h, {len(chain)} tasks):")
    for tid in chain:
        task = graph.tasks[tid]
        say(printable(f"  {tid}  [{status_of(task)}]  {task.get('title', '')}"))


def aging(args: Namespace) -> None:
    """Unfinished tasks by age, oldest first."""
    rows = query.aging(_load(args), now_utc())
    if args.as_json:
        emit_json(rows)
        return
    limit = row_limit(args)
    table(
        "Aging",
        ["id", "title", "status", "age (days)", "bucket"],
        [
            (r["id"], r["title"], r["status"], r["age_days"], r["bucket"])
            for r in (rows if limit is None else rows[:limit])
        ],
        limit=limit,
        total=len(rows),
    )


def viz(args: Namespace) -> None:
    """Draw the graph as an indented tree, Graphviz dot, or Mermaid."""
    graph = _load(args)
    render = {"tree": viz_render.tree, "dot": viz_render.dot, "mermaid": viz_render.mermaid}[args.fmt]
    # each title and id is escaped to one line by the renderer; this escapes what else is left
    sys.stdout.write(printable(render(graph, include_done=args.show_all), newlines=True) + "\n")
