"""``drift check``: run the policy's lanes over one repo and keep the report.

One :class:`~speedrift.lanes.context.RepoView` serves every lane (the tree is listed once, the
diff computed once, each blob read once). Lanes run in the policy's order; each is timed, and
anything one raises — a bug, a git failure, an external lane's :class:`LaneError` — becomes that
lane's ``error``: the check goes on, the lane is never counted as passing, speedrift never
crashes because of a lane.

The diff range: ``base``/``tip`` when given; for a task without them, the range its latest
attempt landed (``landed_onto..landed_commit`` from the attempt's evidence) or, when nothing
landed, the working changes of the checkout against ``HEAD`` (the original coredrift's mode).
Diff lanes without a range do not run (their result says so: ``skipped``).

Incremental: a tree or graph lane's result is reused while its inputs are unchanged (the head
commit, the lane's settings and, for a graph lane, the graph file's bytes) — ``cached: true``
in its result. Lanes that keep finer caches of their own (secdrift per blob) make the run after
a small change cheap too.

Saved: the report of a repo-wide check to ``.speedrift/lanes/latest.json`` (what the hub's
observer reads), a task's to ``.speedrift/lanes/tasks/<task>.json``; both written atomically.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift import layout, redact
from speedrift.errors import NotFound, UsageError
from speedrift.fsutil import write_atomic
from speedrift.graph.codec import Graph
from speedrift.graph.model import Task
from speedrift.graph.store import GraphStore
from speedrift.lanes import external, fences
from speedrift.lanes.builtin import BUILTIN
from speedrift.lanes.context import LaneContext, RepoView, resolve
from speedrift.lanes.model import CheckReport, LaneResult, LaneScope, result_from_json
from speedrift.lanes.policy import DriftPolicy, load
from speedrift.lanes.spec import Lane, LaneOutput
from speedrift.serialize import dumps
from speedrift.times import iso_utc

LATEST_FILE = "latest.json"
TASKS_DIR = "tasks"
CACHE_VERSION = 1


@dataclass(frozen=True, slots=True)
class CheckRequest:
    task_id: str | None = None
    lanes: tuple[str, ...] | None = None  # None: every lane the policy's order names
    base: str | None = None
    tip: str | None = None  # None with a base: the working tree
    head: str = "HEAD"  # the commit tree lanes judge (the target branch's tip)


def lanes_of(
    repo: Path,
    policy: DriftPolicy,
    builtin: Mapping[str, Lane] = BUILTIN,
    containment: external.Containment | None = None,
) -> dict[str, Lane]:
    """Every lane the policy runs, built-in or external, in its order. ``containment``: how an
    external lane is run (the repo's ``[sandbox]`` and ``[env]``; default: the sandbox when this
    machine has one)."""
    found: dict[str, Lane] = {}
    for name in policy.order:
        lane_policy = policy.lane(name)
        if lane_policy.command is None:
            found[name] = builtin[name]
        else:
            found[name] = external.lane_for(lane_policy, containment=containment)
    return found


def check(
    repo: Path,
    *,
    now: datetime,
    request: CheckRequest = CheckRequest(),
    policy: DriftPolicy | None = None,
    builtin: Mapping[str, Lane] = BUILTIN,
    progress: Callable[[LaneResult], None] | None = None,
    use_cache: bool = True,
    save: bool = True,
    containment: external.Containment | None = None,
) -> CheckReport:
    policy = policy if policy is not None else load(repo, builtin)
    lanes = _selected(lanes_of(repo, policy, builtin, containment), request.lanes)
    store = GraphStore.of_repo(repo)
    graph_bytes = _graph_bytes(store)
    graph = Graph.from_bytes(graph_bytes) if graph_bytes is not None else None
    task = _task(graph, request.task_id)
    base, tip = _range(repo, request)
    view = RepoView(repo, resolve(repo, request.head), base, tip)
    results: list[LaneResult] = []
    for name, lane in lanes.items():
        lane_policy = policy.lane(name)
        ctx = _context(repo, lane, view, now, lane_policy.settings, graph, task)
        result = _run_one(
            lane, ctx, _cache_key(lane, view, lane_policy.settings, graph_bytes) if use_cache else None
        )
        results.append(result)
        if progress is not None:
            progress(result)
    report = CheckReport(
        repo=str(repo),
        head=view.head,
        base=base,
        task=request.task_id,
        results=tuple(results),
        checked_at=iso_utc(now),
    )
    if save:
        write_report(repo, report)
    return report


def scopes(repo: Path, policy: DriftPolicy, builtin: Mapping[str, Lane] = BUILTIN) -> dict[str, LaneScope]:
    """Each lane's scope by name (the guard resolves follow-ups by it)."""
    return {name: lane.scope for name, lane in lanes_of(repo, policy, builtin).items()}


def _selected(lanes: dict[str, Lane], wanted: Sequence[str] | None) -> dict[str, Lane]:
    if wanted is None:
        return lanes
    unknown = [name for name in wanted if name not in lanes]
    if unknown:
        raise UsageError(
            f"no lane named {', '.join(unknown)} in this repo's policy",
            hint=f"lanes here: {', '.join(lanes) or 'none'} (`speedrift lanes list`)",
        )
    return {name: lanes[name] for name in wanted}


def _graph_bytes(store: GraphStore | None) -> bytes | None:
    if store is None:
        return None
    try:
        return store.read_bytes()
    except NotFound:
        return None


