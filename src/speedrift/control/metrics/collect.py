"""The flow metrics' records, read from each repo: run directories, the task graph and the
coordination stores.

Read-only, lock-free and bounded, like the observer: per attempt only ``attempt.json`` and
``evidence.json`` (never ``events.jsonl``, ``stderr.log`` or the prompt), at most
:data:`MAX_RUN_DIRS` run directories per repo (the newest tasks' first, by directory mtime; the
repo is then marked ``truncated``); ``graph.jsonl`` is read once and only the tasks that have runs
are looked at. A missing, torn or hostile record is skipped, never raised; a repo whose graph
cannot be read still has its attempts (its tasks' ready times are then unknown) and says why in
``problems``.

Where each fact comes from:

- attempt state, failure class, landed commit, start (``started``) and end (``updated`` once the
  state is done, failed or waiting): ``attempt.json`` (records.py);
- gates (a gate *blocked* when it is in some verdict's ``blocking``, *ran* when its status was pass,
  warn or fail in some verdict) and usage (``usage.cost_usd``, input + output tokens):
  ``evidence.json``;
- created, ``not_before``/``ready_after`` and the blockers' ``completed_at``: the task graph;
- human escalations: the ``human_escalation`` records of ``.speedrift/coord/*.jsonl`` — opened at
  ``created_at``, answered when resolved or closed (at the record's last line), withdrawn when
  superseded or cancelled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from speedrift import layout
from speedrift.control.metrics.compute import flow_metrics
from speedrift.control.metrics.model import (
    ENDED,
    AttemptRun,
    EscalationRecord,
    EscalationState,
    GateStatus,
    RepoRecords,
    RunState,
    TaskTimes,
    Usage,
)
from speedrift.coord.records import Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.graph.codec import Graph
from speedrift.graph.model import DEP_SATISFIED, Task, after_of, status_of
from speedrift.graph.store import repo_graph_file
from speedrift.times import parse_time

MAX_RUN_DIRS = 20_000  # attempts read per repo
MAX_SCOPES = 200  # coordination stores read per repo (as control/observe/coordination.py)
RAN_STATUSES = frozenset({"pass", "warn", "fail"})
ANSWERED = frozenset({Status.RESOLVED, Status.CLOSED})


def _state(value: Any) -> RunState:
    try:
        return RunState(value) if isinstance(value, str) else RunState.UNKNOWN
    except ValueError:
        return RunState.UNKNOWN


def _gates(evidence: Mapping[str, Any]) -> tuple[tuple[str, GateStatus], ...]:
    verdicts = evidence.get("gates")
    if not isinstance(verdicts, list):
        return ()
    seen: dict[str, GateStatus] = {}
    for verdict in verdicts:
        if not isinstance(verdict, dict):
            continue
        blocking = verdict.get("blocking")
        blocked = {b for b in blocking if isinstance(b, str)} if isinstance(blocking, list) else set()
        results = verdict.get("results")
        for result in results if isinstance(results, list) else ():
            gate = result.get("gate") if isinstance(result, dict) else None
            if not isinstance(gate, str):
                continue
            status = (
                GateStatus.BLOCKED
                if gate in blocked
                else GateStatus.RAN
                if result.get("status") in RAN_STATUSES
                else GateStatus.SKIPPED
            )
            before = seen.get(gate, GateStatus.SKIPPED)
            order = (GateStatus.SKIPPED, GateStatus.RAN, GateStatus.BLOCKED)
            seen[gate] = max(before, status, key=order.index)
    return tuple(sorted(seen.items()))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _usage(evidence: Mapping[str, Any]) -> Usage:
    usage = evidence.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    cost = _number(usage.get("cost_usd"))
    parts = [_number(usage.get(k)) for k in ("input_tokens", "output_tokens")]
    tokens = int(sum(p for p in parts if p is not None)) if any(p is not None for p in parts) else None
    return Usage(cost_usd=cost, tokens=tokens)


def _record(path: str) -> dict[str, Any] | None:
    """layout.read_record on a plain path string (no pathlib on the hot path: thousands of runs)."""
    try:
        with open(path, "rb") as handle:
            value = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def read_attempt(repo: str, task: str, number: int, run_dir: str) -> AttemptRun | None:
    """One attempt from its ``attempt.json`` (and ``evidence.json`` once it ended); None without a record."""
    record = _record(os.path.join(run_dir, layout.ATTEMPT_FILE))
    if record is None:
        return None
    state = _state(record.get("state"))
    ended = parse_time(record.get("updated")) if state in ENDED else None
    evidence: dict[str, Any] = {}
    if state is not RunState.RUNNING:  # a running attempt has no evidence yet
        evidence = _record(os.path.join(run_dir, layout.EVIDENCE_FILE)) or {}
    failure = record.get("failure") or evidence.get("failure")
    landed = record.get("landed_commit")
    return AttemptRun(
        repo=repo,
        task=task,
        number=number,
        state=state,
        started=parse_time(record.get("started")),
        ended=ended,
        failure=failure if isinstance(failure, str) and state is RunState.FAILED else None,
        landed_commit=landed if isinstance(landed, str) and landed else None,
        gates=_gates(evidence),
        usage=_usage(evidence),
    )


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _run_dirs(repo_path: Path) -> tuple[list[tuple[str, list[tuple[int, str]]]], bool]:
    """``(task dir name, [(attempt number, run dir)])`` of the repo, capped at :data:`MAX_RUN_DIRS`
    (then the most recently changed task dirs are kept)."""
    found: list[tuple[str, list[tuple[int, str]]]] = []
    try:
        entries = [
            e for e in os.scandir(layout.runs_dir(repo_path)) if not e.name.startswith("_") and e.is_dir()
        ]
    except OSError:
        return found, False
    for entry in entries:
        try:
            numbered = [
                (int(a.name), a.path) for a in os.scandir(entry.path) if a.name.isdigit() and a.is_dir()
            ]
        except OSError:
            continue
        found.append((entry.name, sorted(numbered)))
    if sum(len(numbered) for _, numbered in found) <= MAX_RUN_DIRS:
        return found, False
    found.sort(key=lambda item: _mtime(os.path.dirname(item[1][-1][1])) if item[1] else 0.0, reverse=True)
    kept: list[tuple[str, list[tuple[int, str]]]] = []
    total = 0
    for name, numbered in found:
        if total + len(numbered) > MAX_RUN_DIRS:
            break
        total += len(numbered)
        kept.append((name, numbered))
    return kept, True


def _read_graph(repo_path: Path) -> tuple[Graph | None, str | None]:
    path = repo_graph_file(repo_path)
    if path is None:
        return None, "no task graph (.workgraph/graph.jsonl): ready times unknown"
    try:
        return Graph.from_bytes(path.read_bytes()), None
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"


def _task_times(repo: str, task: Task, graph: Graph) -> TaskTimes:
    gates = tuple(m for key in ("not_before", "ready_after") if (m := parse_time(task.get(key))) is not None)
    completed: list[datetime | None] = []
    for blocker_id in after_of(task):
        blocker = graph.get(blocker_id)
        done = blocker is not None and status_of(blocker) in DEP_SATISFIED
        completed.append(parse_time(blocker.get("completed_at")) if done and blocker is not None else None)
    return TaskTimes(
        repo=repo,
        task=str(task.get("id")),
        created=parse_time(task.get("created_at")),
        time_gates=gates,
        blockers_completed=tuple(completed),
    )


def read_escalations(repo: str, repo_path: Path) -> list[EscalationRecord]:
    found: list[EscalationRecord] = []
    for scope in CoordStore.scopes(repo_path)[:MAX_SCOPES]:
        try:
            snapshot = CoordStore.for_scope(repo_path, scope).read()
        except (OSError, ValueError):  # a file named like no scope, or unreadable
            continue
        for record in snapshot.records.values():
            if record.kind is not Kind.HUMAN_ESCALATION:
                continue
            state = (
                EscalationState.OPEN
                if record.open
                else EscalationState.ANSWERED
                if record.status in ANSWERED
                else EscalationState.WITHDRAWN
            )
            named = record.data.get("task")
            found.append(
                EscalationRecord(
                    repo=repo,
                    id=record.id,
                    opened=record.created_at,
                    state=state,
                    answered=record.at if state is EscalationState.ANSWERED else None,
                    task=named if isinstance(named, str) else None,
                )
            )
    return found


def read_repo(name: str, repo_path: Path) -> RepoRecords:
    """Every record one repo contributes to the metrics."""
    if not repo_path.is_dir():
        return RepoRecords(name=name, problems=(f"{repo_path} is not a directory",))
    graph, problem = _read_graph(repo_path)
    problems = [problem] if problem else []
    dirs, truncated = _run_dirs(repo_path)
    safe_ids: dict[str, str] | None = None
    attempts: list[AttemptRun] = []
    tasks: list[TaskTimes] = []
    for dir_name, numbered in dirs:
        task_id: str | None = dir_name if graph is not None and dir_name in graph else None
        if task_id is None and graph is not None:
            if safe_ids is None:  # only for ids that are not path-safe as they are
                safe_ids = {layout.safe_name(str(t.get("id"))): str(t.get("id")) for t in graph.iter_tasks()}
            task_id = safe_ids.get(dir_name)
        runs = [r for n, d in numbered if (r := read_attempt(name, task_id or dir_name, n, d)) is not None]
        attempts += runs
        task = graph.get(task_id) if graph is not None and task_id is not None else None
        if task is not None and graph is not None and runs:
            tasks.append(_task_times(name, task, graph))
    return RepoRecords(
        name=name,
        attempts=tuple(attempts),
        tasks=tuple(tasks),
        escalations=tuple(read_escalations(name, repo_path)),
        problems=tuple(problems),
        truncated=truncated,
    )


def collect(repos: Iterable[tuple[str, Path]]) -> list[RepoRecords]:
    return [read_repo(name, path) for name, path in repos]


def metrics_of(repos: Sequence[tuple[str, Path]], now: datetime, since: timedelta) -> dict[str, Any]:
    """The flow metrics of ``repos`` (name, path) over ``[now - since, now]``."""
    return flow_metrics(collect(repos), now, since)
