"""Running a built-in lane the way the runner does: settings from a policy table through
``check_settings``, the task's fence parsed with ``fences.fence`` (a FenceError becomes
``fence_error``), a real RepoView on a real repo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from speedrift.graph.codec import Graph
from speedrift.graph.model import Task
from speedrift.lanes import fences
from speedrift.lanes.context import LaneContext, RepoView
from speedrift.lanes.model import LaneFinding
from speedrift.lanes.spec import Lane, LaneOutput, check_settings
from tests.conftest import NOW
from tests.gitrepo import sh_git


def head(repo: Path) -> str:
    return sh_git(repo, "rev-parse", "HEAD")


def graph_of(tasks: Sequence[Task]) -> Graph:
    return Graph.from_bytes(b"".join(orjson.dumps({"kind": "task", **t}) + b"\n" for t in tasks))


def task(task_id: str = "t1", description: str = "", **fields: Any) -> Task:
    return {
        "kind": "task",
        "id": task_id,
        "title": task_id,
        "status": "in-progress",
        "description": description,
        **fields,
    }


def fenced(name: str, body: str, prose: str = "Do the thing.") -> str:
    return f"{prose}\n\n```{name}\n{body.strip()}\n```\n"


def context(
    lane: Lane,
    repo: Path,
    *,
    base: str | None = None,
    tip: str | None = None,
    rev: str | None = None,
    task: Task | None = None,
    policy: Mapping[str, Any] | None = None,
    graph: Graph | None = None,
    now: datetime = NOW,
    state_dir: Path | None = None,
) -> LaneContext:
    view = RepoView(repo, rev or tip or head(repo), base, tip)
    fence: dict[str, Any] | None = None
    fence_error: str | None = None
    if task is not None and lane.fence is not None:
        try:
            fence = fences.fence(task.get("description"), lane.fence)
        except fences.FenceError as exc:
            fence_error = str(exc)
    return LaneContext(
        lane=lane.name,
        view=view,
        now=now,
        settings=check_settings(lane, policy or {}),
        graph=graph,
        task=task,
        fence=fence,
        fence_error=fence_error,
        state_dir=state_dir,
    )


def run(lane: Lane, repo: Path, **kwargs: Any) -> LaneOutput:
    return lane.run(context(lane, repo, **kwargs))


def kinds(output: LaneOutput) -> list[str]:
    return sorted(f.kind for f in output.findings)


def only(output: LaneOutput, kind: str) -> list[LaneFinding]:
    return [f for f in output.findings if f.kind == kind]
