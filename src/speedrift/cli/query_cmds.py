"""Read-only commands: ready, list, show, blocked, why-blocked, cycles, bottlenecks, critical-path,
aging, viz. None of them takes a lock or writes a byte."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from speedrift.cli.base import JsonFlag, app, store
from speedrift.cli.output import emit_json, say, table, warn
from speedrift.errors import NotFound
from speedrift.graph import query, viz
from speedrift.graph.codec import Graph
from speedrift.graph.model import Task, after_of, is_system, now_utc, priority_of, status_of, str_list


def _load() -> Graph:
    graph_store = store()
    graph = graph_store.load()
    for lineno, problem in graph.problems[:5]:
        warn(f"{graph_store.graph_path}:{lineno}: {problem} (line skipped; `speedrift repair` sets it aside)")
    if len(graph.problems) > 5:
        warn(f"… and {len(graph.problems) - 5} more malformed lines")
    return graph


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
    return out


@app.command()
def ready(as_json: JsonFlag = False) -> None:
    """Tasks ready to start, in dispatch order (priority with age bump, then fewest dispatches)."""
    graph = _load()
    tasks = query.ready(graph, now_utc())
    if as_json:
        emit_json([{**row(t), "ready": True} for t in tasks])
        return
    if not tasks:
        say("No tasks are ready.")
        return
    table(
        "Ready",
        ["id", "title", "priority", "assigned"],
        [(t["id"], t.get("title"), priority_of(t), t.get("assigned")) for t in tasks],
    )


@app.command("list")
def list_cmd(
    status: Annotated[str | None, typer.Option("--status", help="Only tasks with this status.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Only tasks with this tag (repeat: all of them).")
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include dot-prefixed system tasks.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List tasks in file order. System tasks (.evaluate-x, ...) are hidden unless --all."""
    graph = _load()
    wanted_tags = set(tag or [])
    rows = [
        row(t)
        for t in graph.iter_tasks()
        if (show_all or not is_system(t["id"]))
        and (status is None or status_of(t) == status)
        and wanted_tags.issubset(str_list(t, "tags"))
    ]
    if as_json:
        emit_json(rows)
        return
    table(
        None,
        ["id", "title", "status", "priority", "assigned", "after"],
        [
            (r["id"], r["title"], r["status"], r["priority"], r["assigned"], ", ".join(r["after"]))
            for r in rows
        ],
    )


@app.command()
def show(task_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """The whole task, every field included (unknown ones too)."""
    graph = _load()
    task = graph.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r} in the graph", hint="`speedrift list --all` shows every id")
    if as_json:
        emit_json(task, pretty=True)
        return
    reasons = (
        query.direct_reasons(graph, task, now_utc()) if status_of(task) in ("open", "incomplete") else []
    )
    lines = [
        f"{task['id']}: {task.get('title', '')}",
        f"  status: {status_of(task)}   priority: {priority_of(task)}",
    ]
    for key in ("assigned", "model", "exec", "created_at", "started_at", "completed_at", "failure_reason"):
        if key in task:
            lines.append(f"  {key}: {task[key]}")
    if after_of(task):
        lines.append(f"  after: {', '.join(after_of(task))}")
    for reason in reasons:
        lines.append(f"  not ready: {reason.get('blocker', '')} {reason['detail']}".rstrip())
    if task.get("description"):
        lines += ["", str(task["description"])]
    for entry in task.get("log") or []:
        if isinstance(entry, dict):
            lines.append(
                f"  [{entry.get('timestamp', '')}] {entry.get('actor', '')}: {entry.get('message', '')}"
            )
    extra = sorted(k for k in task if k not in viz.SHOWN_KEYS)
    if extra:
        lines.append(f"  other fields: {', '.join(extra)}")
    say("\n".join(lines))


@app.command()
def blocked(as_json: JsonFlag = False) -> None:
    """Open tasks that are not ready, with what holds each."""
    rows = query.blocked(_load(), now_utc())
    if as_json:
        emit_json(rows)
        return
    table(
        "Blocked",
        ["id", "title", "held by"],
        [
            (
                r["id"],
                r["title"],
                "; ".join(f"{x.get('blocker', x['kind'])}: {x['detail']}" for x in r["reasons"]),
            )
            for r in rows
        ],
    )


@app.command("why-blocked")
def why_blocked(task_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """The transitive chain of what holds a task, down to root causes."""
    graph = _load()
    if task_id not in graph:
        raise NotFound(f"no task {task_id!r} in the graph")
    tree = query.why_blocked(graph, task_id, now_utc())
    if as_json:
        emit_json(tree.to_dict(), pretty=True)
        return
    say(viz.render_block_tree(tree))


@app.command()
def cycles(as_json: JsonFlag = False) -> None:
    """Loops in the dependency graph; configured ones (cycle_config) are deliberate."""
    analysis = query.cycle_analysis(_load())
    rows: list[dict[str, Any]] = [
        {
            "members": list(c.members),
            "header": c.header,
            "configured": c.configured,
            "back_edges": sorted([b, d] for b, d in analysis.back_edges if d in c.members and b in c.members),
        }
        for c in analysis.cycles
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        say("No cycles.")
    for r in rows:
        kind = "loop (cycle_config)" if r["configured"] else "UNCONFIGURED cycle"
        say(f"{kind}: {' -> '.join(r['members'])} -> {r['header']}")


@app.command()
def bottlenecks(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 10, as_json: JsonFlag = False
) -> None:
    """Unfinished tasks that the most other work waits on."""
    rows = query.bottlenecks(_load(), limit)
    if as_json:
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


@app.command("critical-path")
def critical_path(as_json: JsonFlag = False) -> None:
    """The longest chain of unfinished work, by estimated hours (1 when unestimated)."""
    graph = _load()
    chain, hours = query.critical_path(graph)
    if as_json:
        emit_json({"path": chain, "hours": hours})
        return
    if not chain:
        say("No unfinished work.")
        return
    say(f"Critical path ({hours:g} h, {len(chain)} tasks):")
    for tid in chain:
        say(f"  {tid}  [{status_of(graph.tasks[tid])}]  {graph.tasks[tid].get('title', '')}")


@app.command()
def aging(as_json: JsonFlag = False) -> None:
    """Unfinished tasks by age, oldest first."""
    rows = query.aging(_load(), now_utc())
    if as_json:
        emit_json(rows)
        return
    table(
        "Aging",
        ["id", "title", "status", "age (days)", "bucket"],
        [(r["id"], r["title"], r["status"], r["age_days"], r["bucket"]) for r in rows],
    )


class VizFormat(StrEnum):
    tree = "tree"
    dot = "dot"
    mermaid = "mermaid"


@app.command("viz")
def viz_cmd(
    fmt: Annotated[VizFormat, typer.Option("--format", "-f")] = VizFormat.tree,
    show_all: Annotated[bool, typer.Option("--all", help="Include done and system tasks.")] = False,
) -> None:
    """Draw the graph as an indented tree, Graphviz dot, or Mermaid."""
    graph = _load()
    render = {VizFormat.tree: viz.tree, VizFormat.dot: viz.dot, VizFormat.mermaid: viz.mermaid}[fmt]
    sys.stdout.write(render(graph, include_done=show_all) + "\n")
