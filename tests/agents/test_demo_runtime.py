"""The `demo` runtime: its command line and pace, the scripted agent's scenarios, and its stream read
by the one Claude Code parser (the agent runs as a real subprocess in a real git repo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from speedrift.agents import preflight
from speedrift.agents.choose import RUNTIME_NAMES, runtime_for, select_runtime
from speedrift.agents.demo import AGENT_SCRIPT, PACE_ENV, DemoRuntime, demo_pace
from speedrift.agents.demo_agent import plan
from speedrift.agents.protocol import EventKind, ParseState, RunRequest
from speedrift.demo.ecosystem import SMOKE_TEST
from speedrift.errors import InvalidValue
from tests.gitrepo import make_repo


def _request(tmp_path: Path, prompt: str = "# Task t: T\n") -> RunRequest:
    return RunRequest(task_id="t", attempt=1, prompt=prompt, prompt_file=tmp_path / "p.md", cwd=tmp_path)


def test_demo_is_a_runtime_name_and_a_repo_may_default_to_it() -> None:
    assert "demo" in RUNTIME_NAMES
    assert isinstance(runtime_for("demo"), DemoRuntime)
    assert select_runtime({"id": "x"}, "demo") == ("demo", None)


def test_the_argv_runs_this_interpreter_isolated_on_the_agent_script_with_the_pace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PACE_ENV, "0.25")

    argv = DemoRuntime().build_argv(_request(tmp_path))

    assert argv == [sys.executable, "-I", str(AGENT_SCRIPT), "--pace", "0.25"]
    assert DemoRuntime().stdin_payload(_request(tmp_path, "hello")) == b"hello"


@pytest.mark.parametrize("bad", ["0", "-1", "fast", "nan", "1000"])
def test_a_pace_that_is_not_a_positive_number_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(InvalidValue, match=PACE_ENV):
        demo_pace({PACE_ENV: bad})


def test_an_unset_pace_is_one() -> None:
    assert demo_pace({}) == 1.0


def test_the_preflight_finds_the_demo_runtime_ready_without_a_login() -> None:
    result = preflight.check("demo", env={"PATH": os.defpath})

    assert result.ready and result.auth == "n/a" and result.path == sys.executable


@pytest.mark.parametrize(
    ("prompt", "scenario", "misstep"),
    [
        ("# Task a: A\n\ndemo-scenario: failing_test\n", "failing_test", True),
        (
            "# Task a: A\ndemo-scenario: failing_test\n## Earlier attempts\n- attempt 1: failed — x\n",
            "failing_test",
            False,
        ),
        (
            "# Task a: A\ndemo-scenario: stubborn\n## Earlier attempts\n- attempt 1: failed — x\n",
            "stubborn",
            True,
        ),
        ("# Task a: A\ndemo-scenario: question\n## Guidance for this retry\nDrop them.\n", "question", False),
        ("# Task a: A\ndemo-scenario: teleport\n", "land", False),
    ],
)
def test_the_scenario_and_whether_this_attempt_errs_come_from_the_prompt(
    prompt: str, scenario: str, misstep: bool
) -> None:
    todo = plan(prompt)

    assert (todo["scenario"], todo["misstep"]) == (scenario, misstep)


def _run_agent(repo: Path, prompt: str) -> tuple[list[str], int]:
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "SPEEDRIFT_RESULT": str(repo / ".speedrift" / "result.json"),
    }
    done = subprocess.run(
        DemoRuntime().build_argv(_request(repo)),
        input=prompt,
        cwd=repo,
        env=env | {PACE_ENV: "0.001"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout.splitlines(), done.returncode


def _demo_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_smoke.py").write_text(SMOKE_TEST)
    return repo


def _unittest(repo: Path) -> int:
    argv = [sys.executable, "-m", "unittest", "discover", "-s", "tests"]
    return subprocess.run(argv, cwd=repo, capture_output=True, timeout=120, check=False).returncode


def test_a_landing_run_streams_claude_events_edits_files_and_is_judged_a_success(tmp_path: Path) -> None:
    repo = _demo_repo(tmp_path)
    lines, code = _run_agent(repo, "# Task sort-items: Sort the items\n\ndemo-scenario: land\n")
    runtime, state = DemoRuntime(), ParseState()

    events = [event for line in lines for event in runtime.parse_line(line, state)]
    outcome = runtime.judge(state, code)

    kinds = [event.kind for event in events]
    assert kinds[0] is EventKind.STARTED and events[0].data["session_id"].startswith("demo-")
    assert kinds[-1] is EventKind.FINISHED
    tools = {event.data.get("tool") for event in events if event.kind is EventKind.TOOL_USE}
    assert {"Bash", "Read", "Write"} <= tools
    assert any(event.data.get("thinking") for event in events)
    assert outcome.success and outcome.usage.cost_usd > 0 and outcome.usage.output_tokens > 0
    assert (repo / "sort_items.py").is_file() and _unittest(repo) == 0


def test_a_failing_test_scenario_fails_first_and_its_retry_with_the_failure_in_the_prompt_fixes_it(
    tmp_path: Path,
) -> None:
    repo = _demo_repo(tmp_path)
    first = "# Task fix: Fix\n\n## Description\ndemo-scenario: failing_test\n"

    _run_agent(repo, first)
    failing = _unittest(repo)
    _run_agent(repo, first + "\n## Earlier attempts\n- attempt 1: failed — the tests gate failed\n")

    assert failing != 0
    assert _unittest(repo) == 0


def test_a_leak_scenario_writes_a_made_up_live_key_and_its_retry_reads_it_from_the_environment(
    tmp_path: Path,
) -> None:
    repo = _demo_repo(tmp_path)
    prompt = "# Task pay: Pay\n\ndemo-scenario: leak\n"

    _run_agent(repo, prompt)
    leaked = (repo / "pay_settings.py").read_text()
    _run_agent(repo, prompt + "## Guidance for this retry\nkeys come from the environment\n")

    assert "sk_live_" in leaked
    assert "os.environ" in (repo / "pay_settings.py").read_text()


def test_a_question_scenario_reports_itself_blocked_with_the_question(tmp_path: Path) -> None:
    repo = _demo_repo(tmp_path)

    _lines, code = _run_agent(repo, "# Task ask: Ask\n\ndemo-scenario: question\n")

    report = (repo / ".speedrift" / "result.json").read_text()
    assert code == 0 and '"blocked"' in report and "duplicates" in report
    assert not (repo / "ask.py").exists()
