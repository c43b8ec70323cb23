"""Codex runtime: its command line and how `codex exec --json` output is judged."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from speedrift.agents.codex import CodexRuntime
from speedrift.agents.protocol import EventKind, FailureKind, RunRequest
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
        "-",
    ]
    assert codex.stdin_payload(request) == b"Refactor the parser."


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
        ("exceeded retry limit, last status: 429 Too Many Requests", FailureKind.TRANSIENT),
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
