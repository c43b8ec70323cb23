"""`speedrift service start|stop|status|restart` (and `run`, the foreground form start launches)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from argparse import Namespace

from speedrift.cli.output import emit_json, say
from speedrift.cli.worker_cmds import repo_context
from speedrift.errors import Refused
from speedrift.fleet import service
from speedrift.graph.model import now_utc, parse_time


def serve(args: Namespace) -> int:
    from speedrift.fleet.pipeline import Pipeline

    repo, graph_store, config = repo_context(args)
    folder = service.service_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    return service.serve(Pipeline(repo, graph_store, config), folder / "service.log")


def start(args: Namespace) -> int:
    repo, graph_store, _config = repo_context(args)
    pid = service.running_pid(repo)
    if pid is not None:
        raise Refused(f"the service for {repo} is already running (pid {pid})")
    folder = service.service_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "service.out", "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "speedrift", "--dir", str(graph_store.directory), "service", "run"],
            cwd=repo,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the terminal that started it
        )
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        beat = service.read_heartbeat(repo)
        if beat and beat.get("pid") == child.pid:
            say(f"Service started for {repo} (pid {child.pid}); log: {folder / 'service.log'}")
            return 0
        if child.poll() is not None:
            output = (folder / "service.out").read_text(errors="replace")[-2000:]
            raise Refused(f"the service exited at once (code {child.returncode}):\n{output}")
        time.sleep(0.1)
    raise Refused(f"the service (pid {child.pid}) did not report a heartbeat within {args.timeout:g}s")


def stop(args: Namespace) -> int:
    repo, _store, _config = repo_context(args)
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
    repo, _store, _config = repo_context(args)
    pid = service.running_pid(repo)
    beat = service.read_heartbeat(repo) or {}
    at = parse_time(beat.get("at"))
    age = round((now_utc() - at).total_seconds(), 1) if at else None
    report = {
        "repo": str(repo),
        "running": pid is not None,
        "pid": pid,
        "heartbeat_age_s": age,
        "state": beat.get("state") if pid is not None else "stopped",
        "attempts": beat.get("running", []) if pid is not None else [],
        "max_agents": beat.get("max_agents"),
        "paused_runtimes": beat.get("paused_runtimes", {}),
    }
    if args.as_json:
        emit_json(report, pretty=True)
        return 0
    if pid is None:
        say(f"Service for {repo}: stopped.")
        return 0
    running = ", ".join(report["attempts"]) or "none"
    say(f"Service for {repo}: running (pid {pid}), heartbeat {age}s ago; attempts: {running}")
    return 0


def restart(args: Namespace) -> int:
    stop(args)
    return start(args)
