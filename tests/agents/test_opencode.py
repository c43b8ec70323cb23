"""OpenCode runtime: its command line and how `opencode run --format json` output is judged."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from speedrift.agents.opencode import LOG_FLAGS, MESSAGE, OpenCodeRuntime
from speedrift.agents.protocol import (
    AgentEvent,
    EventKind,
    FailureKind,
    ParseState,
    ProviderFault,
    RunRequest,
)
from tests.agents.conftest import help_text, stream
from tests.agents.support import documented, feed, flags, judge_stream

opencode = OpenCodeRuntime()
NOW = datetime(2026, 11, 21, 0, 24, tzinfo=UTC)


def test_argv_attaches_the_prompt_file(make_request: Callable[..., RunRequest]) -> None:
    request = make_request("the whole task, which must stay out of argv")
    argv = opencode.build_argv(request)
    assert argv == [
        "opencode",
        "run",
        "--format",
        "json",
        *LOG_FLAGS,
        "--file",
        str(request.prompt_file),
        "--",
        MESSAGE,
    ]
    assert opencode.stdin_payload(request) is None
    assert not any("whole task" in arg for arg in argv)
    # The repo config passes every runtime option, unset ones as None.
    assert opencode.build_argv(make_request(options={"agent": None, "command": None})) == argv


def test_argv_with_model_and_agent(make_request: Callable[..., RunRequest]) -> None:
    request = make_request(model="anthropic/claude-sonnet-4", options={"agent": "build"})
    assert opencode.build_argv(request) == [
        "opencode",
        "run",
        "--format",
        "json",
        "--print-logs",
        "--log-level",
        "ERROR",
        "-m",
        "anthropic/claude-sonnet-4",
        "--agent",
        "build",
        "--file",
        str(request.prompt_file),
        "--",
        MESSAGE,
    ]


def test_every_flag_is_one_the_real_cli_documents(make_request: Callable[..., RunRequest]) -> None:
    argv = opencode.build_argv(make_request(model="a/b", options={"agent": "build"}))
    text = help_text("opencode-run.txt")
    assert all(documented(flag, text) for flag in flags(argv)), flags(argv)
    # `--file` is an array option: the `--` keeps it from swallowing the message.
    assert "file(s) to attach to message" in text and "[array]" in text
    assert '"ERROR"' in text  # a --log-level choice
    assert argv[argv.index("--file") + 2] == "--"


@pytest.mark.parametrize("agent", ["", "--auto", 3])
def test_bad_agent_names_are_refused(make_request: Callable[..., RunRequest], agent: object) -> None:
    with pytest.raises(ValueError):
        opencode.build_argv(make_request(options={"agent": agent}))


def test_success_sums_usage_over_steps() -> None:
    outcome = judge_stream(opencode, stream("opencode_success.jsonl"), 0)
    assert outcome.success and outcome.final_text == "Done."
    usage = outcome.usage
    # Two steps of 800 uncached in + 200 cache reads, 30 out (tokens.input excludes cache reads).
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens, usage.turns) == (
        1600,
        400,
        60,
        2,
    )


def test_step_events() -> None:
    events, _ = feed(opencode, stream("opencode_success.jsonl"))
    assert [e.kind for e in events] == [
        EventKind.STARTED,
        EventKind.TOOL_USE,
        EventKind.USAGE,
        EventKind.STARTED,
        EventKind.MESSAGE,
        EventKind.USAGE,
    ]
    assert events[1].data == {
        "tool": "write",
        "id": "call_1",
        "status": "completed",
        "path": "hello.txt",
        "added": 1,
        "removed": 0,
        "output": "Wrote file successfully.",
    }


def test_cost_is_summed_over_steps() -> None:
    step = {"type": "step_finish", "part": {"reason": "tool-calls", "cost": 0.25, "tokens": {"input": 10}}}
    last = {
        "type": "step_finish",
        "part": {"reason": "stop", "cost": 0.5, "tokens": {"input": 5, "output": 2}},
    }
    outcome = judge_stream(opencode, [json.dumps(step), json.dumps(last)], 0)
    assert outcome.success
    assert outcome.usage.cost_usd == pytest.approx(0.75)
    assert outcome.usage.total_tokens == 17


def test_auto_rejected_permission_with_exit_zero_is_incomplete_and_names_the_refused_call() -> None:
    outcome = judge_stream(opencode, stream("opencode_permission_rejected.jsonl"), 0)
    assert not outcome.success
    assert outcome.failure is FailureKind.INCOMPLETE
    assert "1 tool call(s) were auto-rejected" in outcome.reason
    assert outcome.refused == (
        "write: ../outside.txt — The user rejected permission to use this specific tool call.",
    )


def test_auth_failure() -> None:
    outcome = judge_stream(opencode, stream("opencode_auth.jsonl"), 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.AUTH, ProviderFault.AUTH)
    assert "Incorrect API key" in outcome.reason


def test_usage_limit_reset_from_the_response_body() -> None:
    outcome = judge_stream(opencode, stream("opencode_usage_limit.jsonl"), 1, now=NOW)
    assert (outcome.failure, outcome.fault) == (FailureKind.USAGE_LIMIT, ProviderFault.USAGE_LIMIT)
    assert outcome.reset_at == datetime.fromtimestamp(1795231479, UTC)


def _api_error(
    status: int, message: str, headers: dict[str, str], body: object = None, **data: object
) -> str:
    payload = {"message": message, "statusCode": status, "responseHeaders": headers} | data
    if body is not None:
        payload["responseBody"] = json.dumps(body)
    return json.dumps({"type": "error", "error": {"name": "APIError", "data": payload}})


def test_short_rate_limit_is_a_rate_limit_with_its_reset() -> None:
    # The reference's example: "Rate limit reached for requests" with retry-after: 1.
    line = _api_error(429, "Rate limit reached for requests", {"retry-after": "1"}, isRetryable=True)
    outcome = judge_stream(opencode, [line], 1, now=NOW)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    assert outcome.reset_at == NOW + timedelta(seconds=1)


def test_recorded_429_opencode_gave_up_on_is_a_rate_limit_reset_from_its_headers() -> None:
    # retry-after: 1 and x-ratelimit-reset-requests: 1s; opencode retried five times, then this.
    outcome = judge_stream(opencode, stream("opencode_rate_limit_short.jsonl"), 1, now=NOW)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    assert outcome.reset_at == NOW + timedelta(seconds=1)
    assert outcome.reason == "Rate limit reached for requests"


def test_a_rate_limit_wait_named_only_in_the_message_is_its_reset() -> None:
    message = "Rate limit reached for gpt-x on requests per min (RPM). Please try again in 20s. Visit …"
    outcome = judge_stream(opencode, [_api_error(429, message, {})], 1, now=NOW)
    assert (outcome.failure, outcome.reset_at) == (FailureKind.RATE_LIMIT, NOW + timedelta(seconds=20))


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "7200"}, timedelta(hours=2)),
        ({"x-ratelimit-reset-requests": "6m0s"}, timedelta(minutes=6)),
        ({"anthropic-ratelimit-unified-reset": str(int(NOW.timestamp()) + 3600)}, timedelta(hours=1)),
        ({"retry-after": "Sat, 21 Nov 2026 05:24:00 GMT"}, timedelta(hours=5)),
    ],
)
def test_long_rate_limit_headers_make_a_usage_limit(headers: dict[str, str], wait: timedelta) -> None:
    outcome = judge_stream(opencode, [_api_error(429, "Too many requests", headers)], 1, now=NOW)
    assert (outcome.failure, outcome.fault) == (FailureKind.USAGE_LIMIT, ProviderFault.USAGE_LIMIT)
    assert outcome.reset_at == NOW + wait


def test_zen_usage_limit_text_gives_a_relative_reset() -> None:
    message = "Go usage limit reached. It will reset in 3 hours 20 minutes. To continue, enable usage."
    outcome = judge_stream(opencode, [_api_error(429, message, {})], 1, now=NOW)
    assert outcome.failure is FailureKind.USAGE_LIMIT
    assert outcome.reset_at == NOW + timedelta(hours=3, minutes=20)


def _named(name: str, message: str, **data: object) -> dict[str, object]:
    return {"name": name, "data": {"message": message} | data}


@pytest.mark.parametrize(
    ("error", "failure", "fault"),
    [
        (
            _named("APIError", "Cannot connect to API: Unable to connect.", isRetryable=True),
            FailureKind.TRANSIENT,
            ProviderFault.UNREACHABLE,
        ),
        (
            _named("APIError", "Internal server error", statusCode=503),
            FailureKind.TRANSIENT,
            ProviderFault.TRANSIENT,
        ),
        (
            _named("APIError", "socket hang up", isRetryable=True),
            FailureKind.TRANSIENT,
            ProviderFault.TRANSIENT,
        ),
        (
            _named("UnknownError", "JSON parsing failed: Text: <html>."),
            FailureKind.TRANSIENT,
            ProviderFault.MALFORMED_STREAM,
        ),
        (
            _named("ProviderAuthError", "no key", providerID="anthropic"),
            FailureKind.AUTH,
            ProviderFault.AUTH,
        ),
        (_named("UnknownError", "Model not found: nope/nope."), FailureKind.AGENT_ERROR, None),
        (_named("ContextOverflowError", "too long"), FailureKind.AGENT_ERROR, None),
    ],
)
def test_errors_are_typed(
    error: dict[str, object], failure: FailureKind, fault: ProviderFault | None
) -> None:
    outcome = judge_stream(opencode, [json.dumps({"type": "error", "error": error})], 1)
    assert (outcome.failure, outcome.fault) == (failure, fault)


def test_a_step_after_stop_reopens_the_run() -> None:
    lines = stream("opencode_success.jsonl")
    start = next(line for line in lines if '"step_start"' in line)
    assert not judge_stream(opencode, [*lines, start], 0).success


@pytest.mark.parametrize(("exit_code", "failure"), [(0, FailureKind.INCOMPLETE), (143, FailureKind.CRASHED)])
def test_no_steps_at_all_never_succeeds(exit_code: int, failure: FailureKind) -> None:
    assert judge_stream(opencode, [], exit_code).failure is failure


def test_last_step_reason_length_is_an_agent_error() -> None:
    line = json.dumps({"type": "step_finish", "part": {"reason": "length", "tokens": {}}})
    assert judge_stream(opencode, [line], 0).failure is FailureKind.AGENT_ERROR


# --- recorded faults: stdout, and the "stream error" lines of opencode's log on stderr ------------


def _stderr(name: str, state: ParseState | None = None) -> tuple[list[AgentEvent], ParseState]:
    state = state or ParseState(now=NOW)
    events = [event for line in stream(name) for event in opencode.parse_stderr_line(line, state)]
    return events, state


def test_malformed_stream_is_a_malformed_stream_fault_and_its_retries_are_not_turns() -> None:
    # The mock's 200 turns to garbage after one frame: opencode retried it five times, each retry a
    # step_start of the same message, then "UnknownError: JSON parsing failed".
    lines = stream("opencode_malformed.jsonl")
    events, state = feed(opencode, lines)
    starts = [e for e in events if e.kind is EventKind.STARTED]
    assert len(starts) == 6 and [e.progress for e in starts] == [True] + [False] * 5
    assert state.usage.turns == 1
    outcome = opencode.judge(state, 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.MALFORMED_STREAM)
    assert outcome.reason.startswith("UnknownError: JSON parsing failed")
    assert "\x00" not in outcome.reason and "\\x00" in outcome.reason  # escaped, not dropped


def test_new_steps_of_a_finished_message_are_turns() -> None:
    _, state = feed(opencode, stream("opencode_success.jsonl"))
    assert state.usage.turns == 2 and state.extra["open_step"] is None


def test_an_unreachable_endpoint_is_an_unreachable_fault() -> None:
    outcome = judge_stream(opencode, stream("opencode_unreachable.jsonl"), 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.UNREACHABLE)
    assert outcome.reason.startswith("Cannot connect to API: Unable to connect.")


def test_a_hostile_400_is_recorded_escaped() -> None:
    events, state = feed(opencode, stream("opencode_hostile.jsonl"))
    outcome = opencode.judge(state, 1)
    assert outcome.failure is FailureKind.AGENT_ERROR and outcome.fault is None
    for said in (outcome.reason, events[-1].text):
        assert "\x1b" not in said and "\x07" not in said and "\x00" not in said
        assert "bad request \\x1b[31mred" in said and "end" in said


def test_stderr_429_under_a_long_retry_after_is_a_rate_limit_retry() -> None:
    # retry-after: 3600 — opencode logs the failed call once and sleeps the hour; its log names
    # neither the status nor the wait, so no reset can be known from it.
    events, state = _stderr("opencode_rate_limit_stderr.jsonl")
    assert [(e.kind, e.progress, e.data["fault"]) for e in events] == [(EventKind.ERROR, False, "rate_limit")]
    assert state.retrying is not None
    assert (state.retrying.fault, state.retrying.reset_at) == (ProviderFault.RATE_LIMIT, None)
    assert state.retrying.reason == "Rate limit reached for requests" and state.retrying.status == 429
    assert state.error is None  # a retry is not yet a verdict: the retry window decides


def test_stderr_wait_named_in_the_message_is_the_retry_reset() -> None:
    line = stream("opencode_rate_limit_stderr.jsonl")[0].replace(
        'requests"', 'requests. Please try again in 1m30s."'
    )
    state = ParseState()
    opencode.parse_stderr_line(line, state)
    assert state.retrying is not None
    logged = datetime.fromisoformat(line.split()[0].removeprefix("timestamp="))
    assert state.retrying.reset_at == logged + timedelta(seconds=90)


@pytest.mark.parametrize(
    ("name", "fault", "retries"),
    [
        ("opencode_malformed_stderr.jsonl", ProviderFault.MALFORMED_STREAM, 6),
        ("opencode_unreachable_stderr.jsonl", ProviderFault.UNREACHABLE, 6),  # + the title call's
        ("opencode_rate_limit_short_stderr.jsonl", ProviderFault.RATE_LIMIT, 6),
    ],
)
def test_stderr_retries_name_their_fault(name: str, fault: ProviderFault, retries: int) -> None:
    events, state = _stderr(name)
    assert len(events) == retries and not any(e.progress for e in events)
    assert {e.data["fault"] for e in events} == {fault.value}
    assert state.retrying is not None and state.retrying.fault is fault


def test_stderr_lines_other_than_failed_model_calls_are_no_events() -> None:
    state = ParseState()
    for line in [
        "\x1b[93m\x1b[1m! \x1b[0mpermission requested: external_directory (/x/*); auto-rejecting",
        'timestamp=2026-12-07T03:49:40.897Z level=ERROR message=process error="Cannot connect"',
        'garbage \x00 message="stream error',
        "",
    ]:
        assert opencode.parse_stderr_line(line, state) == []
    assert state.retrying is None


def test_stderr_hostile_provider_text_is_escaped() -> None:
    events, state = _stderr("opencode_hostile_stderr.jsonl")
    assert len(events) == 1 and state.retrying is not None
    for said in (events[0].text, state.retrying.reason):
        assert "\x1b" not in said and "\x00" not in said and "\\x1b[31mred" in said


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        ("AI_APICallError: The usage limit has been reached", ProviderFault.USAGE_LIMIT),
        ("AI_APICallError: Too Many Requests", ProviderFault.RATE_LIMIT),
        ("AI_APICallError: Provider is overloaded", ProviderFault.TRANSIENT),
        ("AI_APICallError: socket hang up", ProviderFault.TRANSIENT),
        ("AI_JSONParseError: JSON parsing failed: Text: x", ProviderFault.MALFORMED_STREAM),
        ("AI_APICallError: getaddrinfo ENOTFOUND api.invalid", ProviderFault.UNREACHABLE),
    ],
)
def test_stderr_errors_are_typed(error: str, fault: ProviderFault) -> None:
    head = 'timestamp=2026-12-07T03:49:40.897Z level=ERROR message="stream error" small=false'
    line = f"{head} error.error={json.dumps(error)}"
    state = ParseState()
    opencode.parse_stderr_line(line, state)
    assert state.retrying is not None and state.retrying.fault is fault
