"""`speedrift cluster up|status`: a local Dask cluster to try the dask executor, and what a cluster does.

``up`` runs in the foreground: it starts a scheduler and N workers on this machine
(fleet/remote/cluster.py), prints the scheduler's address and the exact lines that point an
ecosystem's attempts at it, and on Ctrl-C or SIGTERM — or when a process of it exits — stops every
process it started. ``status`` asks a scheduler (``--scheduler``, else ``$SPEEDRIFT_DASK_SCHEDULER``,
else the ecosystem's ``[executor] scheduler``, else where ``up`` listens by default).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from argparse import Namespace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from speedrift import hubdir
from speedrift.cli.output import emit_json, say, table
from speedrift.errors import NotFound, Refused
from speedrift.fleet.remote.config import SCHEDULER_ENV

if TYPE_CHECKING:
    from speedrift.fleet.remote.cluster import ClusterStatus, LocalCluster

WATCH_S = 0.5  # how often `up` looks whether its processes are still there


# --- up --------------------------------------------------------------------------------------------
def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    """The first Ctrl-C or SIGTERM ends the wait (or the start-up); later ones are ignored, so the
    stop that follows is never cut short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def up(args: Namespace) -> int:
    from speedrift.fleet.remote import cluster

    gc.enable()  # the CLI turns the collector off for short commands; this one runs for hours
    resources = cluster.parse_resources(args.resources) if args.resources is not None else None
    cluster.require_distributed()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    running: LocalCluster | None = None
    reason = "signal"
    try:
        running = cluster.up(args.workers, args.host, args.port, resources, timeout=args.timeout)
        _announce(running, args.as_json)
        while True:
            time.sleep(WATCH_S)
            gone = running.dead()
            if gone:
                reason = f"{', '.join(gone)} exited"
                sys.stderr.write(f"speedrift: {reason}; stopping the cluster (logs: {running.directory})\n")
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if running is not None:
            running.stop()
    if running is None:
        return 1
    if args.as_json:
        emit_json({"stopped": True, "reason": reason})
    else:
        say(f"Stopped the scheduler and its {len(running.workers)} worker(s).")
    return 0 if reason == "signal" else 1


def _announce(running: LocalCluster, as_json: bool) -> None:
    from speedrift.fleet.remote.cluster import format_resources

    if as_json:
        emit_json(
            {
                "scheduler": running.address,
                "workers": running.names,
                "resources": running.resources,
                "pids": running.pids,
                "logs": str(running.directory),
                "env": {SCHEDULER_ENV: running.address},
            }
        )
        return
    say(
        f"Dask scheduler {running.address} with {len(running.workers)} worker(s) "
        f"({', '.join(running.names)}), each offering {format_resources(running.resources)}\n"
        f"Logs: {running.directory}\n"
        "Send an ecosystem's attempts there, either for the processes started from this shell:\n"
        f"  export {SCHEDULER_ENV}={running.address}\n"
        "or in ecosystem.toml:\n"
        "  [executor]\n"
        '  backend = "dask"\n'
        f'  scheduler = "{running.address}"\n'
        "Ctrl-C (or SIGTERM) stops the scheduler and its workers."
    )
    sys.stdout.flush()


# --- status ----------------------------------------------------------------------------------------
def scheduler_of(args: Namespace) -> tuple[str, str]:
    """(address, where it came from): --scheduler, $SPEEDRIFT_DASK_SCHEDULER, the ecosystem's
    ``[executor] scheduler``, else where `cluster up` listens by default."""
    from speedrift.fleet.remote.cluster import DEFAULT_SCHEDULER

    if getattr(args, "scheduler", None):
        return str(args.scheduler), "--scheduler"
    from_env = os.environ.get(SCHEDULER_ENV, "").strip()
    if from_env:
        return from_env, f"${SCHEDULER_ENV}"
    explicit = getattr(args, "ecosystem", None)
    try:
        path = hubdir.find_ecosystem(Path(explicit) if explicit else None, Path.cwd())
    except NotFound:
        if explicit:
            raise
        return DEFAULT_SCHEDULER, "default"
    from speedrift.control.ecosystem.load import load_ecosystem

    scheduler = getattr(getattr(load_ecosystem(path), "executor", None), "scheduler", None)
    if isinstance(scheduler, str) and scheduler:
        return scheduler, f"[executor] scheduler in {path}"
    return DEFAULT_SCHEDULER, "default"


def status(args: Namespace) -> int:
    from speedrift.fleet.remote import cluster

    address, source = scheduler_of(args)
    try:
        found = cluster.status(address, timeout=getattr(args, "timeout", 10.0))
    except Refused as error:
        raise Refused(f"{error.message} (scheduler from {source})", hint=error.hint) from None
    if getattr(args, "as_json", False):
        emit_json({**found.to_json(), "scheduler_from": source})
        return 0
    render(found, source)
    return 0


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size else "-"


def render(found: ClusterStatus, source: str) -> None:
    say(
        f"Dask scheduler {found.scheduler} (from {source}): {len(found.workers)} worker(s), "
        f"{len(found.running)} attempt(s) running"
    )
    rows: list[tuple[Any, ...]] = [
        (
            w.name,
            w.address,
            w.hostname or w.host,
            w.nthreads,
            _gib(w.memory_limit),
            ", ".join(f"{k}={v:g}" for k, v in sorted(w.resources.items())) or "-",
            w.status,
            len(w.running),
        )
        for w in found.workers
    ]
    table("workers", ["name", "address", "host", "threads", "memory", "resources", "status", "tasks"], rows)
    if found.running:
        table(
            "attempts running",
            ["repo", "task", "attempt", "worker"],
            [(r.repo, r.task, r.attempt, r.worker) for r in found.running],
        )
    if found.failures:
        table(
            "machines' recent failures (transient_infra, last 24 h, this machine's attempt log)",
            ["at", "machine", "repo", "task", "attempt", "runtime"],
            [(f.at, f.machine, f.repo, f.task, f.attempt, f.runtime) for f in found.failures],
        )
    else:
        say("No attempt failed for the infrastructure on a machine in the last 24 h.")
