"""Provider faults through the real OpenCode CLI (1.18.33), driven by `run_session` against the mock.

Each test proves one fault ends with the verdict and `ProviderFault` the fleet acts on, with the
reset time where one can be known, well inside the stall window (the retry window or opencode
itself ended it, not silence), and with opencode's process group gone when the session returns.
opencode runs with the argv `OpenCodeRuntime` builds (its log's error lines on stderr), inside
speedrift's sandbox as every attempt runs where bwrap works. opencode needs 4-6 s to reach the
model, so the windows here are counted past that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from speedrift import layout, procs
from speedrift.agents import sandbox
from speedrift.agents.choose import runtime_for
from speedrift.agents.protocol import Budgets, FailureKind, ProviderFault, RunOutcome, RunRequest
from speedrift.agents.session import run_session
from tests.agents.mock_provider import Script, Step, closed_port_url
from tests.agents.realcli import Cli

pytestmark = pytest.mark.agent_cli

STALL_S = 40.0
RETRY_S = 8.0
BUDGETS = Budgets(wall_clock_s=90, stall_s=STALL_S, provider_retry_s=RETRY_S, kill_grace_s=3)
SIGNALLED = (-15, 143, -9, 137)  # the session ended it: SIGTERM (or SIGKILL after the grace)


def _run(cli: Cli, request: RunRequest) -> RunOutcome:
    """One session of the real opencode; asserts its process group is gone when the session returns
    and that the run ended well before the stall window (by its verdict, not by silence)."""
    run_dir = cli.tmp / "run"
    groups: list[int] = []
    outcome = run_session(
        runtime_for("opencode"),
        request,
        env=cli.env(),
        run_dir=run_dir,
        sandboxed=sandbox.Policy(cli.bwrap, worktree=request.cwd, run_dir=run_dir),
        on_start=groups.append,
    )
    assert groups, outcome.reason
    assert not procs.group_alive(groups[0])  # nothing of the agent outlived the run
    assert outcome.duration_s < STALL_S, outcome
    return outcome


def _stderr(cli: Cli) -> str:
    return layout.stderr_path(cli.tmp / "run").read_text(encoding="utf-8", errors="replace")


def test_a_long_retry_after_ends_as_a_rate_limit_in_the_retry_window(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # opencode honours retry-after with no cap: it logs the failed call once, then sleeps the hour
    # with nothing on stdout. Its log line names neither the status nor the header's wait — only the
    # provider's message, whose OpenAI wording names the wait ("Please try again in 1h0m0s."): the
    # retry window ends the run with that reset.
    cli = cli_for("opencode", Script(fail="rate_limit", retry_after=3600))
    before = datetime.now(UTC)
    outcome = _run(cli, request_for("opencode", BUDGETS))
    after = datetime.now(UTC)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    assert "(rate_limit): Rate limit reached for requests" in outcome.reason
    assert outcome.reset_at is not None
    hour = timedelta(seconds=3600)
    assert before + hour - timedelta(seconds=1) <= outcome.reset_at <= after + hour
    assert outcome.duration_s >= RETRY_S and outcome.exit_code in SIGNALLED
    assert len(cli.provider.agent_calls()) == 1  # still asleep on its first retry
    assert 'message="stream error"' in _stderr(cli)  # the trace of the 429 is kept


def test_a_429_that_opencode_gives_up_on_is_a_rate_limit_with_the_reset_it_was_given(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # retry-after: 1 — five retries a second apart, then the APIError with the response headers.
    cli = cli_for("opencode", Script(fail="rate_limit", retry_after=1))
    budgets = Budgets(wall_clock_s=90, stall_s=STALL_S, provider_retry_s=25, kill_grace_s=3)
    outcome = _run(cli, request_for("opencode", budgets))
    after = datetime.now(UTC)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    assert outcome.exit_code == 1 and outcome.reason.startswith("Rate limit reached for requests")
    # retry-after: 1, read when the error line arrived (within the run's last seconds)
    assert outcome.reset_at is not None
    assert after - timedelta(seconds=5) < outcome.reset_at <= after + timedelta(seconds=1)
    assert len(cli.provider.agent_calls()) == 6 and outcome.usage.turns == 0


def test_a_usage_limit_keeps_its_exact_reset(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    reset = int(time.time()) + 2 * 3600 + 600
    cli = cli_for("opencode", Script(fail="usage_limit", reset_at=reset))
    outcome = _run(cli, request_for("opencode", BUDGETS))
    assert (outcome.failure, outcome.fault) == (FailureKind.USAGE_LIMIT, ProviderFault.USAGE_LIMIT)
    assert outcome.reset_at == datetime.fromtimestamp(reset, UTC)
    assert outcome.exit_code == 1


def test_a_malformed_stream_is_transient_and_its_retries_are_no_turns(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # Each retry re-opens the same message's step; opencode would retry for ~65 s, then report
    # "UnknownError: JSON parsing failed". The retry window ends it first, and no retry is a turn.
    cli = cli_for("opencode", Script(fail="malformed"))
    budgets = Budgets(wall_clock_s=90, stall_s=STALL_S, provider_retry_s=RETRY_S, kill_grace_s=3, max_turns=3)
    outcome = _run(cli, request_for("opencode", budgets))
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.MALFORMED_STREAM)
    assert "JSON parsing failed" in outcome.reason and outcome.exit_code in SIGNALLED
    assert len(cli.provider.agent_calls()) >= 3 and outcome.usage.turns == 1


def test_an_endpoint_that_is_down_ends_unreachable_in_the_retry_window(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # Left alone, opencode retries for ~65 s and then reports "Cannot connect to API".
    cli = cli_for("opencode", Script())
    cli.endpoint = closed_port_url()
    outcome = _run(cli, request_for("opencode", BUDGETS))
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.UNREACHABLE)
    assert "Cannot connect to API" in outcome.reason
    assert outcome.duration_s >= RETRY_S and outcome.exit_code in SIGNALLED


def test_a_hostile_400_is_recorded_escaped(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("opencode", Script(fail="hostile"))
    outcome = _run(cli, request_for("opencode", BUDGETS))
    assert outcome.failure is FailureKind.AGENT_ERROR and outcome.exit_code == 1
    assert "bad request \\x1b[31mred\\x1b[0m\\x07 bell \\x00 nul" in outcome.reason
    assert not any(c in outcome.reason for c in "\x1b\x07\x00")
    events = (cli.tmp / "run" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    said = [json.loads(line)["text"] for line in events]
    assert any("\\x1b[31mred" in text for text in said)
    assert not any(c in text for text in said for c in "\x1b\x07\x00")


def test_refused_tool_calls_are_named_in_the_outcome(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("opencode", Script(steps=[Step("write", "../outside.txt", content="no\n")]))
    request = request_for("opencode", BUDGETS)
    outcome = _run(cli, request)
    assert outcome.failure is FailureKind.INCOMPLETE and outcome.exit_code == 0
    assert outcome.refused == (
        "write: ../outside.txt — The user rejected permission to use this specific tool call.",
    )
    assert not (request.cwd.parent / "outside.txt").exists()


def test_a_short_stall_window_does_not_kill_a_healthy_start(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # opencode says nothing for its first 4-6 s; the start-up grace (default 60 s) covers that.
    cli = cli_for("opencode", Script(steps=[Step("write", "hello.txt", content="hi\n")]))
    request = request_for("opencode", Budgets(wall_clock_s=90, stall_s=3, kill_grace_s=3))
    outcome = _run(cli, request)
    assert outcome.success, outcome.reason
    assert (request.cwd / "hello.txt").read_text() == "hi\n"
