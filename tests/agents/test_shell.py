"""Shell runtime: a task's `exec`, or a configured command that reads the prompt on stdin."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from speedrift.agents.protocol import EventKind, FailureKind, RunRequest
from speedrift.agents.shell import ShellRuntime
from tests.agents.support import feed

shell = ShellRuntime()


def test_exec_runs_under_sh_unchanged_with_no_stdin(make_request: Callable[..., RunRequest]) -> None:
    request = make_request(exec_command="make test && echo 'ok; done'")
    assert shell.build_argv(request) == ["/bin/sh", "-c", "make test && echo 'ok; done'"]
    assert shell.stdin_payload(request) is None


def test_configured_command_gets_the_prompt_on_stdin(make_request: Callable[..., RunRequest]) -> None:
    request = make_request("the prompt", options={"command": ["my-agent", "--json"]})
    assert shell.build_argv(request) == ["my-agent", "--json"]
    assert shell.stdin_payload(request) == b"the prompt"


@pytest.mark.parametrize("command", [None, [], "my-agent --json", ["ok", 3], ["ok", ""]])
def test_without_exec_a_command_list_is_required(
    make_request: Callable[..., RunRequest], command: object
) -> None:
    with pytest.raises(ValueError, match="exec"):
        shell.build_argv(make_request(options={"command": command}))


def test_every_line_is_a_message_and_the_last_one_is_the_final_text() -> None:
    events, state = feed(shell, ["building\n", '{"type": "result"}\n', "\n", "all done\r\n"])
    assert [e.kind for e in events] == [EventKind.MESSAGE] * 4
    assert [e.text for e in events] == ["building", '{"type": "result"}', "", "all done"]
    assert state.final_text == "all done"


@pytest.mark.parametrize(
    ("exit_code", "success", "failure", "reason"),
    [
        (0, True, None, ""),
        (1, False, FailureKind.AGENT_ERROR, "exited with code 1"),
        (127, False, FailureKind.AGENT_ERROR, "exited with code 127"),
        (-9, False, FailureKind.CRASHED, "SIGKILL"),
        (None, False, FailureKind.CRASHED, "unknown"),
    ],
)
def test_the_exit_code_is_the_verdict(
    exit_code: int | None, success: bool, failure: FailureKind | None, reason: str
) -> None:
    outcome = shell.judge(feed(shell, ["x"])[1], exit_code)
    assert (outcome.success, outcome.failure) == (success, failure)
    assert reason in outcome.reason
