"""Gathering the classifier's facts from an attempt's run record and worktree."""

from __future__ import annotations

import json
import time
from pathlib import Path

from speedrift.agents.protocol import FailureKind, RunOutcome
from speedrift.fleet import facts
from speedrift.fleet.attempt import Attempt
from speedrift.fleet.config import BudgetConfig
from speedrift.repo import worktrees
from tests.gitrepo import make_repo, sh_git


def attempt_in(run_dir: Path) -> Attempt:
    """An attempt whose run record is ``run_dir``; its worktree was never made."""
    manifest = worktrees.Manifest(
        task_id="t",
        attempt=1,
        branch="speedrift/t-a1",
        path=str(run_dir / "worktree"),
        base_commit="0" * 40,
        target_branch="main",
        pid=0,
        created="",
    )
    return Attempt("t", 1, run_dir, manifest, "claude", None, time.monotonic())


def test_events_are_read_from_the_run_record_skipping_torn_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"kind": "tool_use", "text": "a.py", "data": {"tool": "Read", "id": "1"}}),
        '{"kind": "tool_use", "te',  # a torn write
        "[]",
        json.dumps({"kind": "error", "text": "API Error: prompt is too long"}),
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    stats = facts.read_events(tmp_path)
    assert (stats.tool_calls, stats.context_messages) == (1, ("API Error: prompt is too long",))
    assert facts.read_events(tmp_path / "missing").tool_calls == 0


def test_the_agents_report_and_the_runtimes_verdict_become_facts(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"status": "blocked", "summary": "which API?"}))
    outcome = RunOutcome(
        success=False, failure=FailureKind.BLOCKED, reason="the agent reported itself blocked"
    )
    gathered = facts.gather(attempt_in(tmp_path), outcome=outcome, agent_failed=True, budgets=BudgetConfig())
    assert (gathered.failure_kind, gathered.report_status, gathered.report_summary) == (
        "blocked",
        "blocked",
        "which API?",
    )
    assert gathered.budget.wall_clock_s == 30 * 60
    later = facts.gather(attempt_in(tmp_path), outcome=outcome, agent_failed=False, budgets=BudgetConfig())
    assert later.failure_kind is None  # the agent finished; a later step failed


def test_changed_files_count_uncommitted_and_committed_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", graph=False)
    base = sh_git(repo, "rev-parse", "HEAD")
    assert facts.changed_files(repo, base) == 0
    (repo / "new.txt").write_text("x")
    assert facts.changed_files(repo, base) == 1
    sh_git(repo, "add", "new.txt")
    sh_git(repo, "commit", "-qm", "new")
    assert facts.changed_files(repo, base) == 1
    assert facts.changed_files(tmp_path / "nowhere", base) is None
