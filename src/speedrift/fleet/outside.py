"""What an attempt's agent did, or was refused, beyond its worktree — and what that means for the
attempt. The pipeline's half of repo/boundary.py, run once the agent ended:

- files outside the worktree that changed during an unsandboxed run (:class:`OutsideWatch`) go
  into the attempt's record, its evidence and a task log line — reported, never blocking;
- tool calls the agent's CLI refused (``RunOutcome.refused``: a write outside the worktree, a
  permission auto-rejected) go into the evidence and a task log line;
- an agent that stopped after refused calls (``INCOMPLETE`` with refusals: opencode ends its run
  once it auto-rejected a permission) but left changes in its worktree goes on like a finished
  run: its changes are committed, gated and landed when the gates pass, and the evidence and the
  log say it stopped and what was refused. With no change in its worktree it fails with the reason
  :func:`speedrift.fleet.classify.refused_stop_reason` builds, which the classifier's
  ``refused-calls`` rule turns into ``exploration_death`` — a retry told that writes outside the
  worktree are refused — never an implementation error (no check failed).

Invariant: nothing here fails an attempt by itself or deletes work; an agent that reported itself
blocked keeps that verdict.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from speedrift import layout
from speedrift.agents import result
from speedrift.agents.protocol import RunOutcome
from speedrift.fleet import attempts, classify, facts
from speedrift.fleet.attempt import (
    MAX_OUTSIDE_WRITES,
    Attempt,
    refused_calls,
    stopped_after_refusals,
    worker_actor,
)
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.repo import boundary

SHOWN = 10  # paths or calls named in a log line


class OutsideWatch:
    """The outside-write watch of one attempt: :meth:`start` before the agent runs, :meth:`finish`
    after. ``watched`` False (a sandboxed agent, which cannot write outside its worktree): nothing
    is compared — two ``git status`` runs saved per attempt."""

    def __init__(self, repo: Path, worktree: Path, *, watched: bool) -> None:
        self.repo = repo
        self.watch = boundary.Watch()
        if watched:
            skip = boundary.running_worktrees(repo) | {worktree.resolve()}
            self.watch = boundary.watch(repo, skip)
        self.before = boundary.snapshot(self.watch)

    def finish(self) -> list[str]:
        """What changed outside the worktree since :meth:`start`. A sibling worktree whose attempt
        started running meanwhile (a merge-pending landing resumed) is left out: its churn is its own."""
        if self.watch == boundary.Watch():
            return []
        settled = self.watch.without(boundary.running_worktrees(self.repo))
        return boundary.changes(self.before, boundary.snapshot(settled))


def settle_outcome(
    store: GraphStore, attempt: Attempt, outcome: RunOutcome, outside: list[str]
) -> tuple[Attempt, RunOutcome]:
    """Record what the agent did outside its worktree and what its CLI refused (attempt record,
    task log), and decide what an agent that stopped after refusals comes to (see the module
    docstring). Returns the attempt carrying its outside writes, and the outcome to go on with."""
    if outside:
        attempts.write_attempt(attempt.run_dir, {"outside_writes": outside[:MAX_OUTSIDE_WRITES]})
        _log(
            store, attempt, f"Files outside the attempt's worktree changed during the run: {_shown(outside)}"
        )
    attempt = dataclasses.replace(attempt, outside_writes=tuple(outside))
    if not outcome.refused:
        return attempt, outcome
    calls = refused_calls(outcome)
    said = f"The agent's CLI refused {len(outcome.refused)} tool call(s): {_shown(calls, '; ')}"
    if stopped_after_refusals(outcome) and not _blocked(attempt):
        if (facts.changed_files(attempt.worktree, attempt.base_commit) or 0) > 0:
            outcome = dataclasses.replace(outcome, success=True)
            said += (
                ". It stopped there; the changes it left in its worktree are committed and checked "
                "like a finished run's"
            )
        else:
            outcome = dataclasses.replace(outcome, reason=classify.refused_stop_reason(calls))
            said += ". It stopped there, with no change in its worktree"
    _log(store, attempt, said)
    return attempt, outcome


def _blocked(attempt: Attempt) -> bool:
    """The agent reported itself blocked (its question goes to a human, not a retry)."""
    report, _problem = result.read_report(layout.result_path(attempt.run_dir))
    return report is not None and report.status == "blocked"


def _shown(items: list[str], separator: str = ", ") -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return separator.join(items[:SHOWN]) + more


def _log(store: GraphStore, attempt: Attempt, message: str) -> None:
    actor = worker_actor()
    store.mutate(
        lambda g, now: ops.log_message(g, attempt.task_id, message, now=now, actor=actor),
        actor=actor,
    )
