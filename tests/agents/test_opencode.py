"""OpenCode runtime: its command line and how `opencode run --format json` output is judged."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from speedrift.agents.opencode import MESSAGE, OpenCodeRuntime
from speedrift.agents.protocol import EventKind, FailureKind, RunRequest
from tests.agents.conftest import help_text, stream
from tests.agents.support import documented, feed, flags, judge_stream

opencode = OpenCodeRuntime()
NOW = datetime(2026, 11, 21, 0, 24, tzinfo=UTC)


def test_argv_attaches_the_prompt_file(make_request: Callable[..., RunRequest]) -> None:
    request = make_request("the whole task, which must stay out of argv")
    argv = opencode.build_argv(request)
    assert argv == ["opencode", "run", "--format", "json", "--file", str(request.prompt_file), "--", MESSAGE]
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
    assert events[1].data == {"tool": "write", "id": "call_1", "status": "completed"}


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


def test_auto_rejected_permission_with_exit_zero_is_incomplete() -> None:
    outcome = judge_stream(opencode, stream("opencode_permission_rejected.jsonl"), 0)
    assert not outcome.success
    assert outcome.failure is FailureKind.INCOMPLETE
    assert "auto-rejected" in outcome.reason


def test_auth_failure() -> None:
    outcome = judge_stream(opencode, stream("opencode_auth.jsonl"), 1)
    assert outcome.failure is FailureKind.AUTH
    assert "Incorrect API key" in outcome.reason


def test_usage_limit_reset_from_the_response_body() -> None:
    outcome = judge_stream(opencode, stream("opencode_usage_limit.jsonl"), 1, now=NOW)
    assert outcome.failure is FailureKind.USAGE_LIMIT
    assert outcome.reset_at == datetime.fromtimestamp(1795231479, UTC)


def _api_error(
    status: int, message: str, headers: dict[str, str], body: object = None, **data: object
) -> str:
    payload = {"message": message, "statusCode": status, "responseHeaders": headers} | data
    if body is not None:
        payload["responseBody"] = json.dumps(body)
    return json.dumps({"type": "error", "error": {"name": "APIError", "data": payload}})


def test_short_rate_limit_is_transient() -> None:
    # The reference's example: "Rate limit reached for requests" with retry-after: 1.
    line = _api_error(429, "Rate limit reached for requests", {"retry-after": "1"}, isRetryable=True)
    outcome = judge_stream(opencode, [line], 1, now=NOW)
    assert outcome.failure is FailureKind.TRANSIENT


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
    assert outcome.failure is FailureKind.USAGE_LIMIT
    assert outcome.reset_at == NOW + wait


def test_zen_usage_limit_text_gives_a_relative_reset() -> None:
    message = "Go usage limit reached. It will reset in 3 hours 20 minutes. To continue, enable usage."
    outcome = judge_stream(opencode, [_api_error(429, message, {})], 1, now=NOW)
    assert outcome.failure is FailureKind.USAGE_LIMIT
    assert outcome.reset_at == NOW + timedelta(hours=3, minutes=20)


def _named(name: str, message: str, **data: object) -> dict[str, object]:
    return {"name": name, "data": {"message": message} | data}


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (
            _named("APIError", "Cannot connect to API: Unable to connect.", isRetryable=True),
            FailureKind.TRANSIENT,
        ),
        (_named("APIError", "Internal server error", statusCode=503), FailureKind.TRANSIENT),
        (_named("ProviderAuthError", "no key", providerID="anthropic"), FailureKind.AUTH),
        (_named("UnknownError", "Model not found: nope/nope."), FailureKind.AGENT_ERROR),
        (_named("ContextOverflowError", "too long"), FailureKind.AGENT_ERROR),
    ],
)
def test_errors_are_typed(error: dict[str, object], failure: FailureKind) -> None:
    assert judge_stream(opencode, [json.dumps({"type": "error", "error": error})], 1).failure is failure


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
