"""A repo's task graph as the observer sees it: counts, ready work, aging, blockers, dead claims,
escalations and the tasks waiting at a human approval checkpoint (observe/approvals.py).

Read-only and lock-free: ``graph.jsonl`` is read in one go (writers replace it by atomic rename,
so a reader sees a whole old or a whole new file) and decoded by the lossless codec; no lock
file is opened, nothing is created. Readiness and dispatch order are ``graph.query``'s, exactly
what ``speedrift ready`` shows.

Hostile content never raises here: the codec turns every bad line (invalid UTF-8, a lone
surrogate, nesting past 128 levels, ...) into a counted problem and reads the rest. A file that
cannot be read at all raises, and the observer quarantines that repo (no graph, the reason in its
snapshot's errors, shown on its score and card) while the others are supervised as usual.

A reading stays valid until its *horizon*: the next moment a time-based fact changes (a
``not_before`` opens, a task crosses the 14-day stale-open or 3-day stale-in-progress line, a
day of age bumps a priority). Until then a reused reading only has its ages moved forward and its
claimants' pids re-checked (:func:`refresh`), which costs no file access.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from speedrift.agents.choose import declared_runtime
from speedrift.control.observe import approvals
from speedrift.control.observe.escalations import escalations
from speedrift.coord.records import Record
from speedrift.fleet import followup
from speedrift.fleet.choosing import fallback_order
from speedrift.fleet.config import RepoConfig
from speedrift.graph import peers as peer_deps
from speedrift.graph import query
from speedrift.graph.codec import Graph
from speedrift.graph.model import (
    DISPATCHABLE,
    FAILED,
    IN_PROGRESS,
    TERMINAL,
    Task,
    after_of,
    dispatch_hold,
    priority_of,
    speedrift_data,
    status_of,
)
from speedrift.graph.store import repo_graph_file
from speedrift.procs import ProcessIdentity, identity_alive, identity_in
from speedrift.register.record import ApprovalWait, GraphState, TaskBrief
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
    # (in-progress task, its local claimant: pid + start time, so a zombie or a reused pid is dead)
    claims: tuple[tuple[str, ProcessIdentity | None], ...]
    peers: PeerView | None = None  # only when this graph waits on, or is asked about, peer tasks
    # the repo's open human_escalation records it was judged with (observe/coordination.py)
    questions: tuple[Record, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerView:
    """What a reading needs for dependencies across repos (see the observer's second pass).

    ``wanted``: the peer tasks this graph's unfinished tasks wait on (repo -> task ids);
    ``statuses``: the peer statuses its readiness was computed with (None: not yet resolved);
    ``graph``: kept while ``wanted`` is not empty, so a change in a peer re-judges readiness
    without reading this file again; ``exports``: this repo's tasks other repos asked about."""

    wanted: dict[str, frozenset[str]]
    statuses: query.PeerStatuses | None
    graph: Graph | None
    exports: dict[str, str | None]


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
        runtime=_runtime_of(task),
    )


_NO_REPO_ORDER = RepoConfig()


def _runtime_of(task: Task) -> str | None:
    """The runtime the task names; None for the repo's default — and for a task with its own
    fallback order (fleet/choosing.py), whose worker picks the first usable runtime in it, so a
    pause of the one it names holds nothing here."""
    if fallback_order(task, _NO_REPO_ORDER)[0]:
        return None
    return declared_runtime(task)


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
    graph: Graph,
    graph_dir: str,
    now: datetime,
    names: frozenset[str] = frozenset(),
    own: str | None = None,
    peers: query.PeerStatuses | None = None,
    export: Collection[str] = (),
    questions: tuple[Record, ...] = (),
) -> GraphReading:
    """Everything the control plane reads from one graph, plus when it goes stale. Pure; one pass
    over the tasks besides readiness and dispatch order (``graph.query``'s). ``peers``: statuses of
    the peer tasks this graph waits on (None: unresolved, they block); ``export``: ids of this
    graph's tasks other repos wait on, whose statuses the reading keeps for them; ``questions``:
    the repo's open human_escalation records (escalations.py lists them with the tasks')."""
    tasks = graph.tasks
    host = socket.gethostname()
    ready_ids = query.ready_ids(graph, now, peers)
    # what the hub may dispatch, as the service judges it: never a task no developer attempt runs
    # (a wave's closure stage), nor one whose start waits for a person's approval
    ordered = [t for t in query.dispatch_order(graph, ready_ids, now) if dispatch_hold(tasks[t]) is None]
    ready_set = set(ready_ids)
    counts: dict[str, int] = {}
    horizon: list[datetime] = []
    in_progress: list[TaskBrief] = []
    claims: list[tuple[str, ProcessIdentity | None]] = []
    missing: list[tuple[str, str]] = []
    peer_after: list[tuple[str, str]] = []
    peer_breaks: list[tuple[str, str, str]] = []
    text: list[str] = []  # for mentions; finished work says nothing about current dependencies
    waits: list[ApprovalWait] = []  # tasks waiting at a human approval checkpoint
    blocked = failed_blockers = stale_open = stale_in_progress = 0
    for task_id, task in tasks.items():
        status = status_of(task)
        counts[status] = counts.get(status, 0) + 1
        if status in TERMINAL:
            continue
        wait = approvals.approval_wait(task, tasks, task_id in ready_set)
        if wait is not None:
            waits.append(wait)
        after = after_of(task)
        for blocker in after:
            if blocker not in tasks:
                if ":" in blocker and not _is_peer_break(task_id, blocker, peers, peer_after, peer_breaks):
                    continue
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
            if wait is not None:  # gated work waiting for a person: judged as that, not as aging
                continue  # or as a dead claim (its worker exited when it began to wait)
            if since is not None:
                if now - since >= STALE_IN_PROGRESS:
                    stale_in_progress += 1
                else:
                    horizon.append(since + STALE_IN_PROGRESS)
            worker = speedrift_data(task).get("worker")
            if isinstance(worker, dict) and worker.get("host") == host and isinstance(worker.get("pid"), int):
                claims.append((task_id, identity_in(worker)))
            continue
        if status not in DISPATCHABLE:
            continue
        created = parse_time(task.get("created_at"))
        recurs = task.get("cron_enabled") is True
        if recurs and (last_fire := parse_time(task.get("last_cron_fire"))) is not None:
            created = max(created, last_fire) if created is not None else last_fire  # re-armed: new again
        if created is not None:
            if now - created >= STALE_OPEN:
                stale_open += 1
            else:
                horizon.append(created + STALE_OPEN)
        for key in ("not_before", "ready_after"):
            if key in task and (gate := parse_time(task[key])) is not None:
                horizon.append(gate)
        if recurs:
            horizon.append(now + CRON_RECHECK)
            if (slot := parse_time(task.get("next_cron_fire"))) is not None and slot > now:
                horizon.append(slot)
        if task_id in ready_set:
            if created is not None:  # the age bump of dispatch order moves once a day
                horizon.append(created + timedelta(days=int((now - created) / timedelta(days=1)) + 1))
            continue
        problems = [p for b in after if (p := query.blocker_problem(b, task_id, tasks, peers)) is not None]
        if problems:
            blocked += 1
            if FAILED in problems:
                failed_blockers += 1
    in_progress.sort(key=lambda brief: (-(brief.age_seconds or 0.0), brief.id))
    # tasks tagged needs-human, whatever their status, and the questions no such task names
    needs_human, escalated = escalations(tasks, questions)
    awaiting, waiting = approvals.listed(waits)
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
        dead_claims=tuple(task for task, claimant in claims if not identity_alive(claimant)),
        retries_due=tuple(followup.pending(graph)),
        problems=len(graph.problems),
        mentions=_mentions(text, names, own),
        needs_human=needs_human,
        escalations=escalated,
        peer_dependencies=tuple(peer_after),
        peer_breaks=tuple(peer_breaks),
        awaiting_approval=awaiting,
        approvals=waiting,
    )
    view = _peer_view(graph, peer_after, peers, export)
    return GraphReading(state, now, _horizon(horizon, now), tuple(claims), view, questions)


