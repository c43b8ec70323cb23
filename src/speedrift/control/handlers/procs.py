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
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from speedrift import layout
from speedrift.agents import choose
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
from speedrift.control.handlers.warm import WARM
from speedrift.fleet import service, supervisor
from speedrift.fleet.admission import budget_verdict
from speedrift.fleet.config import ConfigError, load_config
from speedrift.fsutil import write_atomic
from speedrift.graph import ids
from speedrift.graph.model import Task
from speedrift.layout import safe_name
from speedrift.procs import identity_of, record_alive, spawn_detached
from speedrift.register.actions import Action, DispatchParams
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
    while not (pid and pid > 0 and record_alive({"pid": pid})):
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
    """Start ``speedrift run <task> --hub --quiet`` detached for up to ``max`` of ``tasks`` — but
    never past a limit: each worker is admitted first (fleet/supervisor.py: the repo's
    ``[service] max_agents``, its runtime's ``[limits]``, ``[policy] max_agents``), counted from
    every live attempt on the machine, and handed its slot (``$SPEEDRIFT_SLOT``). A task whose
    dispatch would exceed a money budget (fleet/admission.py ``budget_verdict``) is not started,
    nor — with a Dask executor (``ctx.executor``) — one no worker can take now (its runtime or
    resources offered by none, or the scheduler unreachable: limit ``cluster``; one scheduler query
    per action at most). What admission held back is in the outcome, with the limit and why."""
    params = action.params_as(DispatchParams)
    wanted = params.tasks or ((action.subject,) if action.subject else ())
    candidates = list(dict.fromkeys(wanted))
    most = min(params.max, MAX_DISPATCH)
    if not candidates:
        return HandlerResult("skipped", "no ready tasks named in the plan")
    for task_id in candidates:
        ids.validate_id(task_id)  # an id is data, never an option: it also goes after `--`
    store = graph_store(ctx.repo)
    try:
        config = load_config(ctx.repo)
    except ConfigError as error:
        raise HandlerFailed(f"cannot read the repo's speedrift.toml: {error.message}") from None
    ensure_excluded(ctx.git())
    logs = ctx.logs()
    now = ctx.now()
    graph = store.load()
    pids: dict[str, int] = {}
    log_files: dict[str, str] = {}
    held: list[dict[str, Any]] = []
    cluster = _cluster_check(ctx)
    for task_id in candidates:
        if len(pids) >= most:
            break
        if held and held[-1]["limit"] in ("repo", "ecosystem"):
            held.append({**held[-1], "task": task_id})  # the same limit holds every later task
            continue
        task = graph.get(task_id) or {}
        refusal = budget_verdict(ctx.repo, config, task, now) if task else None
        if refusal is not None:  # a money budget it would exceed (fleet/spend.py): nothing started
            held.append(
                {"task": task_id, "limit": "budget", "reason": f"{refusal.sentence}; fix: {refusal.fix}"}
            )
            continue
        runtime, _model = choose.select_runtime(task, config.default_runtime)
        unplaceable = cluster(runtime, task) if cluster is not None and task else None
        if unplaceable is not None:  # no worker offers what it needs: held, with the reason
            held.append({"task": task_id, "limit": "cluster", "reason": unplaceable})
            continue
        admission = supervisor.admit(
            ctx.repo,
            task_id,
            runtime,
            supervisor.Limits.for_attempt(config, runtime, ctx.max_agents),
            holder="hub",
        )
        slot = admission.slot
        if slot is None:
            held.append({"task": task_id, "limit": admission.limit, "reason": admission.reason})
            continue
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
        env = ctx.process_env()
        handed = {supervisor.SLOT_ENV: slot.name}
        try:
            child = _warm_start(ctx, argv, env, log, handed) or spawn_detached(
                argv, cwd=ctx.repo, env={**env, **handed}, log=log
            )
        except BaseException:
            slot.release()
            raise
        slot.hand_to(identity_of(child.pid), "run")  # counted as long as that worker lives
        pids[task_id] = child.pid
        log_files[task_id] = str(log)
    if pids and _warmable(ctx):
        WARM.refill(ctx.speedrift_argv[0], ctx.process_env(), ctx.repo)  # for the next dispatch
    prune(logs, "dispatch-*.log", KEEP_DISPATCH_LOGS)
    evidence: dict[str, Any] = {"pids": pids, "logs": log_files, "held": held}
    held_text = ""
    if held:
        reasons = list(dict.fromkeys(h["reason"] for h in held))
        held_text = f"held {', '.join(h['task'] for h in held)}: {'; '.join(reasons)}"
    if not pids:
        return HandlerResult("skipped", held_text or "nothing to start", evidence)
    started = ", ".join(f"{task} (pid {pid})" for task, pid in pids.items())
    detail = f"started {len(pids)} worker(s): {started}; the next cycle checks their progress"
    return HandlerResult("succeeded", detail + (f"; {held_text}" if held_text else ""), evidence)


def _cluster_check(ctx: HandlerContext) -> Callable[[str, Task], str | None] | None:
    """With a Dask executor: why no worker can take a task (fleet/remote/executor.py); None: local."""
    if ctx.executor is None or not ctx.executor.remote:
        return None
    from speedrift.fleet.remote.executor import cluster_check

    return cluster_check(ctx.executor)


def _warmable(ctx: HandlerContext) -> bool:
    """A long-lived hub starting speedrift the standard way (``python -m speedrift``) keeps a warm
    worker (control/handlers/warm.py); a one-off cycle or another launcher starts workers cold."""
    argv = list(ctx.speedrift_argv)
    return ctx.warm_workers and len(argv) == 3 and argv[1:] == ["-m", "speedrift"]


def _warm_start(
    ctx: HandlerContext, argv: list[str], env: dict[str, str], log: Path, extra: dict[str, str]
) -> subprocess.Popen[bytes] | None:
    if not _warmable(ctx):
        return None
    return WARM.take(argv[0], env, argv[3:], ctx.repo, log, extra)
