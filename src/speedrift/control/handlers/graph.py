"""Handlers that write to a repo's task graph: corrective tasks (the loopback), dependency repairs
(delegated to a corrective task), and reopening tasks whose claimant died (or, for an interrupted
landing where no service runs, starting the worker whose recovery settles it).

Every write goes through :meth:`GraphStore.mutate` (lock, reload, build, atomic write), and each
build decides from the graph it reloaded under the lock — so two hubs, or a hub and a service,
never double-write. The hub never edits another task's dependencies: a broken chain becomes a
task describing it, for an agent or a human to fix.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from speedrift.control.handlers.base import HandlerContext, HandlerResult, fresh_path, graph_store
from speedrift.control.plan.candidates import corrective_id
from speedrift.control.plan.prompts import action_brief, brief_markdown
from speedrift.fleet import service
from speedrift.graph import ids, ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import FAILED, IN_PROGRESS, after_of, speedrift_data, status_of
from speedrift.layout import safe_name
from speedrift.procs import record_alive, spawn_detached
from speedrift.register.actions import (
    Action,
    CorrectiveParams,
    RepairParams,
    TaskCorrectiveParams,
    VerifyParams,
)
from speedrift.repo import worktrees
from speedrift.times import parse_time, stamp

HUB_ACTOR = "speedrift-hub"
CORRECTIVE_TAGS = ("speedrift", "corrective")
MAX_LISTED = 20
MAX_TITLE = 200
CORRECTIVE_PREFIX = "speedrift-fix-"
# a corrective task's description, brief included; far inside wg's limit (graph/ids.py
# MAX_DESCRIPTION_LENGTH), so a graph line stays small. Only the optional prompts are ever cut.
MAX_DESCRIPTION = 16_000
MAX_SETTLING = 4  # workers one verification starts to settle interrupted landings


# ---------------------------------------------------------------- corrective tasks


def _corrective_task_id(action: Action, kind: str) -> str:
    """The plan names the task (``subject``, deterministic); without one, derive it the same way."""
    if action.subject and action.subject.startswith(CORRECTIVE_PREFIX):
        return action.subject
    return corrective_id(kind, action.subject or action.repo)


def corrective_description(
    action: Action, cycle_id: str | None, kind: str, facts: Sequence[str] = (), *, path: str | None = None
) -> str:
    """The task's whole brief, written when the task is: what the hub saw, then the action's goal,
    context, acceptance criteria and constraints with the safety line — the lines its Claude and
    Codex prompts are made of (plan/prompts.py ``action_brief``) — so whoever picks the task up, a
    speedrift agent, another tool's or a person, gets the brief. ``path``: the repo's path."""
    lines = [
        "Corrective task emitted by the speedrift hub.",
        "",
        f"Cycle: {cycle_id or 'n/a'}",
        f"Action: {action.id}",
        f"Kind: {kind}",
        f"Priority: {action.priority}",
        f"Reason: {action.reason}",
    ]
    tasks = action.tasks
    if tasks:
        lines.append(f"Tasks: {', '.join(tasks[:MAX_LISTED])}")
    if facts:
        lines += ["", "What the hub saw:", *(f"- {fact}" for fact in facts)]
    lines += ["", brief_markdown(action_brief(action, None, None, path=path))]
    text = "\n".join(lines)
    extra: list[str] = []  # prompts a presented action carries (the hub's own cycle plans without)
    for runtime in ("claude", "codex"):
        prompt = action.prompts.get(runtime)
        if prompt:
            extra += ["", f"## Prompt for {runtime.capitalize()}", "", prompt]
    tail = "\n" + "\n".join(extra) if extra else ""
    room = MAX_DESCRIPTION - len(text)
    if len(tail) <= room:
        return text + tail
    return text + tail[: room - 1] + "…" if room > 1 else text


def write_corrective(
    ctx: HandlerContext, action: Action, task_id: str, kind: str, title: str, description: str
) -> bool:
    """Add the task unless its id exists (in any status). Returns True when it was created."""
    ids.validate_id(task_id)
    one_line = " ".join(title.split())
    spec = ops.NewTask(
        one_line if len(one_line) <= MAX_TITLE else one_line[: MAX_TITLE - 1] + "…",
        task_id=task_id,
        description=description,
        tags=[*CORRECTIVE_TAGS, kind],
    )

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        if task_id in graph.tasks:
            return ops.Mutation()  # idempotent: the loopback never duplicates a task
        return ops.add_task(graph, spec, now=now, actor=HUB_ACTOR)

    created = graph_store(ctx.repo).mutate(build, actor=HUB_ACTOR, now=ctx.now())
    return bool(created.tasks)


def emit_corrective_task(action: Action, ctx: HandlerContext) -> HandlerResult:
    spec = action.params
    if not isinstance(spec, CorrectiveParams | TaskCorrectiveParams):  # the authority refuses it first
        raise TypeError(f"{action.id}: params are {type(spec).__name__}, not a corrective task's")
    kind = spec.corrective_kind or str(action.kind)
    task_id = _corrective_task_id(action, kind)
    title = spec.title or f"speedrift: {action.reason}"
    description = corrective_description(action, ctx.cycle_id, kind, path=str(ctx.repo))
    created = write_corrective(ctx, action, task_id, kind, title, description)
    if not created:
        return HandlerResult("succeeded", f"existing: {task_id} is already in the graph", {"task": task_id})
    return HandlerResult(
        "succeeded", f"created corrective task {task_id}", {"task": task_id, "created": True}
    )


def repair_dependencies(action: Action, ctx: HandlerContext) -> HandlerResult:
    """Delegated: a corrective task lists the missing and failed blockers; no dependency is edited."""
    # the whole graph is looked at again: what is broken may have changed since the plan was made
    missing, failed = broken_blockers(graph_store(ctx.repo).load(), None)
    if not missing and not failed:
        return HandlerResult("skipped", "no missing or failed blockers any more; nothing to repair")
    facts = [f"{task} waits on {blocker}, which does not exist" for task, blocker in missing]
    facts += [f"{task} waits on {blocker}, which failed" for task, blocker in failed]
    spec = action.params_as(RepairParams)
    kind = spec.corrective_kind or "dependencies"
    task_id = _corrective_task_id(action, kind)
    title = (
        spec.title or f"Repair the dependency chain ({len(missing)} missing, {len(failed)} failed blocker(s))"
    )
    # the brief names the chain as it is now, not as it was when the plan was made
    fresh = replace(spec, missing=tuple(missing), failed_blockers=len({task for task, _ in failed}))
    description = corrective_description(
        replace(action, params=fresh), ctx.cycle_id, kind, facts[:MAX_LISTED], path=str(ctx.repo)
    )
    created = write_corrective(ctx, action, task_id, kind, title, description)
    state = "created" if created else "existing"
    return HandlerResult(
        "delegated",
        f"delegated to corrective task {task_id} ({state})",
        {"task": task_id, "created": created, "missing": missing[:MAX_LISTED], "failed": failed[:MAX_LISTED]},
    )


def broken_blockers(
    graph: Graph, scope: Sequence[str] | None
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(task, blocker) pairs of unfinished tasks whose blocker is missing, and those whose blocker failed."""
    missing: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    for task_id, task in graph.tasks.items():
        if scope is not None and task_id not in scope:
            continue
        if status_of(task) in ("done", "abandoned"):
            continue
        for blocker in after_of(task):
            if ":" in blocker:  # a peer reference (wg's repo:task): not this graph's to judge
                continue
            found = graph.tasks.get(blocker)
            if found is None:
                missing.append((task_id, blocker))
            elif status_of(found) == FAILED:
                failed.append((task_id, blocker))
    return missing, failed


