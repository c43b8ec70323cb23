"""Claude Code runtime: its command line and how its stream-json output is judged."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from speedrift.agents.claude import ClaudeRuntime, retry_fault
from speedrift.agents.protocol import Budgets, EventKind, FailureKind, ProviderFault, RunRequest
from tests.agents.conftest import help_text, stream
from tests.agents.support import documented, feed, flags, judge_stream

claude = ClaudeRuntime()
# Capture time of claude_usage_limit.jsonl: the mock's reset was 3 h 17 s later.
CAPTURED_AT = datetime.fromtimestamp(1795231429 - 3 * 3600 - 17, UTC)


def test_default_argv_reads_the_prompt_from_stdin(make_request: Callable[..., RunRequest]) -> None:
    request = make_request("Fix the bug described here.")
    assert claude.build_argv(request) == [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--no-session-persistence",
    ]
    assert claude.stdin_payload(request) == b"Fix the bug described here."


def test_argv_with_model_tools_and_budgets(make_request: Callable[..., RunRequest]) -> None:
    request = make_request(
        model="sonnet",
        options={"permission_mode": "default", "allowed_tools": ["Bash(git *)", "Edit"]},
        budgets=Budgets(max_turns=7, max_cost_usd=1.5),
    )
    assert claude.build_argv(request) == [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        "sonnet",
        "--permission-mode",
        "default",
        "--allowedTools",
        "Bash(git *),Edit",
        "--max-turns",
        "7",
        "--max-budget-usd",
        "1.5",
        "--no-session-persistence",
    ]


def test_every_flag_is_one_the_real_cli_documents(make_request: Callable[..., RunRequest]) -> None:
    request = make_request(
        model="opus", options={"allowed_tools": "Read"}, budgets=Budgets(max_turns=3, max_cost_usd=2)
    )
    text = help_text("claude.txt")
    # --max-turns works in 2.1.197 but is missing from its --help (the reference says so); the
    # real-CLI test test_claude_max_turns proves it is accepted.
    undocumented = [f for f in flags(claude.build_argv(request)) if not documented(f, text)]
    assert undocumented == ["--max-turns"]


def test_prompt_never_appears_in_argv(make_request: Callable[..., RunRequest]) -> None:
    request = make_request("SECRET-PROMPT-TEXT", model="sonnet")
    assert not any("SECRET-PROMPT-TEXT" in arg for arg in claude.build_argv(request))


@pytest.mark.parametrize(
    "options", [{"permission_mode": "yolo"}, {"allowed_tools": [1, 2]}, {"allowed_tools": {}}]
)
def test_invalid_options_are_refused(
    make_request: Callable[..., RunRequest], options: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        claude.build_argv(make_request(options=options))


def test_success_stream_gives_totals_from_the_result_line() -> None:
    outcome = judge_stream(claude, stream("claude_success.jsonl"), 0)
    assert outcome.success and outcome.failure is None
    assert outcome.final_text == "Done."
    usage = outcome.usage
    # Two API calls of 800 uncached + 200 cached in, 30 out each: the result's run totals.
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (1600, 400, 60)
    assert usage.cost_usd == pytest.approx(0.0097)
    assert usage.turns == 2


def test_success_events_in_order() -> None:
    events, state = feed(claude, stream("claude_success.jsonl"))
    assert [e.kind for e in events] == [
        EventKind.STARTED,
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.MESSAGE,
        EventKind.FINISHED,
    ]
    assert events[1].data["tool"] == "Write" and events[1].text == "hello.txt"
    assert state.final_seen


def test_assistant_usage_snapshots_are_counted_once_per_message() -> None:
    # One API reply holding text and a tool call arrives as two lines with the same message id.
    message = {
        "id": "msg_1",
        "usage": {"input_tokens": 1000, "cache_read_input_tokens": 50, "output_tokens": 1},
    }
    blocks = [
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "t1", "name": "Read", "input": {}},
    ]
    lines = [
        json.dumps({"type": "assistant", "message": message | {"content": [b]}, "parent_tool_use_id": None})
        for b in blocks
    ]
    _, state = feed(claude, lines)
    assert (state.usage.input_tokens, state.usage.cache_read_tokens, state.usage.turns) == (1000, 50, 1)
    # The result line then replaces the live estimate with the run's totals.
    result = {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1}
    claude.parse_line(json.dumps(result | {"usage": {"input_tokens": 1000, "output_tokens": 40}}), state)
    assert (state.usage.input_tokens, state.usage.output_tokens, state.usage.cache_read_tokens) == (
        1000,
        40,
        0,
    )


def test_sub_agent_messages_are_not_turns_of_the_main_loop() -> None:
    line = {"type": "assistant", "message": {"id": "m9", "content": []}, "parent_tool_use_id": "toolu_1"}
    _, state = feed(claude, [json.dumps(line)])
    assert state.usage.turns == 0


@pytest.mark.parametrize(
    ("capture", "exit_code", "failure"),
    [
        ("claude_not_logged_in.jsonl", 1, FailureKind.AUTH),  # result subtype "success", is_error true
        ("claude_invalid_api_key.jsonl", 1, FailureKind.AUTH),  # HTTP 401 after retries
        ("claude_usage_limit.jsonl", 1, FailureKind.USAGE_LIMIT),
        ("claude_max_turns.jsonl", 1, FailureKind.MAX_TURNS),
        ("claude_server_error.jsonl", 1, FailureKind.TRANSIENT),  # HTTP 500
    ],
)
def test_captured_failures_are_typed(capture: str, exit_code: int, failure: FailureKind) -> None:
    outcome = judge_stream(claude, stream(capture), exit_code, now=CAPTURED_AT)
    assert not outcome.success
    assert outcome.failure is failure
    assert outcome.reason


def test_auth_failure_is_judged_from_events_even_with_exit_code_zero() -> None:
    # The reference's first capture recorded exit 0 (a pipe's status): the events still decide.
    outcome = judge_stream(claude, stream("claude_not_logged_in.jsonl"), 0)
    assert outcome.failure is FailureKind.AUTH
    assert "Not logged in" in outcome.reason


def test_usage_limit_reset_comes_from_the_rate_limit_event() -> None:
    outcome = judge_stream(claude, stream("claude_usage_limit.jsonl"), 1, now=CAPTURED_AT)
    assert outcome.fault is ProviderFault.USAGE_LIMIT
    assert outcome.reset_at == datetime.fromtimestamp(1795231429, UTC)
    assert outcome.reason.startswith("You've hit your session limit · resets 3:23am (UTC)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("You've hit your session limit · resets 2:21am (UTC)", datetime(2026, 11, 21, 2, 21, tzinfo=UTC)),
        (
            "You've hit your weekly limit · resets Nov 22, 8:21pm (America/New_York)",
            datetime(2026, 11, 23, 1, 21, tzinfo=UTC),
        ),
        ("You've hit your Opus limit · resets 5am (Europe/Berlin)", datetime(2026, 11, 21, 4, 0, tzinfo=UTC)),
        ("You're out of usage credits · resets 11pm (UTC)", datetime(2026, 11, 21, 23, 0, tzinfo=UTC)),
    ],
)
def test_usage_limit_reset_is_read_from_the_text_without_a_rate_limit_event(
    text: str, expected: datetime
) -> None:
    now = datetime(2026, 11, 21, 0, 30, tzinfo=UTC)
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": 429,
        "result": text,
    }
    outcome = judge_stream(claude, [json.dumps(result)], 1, now=now)
    assert outcome.failure is FailureKind.USAGE_LIMIT
    assert outcome.reset_at == (expected + timedelta(minutes=1) if expected else None)  # end of the minute


def test_repeated_401_retries_abort_the_run_as_an_auth_failure() -> None:
    events, state = feed(claude, stream("claude_auth_retrying.jsonl"))
    retries = [e for e in events if e.kind is EventKind.ERROR]
    assert retries and not any(e.progress for e in retries)  # retrying is not progress
    assert state.abort
    outcome = claude.judge(state, -15)
    assert (outcome.failure, outcome.fault) == (FailureKind.AUTH, ProviderFault.AUTH)


def test_a_single_401_retry_may_be_a_token_refresh() -> None:
    line = {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "error_status": 401,
        "error": "authentication_failed",
    }
    _, state = feed(claude, [json.dumps(line)])
    assert not state.abort and state.error is None


def _api_error(status: int | None, text: str) -> dict[str, object]:
    return {"subtype": "success", "api_error_status": status, "result": text}


@pytest.mark.parametrize(
    ("result", "failure"),
    [
        ({"subtype": "error_max_budget_usd", "errors": ["Reached maximum budget ($1)"]}, FailureKind.BUDGET),
        ({"subtype": "error_during_execution", "errors": ["[ede_diagnostic] x"]}, FailureKind.AGENT_ERROR),
        (_api_error(429, "API Error: Request rejected (429) · slow down"), FailureKind.RATE_LIMIT),
        (_api_error(None, "Your org is out of usage · resets 4pm (UTC)"), FailureKind.USAGE_LIMIT),
        (_api_error(None, "Something odd happened"), FailureKind.AGENT_ERROR),
    ],
)
def test_error_results_are_typed(result: dict[str, object], failure: FailureKind) -> None:
    line = json.dumps({"type": "result", "is_error": True} | result)
    assert judge_stream(claude, [line], 1).failure is failure


@pytest.mark.parametrize(("exit_code", "failure"), [(0, FailureKind.INCOMPLETE), (143, FailureKind.CRASHED)])
def test_a_run_without_a_result_line_never_succeeds(exit_code: int, failure: FailureKind) -> None:
    # SIGINT: exit 0 and no result; SIGTERM: 143 and no result (reference, "How a run ends").
    lines = stream("claude_success.jsonl")[:-1]
    outcome = judge_stream(claude, lines, exit_code)
    assert not outcome.success and outcome.failure is failure


def test_permission_denials_do_not_fail_the_run() -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "Done.",
        "permission_denials": [{}],
    }
    assert judge_stream(claude, [json.dumps(result)], 0).success


# --- provider faults, over streams recorded from the real CLI against tests/agents/mock_provider.py

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # the parse time the retry-derived resets count from


def test_a_429_retry_notice_is_a_rate_limit_retry_whose_reset_is_the_announced_wait() -> None:
    # retry-after: 30 → `"retry_delay_ms":30000,"error_status":429,"error":"rate_limit"`
    events, state = feed(claude, stream("claude_rate_limit_retrying.jsonl"), now=NOW)
    assert state.retrying is not None and state.error is None
    assert (state.retrying.fault, state.retrying.status) == (ProviderFault.RATE_LIMIT, 429)
    assert state.retrying.reset_at == NOW + timedelta(seconds=30)
    assert not [e for e in events if e.kind is EventKind.ERROR and e.progress]  # retrying is no progress


def test_a_429_result_after_the_retries_is_a_rate_limit_reset_after_the_last_wait() -> None:
    # retry-after: 2, CLAUDE_CODE_MAX_RETRIES=2: two notices of 2000 ms, then the 429 result.
    outcome = judge_stream(claude, stream("claude_rate_limit_retries_exhausted.jsonl"), 1, now=NOW)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    assert outcome.reset_at == NOW + timedelta(seconds=2)
    assert outcome.reason.startswith("API Error: Request rejected (429) · ")


def test_a_429_result_without_retries_is_a_rate_limit_without_a_reset() -> None:
    # With an API key the CLI prints nothing of retry-after or the unified headers when it does
    # not retry (CLAUDE_CODE_MAX_RETRIES=0, or a retry-after over 60 s).
    outcome = judge_stream(claude, stream("claude_rate_limit.jsonl"), 1, now=NOW)
    assert (outcome.failure, outcome.fault, outcome.reset_at) == (
        FailureKind.RATE_LIMIT,
        ProviderFault.RATE_LIMIT,
        None,
    )


def test_an_oauth_rate_limit_is_no_usage_limit_and_resets_at_the_unified_reset() -> None:
    # OAuth, a 429 with anthropic-ratelimit-unified-reset but no unified-status: a rejected
    # rate_limit_event without a rateLimitType, then "… (not your usage limit) · …".
    lines = stream("claude_rate_limit_oauth.jsonl")
    outcome = judge_stream(claude, lines, 1, now=NOW)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    resets_at = json.loads(lines[1])["rate_limit_info"]["resetsAt"]
    assert outcome.reset_at == datetime.fromtimestamp(resets_at, UTC)


def test_connection_retry_notices_are_an_unreachable_provider() -> None:
    # A closed port: `"error_status":null,"error":"unknown"` before each retry, for ~3 minutes.
    events, state = feed(claude, stream("claude_unreachable_retrying.jsonl"), now=NOW)
    assert state.retrying is not None and state.retrying.fault is ProviderFault.UNREACHABLE
    assert state.retrying.reset_at is None and state.retrying.status is None
    assert state.error is None and not state.abort
    assert all(not e.progress for e in events if e.kind is EventKind.ERROR)


@pytest.mark.parametrize(
    ("capture", "fault"),
    [
        ("claude_unreachable.jsonl", ProviderFault.UNREACHABLE),  # "Unable to connect to API (…)"
        ("claude_malformed.jsonl", ProviderFault.MALFORMED_STREAM),  # "… malformed response (HTTP 200)"
        ("claude_server_error.jsonl", ProviderFault.TRANSIENT),
        ("claude_server_error_retries.jsonl", ProviderFault.TRANSIENT),
    ],
)
def test_provider_failures_that_may_pass_are_transient_with_their_fault(
    capture: str, fault: ProviderFault
) -> None:
    outcome = judge_stream(claude, stream(capture), 1, now=NOW)
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, fault)


def test_server_error_retry_notices_are_transient_retries() -> None:
    _, state = feed(claude, stream("claude_server_error_retries.jsonl")[:3], now=NOW)
    assert state.retrying is not None
    assert (state.retrying.fault, state.retrying.status) == (ProviderFault.TRANSIENT, 500)


@pytest.mark.parametrize(
    ("error", "status", "fault"),
    [
        ("rate_limit", 429, ProviderFault.RATE_LIMIT),
        ("unknown", None, ProviderFault.UNREACHABLE),
        ("server_error", None, ProviderFault.UNREACHABLE),  # no HTTP response at all
        ("server_error", 500, ProviderFault.TRANSIENT),
        ("overloaded", 529, ProviderFault.TRANSIENT),
        ("unknown", 409, ProviderFault.TRANSIENT),
        ("authentication_failed", 401, ProviderFault.AUTH),
        ("billing_error", 400, ProviderFault.USAGE_LIMIT),
    ],
)
def test_retry_notices_name_their_fault(error: str, status: int | None, fault: ProviderFault) -> None:
    assert retry_fault(error, status) is fault


def test_a_hostile_400_is_kept_escaped_as_the_runs_error() -> None:
    # The provider's message holds ANSI escapes, BEL and NUL.
    events, state = feed(claude, stream("claude_hostile.jsonl"), now=NOW)
    outcome = claude.judge(state, 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.AGENT_ERROR, None)
    assert "bad request \\x1b[31mred\\x1b[0m\\x07 bell \\x00 nul" in outcome.reason
    for said in (outcome.reason, outcome.final_text, *(e.text for e in events)):
        assert not any(ord(c) < 0x20 and c not in "\n\t" for c in said), said


def test_refused_tool_calls_are_recorded_once_each() -> None:
    # acceptEdits, a Write to ../outside.txt: the tool_result refuses it, the result lists it again.
    outcome = judge_stream(claude, stream("claude_permission_denied.jsonl"), 0)
    assert outcome.success
    (refused,) = outcome.refused
    assert refused.startswith("Write: ../outside.txt — Claude requested permissions to write to ")


def test_a_denial_only_the_result_lists_is_recorded_with_its_target() -> None:
    denial = {"tool_name": "Bash", "tool_use_id": "toolu_9", "tool_input": {"command": "rm -rf /"}}
    result = {"type": "result", "subtype": "success", "is_error": False, "permission_denials": [denial]}
    outcome = judge_stream(claude, [json.dumps(result)], 0)
    assert outcome.refused == ("Bash: rm -rf / — permission denied",)


def test_turns_count_model_replies_never_retries_or_the_error_message() -> None:
    # Two 429 retries, then a Write and the final answer: two model turns.
    assert judge_stream(claude, stream("claude_rate_limit_then_success.jsonl"), 0).usage.turns == 2
    # An API error before any reply: the result says num_turns 1 (its synthetic message).
    assert judge_stream(claude, stream("claude_rate_limit.jsonl"), 1).usage.turns == 0


def test_a_400_whose_text_speaks_of_limits_or_connections_is_still_the_runs_error() -> None:
    said = "API Error: 400 prompt mentions a rate limit and a Connection error"
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": 400,
        "result": said,
    }
    outcome = judge_stream(claude, [json.dumps(result)], 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.AGENT_ERROR, None)
