"""The Typer application object and what every command shares (graph location, actor, time)."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from typing import Annotated

import typer

from speedrift.errors import UsageError
from speedrift.graph.model import parse_time
from speedrift.graph.store import GraphStore, current_user

app = typer.Typer(
    name="speedrift",
    help="A control plane for an AI dark factory. Graph verbs mirror `wg`; every query takes --json.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class State:
    graph_dir: str | None = None


state = State()


@app.callback()
def _root(
    dir: Annotated[
        str | None,
        typer.Option(
            "--dir", help="The graph directory (.wg/ or .workgraph/). Default: $WG_DIR, then search upward."
        ),
    ] = None,
) -> None:
    state.graph_dir = dir


def store() -> GraphStore:
    return GraphStore.locate(state.graph_dir)


def actor_name(explicit: str | None = None) -> str:
    return explicit or os.environ.get("WG_AGENT_ID") or current_user()


_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise UsageError(f"duration {text!r} not understood", hint="use e.g. 45s, 30m, 2h, 1d or 1w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_moment(text: str) -> datetime:
    moment = parse_time(text)
    if moment is None:
        raise UsageError(f"timestamp {text!r} is not RFC 3339", hint="e.g. 2026-12-01T09:00:00Z")
    return moment
