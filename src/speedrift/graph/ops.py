"""Pure graph mutations: each takes the graph and arguments and returns the new task versions.

Nothing here touches a file. A :class:`Mutation` carries the replacement task dicts (copies: the
loaded graph is never modified here) and the operation-log records to append; the store applies
both under the graph lock. Transitions follow wg (``src/commands/*.rs``).

This module is the only code that changes a task: callers change fields through
:func:`set_fields` (alone, or folded into the mutation a verb just built, e.g. a claim and its
attempt number) and give a verb its log line with ``message=``; they never edit a task dict.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from speedrift.errors import NotFound, Refused, UsageError
from speedrift.graph import ids
from speedrift.graph.codec import Graph
from speedrift.graph.cycles import path_between
from speedrift.graph.model import (
    ABANDONED,
    AFTER_KEYS,
    BEFORE_KEYS,
    BLOCKED,
    DONE,
    FAILED,
    IN_PROGRESS,
    INCOMPLETE,
    OPEN,
    SPEEDRIFT_KEY,
    TERMINAL,
    Task,
    after_of,
    before_of,
    edge_key,
    speedrift_data,
    status_of,
    str_list,
)
from speedrift.graph.query import blocker_problem
from speedrift.graph.wgcompat import check_task
from speedrift.times import format_time, iso_utc


@dataclass
class OpRecord:
    op: str
    task_id: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Mutation:
    tasks: list[Task] = field(default_factory=list)
    records: list[OpRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def put(self, task: Task, op: str, detail: dict[str, Any] | None = None) -> None:
        self.tasks.append(task)
        self.records.append(OpRecord(op, task["id"], detail or {}))

    def get(self, task_id: str) -> Task | None:
        """The version of the task this mutation writes (the newest, if more than one), or None."""
        return next((t for t in reversed(self.tasks) if t.get("id") == task_id), None)


def _existing(graph: Graph, task_id: str) -> Task:
    task = graph.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r} in the graph", hint="`speedrift list --all` shows every id")
    return copy.deepcopy(task)


def _log_entry(task: Task, message: str, actor: str | None, now: datetime) -> None:
    entry: dict[str, Any] = {"timestamp": format_time(now)}
    if actor:
        entry["actor"] = actor
    entry["message"] = message
    log = task.get("log")
    task["log"] = [*log, entry] if isinstance(log, list) else [entry]


def _set_edges(task: Task, keys: tuple[str, str], values: list[str]) -> None:
    key = edge_key(task, keys)
    if values:
        task[key] = values
    else:
        task.pop(key, None)


def set_speedrift(task: Task, **values: Any) -> None:
    data = dict(speedrift_data(task))
    for key, value in values.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    if data:
        task[SPEEDRIFT_KEY] = data
    else:
        task.pop(SPEEDRIFT_KEY, None)


def _is_loop(graph: Graph, members: list[str]) -> bool:
    return any(isinstance(graph.tasks.get(m), dict) and graph.tasks[m].get("cycle_config") for m in members)


class _AfterEdges(Mapping[str, list[str]]):
    """Each task's ``after`` list, read on demand (``extra`` overrides: edges not yet written)."""

    def __init__(self, graph: Graph, extra: dict[str, list[str]]) -> None:
        self._graph = graph
        self._extra = extra

    def __getitem__(self, task_id: str) -> list[str]:
        if task_id in self._extra:
            return self._extra[task_id]
        task = self._graph.tasks.get(task_id)
        if task is None:
            raise KeyError(task_id)
        return after_of(task)

    def __iter__(self) -> Iterator[str]:
        return iter({**self._graph.tasks, **self._extra})

    def __len__(self) -> int:
        return len(set(self._graph.tasks) | set(self._extra))


