"""The real Claude Code, Codex and OpenCode CLIs, driven by the session against a local mock.

Each CLI runs offline against `mock_provider.py` on 127.0.0.1 with the isolation the reference
lists (own HOME/TMPDIR/XDG dirs, background traffic disabled), its environment built by our
`agent_env`. These tests prove what unit tests cannot: that our argv is accepted, that the agent
really edits files through its own tools, and that each failure comes out typed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from speedrift.agents.protocol import Budgets, FailureKind, RunRequest
from tests.agents.mock_provider import CACHED_TOKENS, OUTPUT_TOKENS, PROMPT_TOKENS, Script, Step
from tests.agents.realcli import OWN_401_RETRIES, PROMPT, Cli

pytestmark = pytest.mark.agent_cli


def _edit_steps(name: str) -> list[Step]:
    steps = [Step("write", "hello.txt", content="hi\n")]
    if name != "codex":  # claude's Edit refuses a file the session has not read; codex patches blind
        steps.append(Step("read", "greet.txt"))
    return [*steps, Step("edit", "greet.txt", old="hello world", new="hello mock")]


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_the_agent_edits_files_through_its_own_tools(
    name: str, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    steps = _edit_steps(name)
    cli = cli_for(name, Script(steps=steps, final_text="All done."))
    request = request_for(name)
    outcome = cli.run(request)
    assert outcome.success, outcome.reason
    assert outcome.final_text == "All done."
    assert (request.cwd / "hello.txt").read_text() == "hi\n"
    assert (request.cwd / "greet.txt").read_text() == "hello mock\n"
    calls = cli.provider.agent_calls()
    assert len(calls) == len(steps) + 1  # one model call per tool step, then the final answer
    # The whole prompt reached the model (on stdin, or attached as a file for opencode).
    assert PROMPT in json.dumps(calls[0].body)
    usage = outcome.usage
    assert usage.input_tokens == len(calls) * (PROMPT_TOKENS - CACHED_TOKENS)
    assert usage.cache_read_tokens == len(calls) * CACHED_TOKENS
    assert usage.output_tokens == len(calls) * OUTPUT_TOKENS
    assert (request.cwd.parent / "run" / "events.jsonl").stat().st_size > 0
    # it ran in the sandbox: what the CLI wrote of its own went to the private home, now gone
    home = cli.tmp / "home"
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    own_config = {
        "claude": [],
        "codex": [".codex/config.toml"],
        "opencode": [".config/opencode/opencode.json"],
    }
    assert written == own_config[name]  # only what the test put there
    assert not (cli.tmp / "run" / "sandbox").exists()


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_auth_failure(
    name: str, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for(name, Script(fail="auth"))
    outcome = cli.run(request_for(name))
    assert outcome.failure is FailureKind.AUTH, outcome.reason
    calls = len(cli.provider.agent_calls())
    if name == "opencode":  # no retries: opencode ends the run itself
        assert calls == 1 and outcome.exit_code == 1
    else:
        # claude and codex retry a 401 for minutes / seconds: the runtimes cut that short. The mock
        # saw fewer calls than the CLI's own retries would make, and the session ended the CLI
        # (SIGTERM: -15, or 143 from node's handler; SIGKILL after the grace) instead of waiting.
        assert calls < 1 + OWN_401_RETRIES[name], calls
        assert outcome.exit_code in (-15, 143, -9, 137), outcome.exit_code


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_usage_limit_with_reset_time(
    name: str, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    reset = int(time.time()) + 2 * 3600 + 600
    cli = cli_for(name, Script(fail="usage_limit", reset_at=reset))
    outcome = cli.run(request_for(name), oauth="1")
    assert outcome.failure is FailureKind.USAGE_LIMIT, outcome.reason
    assert outcome.reset_at is not None
    expected = datetime.fromtimestamp(reset, UTC)
    if name == "codex":  # codex prints "h:mm AM", no seconds: read as the end of that minute
        # (a reset on a minute's first second prints that minute, whose end is 60 s later)
        assert expected <= outcome.reset_at <= expected + timedelta(seconds=60)
    else:
        assert outcome.reset_at == expected


@pytest.mark.parametrize(
    ("name", "startup_s", "stall_s"),
    [("claude", 60.0, 2.0), ("codex", 60.0, 2.0), ("opencode", 6.0, 2.0)],  # 60: the default grace
)
def test_stalled_stream_is_killed_by_the_stall_budget(
    name: str,
    startup_s: float,
    stall_s: float,
    cli_for: Callable[[str, Script], Cli],
    request_for: Callable[..., RunRequest],
) -> None:
    """The scenario is a CLI that reached the model and then heard nothing, ended as STALL by the
    session's own clock. claude and codex speak before their first model call, so their stall
    window runs from that first event; opencode says nothing before the model's first answer, so
    its run is one with no first event, ended once the start-up grace and the stall window have
    both run out. On a loaded machine a CLI may still be booting when a short window ends (a stall
    too, but not this one): then the windows are widened and the run repeated, up to 8x."""
    for scale in (1, 2, 8):
        grace, window = startup_s * scale, stall_s * scale
        cli = cli_for(name, Script(stall=True))
        budgets = Budgets(wall_clock_s=grace + window + 60, stall_s=window, startup_s=grace, kill_grace_s=3)
        outcome = cli.run(request_for(name, budgets))
        assert outcome.failure is FailureKind.STALL, outcome.reason
        assert outcome.fault is None  # silence, not a provider fault the CLI reported
        # the session's own stall decision, on its own clock: never before the windows ran out
        if name == "opencode":
            assert outcome.reason.startswith(f"no first event within {grace + window:g}s"), outcome.reason
            assert outcome.duration_s >= grace + window
        else:
            assert outcome.reason.startswith(f"no progress for {window:g}s"), outcome.reason
            assert outcome.duration_s >= window
        if cli.provider.agent_calls():  # it did reach the model and then heard nothing
            return
    pytest.fail(f"{name} never reached the mock provider within {grace:g}s + {window:g}s")


def test_claude_max_turns(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(loop=Step("read", "greet.txt")))
    outcome = cli.run(request_for("claude", Budgets(max_turns=2, wall_clock_s=60, stall_s=30)))
    assert outcome.failure is FailureKind.MAX_TURNS
    # claude's own --max-turns ended it (our budget would say "turn budget"): the flag works.
    assert "Reached maximum number of turns (2)" in outcome.reason


def test_codex_turn_budget_is_enforced_by_the_session(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("codex", Script(loop=Step("edit", "greet.txt", old="hello world", new="hello world")))
    outcome = cli.run(request_for("codex", Budgets(max_turns=3, wall_clock_s=60, stall_s=30, kill_grace_s=3)))
    assert outcome.failure is FailureKind.MAX_TURNS, outcome.reason
    assert "turn budget of 3" in outcome.reason


def test_claude_server_error_is_transient(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(fail="server_error"))
    # Test-only: no retries (claude would retry a 500 ten times with backoff).
    outcome = cli.run(request_for("claude"), CLAUDE_CODE_MAX_RETRIES="0")
    assert outcome.failure is FailureKind.TRANSIENT, outcome.reason
    assert "500" in outcome.reason


def test_opencode_stops_unfinished_when_a_permission_is_auto_rejected(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("opencode", Script(steps=[Step("write", "../outside.txt", content="no\n")]))
    request = request_for("opencode")
    outcome = cli.run(request)
    assert outcome.exit_code == 0  # opencode itself calls this a normal end
    assert outcome.failure is FailureKind.INCOMPLETE, outcome.reason
    assert not (request.cwd.parent / "outside.txt").exists()
