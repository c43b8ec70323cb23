"""Builders for the control plane's pure core: snapshots in the states the tests talk about.

The pure core takes data, so its tests build :class:`RepoSnapshot` values directly (the observer's
tests cover how real repos become snapshots).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from speedrift.register.actions import Action, ActionKind
from speedrift.register.record import (
    AttemptStats,
    ControlMode,
    ControlState,
    GateStats,
    GitState,
    GraphState,
    RepoEntry,
    RepoSnapshot,
    ServiceState,
    TaskBrief,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = 86400.0
HOUR = timedelta(hours=1)


def brief(task_id: str, status: str = "open", age_days: float | None = None) -> TaskBrief:
    return TaskBrief(task_id, task_id.replace("-", " "), status, None if age_days is None else age_days * DAY)


def graph(
    *,
    ready: int = 0,
    in_progress: Sequence[float] = (),  # ages in days, one per task
    blocked: int = 0,
    missing: Sequence[tuple[str, str]] = (),
    failed_blockers: int = 0,
    stale_open: int = 0,
    stale_in_progress: int | None = None,
    dead: Sequence[str] = (),
    problems: int = 0,
    mentions: Sequence[str] = (),
    done: int = 0,
) -> GraphState:
    running = tuple(brief(f"w{i}", "in-progress", age) for i, age in enumerate(in_progress, 1))
    aged = sum(1 for age in in_progress if age >= 3)
    return GraphState(
        graph_dir=".workgraph",
        counts={
            "open": ready + blocked + failed_blockers + len(missing),
            "in-progress": len(running),
            "done": done,
        },
        ready=tuple(brief(f"r{i}") for i in range(1, min(ready, 20) + 1)),
        ready_count=ready,
        in_progress=running,
        blocked=blocked,
        missing_dependencies=tuple(missing),
        failed_blockers=failed_blockers,
        stale_open=stale_open,
        stale_in_progress=aged if stale_in_progress is None else stale_in_progress,
        dead_claims=tuple(dead),
        problems=problems,
        mentions=tuple(mentions),
    )


def control(
    mode: ControlMode = "observe", *, owner: str | None = "hub", expires: datetime | None = None
) -> ControlState:
    if mode in ("observe", "manual"):
        return ControlState(mode=mode)
    return ControlState(mode=mode, lease_owner=owner, lease_expires_at=expires or NOW + 8 * HOUR)


def running(agents: int = 1, heartbeat: float = 5.0, *, by_hub: bool = False) -> ServiceState:
    return ServiceState(
        running=True, kind="speedrift", pid=4242, heartbeat_age_seconds=heartbeat, active_agents=agents,
        started_by_hub=by_hub,
    )  # fmt: skip


def stopped(*, by_hub: bool = False) -> ServiceState:
    return ServiceState(running=False, started_by_hub=by_hub)


def git(*, dirty: int = 0, ahead: int | None = None, behind: int | None = None) -> GitState:
    upstream = "origin/main" if ahead is not None or behind is not None else None
    return GitState(
        branch="main", head="a" * 40, dirty_files=dirty, untracked_files=0, upstream=upstream,
        ahead=ahead, behind=behind,
    )  # fmt: skip


def snap(
    name: str = "app",
    *,
    graph_state: GraphState | None = None,
    no_graph: bool = False,
    service: ServiceState | None = None,
    mode: ControlMode = "observe",
    control_state: ControlState | None = None,
    git_state: GitState | None = None,
    gates: GateStats | None = None,
    attempts: AttemptStats | None = None,
    exists: bool = True,
    errors: Sequence[str] = (),
    observed_at: datetime = NOW,
) -> RepoSnapshot:
    return RepoSnapshot(
        name=name,
        path=f"/srv/repos/{name}",
        observed_at=observed_at,
        exists=exists,
        errors=tuple(errors),
        git=git_state if git_state is not None else (git() if exists else None),
        graph=None if no_graph or not exists else (graph_state or graph()),
        service=service or stopped(),
        attempts=attempts or AttemptStats(),
        gates=gates or GateStats(last_status="pass"),
        control=control_state or control(mode),
    )


def entry(name: str = "app", **fields: Any) -> RepoEntry:
    return RepoEntry(name=name, path=Path(f"/srv/repos/{name}"), **fields)


def action(
    repo: str = "app", kind: str = ActionKind.SYNC_UPSTREAM, priority: int = 50, subject: str | None = None
) -> Action:
    ident = f"{repo}:{kind}" if subject is None else f"{repo}:{kind}:{subject}"
    return Action(
        id=ident, repo=repo, kind=ActionKind(kind), priority=priority, reason=f"test {kind}", subject=subject
    )


# ---------------------------------------------------------------- hypothesis


@st.composite
def snapshots(draw: st.DrawFn, name: str = "app") -> RepoSnapshot:
    small = st.integers(min_value=0, max_value=40)
    graph_state = graph(
        ready=draw(small),
        in_progress=draw(st.lists(st.floats(min_value=0, max_value=60), max_size=6)),
        blocked=draw(small),
        missing=[(f"t{i}", f"x{i}") for i in range(draw(st.integers(0, 6)))],
        failed_blockers=draw(small),
        stale_open=draw(small),
        dead=[f"w{i}" for i in range(1, draw(st.integers(0, 3)) + 1)],
        problems=draw(small),
    )
    recent = draw(st.integers(0, 30))
    service = draw(
        st.one_of(
            st.just(stopped()),
            st.builds(running, agents=st.integers(0, 4), heartbeat=st.floats(0, 5000)),
        )
    )
    return snap(
        name,
        graph_state=graph_state,
        no_graph=draw(st.booleans()) and draw(st.booleans()),
        service=service,
        mode=draw(st.sampled_from(["manual", "observe", "supervise", "autonomous"])),
        git_state=git(dirty=draw(small), behind=draw(st.none() | small), ahead=draw(st.none() | small)),
        gates=GateStats(
            critical=draw(small),
            high=draw(small),
            medium=draw(small),
            low=draw(small),
            secret_leaks=draw(st.integers(0, 3)),
            last_status=draw(st.sampled_from(["pass", "warn", "fail", "none"])),
        ),
        attempts=AttemptStats(
            recent=recent,
            failed=draw(st.integers(0, recent)),
            repeated_failures=tuple(f"f{i}" for i in range(draw(st.integers(0, 5)))),
        ),
        exists=draw(st.integers(0, 9)) > 0,
        errors=["git: timed out after 15s"] * draw(st.integers(0, 1)),
        observed_at=NOW - timedelta(seconds=draw(st.integers(0, 7 * 86400))),
    )