def _check_new_edge(
    graph: Graph, task_id: str, blocker_id: str, strict: bool, extra: dict[str, list[str]]
) -> list[str]:
    """Validate ``task_id`` running after ``blocker_id``; returns warnings, raises when refused."""
    ids.validate_dep_id(blocker_id)
    if blocker_id == task_id and not _is_loop(graph, [task_id]):
        raise Refused(
            f"task {task_id!r} cannot run after itself", hint="declare a loop with --max-iterations"
        )
    warnings: list[str] = []
    if blocker_id not in graph.tasks and blocker_id not in extra and ":" not in blocker_id:
        if strict:
            raise Refused(f"dependency {blocker_id!r} does not exist (--strict)")
        warnings.append(
            f"dependency {blocker_id!r} does not exist yet; {task_id!r} stays blocked until it does"
        )
    # the new edge closes a loop iff the blocker already (transitively) runs after the task: the
    # search reads only the tasks the blocker reaches, so adding many tasks stays linear
    chain = path_between(_AfterEdges(graph, extra), blocker_id, task_id)
    if chain is not None and not _is_loop(graph, [*chain, task_id]):
        shown = " -> ".join([task_id, *chain])
        raise Refused(
            f"{task_id!r} after {blocker_id!r} would create a cycle: {shown} (each runs after the next)",
            hint="declare a deliberate loop with `--max-iterations N` on one of its tasks",
        )
    return warnings


@dataclass
class NewTask:
    title: str
    task_id: str | None = None
    description: str | None = None
    after: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    priority: int | None = None
    assign: str | None = None
    model: str | None = None
    exec_command: str | None = None
    paused: bool = False
    not_before: datetime | None = None
    delay: timedelta | None = None
    max_iterations: int | None = None
    touch: list[str] = field(default_factory=list)
    deliverables: list[str] = field(default_factory=list)


def add_task(
    graph: Graph, spec: NewTask, *, now: datetime, actor: str | None, strict: bool = False
) -> Mutation:
    title = ids.clean_text(spec.title, "title", limit=ids.MAX_TITLE_LENGTH, multiline=False).strip()
    if not title:
        raise UsageError("title is empty")
    task_id = (
        ids.validate_id(spec.task_id) if spec.task_id is not None else ids.unique_slug(title, graph.tasks)
    )
    if task_id in graph.tasks:
        raise Refused(f"task {task_id!r} already exists", hint="choose another --id, or `speedrift edit` it")
    task: Task = {"kind": "task", "id": task_id, "title": title}
    if spec.description:
        task["description"] = ids.clean_text(
            spec.description, "description", limit=ids.MAX_DESCRIPTION_LENGTH, multiline=True
        )
    task["status"] = OPEN
    if spec.priority is not None:
        task["priority"] = spec.priority
    if spec.paused:
        task["paused"] = True
    if spec.assign:
        task["assigned"] = ids.clean_text(spec.assign, "assignee", limit=200, multiline=False)
    mutation = Mutation()
    after = list(dict.fromkeys(spec.after))
    loop_config = {"max_iterations": spec.max_iterations} if spec.max_iterations else None
    probe = Graph()
    probe.tasks = dict(graph.tasks)
    probe.tasks[task_id] = {**task, "after": after, **({"cycle_config": loop_config} if loop_config else {})}
    extra = {task_id: after}
    for blocker in after:
        mutation.warnings += _check_new_edge(probe, task_id, blocker, strict, extra)
    if after:
        task["after"] = after
    before = list(dict.fromkeys(spec.before))
    for dependent_id in before:
        ids.validate_dep_id(dependent_id)
        if dependent_id not in graph.tasks:
            if strict:
                raise Refused(f"task {dependent_id!r} named in --before does not exist (--strict)")
            mutation.warnings.append(
                f"--before {dependent_id!r}: no such task yet; recorded on {task_id!r} only"
            )
            continue
        mutation.warnings += _check_new_edge(probe, dependent_id, task_id, strict, extra)
        dependent = copy.deepcopy(graph.tasks[dependent_id])
        _set_edges(dependent, AFTER_KEYS, [*after_of(dependent), task_id])
        extra[dependent_id] = after_of(dependent)
        mutation.put(dependent, "edit", {"add_dep": task_id})
    if before:
        task["before"] = before
    if spec.tags:
        task["tags"] = list(dict.fromkeys(spec.tags))
    if spec.deliverables:
        task["deliverables"] = spec.deliverables
    task["created_at"] = format_time(now)
    if spec.not_before is not None:
        task["not_before"] = format_time(spec.not_before)
    elif spec.delay is not None:
        task["not_before"] = format_time(now + spec.delay)
    if spec.model:
        task["model"] = ids.clean_text(spec.model, "model", limit=200, multiline=False)
    if spec.exec_command:
        task["exec"] = ids.clean_text(spec.exec_command, "exec", limit=100_000, multiline=True)
    if loop_config:
        task["cycle_config"] = loop_config
    if spec.touch:
        set_speedrift(task, touch=spec.touch)
    mutation.tasks.insert(0, task)
    mutation.records.insert(0, OpRecord("add_task", task_id, {"title": title}))
    return mutation


