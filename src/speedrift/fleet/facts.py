"""Gathers what the classifier needs about one failed attempt: the I/O edge of ``fleet.classify``.

Reads the attempt's run record (``events.jsonl``, the agent's ``result.json``) and peeks at its
worktree; everything else (the runtime's verdict, gate evidence, conflicts, budgets) the pipeline
already holds. Nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from speedrift import layout, records
from speedrift.agents import result
from speedrift.agents.protocol import RunOutcome
from speedrift.errors import SpeedriftError
from speedrift.fleet.attempt import Attempt
from speedrift.fleet.attempt_facts import AttemptFacts, BudgetFacts, EventStats, summarize_events
from speedrift.fleet.config import BudgetConfig
from speedrift.gates.verdict import GateVerdict
from speedrift.repo import git


def gather(
    attempt: Attempt,
    *,
    outcome: RunOutcome | None,
    agent_failed: bool,
    budgets: BudgetConfig,
    verdicts: Sequence[GateVerdict] = (),
    conflicting_files: Sequence[str] | None = None,
    shared_paths: Sequence[str] = (),
    env_bootstrap: str | None = None,
    internal_error: str | None = None,
) -> AttemptFacts:
    """``agent_failed``: the runtime's verdict was a failure (False when the agent finished and a
    later step — commit, gates, merge — failed)."""
    run_dir = attempt.run_dir
    report, _problem = result.read_report(layout.result_path(run_dir))
    failed_verdicts = [v for v in verdicts if not v.passed]
    usage = outcome.usage if outcome else None
    return AttemptFacts(
        failure_kind=outcome.failure if outcome and outcome.failure and agent_failed else None,
        reason=outcome.reason if outcome else (env_bootstrap or internal_error or ""),
        final_text=outcome.final_text if outcome else "",
        refused=outcome.refused if outcome else (),
        report_status=report.status if report else None,
        report_summary=report.summary if report else "",
        report_concerns=report.concerns if report else (),
        events=read_events(run_dir),
        gates=tuple(v.evidence for v in verdicts),
        gate_failure_class=failed_verdicts[-1].failure_class if failed_verdicts else None,
        merge_conflict=tuple(conflicting_files) if conflicting_files is not None else None,
        env_bootstrap=env_bootstrap,
        shared_paths_modified=tuple(shared_paths),
        internal_error=internal_error,
        files_changed=changed_files(attempt.worktree, attempt.base_commit) if agent_failed else None,
        budget=BudgetFacts(
            wall_clock_s=budgets.wall_clock_minutes * 60,
            max_turns=budgets.max_turns,
            max_tokens=budgets.max_tokens,
            max_cost_usd=budgets.max_cost_usd,
            duration_s=outcome.duration_s if outcome else 0.0,
            turns=usage.turns if usage else 0,
            tokens=usage.total_tokens if usage else 0,
            cost_usd=usage.cost_usd if usage else 0.0,
        ),
    )


def read_events(run_dir: Path) -> EventStats:
    """The run's event log (``events.jsonl``) folded into :class:`EventStats`."""
    return summarize_events(event.to_dict() for event in records.read_events(run_dir))


def changed_files(worktree: Path, base_commit: str | None) -> int | None:
    """Files the attempt changed: uncommitted ones plus those in commits past the base."""
    try:
        count = len(git.status_porcelain(worktree))
        if base_commit:
            out = git.run(["diff", "--name-only", base_commit, "HEAD"], worktree, check=False).stdout
            count += len([line for line in out.splitlines() if line])
    except (SpeedriftError, OSError):
        return None
    return count
