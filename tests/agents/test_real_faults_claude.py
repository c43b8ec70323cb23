"""The real Claude Code CLI (2.1.197) against the mock provider's faults, driven by the session.

Each test proves one provider fault comes out with its verdict (FailureKind), its ProviderFault
and the reset time the CLI let through, and that the run ended when it should: the session's
retry window (`Budgets.provider_retry_s`) cuts a run the CLI would keep retrying for minutes,
well inside the stall window and the CLI's own give-up, and nothing of the agent outlives it.

What the CLI does, as these runs show: it retries a 429 ten times, each wait the retry-after
(or its longer backoff, 0.5 s doubling up to 32 s), announcing each in `system/api_retry`; a
retry-after over 60 s it does not retry at all. A refused connection it retries ten times for
about three minutes (`error_status` null, `error` "unknown").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift.agents.protocol import Budgets, FailureKind, ProviderFault, RunOutcome, RunRequest
from tests.agents.mock_provider import Script, Step, closed_port_url
from tests.agents.realcli import Cli

pytestmark = pytest.mark.agent_cli

CLAUDE_GIVES_UP_UNREACHABLE_S = 150.0  # ten retries, backoff 0.5 s doubling to 32 s (+ jitter)


def _budgets(*, provider_retry_s: float = 30.0, stall_s: float = 45.0) -> Budgets:
    return Budgets(wall_clock_s=120, stall_s=stall_s, kill_grace_s=3, provider_retry_s=provider_retry_s)


def _timed(cli: Cli, request: RunRequest, **env: str) -> tuple[datetime, RunOutcome, datetime]:
    before = datetime.now(UTC)
    outcome = cli.run(request, **env)
    return before, outcome, datetime.now(UTC)


def _survivors(cwd: Path) -> list[int]:
    """Processes still running in the attempt's worktree (the agent and anything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(cwd):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _nothing_left(cli: Cli, request: RunRequest) -> None:
    assert _survivors(request.cwd) == []
    assert not (cli.tmp / "run" / "sandbox").exists()


def test_a_rate_limit_the_cli_waits_out_ends_in_the_retry_window_with_the_retry_after_reset(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    retry_after = 40  # under the CLI's 60 s cap: it announces a 40 s wait and sits in it
    cli = cli_for("claude", Script(fail="rate_limit", retry_after=retry_after))
    request = request_for("claude", _budgets(provider_retry_s=3))
    before, outcome, after = _timed(cli, request)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT), (
        outcome.reason
    )
    assert outcome.reason.startswith("the provider kept failing for 3s"), outcome.reason
    wait = timedelta(seconds=retry_after)
    assert outcome.reset_at is not None and before + wait <= outcome.reset_at <= after + wait
    # the retry window ended it, not the stall window, nor the CLI's next attempt
    assert outcome.duration_s < min(request.budgets.stall_s, retry_after)
    assert len(cli.provider.agent_calls()) == 1
    _nothing_left(cli, request)


def test_a_short_rate_limit_is_retried_then_judged_with_the_last_wait_as_reset(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(fail="rate_limit", retry_after=2))
    request = request_for("claude", _budgets())
    before, outcome, after = _timed(cli, request, CLAUDE_CODE_MAX_RETRIES="2")
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT), (
        outcome.reason
    )
    assert "Request rejected (429)" in outcome.reason
    wait = timedelta(seconds=2)
    assert outcome.reset_at is not None and before + wait <= outcome.reset_at <= after + wait
    assert len(cli.provider.agent_calls()) == 3  # the first call and two retries
    assert outcome.usage.turns == 0  # retries and the error message are no model turns
    assert outcome.duration_s < request.budgets.stall_s
    _nothing_left(cli, request)


@pytest.mark.parametrize(
    ("retry_after", "env"),
    [(5, {"CLAUDE_CODE_MAX_RETRIES": "0"}), (120, {})],  # over 60 s the CLI does not retry at all
)
def test_a_rate_limit_the_cli_does_not_retry_is_a_rate_limit_with_no_reset_to_read(
    retry_after: int,
    env: dict[str, str],
    cli_for: Callable[[str, Script], Cli],
    request_for: Callable[..., RunRequest],
) -> None:
    cli = cli_for("claude", Script(fail="rate_limit", retry_after=retry_after))
    request = request_for("claude", _budgets())
    outcome = cli.run(request, **env)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT), (
        outcome.reason
    )
    # With an API key the CLI prints neither retry-after nor the unified-reset header.
    assert outcome.reset_at is None
    assert len(cli.provider.agent_calls()) == 1 and outcome.duration_s < retry_after
    _nothing_left(cli, request)