# ---------------------------------------------------------------- in-progress verification


def verify_in_progress(action: Action, ctx: HandlerContext) -> HandlerResult:
    """Reopen tasks claimed by a local process that is gone; report live claims, change nothing else."""
    scope = set(action.params_as(VerifyParams).tasks) or None
    host = socket.gethostname()
    # a claim whose attempt died mid-landing is the service's to recover (its work may have landed)
    merging = (worktrees.ManifestState.LANDING, worktrees.ManifestState.MERGE_PENDING)
    landing = {m.task_id for m in worktrees.read_manifests(ctx.repo) if m.state in merging}
    report: dict[str, list[Any]] = {"reopened": [], "alive": [], "unverifiable": [], "left_for_recovery": []}

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        for key in report:
            report[key].clear()  # mutate may rebuild: report only the last, applied build
        mutation = ops.Mutation()
        for task_id, task in graph.tasks.items():
            if (scope is not None and task_id not in scope) or status_of(task) != IN_PROGRESS:
                continue
            worker = speedrift_data(task).get("worker")
            pid = worker.get("pid") if isinstance(worker, dict) else None
            if not isinstance(worker, dict) or worker.get("host") != host or not isinstance(pid, int):
                report["unverifiable"].append(task_id)  # claimed by a person, or on another machine
                continue
            if record_alive(worker):  # pid + start time: a zombie or a reused pid is not the claimant
                started = parse_time(task.get("started_at"))
                age = round((now - started).total_seconds()) if started else None
                report["alive"].append({"task": task_id, "pid": pid, "age_s": age})
                continue
            if task_id in landing:
                report["left_for_recovery"].append(task_id)
                continue
            message = f"claimant pid {pid} is gone; reopened by the hub"
            reopened = ops.unclaim(graph, task_id, now=now, actor=HUB_ACTOR, message=message)
            released = {"state": None, "worker": None}
            ops.set_fields(graph, task_id, speedrift=released, now=now, actor=HUB_ACTOR, within=reopened)
            mutation.tasks += reopened.tasks
            mutation.records += reopened.records
            report["reopened"].append({"task": task_id, "pid": pid})
        return mutation

    graph_store(ctx.repo).mutate(build, actor=HUB_ACTOR, now=ctx.now())
    recovering = _settle_landings(ctx, report["left_for_recovery"])
    report["recovering"] = [{"task": task, "pid": pid} for task, pid in recovering.items()]
    parts = []
    if report["reopened"]:
        shown = ", ".join(f"{r['task']} (pid {r['pid']})" for r in report["reopened"])
        parts.append(f"reopened {len(report['reopened'])} task(s) whose claimant is gone: {shown}")
    if report["alive"]:
        parts.append(f"{len(report['alive'])} live claim(s) left alone")
    if recovering:
        shown = ", ".join(f"{task} (pid {pid})" for task, pid in recovering.items())
        parts.append(f"no service runs here: `speedrift run` started to settle interrupted landings {shown}")
    elif report["left_for_recovery"]:
        parts.append(
            f"{len(report['left_for_recovery'])} interrupted landing(s) left to the service's recovery"
        )
    if report["unverifiable"]:
        parts.append(f"{len(report['unverifiable'])} claim(s) not made by a local speedrift worker")
    return HandlerResult("succeeded", "; ".join(parts) or "no in-progress tasks to verify", report)


