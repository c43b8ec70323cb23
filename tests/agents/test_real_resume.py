"""Session resume with the real CLIs against the local mock provider (fleet/resume.py, the runtimes'
resume argv). Run 1 keeps its session in a task's session store, bound into a private HOME that
is removed when the run ends. Run 2 gets a new private home and continues that session with only
the new context, from another worktree (opencode: the same one). The mock sees the earlier
conversation in the request; a session id the CLI does not know fails before any turn."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from speedrift.agents import sandbox
from speedrift.agents.choose import runtime_for
from speedrift.agents.protocol import RunOutcome, RunRequest
from speedrift.agents.session import run_session
from speedrift.fleet.resume import carry_claude_session
from tests.agents.mock_provider import Script, Step
from tests.agents.realcli import PROMPT, Cli

pytestmark = pytest.mark.agent_cli

NEW_CONTEXT = "Continue: the worktree is fresh. Reply with the word resumed."


def run_in_store(cli: Cli, request: RunRequest, store: Path, run: str) -> RunOutcome:
    """One sandboxed run whose runtime's session directory is the task's store."""
    run_dir = cli.tmp / run
    policy = sandbox.Policy(
        cli.bwrap, worktree=request.cwd, run_dir=run_dir, runtime=cli.name, sessions=store
    )
    return run_session(runtime_for(cli.name), request, env=cli.env(), run_dir=run_dir, sandboxed=policy)


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_a_real_cli_resumes_its_session_and_the_provider_sees_the_earlier_conversation(
    name: str,
    cli_for: Callable[[str, Script], Cli],
    request_for: Callable[..., RunRequest],
    tmp_path: Path,
) -> None:
    store = tmp_path / "sessions"
    first_cli = cli_for(
        name, Script(steps=[Step("write", "hello.txt", content="hi\n")], final_text="Wrote it.")
    )
    first = run_in_store(first_cli, replace(request_for(name), persist_session=True), store, "run1")
    assert first.success and first.session_id, first.reason
    assert not (tmp_path / "run1" / "sandbox").exists()  # its private home is gone, the store is not
    assert any(p.is_file() for p in (store / name).rglob("*"))

    # attempt 2: another worktree, another private home, only the new context on stdin / attached.
    # opencode 1.18.33 resumes a session only in its own directory (from another worktree of the
    # same repository the run hangs after its model call): fleet/resume.py resumes it only in a
    # revision round, in the same worktree, as here.
    cwd = tmp_path / "worktree-2"
    if name == "opencode":
        cwd = request_for(name).cwd
    cwd.mkdir(exist_ok=True)
    if name == "claude":
        carry_claude_session(store / "claude", first.session_id, cwd)
    second_cli = cli_for(name, Script(final_text="resumed"))
    request = replace(
        request_for(name),
        cwd=cwd,
        prompt=NEW_CONTEXT,
        prompt_file=tmp_path / "run2" / "prompt.md",
        resume_session=first.session_id,
        persist_session=True,
    )
    second = run_in_store(second_cli, request, store, "run2")
    assert second.success, second.reason
    assert second.final_text == "resumed"
    calls = second_cli.provider.agent_calls()
    assert calls, "the resumed run made no model call"
    sent = json.dumps(calls[0].body)
    assert PROMPT in sent and NEW_CONTEXT in sent  # the earlier conversation, then the new turn
    assert "hello.txt" in sent  # run 1's tool call is part of it


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_a_real_cli_given_an_unknown_session_fails_before_any_turn(
    name: str,
    cli_for: Callable[[str, Script], Cli],
    request_for: Callable[..., RunRequest],
    tmp_path: Path,
) -> None:
    unknown = {"opencode": "ses_0000000000000000000000000"}.get(name, "0e3faa5f-0000-4000-8000-000000000000")
    cli = cli_for(name, Script(final_text="should not be reached"))
    request = replace(request_for(name), resume_session=unknown, persist_session=True)
    outcome = run_in_store(cli, request, tmp_path / "sessions", "run")
    assert not outcome.success
    assert outcome.fault is None and outcome.usage.turns == 0 and outcome.usage.total_tokens == 0, outcome
    assert cli.provider.agent_calls() == []
