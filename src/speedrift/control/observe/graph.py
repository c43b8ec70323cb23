"""A repo's task graph as the observer sees it: counts, ready work, aging, blockers, dead claims.

Read-only and lock-free: ``graph.jsonl`` is read in one go (writers replace it by atomic rename,
so a reader sees a whole old or a whole new file) and decoded by the lossless codec; no lock
file is opened, nothing is created. Readiness and dispatch order are ``graph.query``'s, exactly
what ``speedrift ready`` shows.

A reading stays valid until its *horizon*: the next moment a time-based fact changes (a
``not_before`` opens, a task crosses the 14-day stale-open or 3-day stale-in-progress line, a
day of age bumps a priority). Until then a reused reading only has its ages moved forward and its
claimants' pids re-checked (:func:`refresh`), which costs no file access.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from speedrift.graph import query
from speedrift.graph.codec import Graph
from speedrift.graph.model import (
    DISPATCHABLE,
    FAILED,
    IN_PROGRESS,
    TERMINAL,
    Task,
    after_of,
    priority_of,
    speedrift_data,
    status_of,
)
from speedrift.graph.store import repo_graph_file
from speedrift.procs import pid_alive
from speedrift.register.record import GraphState, TaskBrief
from speedrift.times import parse_time

STALE_OPEN = timedelta(days=14)
STALE_IN_PROGRESS = timedelta(days=3)
MAX_BRIEFS = 20
CRON_RECHECK = timedelta(minutes=5)
MENTION_TEXT = 2000  # characters of a description scanned for other repos' names
_TOKEN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")  # a word never ends in punctuation


@dataclass(frozen=True, slots=True)
class GraphReading:
    state: GraphState
    observed_at: datetime
    valid_until: datetime | None  # None: no time-based fact can change
    claims: tuple[tuple[str, int], ...]  # (in-progress task, local claimant pid)


def _age(since: datetime | None, now: datetime) -> float | None:
    return max(0.0, (now - since).total_seconds()) if since else None


def _brief(task: Task, since: datetime | None, now: datetime) -> TaskBrief:
    title = task.get("title")
    return TaskBrief(
        id=task["id"],
        title=title if isinstance(title, str) else "",
        status=status_of(task),
        age_seconds=_age(since, now),
        priority=priority_of(task),
    )


def _mentions(parts: list[str], names: frozenset[str], own: str | None) -> tuple[str, ...]:
    """Registered repo names (other than ``own``) appearing as whole words in ``parts`` (unfinished
    tasks' titles, descriptions and blocker ids): one regex pass and a set intersection."""
    if not names or not parts:
        return ()
    found = set(_TOKEN.findall("\n".join(parts).lower()))
    found.intersection_update(names)
    found.discard(own or "")
    return tuple(sorted(found))


def _horizon(candidates: list[datetime], now: datetime) -> datetime | None:
    future = [moment for moment in candidates if moment > now]
    return min(future) if future else None


def analyze(
    graph: Graph, graph_dir: str, now: datetime, names: frozenset[str] = frozenset(), own: str | None = None
) -> GraphReading:
    """Everything the control plane reads from one graph, plus when it goes stale. Pure; one pass
    over the tasks besides readiness and dispatch order (``graph.query``'s)."""
    tasks = graph.tasks
    host = socket.gethostname()
    ready_ids = query.ready_ids(graph, now)
    ordered = query.dispatch_order(graph, ready_ids, now)
    ready_set = set(ready_ids)
    counts: dict[str, int] = {}
    horizon: list[datetime] = []
    in_progress: list[TaskBrief] = []
    claims: list[tuple[str, int]] = []
    missing: list[tuple[str, str]] = []
    text: list[str] = []  # for mentions; finished work says nothing about current dependencies
    blocked = failed_blockers = stale_open = stale_in_progress = 0
    for task_id, task in tasks.items():
        status = status_of(task)
        counts[status] = counts.get(status, 0) + 1
        if status in TERMINAL:
            continue
        after = after_of(task)
        for blocker in after:
            if blocker not in tasks:
                missing.append((task_id, blocker))
        if names:
            title, description = task.get("title"), task.get("description")
            if isinstance(title, str):
                text.append(title)
            if isinstance(description, str):
                text.append(description[:MENTION_TEXT])
            text.extend(after)
        if status == IN_PROGRESS:
            since = parse_time(task.get("started_at")) or parse_time(task.get("created_at"))
            in_progress.append(_brief(task, since, now))
            if since is not None:
                if now - since >= STALE_IN_PROGRESS:
                    stale_in_progress += 1
                else:
                    horizon.append(since + STALE_IN_PROGRESS)
            worker = speedrift_data(task).get("worker")
            if isinstance(worker, dict) and worker.get("host") == host and isinstance(worker.get("pid"), int):
                claims.append((task_id, worker["pid"]))
            continue
        if status not in DISPATCHABLE:
            continue
        created = parse_time(task.get("created_at"))
        if created is not None:
            if now - created >= STALE_OPEN:
                stale_open += 1
            else:
                horizon.append(created + STALE_OPEN)
        for key in ("not_before", "ready_after"):
            if key in task and (gate := parse_time(task[key])) is not None:
                horizon.append(gate)
        if task.get("cron_enabled") is True:
            horizon.append(now + CRON_RECHECK)
        if task_id in ready_set:
            if created is not None:  # the age bump of dispatch order moves once a day
                horizon.append(created + timedelta(days=int((now - created) / timedelta(days=1)) + 1))
            continue
        problems = [p for b in after if (p := query.blocker_problem(b, task_id, tasks)) is not None]
        if problems:
            blocked += 1
            if FAILED in problems:
                failed_blockers += 1
    in_progress.sort(key=lambda brief: (-(brief.age_seconds or 0.0), brief.id))
    state = GraphState(
        graph_dir=graph_dir,
        counts=counts,
        ready=tuple(
            _brief(tasks[t], parse_time(tasks[t].get("created_at")), now) for t in ordered[:MAX_BRIEFS]
        ),
        ready_count=len(ordered),
        in_progress=tuple(in_progress[:MAX_BRIEFS]),
        blocked=blocked,
        missing_dependencies=tuple(missing),
        failed_blockers=failed_blockers,
        stale_open=stale_open,
        stale_in_progress=stale_in_progress,
        dead_claims=tuple(task for task, pid in claims if not pid_alive(pid)),
        problems=len(graph.problems),
        mentions=_mentions(text, names, own),
    )
    return GraphReading(state, now, _horizon(horizon, now), tuple(claims))


def read_graph(
    repo: Path, now: datetime, names: frozenset[str] = frozenset(), own: str | None = None
) -> GraphReading | None:
    """The repo's graph reading, None when the repo has no graph. Raises OSError if unreadable.
    ``names``: registered repo names (lower case) to look for; ``own``: this repo's, left out."""
    path = repo_graph_file(repo)
    if path is None:
        return None
    return analyze(Graph.from_bytes(path.read_bytes()), path.parent.name, now, names, own)


def _shift(briefs: tuple[TaskBrief, ...], seconds: float) -> tuple[TaskBrief, ...]:
    return tuple(
        replace(b, age_seconds=b.age_seconds + seconds) if b.age_seconds is not None else b for b in briefs
    )


def refresh(reading: GraphReading, now: datetime) -> GraphReading | None:
    """The reading moved to ``now`` without reading the file; None once its horizon has passed."""
    if reading.valid_until is not None and now >= reading.valid_until:
        return None
    seconds = (now - reading.observed_at).total_seconds()
    state = replace(
        reading.state,
        ready=_shift(reading.state.ready, seconds),
        in_progress=_shift(reading.state.in_progress, seconds),
        dead_claims=tuple(task for task, pid in reading.claims if not pid_alive(pid)),
    )
    return replace(reading, state=state, observed_at=now)