@dataclass
class Edit:
    title: str | None = None
    description: str | None = None
    priority: int | None = None
    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    assign: str | None = None
    model: str | None = None
    exec_command: str | None = None
    not_before: datetime | None = None
    max_iterations: int | None = None
    touch: list[str] | None = None
    deliverables: list[str] | None = None


def edit_task(graph: Graph, task_id: str, change: Edit, *, now: datetime, actor: str | None) -> Mutation:
    task = _existing(graph, task_id)
    fields: dict[str, Any] = {}
    if change.title is not None:
        title = ids.clean_text(change.title, "title", limit=ids.MAX_TITLE_LENGTH, multiline=False).strip()
        if not title:
            raise UsageError("title is empty")
        fields["title"] = title
    if change.description is not None:
        fields["description"] = ids.clean_text(
            change.description, "description", limit=ids.MAX_DESCRIPTION_LENGTH, multiline=True
        )
    if change.priority is not None:
        fields["priority"] = change.priority
    if change.assign is not None:
        fields["assigned"] = ids.clean_text(change.assign, "assignee", limit=200, multiline=False)
    if change.model is not None:
        fields["model"] = ids.clean_text(change.model, "model", limit=200, multiline=False)
    if change.exec_command is not None:
        fields["exec"] = ids.clean_text(change.exec_command, "exec", limit=100_000, multiline=True)
    if change.not_before is not None:
        fields["not_before"] = format_time(change.not_before)
    if change.max_iterations is not None:
        fields["cycle_config"] = {**(task.get("cycle_config") or {}), "max_iterations": change.max_iterations}
    if change.deliverables is not None:
        fields["deliverables"] = change.deliverables
    task.update(fields)
    if change.add_tags or change.remove_tags:
        tags = [t for t in str_list(task, "tags") if t not in change.remove_tags]
        tags += [t for t in change.add_tags if t not in tags]
        if tags:
            task["tags"] = tags
        else:
            task.pop("tags", None)
        fields["tags"] = tags
    if change.touch is not None:
        set_speedrift(task, touch=change.touch or None)
        fields["touch"] = change.touch
    if not fields:
        raise UsageError("nothing to change", hint="pass at least one field, e.g. --title or --priority")
    mutation = Mutation()
    mutation.put(task, "edit", {"fields": sorted(fields)})
    return mutation


def add_dep(
    graph: Graph, task_id: str, blocker_id: str, *, now: datetime, actor: str | None, strict: bool = False
) -> Mutation:
    task = _existing(graph, task_id)
    after = after_of(task)
    if blocker_id in after:
        raise Refused(f"{task_id!r} already runs after {blocker_id!r}")
    mutation = Mutation()
    mutation.warnings += _check_new_edge(graph, task_id, blocker_id, strict, {})
    _set_edges(task, AFTER_KEYS, [*after, blocker_id])
    mutation.put(task, "edit", {"add_dep": blocker_id})
    return mutation


