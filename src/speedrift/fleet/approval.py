"""Human approval checkpoints: a task that must not merge, or must not start, until a person says so.

A task carries ``speedrift.approval`` — ``{"merge": true}`` (an oversight wave's tasks: its work
is gated and reviewed, then waits, merge-pending, for a person before it lands) and/or
``{"start": true}`` (an oversight wave's deploy tasks: not dispatched until approved). A person's
approval is ``speedrift.approved`` — ``{"merge": {"attempt": n, "by": …, "at": …}, "start":
{"by": …, "at": …}}``, written by :func:`approve_mutation` (``speedrift plan approve``, or the
dashboard). A merge approval names the attempt it was given for: a later attempt (new work)
waits for a new approval.

Pure but for :func:`record`: task data in, a reason (or None) out; the graph change as a mutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from speedrift.errors import Refused
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import (
    APPROVED_KEY,
    START_CHECKPOINT,
    Task,
    approval_given,
    approval_required,
    speedrift_data,
    start_wait,
)
from speedrift.graph.store import GraphStore
from speedrift.times import format_time


class Checkpoint(StrEnum):
    MERGE = "merge"
    START = START_CHECKPOINT


def required(task: Task, checkpoint: Checkpoint) -> bool:
    return approval_required(task, checkpoint.value)


def merge_wait(task: Task, attempt: int) -> str | None:
    """Why attempt ``attempt`` of ``task`` may not land yet (None: it may)."""
    if not required(task, Checkpoint.MERGE):
        return None
    given = approval_given(task, Checkpoint.MERGE.value)
    if given is not None and given.get("attempt") == attempt:
        return None
    return (
        f"awaiting approval to merge attempt {attempt} (its gates passed): "
        f"`speedrift plan approve {task['id']}` lands it"
    )


def pending(task: Task, attempt: int | None) -> Checkpoint | None:
    """The checkpoint ``task`` waits at now: start (not yet started) or merge (``attempt`` done)."""
    if attempt is not None and merge_wait(task, attempt) is not None:
        return Checkpoint.MERGE
    if start_wait(task) is not None:
        return Checkpoint.START
    return None


def approve_mutation(
    graph: Graph,
    task_id: str,
    checkpoint: Checkpoint,
    *,
    by: str,
    attempt: int | None,
    now: datetime,
) -> ops.Mutation:
    """Record ``by``'s approval of ``checkpoint`` for ``task_id`` (a merge: for ``attempt``)."""
    task = graph.get(task_id)
    if task is None:
        raise Refused(f"no task {task_id!r}")
    if not required(task, checkpoint):
        raise Refused(f"task {task_id!r} needs no approval to {checkpoint.value}")
    given: dict[str, Any] = {"by": by, "at": format_time(now)}
    if checkpoint is Checkpoint.MERGE:
        if attempt is None:
            raise Refused(f"task {task_id!r} has no attempt waiting to merge")
        given["attempt"] = attempt
    approved = speedrift_data(task).get(APPROVED_KEY)
    merged = {**(approved if isinstance(approved, dict) else {}), checkpoint.value: given}
    return ops.update_speedrift(
        graph,
        task_id,
        {APPROVED_KEY: merged},
        now=now,
        actor=by,
        message=f"approved to {checkpoint.value}" + (f" (attempt {attempt})" if attempt is not None else ""),
    )


MERGE_PENDING = "merge-pending"


def waiting_attempt(task: Task) -> int | None:
    """The attempt that waits merge-pending (gated, not landed), if one does."""
    data = speedrift_data(task)
    attempt = data.get("attempt")
    return attempt if data.get("state") == MERGE_PENDING and isinstance(attempt, int) else None


@dataclass(frozen=True)
class Approved:
    task: str
    checkpoint: Checkpoint
    by: str
    attempt: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "approved": self.checkpoint.value, "by": self.by, "attempt": self.attempt}


def record(store: GraphStore, task_id: str, *, by: str) -> Approved:
    """Approve the checkpoint ``task_id`` waits at now (its merge, when an attempt waits
    merge-pending; else its start), in one graph change. Refused when it waits for none. The
    one place `speedrift plan approve` and the dashboard record an approval."""
    found: list[Approved] = []

    def approve(graph: Graph, now: datetime) -> ops.Mutation:
        task = graph.get(task_id)
        if task is None:
            raise Refused(f"no task {task_id!r}", hint="`speedrift plan status` lists a wave's tasks")
        attempt = waiting_attempt(task)
        checkpoint = pending(task, attempt)
        if checkpoint is None:
            raise Refused(f"task {task_id!r} waits for no approval now")
        number = attempt if checkpoint is Checkpoint.MERGE else None
        found.append(Approved(task_id, checkpoint, by, number))
        return approve_mutation(graph, task_id, checkpoint, by=by, attempt=number, now=now)

    store.mutate(approve, actor=by)
    return found[-1]
