"""Builders for dashboard tests: cycle records from the real model, apps with a known token."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette

from speedrift.control.assess.queues import attention_queues, carried_since_plain
from speedrift.control.assess.score import score_repo
from speedrift.register.actions import Action
from speedrift.register.record import (
    AttemptStats,
    ControlState,
    CycleRecord,
    GateStats,
    GitState,
    GraphState,
    Metric,
    Reason,
    RepoEdge,
    RepoReport,
    RepoSnapshot,
    Skipped,
    TaskBrief,
)
from speedrift.serialize import cycle_to_dict
from speedrift.web.app import create_app
from speedrift.web.auth import AccessPolicy, TokenSource, allowed_hosts
from speedrift.web.live import DashboardState

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = 86_400.0
TOKEN = "test-token-0123456789"
BASE_URL = "http://127.0.0.1:8777"
ORIGIN = "http://127.0.0.1:8777"

T = TypeVar("T")


def brief_task(task_id: str, age_seconds: float | None = None, status: str = "in-progress") -> TaskBrief:
    return TaskBrief(task_id, task_id.replace("-", " "), status, age_seconds)


def graph_state(
    *,
    in_progress: Sequence[TaskBrief] = (),
    missing: Sequence[tuple[str, str]] = (),
    failed_blockers: int = 0,
    stale_open: int = 0,
    dead: Sequence[str] = (),
) -> GraphState:
    return GraphState(
        graph_dir=".workgraph",
        counts={"open": 1},
        ready=(),
        ready_count=0,
        in_progress=tuple(in_progress),
        blocked=0,
        missing_dependencies=tuple(missing),
        failed_blockers=failed_blockers,
        stale_open=stale_open,
        stale_in_progress=0,
        dead_claims=tuple(dead),
        problems=0,
    )


def snapshot(
    name: str,
    *,
    graph: GraphState | None = None,
    git: GitState | None = None,
    gates: GateStats | None = None,
    attempts: AttemptStats | None = None,
    errors: tuple[str, ...] = (),
    exists: bool = True,
    control: ControlState | None = None,
    tags: tuple[str, ...] = (),
) -> RepoSnapshot:
    return RepoSnapshot(
        name=name,
        path=f"/repos/{name}",
        observed_at=NOW,
        exists=exists,
        errors=errors,
        git=git or GitState(branch="main", head="abc", dirty_files=0, untracked_files=0),
        graph=graph if graph is not None else graph_state(),
        gates=gates or GateStats(),
        attempts=attempts or AttemptStats(),
        control=control or ControlState(),
        tags=tags,
    )


def report(
    snap: RepoSnapshot,
    *,
    score: int = 90,
    tier: str = "healthy",
    activity: str = "idle",
    stall: str | None = None,
    reasons: Sequence[Reason] = (),
) -> RepoReport:
    return RepoReport(
        name=snap.name,
        score=score,
        tier=tier,  # type: ignore[arg-type]
        trend="flat",
        delta=0,
        reasons=tuple(reasons),
        activity=activity,  # type: ignore[arg-type]
        stall=stall,
        snapshot=snap,
    )


def metric(key: str, value: float) -> Metric:
    return Metric(
        key=key,
        label=key.replace("_", " "),
        value=value,
        tier="healthy" if value >= 80 else "watch",
        trend="flat",
        delta=0.0,
        formula=f"formula of {key}",
        inputs={},
    )


def action(repo: str, kind: str, *, subject: str | None = None, priority: int = 50) -> Action:
    return Action(
        id=f"{repo}:{kind}" + (f":{subject}" if subject else ""),
        repo=repo,
        kind=kind,  # type: ignore[arg-type]
        priority=priority,
        reason=f"{kind} needed in {repo}",
        subject=subject,
        prompts={"claude": f"claude: {kind} in {repo}", "codex": f"codex: {kind} in {repo}"},
    )


def record(
    reports: Sequence[RepoReport],
    *,
    cycle_id: str = "c-1",
    at: datetime = NOW,
    metrics: dict[str, float] | None = None,
    planned: Sequence[Action] = (),
    skipped: Sequence[Skipped] = (),
    edges: Sequence[RepoEdge] = (),
    plan_only: bool = True,
    narrative: str = "Stable posture.",
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A cycle record as the ledger holds it. Its attention queues come from the control stage over
    the reports' snapshots, scored by the real scorer, and the given actions; ``previous`` (an
    earlier record) carries the entries' ``since`` as the hub would."""
    values = metrics if metrics is not None else {"reporting_coverage": 100.0, "flow_health": 90.0}
    queues = attention_queues(
        {r.name: r.snapshot for r in reports},
        {r.name: score_repo(r.snapshot, None, at) for r in reports},
        planned,
        skipped,
        at,
        first_seen=carried_since_plain(previous),
    )
    return cycle_to_dict(
        CycleRecord(
            cycle_id=cycle_id,
            generated_at=at,
            finished_at=at + timedelta(seconds=1),
            plan_only=plan_only,
            ecosystem="/eco/ecosystem.toml",
            repos=tuple(reports),
            metrics={k: metric(k, v) for k, v in values.items()},
            edges=tuple(edges),
            planned=tuple(planned),
            skipped=tuple(skipped),
            executed=(),
            hints=("a hint",),
            inputs={"repos_total": len(reports)},
            narrative=narrative,
            queues=queues,
        )
    )


def policy(*, reads_need_token: bool = False, token: str = TOKEN) -> AccessPolicy:
    return AccessPolicy(
        token=TokenSource(None, fixed=token),
        hosts=allowed_hosts("127.0.0.1", 8777),
        reads_need_token=reads_need_token,
    )


def app_for(
    state: DashboardState,
    *,
    ecosystem_path: Path | None = None,
    hub: Path | None = None,
    reads_need_token: bool = False,
) -> Starlette:
    return create_app(
        state, policy(reads_need_token=reads_need_token), ecosystem_path=ecosystem_path, hub=hub
    )


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: the session's Playwright (sync API) keeps an event
    loop running in the main thread, where ``asyncio.run`` refuses to start another."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as error:  # re-raised in the caller's thread
            box["error"] = error

    thread = threading.Thread(target=target, name="test-async")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