def _task(graph: Graph | None, task_id: str | None) -> Task | None:
    if task_id is None:
        return None
    if graph is None:
        raise NotFound(f"no task graph here, so no task {task_id}", hint="run `speedrift init`")
    task = graph.tasks.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id} in the graph", hint="`speedrift list` shows the task ids")
    return task


def _range(repo: Path, request: CheckRequest) -> tuple[str | None, str | None]:
    if request.base is not None:
        return resolve(repo, request.base), resolve(repo, request.tip) if request.tip else None
    if request.task_id is None:
        return None, None
    for run_dir in reversed(layout.attempt_dirs(repo, request.task_id)):
        evidence = layout.read_record(layout.evidence_path(run_dir)) or {}
        result = evidence.get("result")
        if isinstance(result, dict) and result.get("landed_commit") and result.get("landed_onto"):
            return resolve(repo, str(result["landed_onto"])), resolve(repo, str(result["landed_commit"]))
    return resolve(repo, "HEAD"), None  # the working changes: what is being done to the task now


def _context(
    repo: Path,
    lane: Lane,
    view: RepoView,
    now: datetime,
    settings: Mapping[str, Any],
    graph: Graph | None,
    task: Task | None,
) -> LaneContext:
    fence: Mapping[str, Any] | None = None
    problem: str | None = None
    if lane.fence is not None and task is not None:
        try:
            fence = fences.fence(task.get("description"), lane.fence)
        except fences.FenceError as exc:
            problem = str(exc)
    return LaneContext(
        lane=lane.name,
        view=view,
        now=now,
        settings=settings,
        graph=graph,
        task=task,
        fence=fence,
        fence_error=problem,
        state_dir=layout.lane_dir(repo, lane.name),
    )


def _cache_key(lane: Lane, view: RepoView, settings: Mapping[str, Any], graph: bytes | None) -> str | None:
    if lane.volatile or lane.scope not in (LaneScope.TREE, LaneScope.GRAPH):
        return None
    digest = hashlib.sha256()
    digest.update(f"{CACHE_VERSION}\x1f{lane.name}\x1f{view.head}\x1f".encode())
    digest.update(dumps(dict(settings)))
    if lane.scope is LaneScope.GRAPH:
        digest.update(graph or b"")
    return digest.hexdigest()


def _run_one(lane: Lane, ctx: LaneContext, key: str | None) -> LaneResult:
    if lane.scope is LaneScope.DIFF and ctx.view.base is None and not lane.external:
        return LaneResult(lane.name, skipped="no diff range (give --base, or --task for a task's changes)")
    cache = layout.lane_result_path(ctx.repo, lane.name)
    if key is not None:
        stored = layout.read_record(cache)
        if stored is not None and stored.get("key") == key and isinstance(stored.get("result"), dict):
            try:
                return replace(result_from_json(stored["result"]), cached=True)
            except ValueError:
                pass  # a damaged cache is recomputed, never trusted
    started = time.monotonic()
    try:
        output = lane.run(ctx)
        result = _result(lane.name, output)
    except Exception as exc:  # a lane's failure is its result, never the check's crash
        result = LaneResult(lane.name, error=redact.recordable(f"{type(exc).__name__}: {exc}"))
    result = replace(result, duration_ms=int((time.monotonic() - started) * 1000))
    if key is not None and result.error is None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, dumps({"key": key, "result": result.to_json()}), durable=False)
    return result


def _result(name: str, output: LaneOutput) -> LaneResult:
    if not isinstance(output, LaneOutput):
        raise TypeError(f"lane {name} returned {type(output).__name__}, not a LaneOutput")
    wrong = [f for f in output.findings if f.lane != name]
    if wrong:
        raise ValueError(f"lane {name} returned a finding of lane {wrong[0].lane}")
    return LaneResult(
        lane=name,
        findings=tuple(output.findings),
        summary=output.summary,
        score=output.score,
        artifacts=tuple(output.artifacts),
    )


def report_path(repo: Path, task_id: str | None = None) -> Path:
    if task_id is None:
        return layout.lanes_dir(repo) / LATEST_FILE
    return layout.lanes_dir(repo) / TASKS_DIR / f"{layout.safe_name(task_id)}.json"


def write_report(repo: Path, report: CheckReport) -> Path:
    """Save the report. A repo-wide check that ran only some lanes (a lane's cron, ``--lane``)
    keeps the other lanes' last results: ``latest.json`` holds each lane's newest result, each
    stamped with the head it judged and when."""
    path = report_path(repo, report.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = report.to_json()
    for lane in data["lanes"]:
        lane["head"] = report.head
        lane["checked_at"] = report.checked_at
    if report.task is None:
        ran = {lane["lane"] for lane in data["lanes"]}
        previous = (layout.read_record(path) or {}).get("lanes")
        kept = [
            lane
            for lane in (previous if isinstance(previous, list) else [])
            if isinstance(lane, dict) and lane.get("lane") not in ran
        ]
        data["lanes"] = [*data["lanes"], *kept]
    write_atomic(path, dumps(data, pretty=True))
    return path


def read_report(repo: Path, task_id: str | None = None) -> dict[str, Any] | None:
    """The last saved report as JSON (None: none yet, or unreadable)."""
    return layout.read_record(report_path(repo, task_id))
