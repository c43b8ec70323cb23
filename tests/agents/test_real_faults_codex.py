"""Provider faults through the real Codex CLI (0.169), driven by `run_session` against the mock.

Each test proves one fault ends with the verdict and `ProviderFault` the fleet acts on, with the
reset time where one can be known, well inside the stall window (the retry window or codex itself
ended it, not silence), and with codex's process group gone when the session returns. codex runs
with its stderr tracing filter (`CodexRuntime.child_env`) unless a test says otherwise, inside
speedrift's sandbox as every attempt runs where bwrap works — except the writable-roots test,
which is about codex's own sandbox and so runs without speedrift's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift import procs
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


def _run(cli: Cli, request: RunRequest, *, sandboxed: bool = True, tracing: bool = True) -> RunOutcome:
    """One session of the real codex; asserts its process group is gone when the session returns."""
    run_dir = cli.tmp / "run"
    groups: list[int] = []
    policy = sandbox.Policy(cli.bwrap, worktree=request.cwd, run_dir=run_dir) if sandboxed else None
    outcome = run_session(
        runtime_for("codex"),
        request,
        # the session sets codex's RUST_LOG itself (ChildEnv); without tracing is a user's own
        # RUST_LOG=error, which wins over it
        env=cli.env() if tracing else cli.env(RUST_LOG="error"),
        run_dir=run_dir,
        sandboxed=policy,
        on_start=groups.append,
    )
    assert groups, outcome.reason
    assert not procs.group_alive(groups[0])  # nothing of the agent outlived the run
    assert outcome.duration_s < STALL_S, outcome  # ended by its verdict, not by the stall window
    return outcome


def test_usage_limit_with_only_resets_in_seconds_has_no_reset(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # The 429 body names the reset only as resets_in_seconds; codex prints "try again later" and
    # logs that body at no RUST_LOG level, and the mock sends no x-codex-*-reset-at header: there is
    # no signal, so no reset is made up (the fleet pauses with its fallback).
    cli = cli_for("codex", Script(fail="usage_limit_in", reset_at=int(time.time()) + 7200))
    outcome = _run(cli, request_for("codex", BUDGETS))
    assert (outcome.failure, outcome.fault) == (FailureKind.USAGE_LIMIT, ProviderFault.USAGE_LIMIT)
    assert "try again later" in outcome.reason and outcome.reset_at is None
    assert outcome.exit_code == 1  # codex ended the run itself


def test_usage_limit_reset_is_the_end_of_the_printed_minute(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    reset = int(time.time()) + 2 * 3600 + 600
    cli = cli_for("codex", Script(fail="usage_limit", reset_at=reset))
    outcome = _run(cli, request_for("codex", BUDGETS))
    assert (outcome.failure, outcome.fault) == (FailureKind.USAGE_LIMIT, ProviderFault.USAGE_LIMIT)
    expected = datetime.fromtimestamp(reset, UTC)
    assert outcome.reset_at is not None
    # never early; at most the rest of the printed minute: a reset on a minute's first second
    # prints that minute, whose end is 60 s later
    assert expected <= outcome.reset_at <= expected + timedelta(seconds=60)
    assert outcome.exit_code == 1


@pytest.mark.parametrize("tracing", [True, False])
def test_a_long_retry_after_ends_as_a_rate_limit_in_the_retry_window(
    tracing: bool, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # codex prints "Reconnecting... 1/5 (exceeded retry limit, last status: 429 …)" and then waits
    # the hour out in silence; the retry window ends it. Its stderr tracing names the retry-after.
    cli = cli_for("codex", Script(fail="rate_limit", retry_after=3600))
    before = datetime.now(UTC)
    outcome = _run(cli, request_for("codex", BUDGETS), tracing=tracing)
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    assert "exceeded retry limit, last status: 429" in outcome.reason
    assert outcome.duration_s >= RETRY_S and outcome.exit_code in SIGNALLED
    if tracing:
        assert outcome.reset_at is not None
        assert before + timedelta(seconds=3600) <= outcome.reset_at
        assert outcome.reset_at <= datetime.now(UTC) + timedelta(seconds=3600)
    else:
        assert outcome.reset_at is None  # stdout never says when
    assert len(cli.provider.agent_calls()) == 1


def test_a_429_that_codex_gives_up_on_is_a_rate_limit(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # retry-after 1 s: five reconnects, then "exceeded retry limit, last status: 429" and turn.failed
    cli = cli_for("codex", Script(fail="rate_limit", retry_after=1))
    outcome = _run(cli, request_for("codex", BUDGETS))
    assert (outcome.failure, outcome.fault) == (FailureKind.RATE_LIMIT, ProviderFault.RATE_LIMIT)
    assert outcome.exit_code == 1 and outcome.reset_at is not None
    assert abs((outcome.reset_at - datetime.now(UTC)).total_seconds()) < 30
    assert outcome.usage.turns == 1  # six calls, five retries: one turn


def test_an_endpoint_that_is_down_ends_unreachable_in_the_retry_window(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("codex", Script())
    cli.endpoint = closed_port_url()  # "Reconnecting... waiting for network", forever
    outcome = _run(cli, request_for("codex", BUDGETS))
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.UNREACHABLE)
    assert outcome.duration_s >= RETRY_S and outcome.exit_code in SIGNALLED


def test_a_malformed_stream_is_transient(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    # "stream disconnected before completion: UTF8 error…", retried 5 times (~7 s) by codex; the
    # 2 s retry window ends it first.
    cli = cli_for("codex", Script(fail="malformed"))
    budgets = Budgets(wall_clock_s=90, stall_s=STALL_S, provider_retry_s=2, kill_grace_s=3)
    outcome = _run(cli, request_for("codex", budgets))
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.MALFORMED_STREAM)
    assert "stream disconnected before completion" in outcome.reason
    assert outcome.exit_code in SIGNALLED and outcome.usage.turns == 1


def test_a_server_error_is_transient_with_its_status(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("codex", Script(fail="server_error"))
    outcome = _run(cli, request_for("codex", BUDGETS))
    assert (outcome.failure, outcome.fault) == (FailureKind.TRANSIENT, ProviderFault.TRANSIENT)
    assert outcome.exit_code in SIGNALLED and "500" in outcome.reason


def test_auth_failure_is_an_auth_fault(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("codex", Script(fail="auth"))
    outcome = _run(cli, request_for("codex", BUDGETS))
    assert (outcome.failure, outcome.fault) == (FailureKind.AUTH, ProviderFault.AUTH)
    assert outcome.exit_code in SIGNALLED  # aborted at the first 401 retry, not after five


def test_a_hostile_400_is_recorded_escaped(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("codex", Script(fail="hostile"))
    outcome = _run(cli, request_for("codex", BUDGETS))
    assert outcome.failure is FailureKind.AGENT_ERROR and outcome.fault is None
    assert "bad request" in outcome.reason
    assert not any(ch in outcome.reason for ch in "\x1b\x07\x00")
    events = (cli.tmp / "run" / "events.jsonl").read_text(encoding="utf-8")
    assert not any(ch in events for ch in "\x1b\x07\x00")


def test_without_speedrifts_sandbox_codex_writes_only_the_worktree(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest], tmp_path: Path
) -> None:
    """codex's workspace-write would let it write /tmp and $TMPDIR: the worktree (under /tmp here)
    has siblings it could reach. Patches and shell writes outside the worktree must both fail."""
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    # The mock's `read` step runs `cat <path>` through codex's shell tool: test-only, the path
    # carries shell writes, so that codex's own (OS) sandbox is tried as well as its patch checks.
    shell = (
        f"greet.txt; echo yes > sh_inside.txt; echo no > ../sh_escape.txt; "
        f"echo no > {sibling}/sh_abs.txt; echo no > $TMPDIR/sh_tmp.txt"
    )
    steps = [
        Step("write", "../escape.txt", content="no\n"),
        Step("write", str(sibling / "abs.txt"), content="no\n"),
        Step("write", "inside.txt", content="yes\n"),
        Step("read", shell),
    ]
    cli = cli_for("codex", Script(steps=steps, final_text="All done."))
    request = request_for("codex", BUDGETS)
    outcome = _run(cli, request, sandboxed=False, tracing=False)
    assert outcome.success, outcome.reason  # the real CLI accepts the narrowed argv
    assert (request.cwd / "inside.txt").read_text() == "yes\n"
    if not (request.cwd / "sh_inside.txt").exists():
        pytest.skip(f"codex's own sandbox could not run a command on this machine: {_tool_output(cli)}")
    assert not (tmp_path / "escape.txt").exists() and not (sibling / "abs.txt").exists()
    assert not (tmp_path / "sh_escape.txt").exists() and not (sibling / "sh_abs.txt").exists()
    assert "Read-only file system" in _tool_output(cli)  # the $TMPDIR write was refused too
    assert len(outcome.refused) == 2  # the two patches, from codex's stderr
    assert all("writing outside of the project" in r for r in outcome.refused)


def _tool_output(cli: Cli) -> str:
    """What codex's shell tool reported back to the model (stdout shows no failed command)."""
    outputs = [
        item.get("output", "")
        for seen in cli.provider.agent_calls()
        for item in seen.body.get("input", [])
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    return json.dumps(outputs[-1:])
