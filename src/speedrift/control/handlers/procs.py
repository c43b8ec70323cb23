"""Handlers that start speedrift processes in a repo: its service, and bounded workers.

Both start speedrift itself with ``--hub`` (unless an operator approved the action), so the
processes keep re-checking the repo's lease before every claim and go idle the moment it
expires — the hub's authority does not outlive its lease in anything the hub started.

Neither touches the user's checkout, so a dirty checkout does not stop them: the service and
``speedrift run`` do all their work in worktrees under ``.speedrift/worktrees/`` and land it
through the gated merge queue, which itself refuses to overwrite uncommitted changes.
"""

from __future__ import annotations

import socket
import time

import orjson

from speedrift import layout
from speedrift.control.handlers.base import (
    HandlerContext,
    HandlerFailed,
    HandlerResult,
    ensure_excluded,
    fresh_path,
    graph_store,
    prune,
    run_bounded,
    tail,
)
from speedrift.fleet import service
from speedrift.fsutil import write_atomic
from speedrift.graph import ids
from speedrift.layout import safe_name
from speedrift.procs import pid_alive, spawn_detached
from speedrift.register.record import Action, DispatchParams
from speedrift.times import format_time, stamp

MAX_DISPATCH = 8  # whatever the plan asks, one action never starts more workers than this
KEEP_DISPATCH_LOGS = 200  # retention: the newest worker logs in the log directory


def _hub_flag(ctx: HandlerContext) -> list[str]:
    return [] if ctx.approved_by else ["--hub"]


def restart_service(action: Action, ctx: HandlerContext) -> HandlerResult:
    """Start the repo's service (``service start --hub``) and mark it as started by the hub."""
    store = graph_store(ctx.repo)
    running = service.running_pid(ctx.repo)
    if running is not None:
        return HandlerResult(
            "succeeded", f"the service is already running (pid {running})", {"pid": running, "started": False}
        )
    ensure_excluded(ctx.git())
    argv = [
        *ctx.speedrift_argv,
        "--dir",
        str(store.directory),
        "service",
        "start",
        *_hub_flag(ctx),
        "--timeout",
        f"{ctx.timeout_s:g}",
    ]
    done = run_bounded(argv, cwd=ctx.repo, env=ctx.process_env(), timeout=ctx.timeout_s + 15)
    if done.returncode != 0:
        raise HandlerFailed(
            f"`speedrift service start` exited {done.returncode}: {tail(done.stderr or done.stdout, 600)}",
            exit_code=done.returncode,
        )
    deadline = time.monotonic() + ctx.timeout_s
    pid = service.running_pid(ctx.repo)
    while not (pid and pid > 0 and pid_alive(pid)):
        if time.monotonic() >= deadline:
            raise HandlerFailed(f"the service did not stay up (see {layout.service_out_path(ctx.repo)})")
        time.sleep(0.1)
        pid = service.running_pid(ctx.repo)
    marker = service.hub_marker(ctx.repo)
    if not ctx.approved_by:
        record = {
            "at": format_time(ctx.now()),
            "cycle": ctx.cycle_id,
            "action": action.id,
            "pid": pid,
            "host": socket.gethostname(),
        }
        write_atomic(marker, orjson.dumps(record, option=orjson.OPT_INDENT_2))
    basis = (
        f"approved by {ctx.approved_by}" if ctx.approved_by else "with --hub (idles when the lease expires)"
    )
    return HandlerResult(
        "succeeded",
        f"started the service (pid {pid}) {basis}",
        {"pid": pid, "started": True, "marker": str(marker) if not ctx.approved_by else None},
    )


def dispatch_ready(action: Action, ctx: HandlerContext) -> HandlerResult:
    """Start ``speedrift run <task> --hub --quiet`` detached for up to ``max`` of ``tasks``."""
    params = action.params_as(DispatchParams)
    wanted = params.tasks or ((action.subject,) if action.subject else ())
    chosen = list(dict.fromkeys(wanted))[: min(params.max, MAX_DISPATCH)]
    if not chosen:
        return HandlerResult("skipped", "no ready tasks named in the plan")
    for task_id in chosen:
        ids.validate_id(task_id)  # an id is data, never an option: it also goes after `--`
    store = graph_store(ctx.repo)
    ensure_excluded(ctx.git())
    logs = ctx.logs()
    now = ctx.now()
    pids: dict[str, int] = {}
    log_files: dict[str, str] = {}
    for task_id in chosen:
        log = fresh_path(logs, f"dispatch-{action.repo}-{safe_name(task_id)}-{stamp(now)}", ".log")
        argv = [
            *ctx.speedrift_argv,
            "--dir",
            str(store.directory),
            "run",
            "--quiet",
            *_hub_flag(ctx),
            "--",
            task_id,
        ]
        pids[task_id] = spawn_detached(argv, cwd=ctx.repo, env=ctx.process_env(), log=log).pid
        log_files[task_id] = str(log)
    prune(logs, "dispatch-*.log", KEEP_DISPATCH_LOGS)
    started = ", ".join(f"{task} (pid {pid})" for task, pid in pids.items())
    return HandlerResult(
        "succeeded",
        f"started {len(pids)} worker(s): {started}; the next cycle checks their progress",
        {"pids": pids, "logs": log_files},
    )
