"""The session's clocks, independent of any one CLI: the start-up grace before the first event,
the stall window after it, and the provider-retry window that replaces the stall window while a
CLI only retries against a failing provider (and ends the run with the fault's own verdict).

A tiny scripted runtime drives them: its child prints the lines the test names, with pauses, and
its parser turns ``progress`` into a progress event, ``retry429 <s>`` into a rate-limit retry
notice (reset in <s> seconds), ``retry-net`` into an unreachable-endpoint notice and ``done`` into
the final event.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from speedrift.agents._common import judged, retrying
from speedrift.agents.protocol import (
    AgentEvent,
    Budgets,
    EventKind,
    FailureKind,
    ParseState,
    ProviderFault,
    RunOutcome,
    RunRequest,
)
from speedrift.agents.session import run_session

# The child: prints each line of the script, sleeping where a line says "sleep <s>".
CHILD = """
import json, sys, time
for line in json.loads(sys.argv[1]):
    if line.startswith("sleep "):
        time.sleep(float(line.split()[1]))
    else:
        print(line, flush=True)
"""


class Scripted:
    name = "scripted"
    executable = sys.executable
    install_hint = ""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)

    def build_argv(self, request: RunRequest) -> list[str]:
        return [sys.executable, "-c", CHILD, json.dumps(self.lines)]

    def stdin_payload(self, request: RunRequest) -> bytes | None:
        return None

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        word, _, arg = line.strip().partition(" ")
        if word == "progress":
            return [AgentEvent(EventKind.MESSAGE, "working")]
        if word == "retry429":
            reset = datetime.now(UTC) + timedelta(seconds=float(arg))
            retrying(state, ProviderFault.RATE_LIMIT, "HTTP 429, retrying", reset_at=reset, status=429)
            return [AgentEvent(EventKind.ERROR, "retrying after a 429", progress=False)]
        if word == "retry-net":
            retrying(state, ProviderFault.UNREACHABLE, "connection refused, retrying")
            return [AgentEvent(EventKind.ERROR, "reconnecting", progress=False)]
        if word == "done":
            state.final_seen = True
            return [AgentEvent(EventKind.FINISHED, "done")]
        return []

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        return judged(state, exit_code, finished=state.final_seen)


def _run(tmp_path: Path, runtime: Scripted, budgets: Budgets) -> RunOutcome:
    cwd = tmp_path / "worktree"
    cwd.mkdir(exist_ok=True)
    request = RunRequest("t1", 1, "p", tmp_path / "run" / "prompt.md", cwd, budgets=budgets)
    return run_session(runtime, request, env={"PATH": "/usr/bin:/bin"}, run_dir=tmp_path / "run")


def test_a_cli_that_only_retries_a_rate_limit_ends_at_the_retry_window_with_the_reset(
    tmp_path: Path,
) -> None:
    runtime = Scripted("progress", "retry429 600", "sleep 60")
    budgets = Budgets(stall_s=0.5, provider_retry_s=2, wall_clock_s=60, kill_grace_s=1)
    before = datetime.now(UTC)
    outcome = _run(tmp_path, runtime, budgets)
    assert outcome.failure is FailureKind.RATE_LIMIT and outcome.fault is ProviderFault.RATE_LIMIT
    # the stall window (0.5 s) did not end it: the silence after a 429 is the CLI honouring it
    assert "kept failing for 2s" in outcome.reason and "HTTP 429" in outcome.reason
    assert outcome.duration_s >= budgets.provider_retry_s
    assert outcome.reset_at is not None
    assert before + timedelta(seconds=600) <= outcome.reset_at <= datetime.now(UTC) + timedelta(seconds=600)


def test_an_unreachable_provider_ends_as_transient_at_the_retry_window(tmp_path: Path) -> None:
    runtime = Scripted("progress", *["retry-net", "sleep 0.2"] * 100)
    budgets = Budgets(stall_s=30, provider_retry_s=1.5, wall_clock_s=60, kill_grace_s=1)
    outcome = _run(tmp_path, runtime, budgets)
    assert outcome.failure is FailureKind.TRANSIENT and outcome.fault is ProviderFault.UNREACHABLE
    assert outcome.reset_at is None
    assert budgets.provider_retry_s <= outcome.duration_s < budgets.stall_s


def test_progress_after_retries_ends_the_retrying_and_the_run_succeeds(tmp_path: Path) -> None:
    runtime = Scripted("retry429 1", "sleep 1.2", "progress", "sleep 1.2", "progress", "done")
    budgets = Budgets(stall_s=5, provider_retry_s=2, wall_clock_s=60, kill_grace_s=1)
    outcome = _run(tmp_path, runtime, budgets)
    assert outcome.success, outcome.reason


def test_the_wall_clock_spent_retrying_is_the_providers_fault_not_the_tasks_size(tmp_path: Path) -> None:
    runtime = Scripted("progress", *["retry-net", "sleep 0.2"] * 100)
    budgets = Budgets(stall_s=30, provider_retry_s=30, wall_clock_s=1.5, kill_grace_s=1)
    outcome = _run(tmp_path, runtime, budgets)
    assert outcome.failure is FailureKind.TRANSIENT and outcome.fault is ProviderFault.UNREACHABLE
    assert outcome.reason.startswith("wall-clock budget of 1.5s used up while the agent retried")


def test_start_up_silence_within_the_grace_is_not_a_stall(tmp_path: Path) -> None:
    runtime = Scripted("sleep 1.5", "progress", "done")
    outcome = _run(tmp_path, runtime, Budgets(stall_s=0.5, startup_s=30, wall_clock_s=60, kill_grace_s=1))
    assert outcome.success, outcome.reason


def test_without_a_grace_a_silent_start_is_a_stall_named_as_such(tmp_path: Path) -> None:
    runtime = Scripted("sleep 30", "progress", "done")
    budgets = Budgets(stall_s=0.5, startup_s=0.5, wall_clock_s=60, kill_grace_s=1)
    outcome = _run(tmp_path, runtime, budgets)
    assert outcome.failure is FailureKind.STALL
    assert outcome.reason == "no first event within 1s (start-up grace 0.5s + stall window 0.5s)"
    assert outcome.duration_s >= 1.0


def test_after_the_first_event_the_stall_window_alone_applies(tmp_path: Path) -> None:
    runtime = Scripted("progress", "sleep 30", "done")
    budgets = Budgets(stall_s=0.5, startup_s=30, wall_clock_s=60, kill_grace_s=1)
    outcome = _run(tmp_path, runtime, budgets)
    assert outcome.failure is FailureKind.STALL and outcome.reason == "no progress for 0.5s"
    assert outcome.duration_s < budgets.startup_s
