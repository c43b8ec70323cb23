"""Graph queries as pure functions: readiness, blockers, cycles, critical path, aging, bottlenecks.

Readiness follows workgraph (``src/query.rs``): a task is ready iff it is open or incomplete,
not paused, past its time gates, and every ``after`` blocker exists and is done or abandoned —
a missing or failed blocker blocks — and no ``.evaluate-<blocker>`` is still pending. Structural
back-edges of loops (found by SCC) do not block. ``now`` is always passed in.

A blocker ``REPO:TASK`` names a task in a peer repo (wg's federation). Without ``peers`` it is
looked up in this graph like any id, so it is missing and blocks (as wg does without peers). With
``peers`` — a :data:`PeerStatuses` the caller read from the peer repos — it is satisfied when that
task is done or abandoned there, and a repo or task that does not exist is a named break.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from speedrift.graph.codec import Graph
from speedrift.graph.cycles import CycleAnalysis, analyze
from speedrift.graph.model import (
    DEP_SATISFIED,
    DISPATCHABLE,
    FAILED,
    PENDING_EVAL,
    PRIORITY_TIERS,
    TERMINAL,
    Task,
    after_of,
    priority_of,
    status_of,
)
from speedrift.times import format_time, parse_time

NORMAL_PRIORITY = 10

PeerStatuses: TypeAlias = Mapping[str, str | None]
"""Tasks of peer repos by the ``REPO:TASK`` id an ``after`` entry names: the task's status there,
None when the repo is registered but has no such task. An id the mapping lacks names a repo that
is not registered."""
PEER_HINT = "is in another repo; name the ecosystem (--ecosystem or $SPEEDRIFT_ECOSYSTEM) to resolve it"


def peer_problem(blocker_id: str, peers: PeerStatuses) -> str | None:
    """Why the peer task ``blocker_id`` (``REPO:TASK``) still holds its dependents, or None."""
    repo, _, task = blocker_id.partition(":")
    if blocker_id not in peers:
        return f"no repo {repo} in the ecosystem"
    status = peers[blocker_id]
    if status is None:
        return f"no task {task} in {repo}"
    return None if status in DEP_SATISFIED else status


# --- time gates ----------------------------------------------------------------------------
def _cron_wait(task: Task, now: datetime) -> datetime | None:
    """When a recurring task's clock lets it run, if that is still to come (wg's ``is_cron_due``):
    ``next_cron_fire`` — the slot a done re-arms it for (graph/ops.py) — else the schedule's next
    slot (UTC, wg's dialect: graph/cron.py) after ``last_cron_fire``. None (due): never fired, an
    unparsable timestamp or an invalid schedule (unparsable values never block)."""
    next_fire = parse_time(task.get("next_cron_fire"))
    if next_fire is not None:
        return next_fire if now < next_fire else None
    schedule = task.get("cron_schedule")
    last = parse_time(task.get("last_cron_fire"))
    if not isinstance(schedule, str) or last is None:
        return None  # never fired: due
    from speedrift.graph.cron import next_task_slot  # lazy, same layer: cron tasks are rare

    upcoming = next_task_slot(schedule, last)
    return upcoming if upcoming is not None and now < upcoming else None


def time_gate(task: Task, now: datetime) -> str | None:
    """Why the clock holds this task back, or None. Unparsable timestamps never block (as wg)."""
    for key in ("not_before", "ready_after"):
        value = task.get(key)
        if value:
            moment = parse_time(value)
            if moment is not None and now < moment:
                return f"{key} {value}"
    if task.get("cron_enabled") is True and (slot := _cron_wait(task, now)) is not None:
        return f"cron not due until {format_time(slot)}"
    return None


# --- readiness -----------------------------------------------------------------------------
def _eval_gate_pending(blocker_id: str, tasks: dict[str, Task]) -> bool:
    if blocker_id.startswith("."):
        return False
    gate = tasks.get(".evaluate-" + blocker_id)
    return gate is not None and status_of(gate) not in TERMINAL


def blocker_problem(
    blocker_id: str, dependent_id: str, tasks: dict[str, Task], peers: PeerStatuses | None = None
) -> str | None:
    """Why ``blocker_id`` still holds ``dependent_id``, or None if it is satisfied."""
    blocker = tasks.get(blocker_id)
    system_dependent = dependent_id.startswith(".")
    if blocker is None:
        if peers is not None and ":" in blocker_id:
            return peer_problem(blocker_id, peers)
        return "missing"
    status = status_of(blocker)
    if status not in DEP_SATISFIED:
        if system_dependent and status == PENDING_EVAL:
            return None
        return status
    if not system_dependent and _eval_gate_pending(blocker_id, tasks):
        return f"waiting for .evaluate-{blocker_id}"
    return None


def _unfinished_ancestry(tasks: dict[str, Task], starts: list[str]) -> dict[str, list[str]]:
    """after-edges of the unfinished tasks reachable upstream from ``starts``.

    A back-edge can only free a waiting task if it lies on a loop through that task, and a loop
    through it runs entirely through its unfinished ancestors: nothing else needs analysing.
    """
    edges: dict[str, list[str]] = {}
    stack = list(starts)
    while stack:
        task_id = stack.pop()
        if task_id in edges:
            continue
        task = tasks.get(task_id)
        if task is None or status_of(task) in DEP_SATISFIED:
            continue
        after = after_of(task)
        edges[task_id] = after
        stack.extend(after)
    return edges


def cycle_analysis(graph: Graph) -> CycleAnalysis:
    configured = {tid for tid, t in graph.tasks.items() if t.get("cycle_config")}
    all_edges = {tid: after_of(t) for tid, t in graph.tasks.items()}
    return analyze(all_edges, configured)


def _raw_status(task: Task) -> str | None:
    """The status as written when it is a string (the hot path compares it as is), else None."""
    status = task.get("status")
    return status if type(status) is str else None


def ready_ids(graph: Graph, now: datetime, peers: PeerStatuses | None = None) -> list[str]:
    """Ids of ready tasks in file order (use :func:`dispatch_order` to rank them)."""
    tasks = graph.tasks
    ready: list[str] = []
    held_by_unfinished: list[str] = []  # may still be ready if every holding edge is a back-edge
    for task_id, task in tasks.items():
        status = task.get("status", "open")
        if type(status) is not str:  # any JSON value may be there: read as status_of reads it
            status = status_of(task)
        if status not in DISPATCHABLE or task.get("paused") is True:
            continue
        if ("not_before" in task or "ready_after" in task or "cron_enabled" in task) and time_gate(task, now):
            continue
        after = task.get("after") or task.get("blocked_by")
        if after and type(after) is not list:
            after = after_of(task)
        if not after:
            ready.append(task_id)
            continue
        clear = True
        only_unfinished = True
        for blocker_id in after:
            if type(blocker_id) is not str:  # `after: [1, [2]]`: not an id (after_of skips it too)
                continue
            blocker = tasks.get(blocker_id)
            if blocker is not None and _raw_status(blocker) in DEP_SATISFIED:
                if not task_id.startswith(".") and _eval_gate_pending(blocker_id, tasks):
                    clear = False
                continue
            problem = blocker_problem(blocker_id, task_id, tasks, peers)
            if problem is None:
                continue
            clear = False
            if blocker is None or problem == FAILED:  # missing, or in a peer repo: no loop frees it
                only_unfinished = False
                break
        if clear:
            ready.append(task_id)
        elif only_unfinished:
            held_by_unfinished.append(task_id)
    if held_by_unfinished:
        edges = _unfinished_ancestry(tasks, held_by_unfinished)
        back_edges = analyze(edges, {t for t in edges if tasks[t].get("cycle_config")}).back_edges
        if back_edges:
            for task_id in held_by_unfinished:
                if all(
                    (b, task_id) in back_edges or blocker_problem(b, task_id, tasks, peers) is None
                    for b in after_of(tasks[task_id])
                ):
                    ready.append(task_id)
    return ready


def _tier_of(priority: int) -> int:
    """Index of the highest named level at or below ``priority`` (0 idle ... 4 critical)."""
    for index in range(len(PRIORITY_TIERS) - 1, -1, -1):
        if PRIORITY_TIERS[index] <= priority:
            return index
    return 0


def effective_priorities(graph: Graph, candidates: list[str], now: datetime) -> dict[str, int]:
    """Priority bumped one tier per 24 h of age, and inherited from higher-priority dependents."""
    tasks = graph.tasks
    # Inheritance: an unfinished task high above normal lends its priority to everything it waits on.
    inherited: dict[str, int] = {}
    lenders = [
        (tid, priority_of(t))
        for tid, t in tasks.items()
        if t.get("priority", NORMAL_PRIORITY) != NORMAL_PRIORITY
        and priority_of(t) > NORMAL_PRIORITY
        and status_of(t) not in TERMINAL
    ]
    for lender_id, level in sorted(lenders, key=lambda item: -item[1]):
        queue = deque(after_of(tasks[lender_id]))
        while queue:
            blocker_id = queue.popleft()
            blocker = tasks.get(blocker_id)
            # a finished blocker no longer holds the lender, and neither does its ancestry
            if (
                blocker is None
                or inherited.get(blocker_id, -1) >= level
                or status_of(blocker) in DEP_SATISFIED
            ):
                continue
            inherited[blocker_id] = level
            queue.extend(after_of(blocker))
    result: dict[str, int] = {}
    for task_id in candidates:
        task = tasks[task_id]
        base = priority_of(task)
        created = parse_time(task.get("created_at"))
        if created is not None and base > 0:
            days = int((now - created) / timedelta(days=1))
            tier = _tier_of(base)
            bumped_tier = min(tier + max(days, 0), len(PRIORITY_TIERS) - 1)
            base = max(base, PRIORITY_TIERS[bumped_tier])
        result[task_id] = max(base, inherited.get(task_id, 0))
    return result


def dispatch_order(graph: Graph, candidates: list[str], now: datetime) -> list[str]:
    """wg's dispatcher order: effective priority desc, then fewest dispatches, then oldest.

    Idle (priority 0) tasks come only when nothing at normal or above is ready.
    """
    tasks = graph.tasks
    effective = effective_priorities(graph, candidates, now)

    def key(task_id: str) -> tuple[int, int, str, str]:
        task = tasks[task_id]
        dispatches = task.get("dispatch_count", 0)
        created = task.get("created_at")
        return (
            -effective[task_id],
            dispatches if isinstance(dispatches, int) else 0,
            created if isinstance(created, str) else "",
            task_id,
        )

    ordered = sorted(candidates, key=key)
    if any(effective[t] >= NORMAL_PRIORITY for t in ordered):
        ordered = [t for t in ordered if effective[t] > 0]
    return ordered


def ready(graph: Graph, now: datetime, peers: PeerStatuses | None = None) -> list[Task]:
    return [graph.tasks[t] for t in dispatch_order(graph, ready_ids(graph, now, peers), now)]


# --- blocked / why-blocked -----------------------------------------------------------------
def direct_reasons(
    graph: Graph, task: Task, now: datetime, peers: PeerStatuses | None = None
) -> list[dict[str, str]]:
    """Every immediate reason a task is not ready (empty if it is ready or not dispatchable)."""
    reasons: list[dict[str, str]] = []
    task_id = task["id"]
    if task.get("paused") is True:
        reasons.append({"kind": "paused", "detail": "task is paused"})
    gate = time_gate(task, now)
    if gate:
        reasons.append({"kind": "time", "detail": gate})
    for blocker_id in after_of(task):
        problem = blocker_problem(blocker_id, task_id, graph.tasks, peers)
        if problem is not None:
            reasons.append({"kind": "blocker", "blocker": blocker_id, "detail": problem})
    return reasons


def blocked(graph: Graph, now: datetime, peers: PeerStatuses | None = None) -> list[dict[str, Any]]:
    """Open/incomplete tasks that are not ready, with their immediate reasons."""
    ready_set = set(ready_ids(graph, now, peers))
    rows: list[dict[str, Any]] = []
    for task_id, task in graph.tasks.items():
        if status_of(task) not in DISPATCHABLE or task_id in ready_set:
            continue
        rows.append(
            {
                "id": task_id,
                "title": task.get("title", ""),
                "reasons": direct_reasons(graph, task, now, peers),
            }
        )
    return rows


@dataclass
class BlockNode:
    """One link of a why-blocked chain: a task and what holds it."""

    id: str
    status: str
    reason: str
    children: list[BlockNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The chain as nested dicts (``blocked_by``), built with a loop, not recursion."""
        out = self._shallow()
        stack = [(self, out)]
        while stack:
            node, target = stack.pop()
            for child in node.children:
                shallow = child._shallow()
                target["blocked_by"].append(shallow)
                stack.append((child, shallow))
        return out

    def _shallow(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "reason": self.reason, "blocked_by": []}

    def walk(self) -> Iterator[tuple[BlockNode, int]]:
        """Every node with its depth, in the order a tree is printed (pre-order), without recursion."""
        stack = [(self, 0)]
        while stack:
            node, depth = stack.pop()
            yield node, depth
            stack.extend((child, depth + 1) for child in reversed(node.children))


MAX_CHAIN = 100  # why-blocked follows a chain this deep; deeper is named, not walked (and JSON stays shallow)


@dataclass
class _Open:
    """A why-blocked node whose reasons are still being explained (the loop's stack frame)."""

    node: BlockNode
    own: list[str]
    reasons: list[dict[str, Any]]
    depth: int
    index: int = 0


def _peer_node(tid: str, peers: PeerStatuses | None) -> BlockNode:
    """A blocker in another repo: what the peer statuses say of it (a root cause either way)."""
    repo = tid.partition(":")[0]
    if peers is None:
        return BlockNode(tid, "missing", f"{tid} {PEER_HINT}")
    problem = peer_problem(tid, peers)
    status = peers.get(tid)
    if status is None:
        return BlockNode(tid, "missing", f"{tid}: {problem}")
    if status == FAILED:
        return BlockNode(tid, status, f"failed in {repo}: retry it there to unblock dependents")
    return BlockNode(tid, status, f"{status} in {repo}")


def why_blocked(graph: Graph, task_id: str, now: datetime, peers: PeerStatuses | None = None) -> BlockNode:
    """The transitive chain of what holds ``task_id``, down to root causes (each task once).

    Walked with an explicit stack, depth-first in blocker order; a chain deeper than
    :data:`MAX_CHAIN` tasks is cut there with a reason naming the task to ask about next."""
    ready_set = set(ready_ids(graph, now, peers))
    seen: set[str] = set()

    def explain(tid: str, via: str, depth: int) -> tuple[BlockNode, _Open | None]:
        """The node for ``tid``, and its frame when its own blockers still need explaining."""
        task = graph.tasks.get(tid)
        if task is None:
            if ":" in tid and tid != task_id:
                return _peer_node(tid, peers), None
            return BlockNode(tid, "missing", f"{via}: no task with this id exists"), None
        status = status_of(task)
        if tid in seen:
            return BlockNode(tid, status, "already shown above (loop or shared dependency)"), None
        seen.add(tid)
        if tid in ready_set:
            return BlockNode(tid, status, "ready: waiting to be picked up"), None
        if status in DEP_SATISFIED:
            return BlockNode(tid, status, status), None
        node = BlockNode(tid, status, "")
        own: list[str] = []
        if status == FAILED:
            own.append("failed: retry it to unblock dependents")
        elif status not in DISPATCHABLE:
            own.append(f"{status}: in flight" if status != "blocked" else "marked blocked")
        if depth >= MAX_CHAIN:
            own.append(f"the chain goes on past {MAX_CHAIN} tasks: ask why-blocked about {tid} to follow it")
            node.reason = "; ".join(own)
            return node, None
        return node, _Open(node, own, direct_reasons(graph, task, now, peers), depth)

    root, first = explain(task_id, "requested", 0)
    stack = [first] if first is not None else []
    while stack:
        frame = stack[-1]
        if frame.index < len(frame.reasons):
            reason = frame.reasons[frame.index]
            frame.index += 1
            if reason["kind"] == "blocker":
                child, opened = explain(reason["blocker"], reason["detail"], frame.depth + 1)
                frame.node.children.append(child)
                if opened is not None:
                    stack.append(opened)
            else:
                frame.own.append(reason["detail"])
            continue
        stack.pop()
        node = frame.node
        node.reason = "; ".join(frame.own) or ("blocked by" if node.children else node.status)
    return root


# --- structure: cycles, critical path, bottlenecks, aging ----------------------------------
def _hours(task: Task) -> float:
    estimate = task.get("estimate")
    if isinstance(estimate, dict):
        hours = estimate.get("hours")
        if isinstance(hours, (int, float)) and not isinstance(hours, bool) and hours > 0:
            return float(hours)
    return 1.0


def critical_path(graph: Graph) -> tuple[list[str], float]:
    """The longest chain of unfinished work (weighted by ``estimate.hours``, default 1)."""
    tasks = graph.tasks
    back = cycle_analysis(graph).back_edges
    unfinished = {tid for tid, t in tasks.items() if status_of(t) not in DEP_SATISFIED}
    blockers = {
        tid: [b for b in after_of(tasks[tid]) if b in unfinished and (b, tid) not in back]
        for tid in unfinished
    }
    dependents: dict[str, list[str]] = {tid: [] for tid in unfinished}
    indegree = {tid: len(bs) for tid, bs in blockers.items()}
    for tid, bs in blockers.items():
        for b in bs:
            dependents[b].append(tid)
    queue = deque(sorted(t for t, d in indegree.items() if d == 0))
    best: dict[str, float] = {}
    came_from: dict[str, str | None] = {}
    while queue:
        tid = queue.popleft()
        prior = max(blockers[tid], key=lambda b: best[b], default=None)
        best[tid] = _hours(tasks[tid]) + (best[prior] if prior is not None else 0.0)
        came_from[tid] = prior
        for dep in dependents[tid]:
            indegree[dep] -= 1
            if indegree[dep] == 0:
                queue.append(dep)
    if not best:
        return [], 0.0
    end = max(sorted(best), key=lambda t: best[t])
    chain: list[str] = []
    cursor: str | None = end
    while cursor is not None:
        chain.append(cursor)
        cursor = came_from[cursor]
    return list(reversed(chain)), best[end]


def bottlenecks(graph: Graph, limit: int = 10) -> list[dict[str, Any]]:
    """Unfinished tasks ranked by how many unfinished tasks wait on them, transitively."""
    tasks = graph.tasks
    unfinished = {tid for tid, t in tasks.items() if status_of(t) not in DEP_SATISFIED}
    dependents: dict[str, list[str]] = {}
    for tid in unfinished:
        for b in after_of(tasks[tid]):
            if b in unfinished:
                dependents.setdefault(b, []).append(tid)
    rows: list[dict[str, Any]] = []
    for tid in dependents:
        seen: set[str] = set()
        stack = list(dependents[tid])
        while stack:
            d = stack.pop()
            if d in seen or d == tid:
                continue
            seen.add(d)
            stack.extend(dependents.get(d, ()))
        rows.append(
            {
                "id": tid,
                "title": tasks[tid].get("title", ""),
                "status": status_of(tasks[tid]),
                "direct_dependents": len(dependents[tid]),
                "transitive_dependents": len(seen),
            }
        )
    rows.sort(key=lambda r: (-r["transitive_dependents"], -r["direct_dependents"], r["id"]))
    return rows[:limit]


AGE_BUCKETS = ((1, "< 1 day"), (7, "1-7 days"), (30, "1-4 weeks"), (None, "> 30 days"))


def aging(graph: Graph, now: datetime) -> list[dict[str, Any]]:
    """Unfinished tasks, oldest first, with their age and the bucket it falls in."""
    rows: list[dict[str, Any]] = []
    for tid, task in graph.tasks.items():
        status = status_of(task)
        if status in TERMINAL:
            continue
        created = parse_time(task.get("created_at"))
        if created is None:
            continue
        since = parse_time(task.get("started_at")) if status == "in-progress" else None
        age_days = (now - created) / timedelta(days=1)
        bucket = next(label for limit, label in AGE_BUCKETS if limit is None or age_days < limit)
        rows.append(
            {
                "id": tid,
                "title": task.get("title", ""),
                "status": status,
                "age_days": round(age_days, 2),
                "in_progress_days": round((now - since) / timedelta(days=1), 2) if since else None,
                "bucket": bucket,
            }
        )
    rows.sort(key=lambda r: (-r["age_days"], r["id"]))
    return rows


def status_counts(graph: Graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in graph.tasks.values():
        status = status_of(task)
        counts[status] = counts.get(status, 0) + 1
    return counts
