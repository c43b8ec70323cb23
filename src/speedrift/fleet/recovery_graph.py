"""Recovery decisions applied to the graph: failure records, retries, splits, re-planning.

The ``*_mutation`` builders are pure (graph in, :class:`~speedrift.graph.ops.Mutation` out) and
change a task only through ``graph.ops`` (its verbs and ``set_fields``), so every line stays
loadable by wg; :func:`apply` is the thin edge that writes a split or replan decision through the
store.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from speedrift.errors import Refused
from speedrift.fleet.choosing import MAX_SKIP, SKIP_KEY
from speedrift.fleet.classify import Classification
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.recovery import Decision, policy_for
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import (
    AFTER_KEYS,
    FAILED,
    IN_PROGRESS,
    OPEN,
    Task,
    after_of,
    edge_key,
    speedrift_data,
    speedrift_failure_class,
    status_of,
    str_list,
)
from speedrift.graph.store import GraphStore
from speedrift.textclip import clip
from speedrift.times import format_time

NEEDS_HUMAN = "needs-human"
NEEDS_REPLAN = "needs-replan"
MAX_HISTORY = 20


def annotate_failure(
    graph: Graph,
    task_id: str,
    found: Classification,
    decision: Decision,
    *,
    reason: str,
    now: datetime,
    actor: str | None,
    within: ops.Mutation,
) -> ops.Mutation:
    """Record class and decision on a task that ``within`` (ops.fail's mutation) just marked
    failed: part of that same change (``ops.set_fields``), so the op log records one failure."""
    task = within.get(task_id) or {}
    history = [h for h in speedrift_data(task).get("failures", []) if isinstance(h, dict)]
    entry = {
        "at": format_time(now),
        "attempt": decision.attempt,
        "class": found.cls,
        "rule": found.rule,
        "recovery": decision.recovery,
        "reason": clip(reason, 500),
    }
    recorded = {
        "failure_class": found.cls,
        "classification": found.as_dict(),
        "recovery": decision.as_dict(),
        "failures": [*history, entry][-MAX_HISTORY:],
    }
    fields: dict[str, Any] = {}
    message = None
    if decision.recovery == "escalate_human" and decision.question:
        fields = _tag_added(task, NEEDS_HUMAN)
        message = _log_line(f"Needs a human: {decision.question}")
    if decision.fallback_from:
        recorded[SKIP_KEY] = _skip_added(task, decision, reason, now)
        message = _log_line(
            f"Runtime fallback: attempt {decision.attempt} failed on {decision.fallback_from} ({found.cls}); "
            f"{decision.note or 'the next attempt moves down the fallback order'}"
        )
    return ops.set_fields(
        graph, task_id, fields, speedrift=recorded, message=message, now=now, actor=actor, within=within
    )


def _skip_added(task: Task, decision: Decision, reason: str, now: datetime) -> list[dict[str, Any]]:
    """``speedrift.fallback_skip`` with this failure added: the runtime[:model] the next attempt
    moves past (fleet/choosing.py reads the chain of the latest attempts), bounded."""
    kept = [e for e in speedrift_data(task).get(SKIP_KEY) or [] if isinstance(e, dict)]
    entry = {
        "attempt": decision.attempt,
        "entry": decision.fallback_from,
        "class": decision.failure_class,
        "reason": clip(reason, 300),
        "at": format_time(now),
    }
    return [*kept, entry][-MAX_SKIP:]


def split_mutation(
    graph: Graph, task_id: str, decision: Decision, *, now: datetime, actor: str | None
) -> ops.Mutation:
    """``<task>-part-<n>`` subtasks, one per file group, and the task reopened after them.

    Idempotent: a part whose files match an existing ``-part-`` task reuses it, and a task that is
    no longer failed is left alone."""
    task = graph.get(task_id)
    if task is None or status_of(task) != FAILED or not decision.parts:
        return ops.Mutation()
    probe = Graph()
    probe.tasks = dict(graph.tasks)
    mutation = ops.Mutation()
    part_ids: list[str] = []
    for label, files in decision.parts:
        existing = _existing_part(probe, task_id, files)
        if existing:
            part_ids.append(existing)
            continue
        part_id = _free_part_id(probe, task_id)
        spec = ops.NewTask(
            title=f"{task.get('title', task_id)} — part {part_id.rsplit('-', 1)[-1]}: {label}"[:200],
            task_id=part_id,
            description=_part_description(task, decision, files),
            after=after_of(task),
            tags=[*str_list(task, "tags"), "split"],
            model=task.get("model") if isinstance(task.get("model"), str) else None,
            touch=list(files),
        )
        added = ops.add_task(probe, spec, now=now, actor=actor)
        probe.tasks[part_id] = added.tasks[0]
        mutation.tasks += added.tasks
        mutation.records += added.records
        part_ids.append(part_id)
    note = f"Split into {', '.join(part_ids)} after {decision.failure_class}; it runs again after them"
    reopened = retry_mutation(probe, task_id, decision, when=None, now=now, actor=actor, context=note)
    original = reopened.tasks[0]
    after = {edge_key(original, AFTER_KEYS): list(dict.fromkeys([*after_of(original), *part_ids]))}
    ops.set_fields(probe, task_id, after, now=now, actor=actor, within=reopened)
    mutation.tasks.append(original)
    mutation.records += reopened.records
    return mutation


def replan_mutation(
    graph: Graph, task_id: str, decision: Decision, *, now: datetime, actor: str | None
) -> ops.Mutation:
    """Back to open, paused (so nothing dispatches it unchanged), tagged and noted for re-planning."""
    task = graph.get(task_id)
    if task is None or status_of(task) != FAILED:
        return ops.Mutation()
    mutation = retry_mutation(graph, task_id, decision, when=None, now=now, actor=actor)
    reopened = mutation.tasks[0]
    message = _log_line(
        f"Needs re-planning ({decision.failure_class}): {decision.note or ''}. Change the task (scope, "
        f"split, description), then `speedrift edit {task_id} --remove-tag {NEEDS_REPLAN}` and "
        f"`speedrift resume {task_id}`"
    )
    held = {"paused": True, **_tag_added(reopened, NEEDS_REPLAN)}
    return ops.set_fields(graph, task_id, held, message=message, now=now, actor=actor, within=mutation)


def retry_mutation(
    graph: Graph,
    task_id: str,
    decision: Decision | None,
    *,
    when: datetime | None,
    now: datetime,
    actor: str | None,
    context: str | None = None,
) -> ops.Mutation:
    """Reopen a failed task: wg's retry plus the decision's guidance, model tier and start time."""
    task = graph.get(task_id)
    guidance = "\n\n".join(t for t in (context, decision.diagnosis if decision else None) if t) or None
    mutation = ops.retry(graph, task_id, context=guidance, now=now, actor=actor)
    reopened = mutation.tasks[0]
    cleared = {**_folded_history(reopened), "failure_class": None, "classification": None, "recovery": None}
    untagged = _tag_removed(reopened, NEEDS_HUMAN)
    ops.set_fields(graph, task_id, untagged, speedrift=cleared, now=now, actor=actor, within=mutation)
    fields: dict[str, Any] = {}
    message = None
    if decision is not None and decision.model and task is not None:
        previous = task.get("model")
        if isinstance(previous, str) and previous:
            fields["tried_models"] = list(dict.fromkeys([*str_list(task, "tried_models"), previous]))
        fields["model"] = decision.model
        message = _log_line(f"Escalated to {decision.model} after {decision.failure_class}")
    if when is not None:
        fields["not_before"] = format_time(when)
    if fields:
        ops.set_fields(graph, task_id, fields, message=message, now=now, actor=actor, within=mutation)
    return mutation


def withhold_mutation(
    graph: Graph, task_id: str, why: str, *, now: datetime, actor: str | None
) -> ops.Mutation:
    """Keep a failed task failed: automatic retries are halted; the service retries it on resume."""
    task = graph.get(task_id)
    if task is None or status_of(task) != FAILED:
        return ops.Mutation()
    recovery = dict(speedrift_data(task).get("recovery") or {})
    if recovery.get("withheld"):
        return ops.Mutation()
    recovery["withheld"] = why
    return ops.update_speedrift(
        graph,
        task_id,
        {"recovery": recovery},
        now=now,
        actor=actor,
        message=f"Automatic retry withheld: {why}",
    )


def manual_retry_mutation(
    graph: Graph,
    task_id: str,
    *,
    context: str | None,
    force: bool,
    config: RepoConfig,
    now: datetime,
    actor: str | None,
) -> ops.Mutation:
    """`speedrift retry`: a non-retryable class needs --context (what to do differently) or --force.
    A task that waits (:func:`waiting_of`) is resumed: the human accepts the new base."""
    task = graph.get(task_id)
    if task is not None and waiting_of(task) is not None:
        why = "Resumed by a human: the next attempt starts from the target branch's current tip"
        return resume_wait_mutation(graph, task_id, why=why, context=context, now=now, actor=actor)
    cls = speedrift_failure_class(task) if task is not None else None
    if cls is not None and not context and not force and not policy_for(cls, config).retryable:
        raise Refused(
            f"task {task_id!r} failed as {cls}, which is not retryable as it is: "
            f"{policy_for(cls, config).why}",
            hint=f"say what to do differently: `speedrift retry {task_id} --context '…'` (or --force)",
        )
    recorded = speedrift_data(task).get("recovery") if task is not None else None
    decision = (
        Decision.from_dict(recorded) if isinstance(recorded, dict) and recorded.get("recovery") else None
    )
    # a human's retry carries their context and the diagnosis, never an automatic model change
    manual = replace(decision, model=None) if decision is not None else None
    return retry_mutation(graph, task_id, manual, when=None, now=now, actor=actor, context=context)


def _existing_part(graph: Graph, task_id: str, files: tuple[str, ...]) -> str | None:
    prefix = f"{task_id}-part-"
    for other_id, other in graph.tasks.items():
        numbered = other_id.startswith(prefix) and other_id[len(prefix) :].isdigit()
        if numbered and sorted(speedrift_data(other).get("touch", [])) == sorted(files):
            return other_id
    return None


def _free_part_id(graph: Graph, task_id: str) -> str:
    number = 1
    while f"{task_id}-part-{number}" in graph.tasks:
        number += 1
    return f"{task_id}-part-{number}"


def _part_description(task: Task, decision: Decision, files: tuple[str, ...]) -> str:
    lines = [
        f"Split from `{task['id']}`: its attempt {decision.attempt} changed files outside its declared "
        f"scope ({decision.failure_class}). This part makes the changes those files need:",
        *[f"- {f}" for f in files],
    ]
    description = task.get("description")
    if isinstance(description, str) and description.strip():
        lines += ["", f"The original task `{task['id']}`:", description.strip()[:8000]]
    return "\n".join(lines)


def _folded_history(task: Task) -> dict[str, Any]:
    """wg's retry appends a history entry; when the failure was already recorded with its class,
    the ``speedrift`` change that merges the two so each failure is one entry (else none)."""
    history = [h for h in speedrift_data(task).get("failures", []) if isinstance(h, dict)]
    if len(history) >= 2 and "class" in history[-2] and "class" not in history[-1]:
        retried = history.pop()
        history[-1] = {**history[-1], "retried_at": retried.get("at")}
        return {"failures": history}
    return {}


def _tag_added(task: Task, tag: str) -> dict[str, Any]:
    """The ``tags`` change that adds ``tag`` (none when the task has it)."""
    tags = str_list(task, "tags")
    return {} if tag in tags else {"tags": [*tags, tag]}


def _tag_removed(task: Task, tag: str) -> dict[str, Any]:
    """The ``tags`` change that removes ``tag`` (none when the task lacks it); the last tag
    removed takes the field with it."""
    tags = str_list(task, "tags")
    if tag not in tags:
        return {}
    return {"tags": [t for t in tags if t != tag] or None}


def _log_line(message: str) -> str:
    """A log line quoting a decision or an agent, bounded."""
    return message[:4000]


# --- the edge ------------------------------------------------------------------------------------------
def apply(store: GraphStore, task_id: str, decision: Decision, *, actor: str | None) -> str | None:
    """Write a split or replan decision into the graph; returns what was done (None: nothing)."""
    if decision.recovery == "split_task":
        build = split_mutation
    elif decision.recovery == "replan":
        build = replan_mutation
    else:
        return None
    mutation = store.mutate(lambda g, now: build(g, task_id, decision, now=now, actor=actor), actor=actor)
    if not mutation.tasks:
        return None
    if decision.recovery == "split_task":
        parts = [t["id"] for t in mutation.tasks if t["id"] != task_id]
        return f"split into {', '.join(parts) or 'its existing parts'}"
    return "reopened, paused and tagged for re-planning"


# --- waiting instead of failing ---------------------------------------------------------------------------
# An attempt that did nothing wrong, yet whose work cannot land (fleet/pipeline.py), does not fail:
# ``pre_existing`` — the gate failure is already on the target branch (present at the attempt's
# base, and still on the target's current tip after a rebase: not the agent's doing);
# ``boundary_violation`` — the target branch moved outside the merge queue during the attempt (a
# commit made directly on it), and nothing is built on that; or the repository's git config or
# hooks changed during the attempt (repo/gitboundary.py, named in ``git_changes``), and nothing
# lands until a person looked. The task goes back to open, paused,
# tagged needs-human, with ``speedrift.waiting`` saying why and a "Needs a human: …" log line
# saying what to do. No failure class (the 16 stay as they are), no failure history, no retry
# count, nothing toward the retry halt: the attempt is not burned. `speedrift retry ID` accepts
# (a fresh attempt from the target's current tip); a pre_existing wait also ends by itself once
# the target moved on (fleet/crash_recovery.py resumes it).
WAITING = "waiting"
PRE_EXISTING = "pre_existing"
BOUNDARY_VIOLATION = "boundary_violation"


def waiting_of(task: Task) -> dict[str, Any] | None:
    """The task's wait (``speedrift.waiting``) while it is open and waits, else None."""
    found = speedrift_data(task).get(WAITING)
    return found if isinstance(found, dict) and status_of(task) == OPEN else None


def wait_mutation(
    graph: Graph,
    task_id: str,
    *,
    kind: str,
    question: str,
    details: dict[str, Any],
    now: datetime,
    actor: str | None,
) -> ops.Mutation:
    """The claimed task goes back to open, paused and tagged needs-human, waiting for ``kind``
    (``question``: what the human is asked, with the command that answers)."""
    task = graph.get(task_id)
    if task is None or status_of(task) != IN_PROGRESS:
        return ops.Mutation()
    mutation = ops.unclaim(graph, task_id, now=now, actor=actor, message=_log_line(f"Waiting ({kind})"))
    held = {"paused": True, **_tag_added(mutation.tasks[0], NEEDS_HUMAN)}
    waiting = {"kind": kind, "since": format_time(now), **details}
    released = {"state": None, "worker": None, WAITING: waiting}
    message = _log_line(f"Needs a human: {question}")
    return ops.set_fields(
        graph, task_id, held, speedrift=released, message=message, now=now, actor=actor, within=mutation
    )


def resume_wait_mutation(
    graph: Graph, task_id: str, *, why: str, context: str | None, now: datetime, actor: str | None
) -> ops.Mutation:
    """A waiting task is ready again: unpaused, untagged, its wait kept only in the log."""
    task = graph.get(task_id)
    if task is None or waiting_of(task) is None:
        return ops.Mutation()
    fields: dict[str, Any] = {"paused": None, **_tag_removed(task, NEEDS_HUMAN)}
    resumed: dict[str, Any] = {WAITING: None}
    if context:
        resumed["retry_context"] = context
    return ops.set_fields(
        graph, task_id, fields, speedrift=resumed, message=_log_line(why), now=now, actor=actor
    )
