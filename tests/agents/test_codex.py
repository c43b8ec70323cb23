"""Codex runtime: its command line and how `codex exec --json` output is judged."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from speedrift.agents.codex import STDERR_FILTER, CodexRuntime
from speedrift.agents.protocol import (
    EventKind,
    FailureKind,
    ParseState,
    ProviderFault,
    RunRequest,
    StderrEvents,
)
from tests.agents.conftest import help_text, stream
from tests.agents.support import documented, feed, flags, judge_stream

codex = CodexRuntime()
# codex_usage_limit.jsonl was captured at about 00:24 UTC with TZ=UTC, its reset 3 h later.
CAPTURED_AT = datetime(2026, 11, 21, 0, 24, 5, tzinfo=UTC)


def test_default_argv_reads_the_prompt_from_stdin(make_request: Callable[..., RunRequest]) -> None:
    request = make_request("Refactor the parser.")
    assert codex.build_argv(request) == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--ephemeral",
        "--sandbox",
        "workspace-write",
        # outside speedrift's sandbox, codex's own may write only the worktree: not /tmp, not $TMPDIR
        "-c",
        "sandbox_workspace_write.exclude_tmpdir_env_var=true",
        "-c",
        "sandbox_workspace_write.exclude_slash_tmp=true",
        "-",
    ]
    assert codex.stdin_payload(request) == b"Refactor the parser."


@pytest.mark.parametrize(
    ("sandbox", "sandboxed", "expected"),
    [
        ("workspace-write", True, "danger-full-access"),  # speedrift's sandbox confines it instead
        ("read-only", False, "read-only"),
        ("danger-full-access", False, "danger-full-access"),
    ],
)
def test_writable_roots_are_narrowed_only_for_codex_own_workspace_write(
    make_request: Callable[..., RunRequest], sandbox: str, sandboxed: bool, expected: str
) -> None:
    argv = codex.build_argv(make_request(options={"sandbox": sandbox}, sandboxed=sandboxed))
    assert argv[argv.index("--sandbox") + 1] == expected
    assert "-c" not in argv


def test_argv_with_model_and_sandbox(make_request: Callable[..., RunRequest]) -> None:
    request = make_request(model="gpt-5.5", options={"sandbox": "danger-full-access"})
    assert codex.build_argv(request) == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--ephemeral",
        "--sandbox",
        "danger-full-access",
        "-m",
        "gpt-5.5",
        "-",
    ]


def test_every_flag_is_one_the_real_cli_documents(make_request: Callable[..., RunRequest]) -> None:
    argv = codex.build_argv(make_request(model="gpt-5.5"))
    text = help_text("codex-exec.txt")
    assert all(documented(flag, text) for flag in flags(argv)), flags(argv)
    assert "[possible values: read-only, workspace-write, danger-full-access]" in text


def test_unknown_sandbox_is_refused(make_request: Callable[..., RunRequest]) -> None:
    with pytest.raises(ValueError, match="sandbox"):
        codex.build_argv(make_request(options={"sandbox": "none"}))


@pytest.mark.parametrize("capture", ["codex_success.jsonl", "codex_edit.jsonl"])
def test_success_stream(capture: str) -> None:
    outcome = judge_stream(codex, stream(capture), 0)
    assert outcome.success
    assert outcome.final_text == "Done."
    # turn.completed is cumulative and its input includes the cached part: 2000 in, 400 cached.
    usage = outcome.usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (1600, 400, 60)
    assert usage.turns == 2  # the file change plus the final answer


def test_file_change_events() -> None:
    events, _ = feed(codex, stream("codex_success.jsonl"))
    kinds = [e.kind for e in events]
    assert kinds == [
        EventKind.STARTED,
        EventKind.STARTED,
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.MESSAGE,
        EventKind.FINISHED,
    ]
    assert events[3].text.endswith("/hello.txt") and events[3].data["item"] == "file_change"


def test_usage_is_assigned_not_summed() -> None:
    usage = {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 10}
    line = json.dumps({"type": "turn.completed", "usage": usage})
    _, state = feed(codex, [line, line])
    assert (state.usage.input_tokens, state.usage.output_tokens) == (100, 10)


@pytest.mark.parametrize(
    ("capture", "failure"),
    [
        ("codex_auth.jsonl", FailureKind.AUTH),  # five reconnects on 401, then turn.failed
        ("codex_usage_limit.jsonl", FailureKind.USAGE_LIMIT),
        ("codex_server_error.jsonl", FailureKind.TRANSIENT),  # "We’re currently experiencing high demand"
    ],
)
def test_captured_failures_are_typed(capture: str, failure: FailureKind) -> None:
    outcome = judge_stream(codex, stream(capture), 1, now=CAPTURED_AT)
    assert not outcome.success and outcome.failure is failure


def test_usage_limit_reset_is_read_from_the_text_in_the_child_zone() -> None:
    outcome = judge_stream(codex, stream("codex_usage_limit.jsonl"), 1, now=CAPTURED_AT)
    # "try again at 3:24 AM.": the next 3:24 AM in the zone the child ran in (UTC).
    assert outcome.reset_at == datetime(2026, 11, 21, 3, 25, tzinfo=UTC)  # 3:24 read as its end


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://"
            "chatgpt.com/settings/usage to purchase more credits or try again at Nov 21st, 2026 2:22 AM.",
            datetime(2026, 11, 21, 2, 22, tzinfo=UTC),
        ),
        ("You’ve hit your usage limit. Try again at 11:52 PM.", datetime(2026, 11, 20, 23, 52, tzinfo=UTC)),
        ("You've hit your usage limit. Try again at 9:05 AM.", datetime(2026, 11, 21, 9, 5, tzinfo=UTC)),
        ("You’ve hit your usage limit. Try again later.", None),
        ("Your workspace is out of credits. Add credits to continue.", None),
    ],
)
def test_usage_limit_texts(message: str, expected: datetime | None) -> None:
    now = datetime(2026, 11, 20, 23, 9, tzinfo=UTC)
    lines = [
        json.dumps({"type": "error", "message": message}),
        json.dumps({"type": "turn.failed", "error": {"message": message}}),
    ]
    outcome = judge_stream(codex, lines, 1, now=now)
    assert outcome.failure is FailureKind.USAGE_LIMIT
    assert outcome.reset_at == (expected + timedelta(minutes=1) if expected else None)  # end of the minute


def test_reset_text_is_read_in_the_zone_the_child_ran_in() -> None:
    message = "You’ve hit your usage limit. Try again at 11:52 PM."
    _, state = feed(codex, [])
    state.now, state.tz = datetime(2026, 11, 20, 20, 0, tzinfo=UTC), "America/New_York"
    codex.parse_line(json.dumps({"type": "turn.failed", "error": {"message": message}}), state)
    assert state.reset_at == datetime(2026, 11, 21, 4, 53, tzinfo=UTC)  # 4:52 read as its end


def test_reconnect_notices_are_not_progress_and_not_fatal() -> None:
    lines = stream("codex_offline.txt")  # the reference's offline capture, tracing noise included
    events, state = feed(codex, lines)
    retries = [e for e in events if e.kind is EventKind.ERROR]
    assert len(retries) == 9  # 4 numbered + 4 "waiting for network" + the transport fallback item
    assert not any(e.progress for e in retries)
    assert state.error is None and not state.abort and not state.final_seen
    assert "Reconnecting" in state.extra["last_retry"]


def test_a_401_reconnect_aborts_at_once() -> None:
    _, state = feed(codex, stream("codex_auth.jsonl")[:3])
    assert state.abort and state.error is FailureKind.AUTH
    assert codex.judge(state, -15).failure is FailureKind.AUTH


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        ("exceeded retry limit, last status: 429 Too Many Requests", FailureKind.RATE_LIMIT),
        ("Selected model is at capacity. Please try a different model.", FailureKind.TRANSIENT),
        ("Missing environment variable: `MOCK_API_KEY`.", FailureKind.AUTH),
        ("Quota exceeded. Check your plan and billing details.", FailureKind.USAGE_LIMIT),
        ("Codex ran out of room in the model's context window. Start a new thread.", FailureKind.AGENT_ERROR),
    ],
)
def test_fatal_messages_are_typed(message: str, failure: FailureKind) -> None:
    assert (
        judge_stream(codex, [json.dumps({"type": "turn.failed", "error": {"message": message}})], 1).failure
        is failure
    )


def test_non_fatal_error_items_do_not_fail_the_run() -> None:
    notice = {"id": "item_0", "type": "error", "message": "Model metadata for `mock-model` not found."}
    lines = [json.dumps({"type": "item.completed", "item": notice}), *stream("codex_success.jsonl")]
    assert judge_stream(codex, lines, 0).success


@pytest.mark.parametrize(("exit_code", "failure"), [(0, FailureKind.INCOMPLETE), (1, FailureKind.CRASHED)])
def test_interrupted_run_without_turn_end_never_succeeds(exit_code: int, failure: FailureKind) -> None:
    lines = stream("codex_success.jsonl")[:-1]
    assert judge_stream(codex, lines, exit_code).failure is failure


# --- provider faults, over streams recorded from codex 0.169 against the mock -------------------
# The *_stderr.jsonl captures hold codex's stderr as it writes it with RUST_LOG=STDERR_FILTER,
# one JSON string per line.


def _stderr(name: str) -> list[str]:
    return [json.loads(line) for line in stream(name)]


def _feed_both(
    stdout: list[str], stderr: list[str], *, stderr_first: bool = True, now: datetime | None = None
) -> ParseState:
    """Parse both streams as the session does; their relative order is not fixed (two pipes)."""
    state = ParseState(now=now)
    first, second = (stderr, stdout) if stderr_first else (stdout, stderr)
    for lines, parse in (
        (first, codex.parse_stderr_line if stderr_first else codex.parse_line),
        (second, codex.parse_line if stderr_first else codex.parse_stderr_line),
    ):
        for line in lines:
            parse(line, state)
    return state


def test_codex_reads_its_stderr_as_events() -> None:
    assert isinstance(codex, StderrEvents)
    assert codex.child_env() == {"RUST_LOG": STDERR_FILTER}


@pytest.mark.parametrize("stderr_first", [True, False])
def test_a_long_retry_after_is_retrying_on_a_rate_limit_until_that_time(stderr_first: bool) -> None:
    # retry-after 3600: codex prints one notice, then waits an hour in silence.
    now = datetime(2026, 12, 7, 3, 34, 4, tzinfo=UTC)
    out, err = stream("codex_rate_limit_long.jsonl"), _stderr("codex_rate_limit_long_stderr.jsonl")
    assert json.loads(out[-1])["message"].startswith(
        "Reconnecting... 1/5 (exceeded retry limit, last status: 429"
    )
    state = _feed_both(out, err, stderr_first=stderr_first, now=now)
    assert state.retrying is not None and state.retrying.fault is ProviderFault.RATE_LIMIT
    assert state.retrying.status == 429
    assert state.retrying.reset_at == now + timedelta(seconds=3600)  # the retry-after header
    assert state.error is None and state.usage.turns == 1  # retries are no turns


def test_without_stderr_a_rate_limit_retry_has_no_reset() -> None:
    _, state = feed(codex, stream("codex_rate_limit_long.jsonl"))
    assert state.retrying is not None and state.retrying.fault is ProviderFault.RATE_LIMIT
    assert state.retrying.reset_at is None and state.retrying.status == 429


def test_exceeded_retry_limit_on_429_is_a_rate_limit_with_the_retry_after() -> None:
    now = datetime(2026, 12, 7, 3, 34, tzinfo=UTC)
    state = _feed_both(stream("codex_rate_limit.jsonl"), _stderr("codex_rate_limit_stderr.jsonl"), now=now)
    outcome = codex.judge(state, 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    assert outcome.reset_at == now + timedelta(seconds=1)  # the mock's retry-after: 1
    assert state.retrying is None and outcome.usage.turns == 1


def test_waiting_for_network_is_retrying_unreachable() -> None:
    _, state = feed(codex, stream("codex_unreachable.jsonl"))
    assert state.retrying is not None and state.retrying.fault is ProviderFault.UNREACHABLE
    assert state.error is None and not state.final_seen


def test_a_refused_connection_on_stderr_is_retrying_unreachable_before_the_first_notice() -> None:
    state = ParseState()
    for line in _stderr("codex_unreachable_stderr.jsonl")[:8]:
        codex.parse_stderr_line(line, state)
    assert state.retrying is not None and state.retrying.fault is ProviderFault.UNREACHABLE


def test_the_offline_capture_is_unreachable_not_a_broken_stream() -> None:
    # "stream disconnected before completion: failed to lookup address information" is DNS
    _, state = feed(codex, stream("codex_offline.txt")[:6])
    assert state.retrying is not None and state.retrying.fault is ProviderFault.UNREACHABLE


def test_a_malformed_stream_is_retried_as_such_and_ends_transient() -> None:
    lines = stream("codex_malformed.jsonl")
    events, state = feed(codex, lines[:4])  # up to the first retry notice
    assert state.retrying is not None and state.retrying.fault is ProviderFault.MALFORMED_STREAM
    # each retry re-emits the (empty) message it had: that is no progress
    assert not any(e.progress for e in events if e.kind is EventKind.MESSAGE)
    outcome = judge_stream(codex, lines, 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.MALFORMED_STREAM)
    assert outcome.usage.turns == 1


def test_high_demand_retries_and_ends_transient() -> None:
    lines = stream("codex_server_error.jsonl")
    _, state = feed(codex, lines[:3])
    assert state.retrying is not None and state.retrying.fault is ProviderFault.TRANSIENT
    outcome = judge_stream(codex, lines, 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.TRANSIENT)


def test_a_5xx_on_stderr_is_retrying_transient_with_its_status() -> None:
    line = (
        "2026-12-07T03:34:04Z DEBUG codex_http_client::client: Request completed method=POST "
        'url=http://127.0.0.1:1/v1/responses status=500 Internal Server Error headers={"content-type": '
        '"application/json"} version=HTTP/1.0'
    )
    state = ParseState()
    events = codex.parse_stderr_line(line, state)
    assert state.retrying is not None and state.retrying.status == 500
    assert state.retrying.fault is ProviderFault.TRANSIENT and not events[0].progress


def test_auth_is_a_provider_fault() -> None:
    outcome = judge_stream(codex, stream("codex_auth.jsonl"), 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.AUTH, ProviderFault.AUTH)


def test_a_hostile_400_is_recorded_escaped() -> None:
    outcome = judge_stream(codex, stream("codex_hostile.jsonl"), 1)
    assert outcome.failure is FailureKind.AGENT_ERROR and outcome.fault is None
    assert "bad request" in outcome.reason and "red" in outcome.reason
    assert not any(ch in outcome.reason for ch in "\x1b\x07\x00")


def test_a_usage_limit_without_a_reset_time_stays_without_one() -> None:
    # the 429 named its reset only as resets_in_seconds: codex prints "try again later"
    outcome = judge_stream(codex, stream("codex_usage_limit_in.jsonl"), 1)
    assert (outcome.failure, outcome.fault) == (FailureKind.USAGE_LIMIT, ProviderFault.USAGE_LIMIT)
    assert "try again later" in outcome.reason and outcome.reset_at is None


@pytest.mark.parametrize("stderr_first", [True, False])
def test_a_usage_limit_reset_comes_from_the_exhausted_windows_header(stderr_first: bool) -> None:
    err = _stderr("codex_usage_limit_headers_stderr.jsonl")
    header = next(line for line in err if "status=429" in line)
    primary = int(re.search(r'"x-codex-primary-reset-at": "(\d+)"', header).group(1))  # type: ignore[union-attr]
    state = _feed_both(stream("codex_usage_limit_headers.jsonl"), err, stderr_first=stderr_first)
    outcome = codex.judge(state, 1)
    assert outcome.failure is FailureKind.USAGE_LIMIT
    # the primary window is at 100 %, the secondary (a week away) at 42 %: the primary's reset
    assert outcome.reset_at == datetime.fromtimestamp(primary, UTC)


def test_tokens_of_the_calls_before_a_failure_are_kept_from_stderr() -> None:
    out = stream("codex_usage_after_call.jsonl")
    _, lost = feed(codex, out)
    assert lost.usage.total_tokens == 0  # stdout alone: turn.failed carries no usage
    outcome = codex.judge(_feed_both(out, _stderr("codex_usage_after_call_stderr.jsonl")), 1)
    assert outcome.failure is FailureKind.USAGE_LIMIT
    usage = outcome.usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (800, 200, 30)
    assert usage.turns == 2  # the turn and its one file change


def test_turn_completed_usage_wins_over_the_per_call_sum() -> None:
    err = [line for line in _stderr("codex_usage_after_call_stderr.jsonl") if "sse_event" in line]
    state = _feed_both(stream("codex_success.jsonl"), err * 3, stderr_first=False)
    assert (state.usage.input_tokens, state.usage.output_tokens) == (1600, 60)


def test_patches_refused_outside_the_worktree_are_recorded() -> None:
    state = ParseState()
    for line in _stderr("codex_escape_refused_stderr.jsonl"):
        codex.parse_stderr_line(line, state)
    assert len(state.refused) == 2
    assert all("writing outside of the project" in r for r in state.refused)
    assert judge_stream(codex, stream("codex_escape_refused.jsonl"), 0).success


@pytest.mark.parametrize("stderr_first", [True, False])
def test_a_retry_seen_on_both_streams_keeps_the_notice_and_the_status(stderr_first: bool) -> None:
    http = (
        "2026-12-07T03:34:04Z DEBUG codex_http_client::client: Request completed method=POST "
        "url=http://127.0.0.1:1/v1/responses status=503 Service Unavailable headers={} version=HTTP/1.1"
    )
    state = _feed_both(stream("codex_server_error.jsonl")[:3], [http], stderr_first=stderr_first)
    assert state.retrying is not None and state.retrying.status == 503
    assert "high demand" in state.retrying.reason and "503" in state.retrying.reason