def _settle_landings(ctx: HandlerContext, tasks: Sequence[str]) -> dict[str, int]:
    """Interrupted landings in a repo where no service runs: nothing else would settle them (a
    service recovers when it starts and on every tick, ``speedrift run`` before it claims, and
    without new work no run comes). Where the hub may start workers (autonomous mode), it starts
    ``speedrift run --hub`` for each, whose first step is that recovery (fleet/crash_recovery.py):
    the task is recorded done if its work landed, else released and attempted again. The hub itself
    runs no git here. Returns task -> pid of the worker started."""
    if not tasks or service.running_pid(ctx.repo) is not None:
        return {}
    if ctx.read_control(ctx.repo).mode != "autonomous":
        return {}  # supervise mode may not start workers: a service or a person settles them
    store = graph_store(ctx.repo)
    started: dict[str, int] = {}
    for task_id in tasks[:MAX_SETTLING]:
        ids.validate_id(task_id)  # an id is data, never an option: it also goes after `--`
        log = fresh_path(ctx.logs(), f"settle-{safe_name(task_id)}-{stamp(ctx.now())}", ".log")
        hub_flag = [] if ctx.approved_by else ["--hub"]
        argv = [*ctx.speedrift_argv, "--dir", str(store.directory), "run", "--quiet", *hub_flag]
        argv += ["--", task_id]
        started[task_id] = spawn_detached(argv, cwd=ctx.repo, env=ctx.process_env(), log=log).pid
    return started
