"""Arguments of `speedrift cluster up|status`: a local Dask cluster, and what a cluster is doing."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from speedrift.cli import argtypes

Command = Callable[[str, str, str], argparse.ArgumentParser]
DEFAULT_PORT = 8786  # fleet/remote/cluster.py DEFAULT_PORT (Dask's own; a test keeps them equal)


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")


def add(command: Command, common: argparse.ArgumentParser) -> None:
    p = command(
        "cluster",
        "cluster_cmds:status",
        "A Dask cluster for the dask executor: up (a local one, to try it) | status.",
    )
    sub = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    q = sub.add_parser(
        "up",
        help="start a scheduler and N workers on this machine; runs until Ctrl-C or SIGTERM, then stops them",
        parents=[common],
    )
    q.set_defaults(handler="cluster_cmds:up")
    q.add_argument(
        "--workers", type=argtypes.count(1, 256), default=2, metavar="N", help="worker processes (default 2)"
    )
    q.add_argument(
        "--host",
        default="127.0.0.1",
        help="the scheduler's bind address (default 127.0.0.1: this machine only)",
    )
    q.add_argument(
        "--port",
        type=argtypes.port,
        default=DEFAULT_PORT,
        help=f"the scheduler's port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    q.add_argument(
        "--resources",
        metavar="NAME=N,…",
        default=None,
        help="what each worker offers (default: runtime:shell=1 and runtime:<name>=1 for each agent CLI "
        "installed here), e.g. runtime:shell=1,runtime:claude=1,gpu=1",
    )
    q.add_argument(
        "--timeout",
        type=argtypes.seconds(0, argtypes.DAY_S),
        default=120.0,
        help="seconds to wait for the workers to join (default 120)",
    )
    _json(q)
    q = sub.add_parser(
        "status",
        help="the scheduler's workers, their resources, the attempts running and machines' recent failures",
        parents=[common],
    )
    q.set_defaults(handler="cluster_cmds:status")
    q.add_argument(
        "--scheduler",
        metavar="ADDR",
        default=None,
        help="tcp://host:port (default: $SPEEDRIFT_DASK_SCHEDULER, else the ecosystem's [executor] "
        f"scheduler, else tcp://127.0.0.1:{DEFAULT_PORT})",
    )
    q.add_argument(
        "--ecosystem", metavar="PATH", default=None, help="ecosystem.toml (default: ./ecosystem.toml, if any)"
    )
    q.add_argument(
        "--timeout",
        type=argtypes.seconds(0, 600.0),
        default=10.0,
        help="seconds to wait for the scheduler (default 10)",
    )
    _json(q)
