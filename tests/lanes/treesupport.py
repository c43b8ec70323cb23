"""Lane contexts over real git repos for the lane tests: a RepoView at HEAD (optionally with a
base..HEAD range), the lane's defaults overlaid with the test's settings (typed by check_settings),
a fixed clock and the lane's own state directory."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from speedrift.graph.codec import Graph
from speedrift.lanes.context import LaneContext, RepoView
from speedrift.lanes.spec import Lane, LaneOutput, check_settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def context(
    lane: Lane,
    repo: Path,
    *,
    settings: Mapping[str, Any] | None = None,
    graph: Graph | None = None,
    base: str | None = None,
    state: bool = True,
    now: datetime = NOW,
) -> LaneContext:
    view = RepoView.at(repo, "HEAD", base=base, tip="HEAD" if base else None)
    state_dir = repo / ".speedrift" / "lanes" / lane.name if state else None
    return LaneContext(
        lane=lane.name,
        view=view,
        now=now,
        settings=check_settings(lane, settings or {}),
        graph=graph,
        state_dir=state_dir,
    )


def run_lane(lane: Lane, repo: Path, **kwargs: Any) -> LaneOutput:
    return lane.run(context(lane, repo, **kwargs))


def kinds(output: LaneOutput) -> list[str]:
    return sorted(f.kind for f in output.findings)
