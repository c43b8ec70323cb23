"""The attempt feed: every finished attempt becomes one line of the machine-wide attempt log
(speedrift/attemptlog.py), written by the pipeline's outcome sites beside ``halt.record_outcome``
(fleet/merging.py: done and waiting; fleet/failures.py: failed or cancelled, and an attempt an
exception interrupted).

An entry holds what the attempt used (the runtime's tokens), what it cost (the runtime's reported
cost, else its tokens priced by ``[prices]``: fleet/spend.py :func:`~speedrift.fleet.spend.price`),
how it ended (status, failure class, stalled / over budget / crashed), how long it ran, how long
the agent took to say anything, its gate verdicts, and where it ran (the evidence's ``machine``:
the Dask worker's address, else the host; ``attempt.json``'s for an interrupted attempt).

Invariants: a failure to record never fails the attempt (an unwritable log is a warning on
stderr); an attempt is recorded at most once per status (the statuses recorded are kept in its
``attempt.json`` under ``attempt_log``), so a landing resumed or recovered does not count twice.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from speedrift import attemptlog, layout, records
from speedrift.agents import choose as registry
from speedrift.agents.protocol import CANCELLED, FailureKind, RunOutcome, Usage
from speedrift.attemptlog import AttemptEntry
from speedrift.errors import InvalidValue
from speedrift.fleet import budgetpub, spend
from speedrift.fleet.attempt import Attempt
from speedrift.fleet.config import RepoConfig
from speedrift.graph.model import Task
from speedrift.times import now_utc, parse_time

FED_KEY = "attempt_log"  # attempt.json: the statuses of this attempt already in the attempt log
FIRST_EVENT_LINES = 200  # how far into events.jsonl the agent's first event is looked for


ROLES_TASK = "_roles"  # the task of a role run that served none (`speedrift roles run`)


def first_event_s(run_dir: Path) -> float | None:
    """Seconds from the attempt's start (``attempt.json``'s ``started``) to the agent's first event
    in ``events.jsonl`` (speedrift's own notes skipped); None when either is not known."""
    record = records.read_attempt(run_dir)
    started = parse_time(record.started) if record is not None else None
    if started is None:
        return None
    try:
        with open(layout.events_path(run_dir), "rb") as handle:
            for number, raw in enumerate(handle):
                if number >= FIRST_EVENT_LINES:
                    return None
                event = records.parse_event(raw)
                if event is None or event.data.get("source") == "speedrift":
                    continue
                at = parse_time(event.ts)
                return max(0.0, (at - started).total_seconds()) if at is not None else None
    except OSError:
        return None
    return None


def _gates(evidence: Mapping[str, Any]) -> tuple[int, int]:
    verdicts = evidence.get("gates")
    if not isinstance(verdicts, list):
        return 0, 0
    passed = sum(1 for v in verdicts if isinstance(v, dict) and v.get("passed") is True)
    failed = sum(1 for v in verdicts if isinstance(v, dict) and v.get("passed") is False)
    return passed, failed


def _tags(task: Task | None) -> list[object]:
    tags = task.get("tags") if task is not None else None
    return tags if isinstance(tags, list) else []


class Health(TypedDict):
    stalled: bool
    over_budget: bool
    crashed: bool


def health(outcome: RunOutcome) -> Health:
    """What the run's end says of the agent's health (the nightwatch reads it): a stall, a budget
    overrun, a crash that was not a cancel."""
    kind = outcome.failure
    return {
        "stalled": kind is FailureKind.STALL,
        "over_budget": kind is FailureKind.BUDGET,
        "crashed": kind is FailureKind.CRASHED and outcome.reason != CANCELLED,
    }


def entry_for(
    repo: Path,
    attempt: Attempt,
    outcome: RunOutcome,
    evidence: Mapping[str, Any],
    *,
    status: str,
    failure: str | None,
    task: Task | None,
    prices: spend.PriceTables,
    at: datetime,
    first_event: float | None,
) -> AttemptEntry:
    """The attempt log's line for one finished attempt (nothing read or written here)."""
    usage = outcome.usage
    cost, source = spend.price(usage, attempt.runtime, attempt.model, prices)
    passed, failed = _gates(evidence)
    duration = evidence.get("duration_s")
    return AttemptEntry(
        at=at,
        repo=budgetpub.repo_key(repo),
        task=attempt.task_id,
        attempt=attempt.number,
        status=status,
        runtime=attempt.runtime,
        model=attempt.model,
        failure=str(failure) if failure else None,
        agent=attemptlog.agent_of(_tags(task)),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=cost,
        cost_source=source,
        duration_s=float(duration) if isinstance(duration, int | float) else outcome.duration_s,
        first_event_s=first_event,
        **health(outcome),
        gates_passed=passed,
        gates_failed=failed,
        machine=attemptlog.machine_label(evidence.get("machine")),
    )


def _prices(repo: Path, config: RepoConfig) -> spend.PriceTables:
    """The repo's ``[prices]``, then the ecosystem's as its hub published them."""
    published = budgetpub.published_for(repo)
    return [config.prices, published.prices] if published is not None else [config.prices]


def _append_once(entry: AttemptEntry, run_dir: Path) -> None:
    """Append ``entry`` unless its attempt was already recorded with this status; a failure to
    write says so on stderr and nothing more."""
    try:
        record = records.read_attempt(run_dir)
        fed = record.raw.get(FED_KEY) if record is not None else None
        done = [str(s) for s in fed] if isinstance(fed, list) else []
        if entry.status in done:
            return
        attemptlog.append(entry)
        records.update_attempt(run_dir, {FED_KEY: [*done, entry.status]}, durable=True)
    except (OSError, ValueError) as error:
        what = f"attempt {entry.attempt} of {entry.task} ({entry.status})"
        sys.stderr.write(f"speedrift: warning: {what} is not in the attempt log (spend, budgets): {error}\n")


def feed(
    repo: Path,
    attempt: Attempt,
    outcome: RunOutcome,
    evidence: Mapping[str, Any],
    *,
    status: str,
    failure: str | None = None,
    task: Task | None,
    config: RepoConfig,
) -> None:
    """Record a finished attempt in the attempt log (once per status; never raises for I/O)."""
    prices = _prices(repo, config)  # a reader of the published prices never raises
    first = first_event_s(attempt.run_dir)
    entry = entry_for(
        repo,
        attempt,
        outcome,
        evidence,
        status=status,
        failure=failure,
        task=task,
        prices=prices,
        at=now_utc(),
        first_event=first,
    )
    _append_once(entry, attempt.run_dir)


def feed_interrupted(
    repo: Path,
    task_id: str,
    number: int,
    run_dir: Path,
    *,
    status: str,
    failure: str | None,
    task: Task | None,
    config: RepoConfig,
) -> None:
    """Record an attempt an exception interrupted with what is known of it: its runtime and model
    (its ``attempt.json``, else the task's choice), how long it ran, its first event. No usage is
    known (its outcome never came)."""
    now = now_utc()
    record = records.read_attempt(run_dir)
    raw = record.raw if record is not None else {}
    runtime, model = raw.get("runtime"), raw.get("model")
    if not isinstance(runtime, str) or not runtime:
        try:
            runtime, model = registry.select_runtime(task or {}, config.default_runtime)
        except InvalidValue:
            runtime, model = config.default_runtime, None
    started = parse_time(record.started) if record is not None else None
    duration = max(0.0, (now - started).total_seconds()) if started is not None else 0.0
    entry = AttemptEntry(
        at=now,
        repo=budgetpub.repo_key(repo),
        task=task_id,
        attempt=number,
        status=status,
        runtime=str(runtime),
        model=model if isinstance(model, str) else None,
        failure=str(failure) if failure else None,
        agent=attemptlog.agent_of(_tags(task)),
        duration_s=duration,
        first_event_s=first_event_s(run_dir),
        machine=attemptlog.machine_label(raw.get("machine")),
    )
    _append_once(entry, run_dir)


def feed_role(
    repo: Path,
    config: RepoConfig,
    *,
    role: str,
    task_id: str | None,
    attempt: int | None,
    runtime: str,
    model: str | None,
    outcome: RunOutcome,
    usage: Usage,
    failure: str | None,
    duration_s: float,
) -> None:
    """Record a role's run (all its rounds) in the attempt log, so what the Reviewer, the Debugger
    or the Compound reviewer cost counts in spend and budgets like a developer's attempt. Never
    raises for I/O."""
    cost, source = spend.price(usage, runtime, model, _prices(repo, config))
    status = "done" if failure is None else ("cancelled" if outcome.reason == CANCELLED else "failed")
    entry = AttemptEntry(
        at=now_utc(),
        repo=budgetpub.repo_key(repo),
        task=task_id or ROLES_TASK,
        attempt=attempt or 0,
        status=status,
        runtime=runtime,
        model=model,
        failure=failure,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=cost,
        cost_source=source,
        duration_s=round(duration_s, 3),
        **health(outcome),
        role=role,
    )
    try:
        attemptlog.append(entry)
    except OSError as error:
        sys.stderr.write(
            f"speedrift: warning: the {role} run is not in the attempt log (spend, budgets): {error}\n"
        )
