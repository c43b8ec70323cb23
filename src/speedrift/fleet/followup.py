"""Carrying out recorded recovery decisions: the one function every supervisor calls.

Job: a failed attempt's recovery decision (:mod:`speedrift.fleet.recovery`) is recorded on its task
by whatever ran the attempt — ``speedrift run``, a service's worker, a worker the hub dispatched.
Whoever supervises the repo next carries out the automatic ones through :func:`carry_out`: the
repo's service right after its own attempts and on every tick, or, where no service runs, the
hub's ``retry_failed`` handler. Carrying out means reopening the task once its backoff has passed
(with the decision's diagnosis and model tier), pausing the runtime until a usage limit resets, or
— while the repo's retries are halted (:mod:`speedrift.fleet.halt`) — withholding it, marked, until
they resume (:func:`release_withheld`).

Invariants:

- The same decision leads to the same action whoever carries it out: one backoff, one attempt cap
  (the decision already says whether attempts remain), one retry halt.
- The backoff counts from the failure (the time recorded with it), not from when a supervisor got
  to it: a decision carried out late reopens the task at once rather than waiting again.
- Idempotent: every write re-reads the task under the graph lock and leaves it alone unless it is
  still failed with that automatic decision; a decision is carried out once (the reopen clears it),
  and a withheld one is marked once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from speedrift.fleet import halt, recovery, recovery_graph
from speedrift.fleet.config import RepoConfig
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import FAILED, Task, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.times import format_time, now_utc, parse_time

FollowUpOutcome = Literal["reopened", "withheld", "nothing"]


@dataclass(frozen=True)
class FollowUp:
    """What carrying out one task's decision did."""

    task_id: str
    outcome: FollowUpOutcome
    detail: str
    ready_at: datetime | None = None  # reopened: when it is ready again (its backoff or reset time)
    paused_runtime: tuple[str, datetime] | None = None  # pause_runtime: the runtime and until when

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "outcome": self.outcome,
            "detail": self.detail,
            "ready_at": format_time(self.ready_at) if self.ready_at else None,
            "paused_runtime": (
                {"runtime": self.paused_runtime[0], "until": format_time(self.paused_runtime[1])}
                if self.paused_runtime
                else None
            ),
        }


def recorded_decision(task: Task | None) -> recovery.Decision | None:
    """The recovery decision recorded on a failed task (None: none, or the task is not failed)."""
    if task is None or task.get("status") != FAILED:
        return None
    recorded = speedrift_data(task).get("recovery")
    if not isinstance(recorded, dict) or not recorded.get("recovery"):
        return None
    try:
        return recovery.Decision.from_dict(recorded)
    except (TypeError, ValueError):
        return None  # a record this version cannot read is left to a human


def is_withheld(task: Task) -> bool:
    recorded = speedrift_data(task).get("recovery")
    return isinstance(recorded, dict) and bool(recorded.get("withheld"))


def pending(graph: Graph) -> list[str]:
    """Failed tasks whose recorded decision is an automatic retry not yet carried out (nor withheld)."""
    found = []
    for task_id, task in graph.tasks.items():
        decision = recorded_decision(task)
        if decision is not None and decision.automatic and not is_withheld(task):
            found.append(task_id)
    return found


def withheld(graph: Graph) -> set[str]:
    """Failed tasks whose automatic retry a halt withheld."""
    return {
        task_id
        for task_id, task in graph.tasks.items()
        if task.get("status") == FAILED and recorded_decision(task) is not None and is_withheld(task)
    }


def failed_at(task: Task, decision: recovery.Decision) -> datetime | None:
    """When the failure the decision is about was recorded (its entry in the task's history)."""
    history = [h for h in speedrift_data(task).get("failures", []) if isinstance(h, dict)]
    for entry in reversed(history):
        if entry.get("attempt") == decision.attempt:
            return parse_time(entry.get("at"))
    return parse_time(task.get("failed_at")) or (parse_time(history[-1].get("at")) if history else None)