def rm_dep(graph: Graph, task_id: str, blocker_id: str, *, now: datetime, actor: str | None) -> Mutation:
    task = _existing(graph, task_id)
    after = after_of(task)
    if blocker_id not in after:
        raise Refused(f"{task_id!r} does not run after {blocker_id!r}")
    _set_edges(task, AFTER_KEYS, [b for b in after if b != blocker_id])
    mutation = Mutation()
    mutation.put(task, "edit", {"rm_dep": blocker_id})
    blocker = graph.get(blocker_id)
    if blocker is not None and task_id in before_of(blocker):
        blocker = copy.deepcopy(blocker)
        _set_edges(blocker, BEFORE_KEYS, [d for d in before_of(blocker) if d != task_id])
        mutation.put(blocker, "edit", {"rm_before": task_id})
    return mutation


_CLAIMABLE = frozenset({OPEN, BLOCKED, INCOMPLETE})


def claim(graph: Graph, task_id: str, *, now: datetime, actor: str) -> Mutation:
    task = _existing(graph, task_id)
    status = status_of(task)
    if status not in _CLAIMABLE:
        holder = task.get("assigned")
        held = f", held by {holder}" if holder and status == IN_PROGRESS else ""
        raise Refused(
            f"task {task_id!r} is {status}{held}; only open, blocked or incomplete tasks can be claimed"
        )
    task["status"] = IN_PROGRESS
    task["assigned"] = actor
    task["started_at"] = format_time(now)
    _log_entry(task, f"Task claimed by @{actor}", actor, now)
    mutation = Mutation()
    mutation.put(task, "claim", {"actor": actor})
    return mutation


def unclaim(
    graph: Graph, task_id: str, *, now: datetime, actor: str | None, message: str | None = None
) -> Mutation:
    """Back to open. ``message``: the log line instead of wg's own (why it was released)."""
    task = _existing(graph, task_id)
    if status_of(task) != IN_PROGRESS:
        raise Refused(f"task {task_id!r} is {status_of(task)}, not in-progress")
    previous = task.pop("assigned", None)
    task["status"] = OPEN
    if message is None:
        message = f"Task unclaimed (was @{previous})" if previous else "Task unclaimed"
    _log_entry(task, message, actor, now)
    mutation = Mutation()
    mutation.put(task, "unclaim", {"previous": previous})
    return mutation


def done(
    graph: Graph,
    task_id: str,
    *,
    now: datetime,
    actor: str | None,
    force: bool = False,
    message: str | None = None,
) -> Mutation:
    """``message``: the log line instead of wg's own (what landed, where the evidence is)."""
    task = _existing(graph, task_id)
    status = status_of(task)
    if status == DONE:
        return Mutation(warnings=[f"task {task_id!r} is already done"])  # a no-op, as in wg
    if status not in (OPEN, IN_PROGRESS):
        raise Refused(f"task {task_id!r} is {status}; only open or in-progress tasks can be marked done")
    unresolved = [b for b in after_of(task) if blocker_problem(b, task_id, graph.tasks) is not None]
    if unresolved and not force:
        raise Refused(
            f"task {task_id!r} is blocked by {len(unresolved)} unresolved task(s): {', '.join(unresolved)}",
            hint="finish those first, or pass --force",
        )
    task["status"] = DONE
    task["completed_at"] = format_time(now)
    _log_entry(task, "Task marked as done" if message is None else message, actor, now)
    mutation = Mutation()
    slot = _rearm(task, now=now, actor=actor, mutation=mutation)
    mutation.put(task, "done", {"recurs": format_time(slot)} if slot is not None else None)
    return mutation