def _is_peer_break(
    task_id: str,
    blocker: str,
    peers: query.PeerStatuses | None,
    peer_after: list[tuple[str, str]],
    peer_breaks: list[tuple[str, str, str]],
) -> bool:
    """Record a ``REPO:TASK`` blocker; True when it is a break (counted with the missing ones):
    its repo or task does not exist, or it could not be resolved at all."""
    peer_after.append((task_id, blocker))
    if peers is None:
        problem: str | None = "in another repo; not resolved"
    elif blocker not in peers or peers[blocker] is None:
        problem = query.peer_problem(blocker, peers)
    else:
        return False  # it exists there: readiness judges its status
    peer_breaks.append((task_id, blocker, problem or "missing"))
    return True


def _peer_view(
    graph: Graph, peer_after: list[tuple[str, str]], peers: query.PeerStatuses | None, export: Collection[str]
) -> PeerView | None:
    if not peer_after and not export:
        return None
    wanted: dict[str, set[str]] = {}
    for _task, blocker in peer_after:
        if (parts := peer_deps.split(blocker)) is not None:
            wanted.setdefault(parts[0], set()).add(parts[1])
    exports = {tid: (status_of(graph.tasks[tid]) if tid in graph.tasks else None) for tid in export}
    return PeerView(
        wanted={repo: frozenset(ids) for repo, ids in wanted.items()},
        statuses=peers,
        graph=graph if wanted else None,
        exports=exports,
    )


def read_graph(
    repo: Path,
    now: datetime,
    names: frozenset[str] = frozenset(),
    own: str | None = None,
    peers: query.PeerStatuses | None = None,
    export: Collection[str] = (),
    questions: tuple[Record, ...] = (),
) -> GraphReading | None:
    """The repo's graph reading, None when the repo has no graph. Raises OSError if unreadable
    (never for what the file holds: bad lines are counted in ``problems``).
    ``names``: registered repo names (lower case) to look for; ``own``: this repo's, left out;
    ``peers``, ``export`` and ``questions`` as for :func:`analyze`."""
    path = repo_graph_file(repo)
    if path is None:
        return None
    graph = Graph.from_bytes(path.read_bytes())
    return analyze(graph, path.parent.name, now, names, own, peers, export, questions)


def with_peers(reading: GraphReading, peers: query.PeerStatuses, now: datetime) -> GraphReading:
    """The reading judged again with these peer statuses, from the graph it kept (no file read)."""
    view = reading.peers
    if view is None or view.graph is None:
        return reading
    again = analyze(
        view.graph,
        reading.state.graph_dir,
        now,
        export=tuple(view.exports),
        peers=peers,
        questions=reading.questions,
    )
    # mentions depend on the registered names, not on peers: kept as they were read
    state = replace(again.state, mentions=reading.state.mentions)
    return replace(again, state=state)


def with_exports(reading: GraphReading, exports: dict[str, str | None]) -> GraphReading:
    """The reading with more of its tasks' statuses kept for the repos that wait on them."""
    view = reading.peers or PeerView(wanted={}, statuses=None, graph=None, exports={})
    return replace(reading, peers=replace(view, exports={**view.exports, **exports}))


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
        dead_claims=tuple(task for task, claimant in reading.claims if not identity_alive(claimant)),
    )
    return replace(reading, state=state, observed_at=now)
