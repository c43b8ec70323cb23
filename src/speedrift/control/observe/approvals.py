"""Tasks waiting at a human approval checkpoint, as the observer reads them (fleet/approval.py).

An oversight wave's task carries ``speedrift.approval``. It waits for a person at most twice: its
gated attempt waits merge-pending until the merge of that attempt is approved, and a deploy task,
once ready, is not dispatched until its start is approved. ``fleet.approval.pending`` is the one
judge of which checkpoint a task waits at; this module only adds what the dashboard shows with it:
the title, the attempt, the wave (``speedrift.plan.wave``) and since when it waits — the newest
"Merge pending: …" log line for a merge, the moment its last blocker finished (else its creation)
for a start. A start is listed only for a task that is ready (open, every blocker done): one
whose blockers still run waits on them, not on a person. Pure: tasks in, :class:`ApprovalWait`
out; an approval recorded in the graph (`speedrift plan approve`, the dashboard) removes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from speedrift.fleet import approval
from speedrift.graph.model import (
    APPROVAL_KEY,
    DISPATCHABLE,
    IN_PROGRESS,
    Task,
    after_of,
    plan_data,
    speedrift_data,
    status_of,
)
from speedrift.register.record import ApprovalWait
from speedrift.times import parse_time

MAX_APPROVALS = 50  # recorded per repo (the attention queue's cap); the count covers them all
MERGE_LOGGED = "Merge pending: "  # fleet/merging.py's log line when an attempt waits to land


def approval_wait(task: Task, tasks: Mapping[str, Task], ready: bool) -> ApprovalWait | None:
    """The checkpoint ``task`` waits at for a person, None when it waits for none (or, before its
    start, still waits on its blockers: ``ready`` says it does not)."""
    if APPROVAL_KEY not in speedrift_data(task):
        return None  # the common case, answered with one lookup
    status = status_of(task)
    attempt = approval.waiting_attempt(task) if status == IN_PROGRESS else None
    checkpoint = approval.pending(task, attempt)
    if checkpoint is None:
        return None
    if checkpoint is approval.Checkpoint.MERGE:
        since = _merge_pending_since(task)
    elif status in DISPATCHABLE and ready:
        since = _ready_since(task, tasks)
        attempt = None
    else:
        return None
    title, wave = task.get("title"), plan_data(task).get("wave")
    return ApprovalWait(
        task=str(task.get("id", "")),
        title=title if isinstance(title, str) else "",
        checkpoint="merge" if checkpoint is approval.Checkpoint.MERGE else "start",
        attempt=attempt,
        wave=wave if isinstance(wave, int | str) and not isinstance(wave, bool) else None,
        since=since,
    )


def listed(found: list[ApprovalWait]) -> tuple[int, tuple[ApprovalWait, ...]]:
    """How many tasks wait at a checkpoint, and the first :data:`MAX_APPROVALS` of them (longest
    waiting first; unknown times last, then by task id)."""
    found.sort(key=lambda w: (w.since is None, w.since.timestamp() if w.since else 0.0, w.task))
    return len(found), tuple(found[:MAX_APPROVALS])


def _merge_pending_since(task: Task) -> datetime | None:
    log = task.get("log")
    for entry in reversed(log if isinstance(log, list) else []):
        message = entry.get("message") if isinstance(entry, dict) else None
        if isinstance(message, str) and message.startswith(MERGE_LOGGED):
            return parse_time(entry.get("timestamp"))
    return None


def _ready_since(task: Task, tasks: Mapping[str, Task]) -> datetime | None:
    finished = [
        moment
        for blocker in after_of(task)
        if (found := tasks.get(blocker)) is not None and (moment := parse_time(found.get("completed_at")))
    ]
    return max(finished) if finished else parse_time(task.get("created_at"))