def _rearm(task: Task, *, now: datetime, actor: str | None, mutation: Mutation) -> datetime | None:
    """A recurring task that just came to done is open again for its next slot; returns that slot.

    As wg re-arms it (graphwork/workgraph ``src/cron.rs`` ``reset_cron_task``, run on done cron
    tasks by ``src/commands/service/coordinator.rs``): only a done task with ``cron_enabled`` and
    a ``cron_schedule`` wg can parse; ``last_cron_fire`` = now, ``next_cron_fire`` = the next slot
    after now, status ``open``, ``assigned`` and ``completed_at`` removed. Readiness waits for
    ``next_cron_fire`` (wg sets no ``not_before``). Two differences, both speedrift's own: it happens
    in the done itself (so every path re-arms alike, with no window in which the task is done), with
    a log line; and the slot has no jitter (wg adds up to ±10% of the period, at most 15 minutes).
    A failed or abandoned recurring task is not re-armed (wg: only a done one).
    """
    if task.get("cron_enabled") is not True or "cron_schedule" not in task:
        return None
    from speedrift.graph import cron  # lazy, same layer: cron tasks are rare, cronsim costs ~9 ms

    slot = cron.next_task_slot(task.get("cron_schedule"), now)
    if slot is None:  # wg leaves it done too
        mutation.warnings.append(
            f"task {task['id']!r} has cron schedule {task.get('cron_schedule')!r}, which is not valid: it"
            f" stays done; fix it with `speedrift edit {task['id']} --cron EXPR`"
        )
        return None
    task["last_cron_fire"] = format_time(now)
    task["next_cron_fire"] = format_time(slot)
    task["status"] = OPEN
    task.pop("assigned", None)
    task.pop("completed_at", None)
    _log_entry(task, f"Recurring task re-armed for {format_time(slot)}", actor, now)
    mutation.warnings.append(f"task {task['id']!r} recurs: re-armed for {iso_utc(slot)}")
    return slot


def fail(graph: Graph, task_id: str, *, reason: str | None, now: datetime, actor: str | None) -> Mutation:
    task = _existing(graph, task_id)
    status = status_of(task)
    if status in TERMINAL:
        raise Refused(f"task {task_id!r} is already {status}")
    task["status"] = FAILED
    if reason:
        task["failure_reason"] = ids.clean_text(
            reason, "reason", limit=ids.MAX_LOG_MESSAGE_LENGTH, multiline=True
        )
    _log_entry(task, f"Task failed: {reason}" if reason else "Task failed", actor, now)
    mutation = Mutation()
    mutation.put(task, "fail", {"reason": reason} if reason else {})
    return mutation


def abandon(graph: Graph, task_id: str, *, reason: str | None, now: datetime, actor: str | None) -> Mutation:
    task = _existing(graph, task_id)
    status = status_of(task)
    if status in (DONE, ABANDONED):
        raise Refused(f"task {task_id!r} is already {status}")
    task["status"] = ABANDONED
    message = f"Task abandoned: {reason}" if reason else "Task abandoned"
    _log_entry(task, message, actor, now)
    mutation = Mutation()
    mutation.put(task, "abandon", {"reason": reason} if reason else {})
    return mutation


def retry(graph: Graph, task_id: str, *, context: str | None, now: datetime, actor: str | None) -> Mutation:
    task = _existing(graph, task_id)
    status = status_of(task)
    if status not in (FAILED, INCOMPLETE):
        raise Refused(f"task {task_id!r} is {status}; only failed or incomplete tasks can be retried")
    retries = task.get("retry_count", 0)
    task["retry_count"] = (retries if isinstance(retries, int) else 0) + 1
    reason = task.pop("failure_reason", None)
    task.pop("failure_class", None)
    task.pop("assigned", None)
    task["status"] = OPEN
    history = list(speedrift_data(task).get("failures", []))
    history.append({"at": format_time(now), "reason": reason, "status": status})
    retry_context = (
        ids.clean_text(context, "context", limit=ids.MAX_LOG_MESSAGE_LENGTH, multiline=True)
        if context
        else None
    )
    set_speedrift(task, failures=history[-20:], retry_context=retry_context)
    _log_entry(task, "Task reset for retry" + (f": {context}" if context else ""), actor, now)
    mutation = Mutation()
    mutation.put(task, "retry", {"context": context} if context else {})
    return mutation


def log_message(graph: Graph, task_id: str, message: str, *, now: datetime, actor: str | None) -> Mutation:
    task = _existing(graph, task_id)
    text = ids.clean_text(message, "message", limit=ids.MAX_LOG_MESSAGE_LENGTH, multiline=True)
    if not text.strip():
        raise UsageError("log message is empty")
    _log_entry(task, text, actor, now)
    mutation = Mutation()
    mutation.put(task, "log", {"message": text[:200]})
    return mutation


