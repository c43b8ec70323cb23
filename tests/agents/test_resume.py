"""Session resume at the runtime level: each CLI's resume argv (against the pinned --help texts),
the session id read from its events, and the fake CLIs continuing a kept session — or refusing
one that is gone, before any event, as the real CLIs do."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from speedrift.agents.choose import runtime_for
from speedrift.agents.claude import ClaudeRuntime
from speedrift.agents.codex import CodexRuntime
from speedrift.agents.opencode import OpenCodeRuntime
from speedrift.agents.protocol import RunRequest
from speedrift.agents.session import run_session
from tests.agents.conftest import FakeAgents, help_text
from tests.agents.support import documented, feed, flags

Make = Callable[..., RunRequest]
START = {"do": "start"}
FINISH = {"do": "finish", "text": "Done."}
SESSION = "6531fac7-1e22-45d1-b39f-bbda63d6b54b"


def test_claude_resumes_with_resume_and_keeps_sessions_only_when_asked(make_request: Make) -> None:
    claude = ClaudeRuntime()
    fresh = claude.build_argv(make_request())
    assert fresh[-1] == "--no-session-persistence"
    kept = claude.build_argv(make_request(persist_session=True))
    assert "--no-session-persistence" not in kept and "--resume" not in kept
    resumed = claude.build_argv(make_request(resume_session=SESSION, persist_session=True))
    assert resumed[-2:] == ["--resume", SESSION] and "--no-session-persistence" not in resumed
    assert all(documented(flag, help_text("claude.txt")) for flag in flags(resumed))


def test_codex_resumes_with_the_exec_resume_subcommand_after_its_options(make_request: Make) -> None:
    codex = CodexRuntime()
    assert "--ephemeral" in codex.build_argv(make_request())
    assert "--ephemeral" not in codex.build_argv(make_request(persist_session=True))
    argv = codex.build_argv(make_request(model="gpt-5", resume_session=SESSION, persist_session=True))
    assert argv[:3] == ["codex", "exec", "--json"]
    assert argv[-3:] == ["resume", SESSION, "-"]  # `codex exec [OPTIONS] resume <SESSION_ID> [PROMPT]`
    assert argv.index("-m") < argv.index("resume") and "--ephemeral" not in argv
    text = help_text("codex-exec.txt")
    assert re.search(r"^\s+resume\s+Resume a previous session by id", text, re.MULTILINE)
    assert all(documented(flag, text) for flag in flags(argv))


def test_opencode_resumes_with_its_session_flag_before_the_attached_file(make_request: Make) -> None:
    opencode = OpenCodeRuntime()
    argv = opencode.build_argv(make_request(resume_session="ses_e04bab2faffe7dAQS2IWhsBY7w"))
    at = argv.index("--session")
    assert argv[at + 1] == "ses_e04bab2faffe7dAQS2IWhsBY7w" and at < argv.index("--file")
    assert all(documented(flag, help_text("opencode-run.txt")) for flag in flags(argv))
    assert "--session" not in opencode.build_argv(make_request())


@pytest.mark.parametrize(
    ("cli", "line", "session"),
    [
        ("claude", {"type": "system", "subtype": "init", "session_id": SESSION, "model": "m"}, SESSION),
        ("codex", {"type": "thread.started", "thread_id": "01a1fb38-8082-72c3"}, "01a1fb38-8082-72c3"),
        (
            "opencode",
            {"type": "step_start", "sessionID": "ses_e04b", "part": {"type": "step-start", "messageID": "m"}},
            "ses_e04b",
        ),
    ],
)
def test_each_runtime_reads_its_session_id_into_the_outcome(
    cli: str, line: dict[str, object], session: str
) -> None:
    runtime = runtime_for(cli)
    _events, state = feed(runtime, [json.dumps(line)])
    assert state.session_id == session
    assert runtime.judge(state, 1).session_id == session


@pytest.mark.parametrize("cli", ["claude", "codex", "opencode"])
def test_a_fake_cli_continues_the_session_an_earlier_run_kept(
    cli: str, fakes: FakeAgents, make_request: Make, tmp_path: Path
) -> None:
    record = tmp_path / "seen.json"
    fakes.scenario({"do": "record", "path": str(record)}, START, FINISH)
    first = run_session(
        runtime_for(cli),
        make_request("FIRST PROMPT", persist_session=True),
        env=fakes.env(),
        run_dir=tmp_path / "run1",
    )
    assert first.success and first.session_id, first.reason
    request = make_request("NEW CONTEXT", resume_session=first.session_id, persist_session=True)
    request = replace(request, prompt_file=tmp_path / "run2" / "prompt.md")
    second = run_session(runtime_for(cli), request, env=fakes.env(), run_dir=tmp_path / "run2")
    assert second.success, second.reason
    assert second.session_id == first.session_id
    seen = json.loads(record.read_text())
    assert seen["conversation"] == ["FIRST PROMPT"]  # the continued session's earlier turn
    assert ("NEW CONTEXT" in seen["stdin"]) is (cli != "opencode")


@pytest.mark.parametrize("cli", ["claude", "codex", "opencode"])
def test_a_fake_cli_refuses_a_session_that_is_not_there_before_any_event(
    cli: str, fakes: FakeAgents, make_request: Make, tmp_path: Path
) -> None:
    fakes.scenario(START, FINISH)
    run_dir = tmp_path / "run"
    outcome = run_session(
        runtime_for(cli), make_request(resume_session="ses_gone"), env=fakes.env(), run_dir=run_dir
    )
    assert not outcome.success and outcome.session_id is None
    assert outcome.usage.turns == 0 and outcome.usage.total_tokens == 0
    assert "ses_gone" in (run_dir / "stderr.log").read_text()


def test_claude_finds_a_kept_session_only_from_the_same_working_directory(
    fakes: FakeAgents, make_request: Make, tmp_path: Path
) -> None:
    fakes.scenario(START, FINISH)
    first = run_session(
        ClaudeRuntime(), make_request(persist_session=True), env=fakes.env(), run_dir=tmp_path / "r1"
    )
    assert first.session_id
    elsewhere = tmp_path / "other-worktree"
    elsewhere.mkdir()
    request = replace(make_request(resume_session=first.session_id), cwd=elsewhere)
    moved = run_session(ClaudeRuntime(), request, env=fakes.env(), run_dir=tmp_path / "r2")
    assert not moved.success and moved.session_id is None
