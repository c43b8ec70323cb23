"""`speedrift service start|stop|status|restart` (and `run`, the foreground form start launches)."""

from __future__ import annotations

import os
import signal
import sys
import time
from argparse import Namespace
from typing import Any

from speedrift import layout, records
from speedrift.cli.output import emit_json, say
from speedrift.cli.worker_cmds import peer_repos, pipeline_executor, repo_context
from speedrift.errors import Refused
from speedrift.fleet import halt, service
from speedrift.procs import make_non_dumpable, spawn_detached
from speedrift.times import format_time, now_utc


def serve(args: Namespace) -> int:
    from speedrift.fleet.pipeline import Pipeline

    make_non_dumpable()  # long-lived, holding the secrets its attempts hand to agents
    repo, graph_store, config = repo_context(args)
    folder = layout.service_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    admission = None
    if getattr(args, "hub", False):
        from speedrift.control.authority import hub_admission

        admission = hub_admission(repo)
    else:
        service.hub_marker(repo).unlink(missing_ok=True)  # a human started it: not the hub's any more
    from speedrift.fleet.lanegate import suite_for

    gates = suite_for(repo, graph_store, config)
    pipeline = Pipeline(
        repo, graph_store, config, gates=gates, peer_repos=peer_repos(args), executor=pipeline_executor(args)
    )
    return service.serve(pipeline, layout.service_log_path(repo), admission)


def start(args: Namespace) -> int:
    repo, graph_store, _config = repo_context(args)
    pid = service.running_pid(repo)
    if pid is not None:
        raise Refused(f"the service for {repo} is already running (pid {pid})")
    folder = layout.service_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    out_path = layout.service_out_path(repo)
    argv = [sys.executable, "-m", "speedrift", "--dir", str(graph_store.directory), "service", "run"]
    hub_flag = ["--hub"] if getattr(args, "hub", False) else []
    child = spawn_detached(argv + hub_flag, log=out_path, cwd=repo)  # survives the terminal that started it
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        beat = service.read_heartbeat(repo)
        if beat and beat.pid == child.pid:
            say(f"Service started for {repo} (pid {child.pid}); log: {layout.service_log_path(repo)}")
            return 0
        if child.poll() is not None:
            output = out_path.read_text(errors="replace")[-2000:]
            raise Refused(f"the service exited at once (code {child.returncode}):\n{output}")
        time.sleep(0.1)
    raise Refused(f"the service (pid {child.pid}) did not report a heartbeat within {args.timeout:g}s")


def stop(args: Namespace) -> int:
    repo, _store, _config = repo_context(args)
    service.hub_marker(repo).unlink(missing_ok=True)  # a human stop: the hub must not restart it
    pid = service.running_pid(repo)
    if pid is None:
        say(f"No service is running for {repo}.")
        return 0
    if pid > 0:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if service.running_pid(repo) is None:
            say(f"Service stopped (pid {pid}).")
            return 0
        time.sleep(0.1)
    raise Refused(
        f"the service (pid {pid}) is still stopping after {args.timeout:g}s",
        hint="running attempts are being cancelled; try again",
    )


def status(args: Namespace) -> int:
    repo, _store, config = repo_context(args)
    pid = service.running_pid(repo)
    beat = service.read_heartbeat(repo) or records.Heartbeat()
    at = beat.at_time
    age = round((now_utc() - at).total_seconds(), 1) if at else None
    report: dict[str, Any] = {
        "repo": str(repo),
        "running": pid is not None,
        "pid": pid,
        "heartbeat_age_s": age,
        "state": beat.state if pid is not None else "stopped",
        "attempts": list(beat.running) if pid is not None else [],
        "max_agents": beat.max_agents,
        "paused_runtimes": beat.paused_runtimes,
        "retries": halt.retries_halted(repo, config.recovery).as_dict(),  # halted by recent failures?
        "hub": beat.hub if pid is not None else False,
        "paused": beat.paused if pid is not None else None,  # --hub without authority: why
    }
    if args.as_json:
        emit_json(report)
        return 0
    retries = report["retries"]
    if isinstance(retries, dict) and retries.get("halted"):
        say(
            f"Automatic retries are halted: {retries['reason']}; "
            "`speedrift service resume-retries` resumes them."
        )
    if pid is None:
        say(f"Service for {repo}: stopped.")
        return 0
    running = ", ".join(report["attempts"]) or "none"
    state = f"paused: {report['paused']}" if report["paused"] else "running"
    say(f"Service for {repo}: {state} (pid {pid}), heartbeat {age}s ago; attempts: {running}")
    return 0


def resume_retries(args: Namespace) -> int:
    """Outcomes so far stop counting toward the halt; a running service reopens what it withheld."""
    repo, _store, config = repo_context(args)
    before = halt.retries_halted(repo, config.recovery)
    at = halt.resume_retries(repo)
    if args.as_json:
        now = halt.retries_halted(repo, config.recovery)
        emit_json({"resumed_at": format_time(at), "was": before.as_dict(), "now": now.as_dict()})
        return 0
    was = "were halted" if before.halted else "were not halted"
    say(f"Automatic retries resumed for {repo} (they {was}: {before.reason}).")
    return 0


def restart(args: Namespace) -> int:
    stop(args)
    return start(args)