def set_paused(graph: Graph, task_id: str, paused: bool, *, now: datetime, actor: str | None) -> Mutation:
    task = _existing(graph, task_id)
    if bool(task.get("paused")) == paused:
        raise Refused(f"task {task_id!r} is already {'paused' if paused else 'not paused'}")
    if paused:
        task["paused"] = True
    else:
        task.pop("paused", None)
    mutation = Mutation()
    mutation.put(task, "pause" if paused else "resume")
    return mutation


def update_speedrift(
    graph: Graph,
    task_id: str,
    fields: dict[str, Any],
    *,
    now: datetime,
    actor: str | None,
    message: str | None = None,
    status: str | None = None,
    wg_fields: dict[str, Any] | None = None,
) -> Mutation:
    """Set keys of the task's ``speedrift`` object (None removes one), optionally with a log line,
    a status change and wg fields (the wgcompat guard checks those before anything is written)."""
    task = _existing(graph, task_id)
    set_speedrift(task, **fields)
    if status is not None:
        task["status"] = status
    for key, value in (wg_fields or {}).items():
        if value is None:
            task.pop(key, None)
        else:
            task[key] = value
    if message:
        _log_entry(
            task,
            ids.clean_text(message, "message", limit=ids.MAX_LOG_MESSAGE_LENGTH, multiline=True),
            actor,
            now,
        )
    mutation = Mutation()
    mutation.put(task, "edit", {"speedrift": sorted(fields), **({"status": status} if status else {})})
    return mutation


# Not fields to set: ``id`` and ``kind`` never change, a status changes only through its verb
# (which checks the transition), the log only grows (``message=``), and speedrift's own object is
# merged key by key (``speedrift=``), never replaced whole.
_NOT_SETTABLE = frozenset({"id", "kind", "status", "log", SPEEDRIFT_KEY})


def set_fields(
    graph: Graph,
    task_id: str,
    fields: Mapping[str, Any] | None = None,
    *,
    speedrift: Mapping[str, Any] | None = None,
    message: str | None = None,
    now: datetime,
    actor: str | None,
    within: Mutation | None = None,
) -> Mutation:
    """Set a task's fields (None removes one) and keys of its ``speedrift`` object (None removes
    one), with an optional log line: how code outside this module changes a task's data.

    Applied in this order: the ``speedrift`` keys, then ``fields`` in the order given (a key the
    task lacks is added at the end of its line), then the log line, written as given. A wg field
    only ever receives a value wg can parse: the wgcompat guard judges what changed here and
    raises :class:`~speedrift.graph.wgcompat.WgCompatError` (a bug in the caller) before anything
    is written.

    Alone, the change is an ``edit`` of its own: one op-log record naming what it set. With
    ``within=`` it completes a mutation a verb just built for this task (a claim and its attempt
    number, a failure and its class): the change is folded into the verb's copy in place and the
    verb's record covers it, so the op log gets no second entry. Returns the mutation.
    """
    wg = dict(fields or {})
    reserved = sorted(_NOT_SETTABLE & wg.keys())
    if reserved:
        raise ValueError(f"set_fields cannot set {', '.join(reserved)}")
    if not wg and not speedrift and message is None:
        raise ValueError("set_fields needs a field, a speedrift key or a message")
    if within is None:
        current = _existing(graph, task_id)
    else:
        held = within.get(task_id)
        if held is None:
            raise ValueError(f"set_fields: the mutation it completes does not change {task_id!r}")
        current = held
    task = dict(current)  # every change below replaces a value; none edits one in place
    if speedrift:
        set_speedrift(task, **speedrift)
    for key, value in wg.items():
        if value is None:
            task.pop(key, None)
        else:
            task[key] = value
    if message is not None:
        _log_entry(task, message, actor, now)
    check_task(task, current)  # only what changed here is judged
    if within is not None:
        current.clear()  # the verb's own copy: whoever holds it sees the change
        current.update(task)
        return within
    detail: dict[str, Any] = {}
    if wg:
        detail["fields"] = sorted(wg)
    if speedrift:
        detail["speedrift"] = sorted(speedrift)
    mutation = Mutation()
    mutation.put(task, "edit", detail)
    return mutation