def test_an_oauth_rate_limit_is_no_usage_limit_and_resets_at_the_unified_reset_second(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    retry_after = 45
    cli = cli_for("claude", Script(fail="rate_limit", retry_after=retry_after))
    request = request_for("claude", _budgets())
    before = int(time.time())
    outcome = cli.run(request, oauth="1")
    after = int(time.time())
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT), (
        outcome.reason
    )
    assert "not your usage limit" in outcome.reason
    # the anthropic-ratelimit-unified-reset epoch the mock sent (now + retry-after), to the second
    assert outcome.reset_at is not None
    reset = outcome.reset_at.timestamp()
    assert reset == int(reset) and before + retry_after <= reset <= after + retry_after
    _nothing_left(cli, request)


def test_an_oauth_usage_limit_stays_a_usage_limit_with_the_exact_reset(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    reset = int(time.time()) + 3 * 3600 + 17
    cli = cli_for("claude", Script(fail="usage_limit", reset_at=reset))
    request = request_for("claude", _budgets())
    outcome = cli.run(request, oauth="1")
    assert (outcome.failure, outcome.fault) == (FailureKind.USAGE_LIMIT, ProviderFault.USAGE_LIMIT), (
        outcome.reason
    )
    assert outcome.reset_at == datetime.fromtimestamp(reset, UTC)
    _nothing_left(cli, request)


def test_a_malformed_stream_is_a_transient_malformed_stream_fault(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(fail="malformed"))
    request = request_for("claude", _budgets())
    outcome = cli.run(request)
    assert (outcome.failure, outcome.fault) == (
        FailureKind.TRANSIENT,
        ProviderFault.MALFORMED_STREAM,
    ), outcome.reason
    assert "empty or malformed response (HTTP 200)" in outcome.reason
    _nothing_left(cli, request)


def test_a_hostile_400_is_recorded_escaped_as_the_runs_error(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(fail="hostile"))
    request = request_for("claude", _budgets())
    outcome = cli.run(request)
    # a 400 invalid_request: the provider refused this request; no retry cures it
    assert (outcome.failure, outcome.fault) == (FailureKind.AGENT_ERROR, None), outcome.reason
    assert "bad request \\x1b[31mred\\x1b[0m\\x07 bell \\x00 nul" in outcome.reason
    for said in (outcome.reason, outcome.final_text):
        assert not any(ord(c) < 0x20 and c not in "\n\t" for c in said), said
    _nothing_left(cli, request)


@pytest.mark.parametrize("retries", ["10", "0"])
def test_an_unreachable_provider_is_transient_unreachable_well_before_the_cli_gives_up(
    retries: str, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script())
    cli.endpoint = closed_port_url()
    request = request_for("claude", _budgets(provider_retry_s=8, stall_s=30))
    outcome = cli.run(request, CLAUDE_CODE_MAX_RETRIES=retries)
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.UNREACHABLE), (
        outcome.reason
    )
    assert outcome.reset_at is None
    if retries == "0":  # the CLI's own verdict, at once
        assert "Unable to connect to API" in outcome.reason
    else:  # the retry window's, after 8 s of retry notices
        assert outcome.reason.startswith("the provider kept failing for 8s"), outcome.reason
    assert outcome.duration_s < min(request.budgets.stall_s, CLAUDE_GIVES_UP_UNREACHABLE_S)
    _nothing_left(cli, request)


@pytest.mark.parametrize("retries", ["10", "0"])
def test_a_server_error_is_transient_whether_the_cli_retries_or_not(
    retries: str, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(fail="server_error"))
    request = request_for("claude", _budgets(provider_retry_s=3))
    outcome = cli.run(request, CLAUDE_CODE_MAX_RETRIES=retries)
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.TRANSIENT), (
        outcome.reason
    )
    assert outcome.duration_s < request.budgets.stall_s
    _nothing_left(cli, request)


def test_turns_count_model_replies_not_the_cli_retries(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    steps = [Step("write", "hello.txt", content="hi\n")]
    cli = cli_for("claude", Script(fail="rate_limit", retry_after=1, fail_calls=2, steps=steps))
    request = request_for("claude", _budgets())
    outcome = cli.run(request)
    assert outcome.success, outcome.reason
    assert len(cli.provider.agent_calls()) == 4  # two refused, the Write, the final answer
    assert outcome.usage.turns == 2
    assert (request.cwd / "hello.txt").read_text() == "hi\n"


def test_a_refused_tool_call_is_recorded_for_the_evidence(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(steps=[Step("write", "../outside.txt", content="no\n")]))
    request = request_for("claude", _budgets())
    outcome = cli.run(request)
    assert outcome.success, outcome.reason  # the CLI carries on after a refusal
    (refused,) = outcome.refused
    assert refused.startswith("Write: ../outside.txt — ") and "permissions to write" in refused
    assert not (request.cwd.parent / "outside.txt").exists()