def ready_at(task: Task, decision: recovery.Decision, now: datetime) -> datetime:
    """When the retry may start: the failure plus its backoff, or the runtime's reset time — never
    before a reset the provider named (a rate limit's retry-after), whatever the backoff says."""
    base = failed_at(task, decision) or now
    reset = parse_time(speedrift_data(task).get("reset_at"))
    if decision.fallback_from:  # it runs on the next runtime of its order: that one's reset is not this
        return base + timedelta(seconds=decision.delay_seconds)
    if decision.recovery == "pause_runtime":
        return reset or base + timedelta(hours=1)
    backoff = base + timedelta(seconds=decision.delay_seconds)
    return max(backoff, reset) if reset is not None else backoff


def carry_out(
    repo: Path,
    store: GraphStore,
    config: RepoConfig,
    task_id: str,
    *,
    actor: str,
    runtime: str | None = None,
    now: datetime | None = None,
) -> FollowUp:
    """Carry out ``task_id``'s recorded automatic recovery (see the module docstring). ``runtime``:
    the runtime that failed, for a ``pause_runtime`` decision (default: the task's)."""
    moment = now or now_utc()
    task = store.load().get(task_id)
    decision = recorded_decision(task)
    if task is None or decision is None or not decision.automatic or is_withheld(task):
        return FollowUp(task_id, "nothing", "no automatic recovery is waiting to be carried out")
    state = halt.retries_halted(repo, config.recovery)
    if state.halted:
        why = f"automatic retries are halted: {state.reason}"
        store.mutate(
            lambda g, now: recovery_graph.withhold_mutation(g, task_id, why, now=now, actor=actor),
            actor=actor,
        )
        return FollowUp(task_id, "withheld", why)
    when = ready_at(task, decision, moment)
    paused = None
    if decision.recovery == "pause_runtime":
        from speedrift.agents import choose

        name = runtime or choose.select_runtime(task, config.default_runtime)[0]
        paused = (name, when)
    built: list[bool] = []

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        current = graph.get(task_id)
        again = recorded_decision(current)
        if current is None or again is None or not again.automatic or is_withheld(current):
            return ops.Mutation()  # carried out meanwhile, retried by a human, split, re-planned
        built.append(True)
        return recovery_graph.retry_mutation(
            graph, task_id, again, when=when if when > now else None, now=now, actor=actor
        )

    store.mutate(build, actor=actor)
    if not built:
        return FollowUp(task_id, "nothing", "already carried out or changed meanwhile")
    shown = "now" if when <= moment else f"from {format_time(when)}"
    detail = f"reopened for attempt {decision.attempt + 1} ({decision.recovery}), ready {shown}"
    return FollowUp(task_id, "reopened", detail, ready_at=when, paused_runtime=paused)


def release_withheld(repo: Path, store: GraphStore, config: RepoConfig, *, actor: str) -> list[str]:
    """Retries resumed (the halt lifted): reopen every withheld task now, as its decision said.
    Returns the tasks reopened; none while the halt still holds."""
    if halt.retries_halted(repo, config.recovery).halted:
        return []
    reopened = []
    for task_id in sorted(withheld(store.load())):
        if reopen_withheld(store, task_id, actor=actor):
            reopened.append(task_id)
    return reopened


def reopen_withheld(store: GraphStore, task_id: str, *, actor: str) -> bool:
    """Reopen one withheld task now (its decision's guidance kept). False when it is not withheld."""

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        task = graph.get(task_id)
        decision = recorded_decision(task)
        if task is None or decision is None or not is_withheld(task):
            return ops.Mutation()
        return recovery_graph.retry_mutation(graph, task_id, decision, when=None, now=now, actor=actor)

    return bool(store.mutate(build, actor=actor).tasks)


def next_step(task: Task, now: datetime) -> tuple[str, datetime | None] | None:
    """What happens next to a failed task, in words, and when (None: no recorded decision)."""
    decision = recorded_decision(task)
    if decision is None:
        return None
    attempts = f"attempt {decision.attempt} of {decision.max_attempts}"
    if decision.automatic and is_withheld(task):
        why = speedrift_data(task).get("recovery", {}).get("withheld")
        return f"automatic {decision.recovery} withheld ({why}); `speedrift service resume-retries`", None
    if decision.automatic:
        when = ready_at(task, decision, now)
        return f"automatic {decision.recovery} ({attempts} failed as {decision.failure_class})", when
    if decision.question:
        return f"{decision.recovery}: {decision.question}", None
    return f"{decision.recovery}: {decision.note or 'needs a decision'}", None
