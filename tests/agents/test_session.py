"""The session with fake agent CLIs: spawning, streaming, budgets, kills, cancel, verdicts.

The fakes in `fakes/` speak each real CLI's event format, edit files in their working
directory and misbehave on request (stall, hang, ignore SIGTERM, leave a grandchild behind).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.agents.choose import runtime_for
from speedrift.agents.protocol import AgentEvent, Budgets, EventKind, FailureKind, ProviderFault, RunRequest
from speedrift.agents.result import AgentReport, apply_report, read_report
from speedrift.agents.session import run_session
from tests.agents.conftest import FakeAgents

Make = Callable[..., RunRequest]
START = {"do": "start"}
EDIT = {"do": "edit", "path": "hello.txt", "content": "hi\n"}
FINISH = {"do": "finish", "text": "Done."}


def _alive(pid: int) -> bool:
    """Whether `pid` is a live (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def _count(run_dir: Path, kind: EventKind) -> int:
    return sum(1 for e in _events(run_dir) if e["kind"] == kind.value)


def _stopped_by_speedrift(run_dir: Path) -> bool:
    """Whether the session stopped the agent (a budget, a stall, cancel): it logs why."""
    return any(e.get("data") == {"source": "speedrift"} for e in _events(run_dir))


class _ClockFrom:
    """A session clock that stands still until the agent's first event of ``kind``: budgets then
    count from a point in the scenario (its setup steps done), not from a spawn that a loaded
    machine can make slow. Without that event it starts after 60 s, so a broken run still ends."""

    def __init__(self, kind: EventKind) -> None:
        self.kind = kind
        self.created = time.monotonic()
        self.zero: float | None = None

    def seen(self, event: AgentEvent) -> None:
        if self.zero is None and event.kind is self.kind:
            self.zero = time.monotonic()

    def __call__(self) -> float:
        now = time.monotonic()
        if self.zero is None:
            return 0.0 if now - self.created < 60 else now - self.created
        return now - self.zero


@pytest.mark.parametrize("cli", ["claude", "codex", "opencode"])
def test_success_with_a_file_edit(cli: str, fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario(START, EDIT, FINISH)
    request = make_request()
    seen: list[AgentEvent] = []
    outcome = run_session(runtime_for(cli), request, env=fakes.env(), run_dir=run_dir, on_event=seen.append)
    assert outcome.success, outcome.reason
    assert outcome.exit_code == 0 and outcome.final_text == "Done."
    assert (request.cwd / "hello.txt").read_text() == "hi\n"
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (1600, 60)
    assert outcome.duration_s > 0
    logged = _events(run_dir)
    assert [e["kind"] for e in logged] == [e.kind.value for e in seen]
    assert any(e.kind is EventKind.TOOL_USE for e in seen)
    stamp = datetime.fromisoformat(logged[0]["ts"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)


@pytest.mark.parametrize("cli", ["claude", "codex"])
def test_the_prompt_goes_on_stdin_and_the_environment_is_scrubbed(
    cli: str,
    fakes: FakeAgents,
    make_request: Make,
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_must_not_leak")
    record = tmp_path / "seen.json"
    fakes.scenario({"do": "record", "path": str(record)}, START, FINISH)
    request = make_request("PROMPT-BODY: fix the bug")
    outcome = run_session(runtime_for(cli), request, env=fakes.env(), run_dir=run_dir)
    assert outcome.success
    seen = json.loads(record.read_text())
    assert seen["stdin"] == "PROMPT-BODY: fix the bug"
    assert not any("PROMPT-BODY" in arg for arg in seen["argv"])
    assert Path(seen["cwd"]) == request.cwd
    assert "GITHUB_TOKEN" not in seen["env"]
    assert seen["env"]["TZ"] == "UTC"  # pinned so reset times can be read back
    assert seen["env"]["SPEEDRIFT_RESULT"] == str(request.cwd / ".speedrift" / "result.json")


def test_opencode_gets_the_prompt_as_a_file_and_no_stdin(
    fakes: FakeAgents, make_request: Make, run_dir: Path, tmp_path: Path
) -> None:
    record = tmp_path / "seen.json"
    fakes.scenario({"do": "record", "path": str(record)}, FINISH)
    request = make_request("PROMPT-BODY")
    assert run_session(runtime_for("opencode"), request, env=fakes.env(), run_dir=run_dir).success
    seen = json.loads(record.read_text())
    assert seen["stdin"] == ""
    assert request.prompt_file.read_text() == "PROMPT-BODY"  # written by the session when missing
    assert seen["argv"][seen["argv"].index("--file") + 1] == str(request.prompt_file)


@pytest.mark.parametrize("cli", ["claude", "codex", "opencode"])
def test_auth_failure_is_typed(cli: str, fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario(START, {"do": "auth_failure"})
    outcome = run_session(runtime_for(cli), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.failure is FailureKind.AUTH
    assert outcome.exit_code == 1


@pytest.mark.parametrize("cli", ["claude", "codex", "opencode"])
def test_usage_limit_carries_its_reset_time(
    cli: str, fakes: FakeAgents, make_request: Make, run_dir: Path
) -> None:
    fakes.scenario(START, {"do": "usage_limit", "reset_in_s": 5400})
    before = datetime.now(UTC)
    outcome = run_session(runtime_for(cli), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.failure is FailureKind.USAGE_LIMIT
    assert outcome.reset_at is not None
    # Codex prints minutes only; claude and opencode carry the epoch.
    assert abs((outcome.reset_at - (before + timedelta(seconds=5400))).total_seconds()) < 70


def test_max_turns_reported_by_claude(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario(START, {"do": "max_turns", "turns": 3})
    outcome = run_session(runtime_for("claude"), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.failure is FailureKind.MAX_TURNS
    assert "Reached maximum number of turns (3)" in outcome.reason


@pytest.mark.parametrize("cli", ["codex", "opencode"])
def test_turn_budget_counted_from_events(
    cli: str, fakes: FakeAgents, make_request: Make, run_dir: Path
) -> None:
    # codex and opencode have no max-turns option: the session counts and stops them.
    # A turn every 0.2 s: the session stops the agent before it writes the next one, even loaded.
    fakes.scenario(START, {"do": "tool_loop", "count": 50, "every_s": 0.2}, FINISH)
    budgets = Budgets(max_turns=3, wall_clock_s=30, stall_s=10, kill_grace_s=2)
    outcome = run_session(runtime_for(cli), make_request(budgets=budgets), env=fakes.env(), run_dir=run_dir)
    assert outcome.failure is FailureKind.MAX_TURNS
    assert outcome.usage.turns == 4
    # stopped early (SIGTERM to the group), not after all 50 tool calls
    assert _count(run_dir, EventKind.TOOL_USE) < 50 and outcome.exit_code == -15
    assert _events(run_dir)[-1]["data"] == {"source": "speedrift"}


def test_token_budget(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    # a step every 0.2 s: the session stops the agent before it writes the next one, even loaded
    fakes.scenario(START, {"do": "tool_loop", "count": 50, "every_s": 0.2}, FINISH)
    budgets = Budgets(max_tokens=2000, wall_clock_s=30, stall_s=10, kill_grace_s=2)
    outcome = run_session(
        runtime_for("opencode"), make_request(budgets=budgets), env=fakes.env(), run_dir=run_dir
    )
    assert outcome.failure is FailureKind.BUDGET
    assert "token budget of 2000" in outcome.reason
    assert outcome.usage.total_tokens == 2490  # three steps of 830: the one that crossed the line


def test_stall_kills_a_quiet_agent(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario(START, {"do": "sleep", "s": 60})
    budgets = Budgets(stall_s=1.0, wall_clock_s=30, kill_grace_s=2)
    outcome = run_session(
        runtime_for("claude"), make_request(budgets=budgets), env=fakes.env(), run_dir=run_dir
    )
    assert outcome.failure is FailureKind.STALL
    # the session's own stall decision, on its own clock: never before the window ran out
    assert outcome.reason == "no progress for 1s" and outcome.duration_s >= budgets.stall_s
    assert outcome.exit_code == -15  # SIGTERM to the group was enough


def test_endless_reconnects_are_not_progress_and_end_at_the_retry_window(
    fakes: FakeAgents, make_request: Make, run_dir: Path
) -> None:
    fakes.scenario(START, {"do": "reconnect", "count": 200, "every_s": 0.1})
    # a stall window shorter than the retry window: reconnect notices are not silence either
    budgets = Budgets(stall_s=1.0, provider_retry_s=2.0, wall_clock_s=30, kill_grace_s=2)
    clock = _ClockFrom(EventKind.STARTED)  # the windows open once the fake runs
    outcome = run_session(
        runtime_for("codex"),
        make_request(budgets=budgets),
        env=fakes.env(),
        run_dir=run_dir,
        on_event=clock.seen,
        clock=clock,
    )
    assert outcome.failure is FailureKind.TRANSIENT, outcome.reason
    assert outcome.fault is not None and outcome.fault is not ProviderFault.AUTH
    assert "kept failing for 2s" in outcome.reason and "Reconnecting" in outcome.reason
    assert outcome.duration_s >= budgets.provider_retry_s


def test_the_runtime_can_end_a_hopeless_run_early(
    fakes: FakeAgents, make_request: Make, run_dir: Path
) -> None:
    # claude retries a 401 ten times over minutes; the second retry is enough to judge.
    fakes.scenario(START, {"do": "auth_retry"}, {"do": "sleep", "s": 60})
    outcome = run_session(runtime_for("claude"), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.failure is FailureKind.AUTH
    # ended on the runtime's verdict, not by a budget (the stall window, the 60 s sleep): the
    # session stopped nothing, it ended the group (SIGTERM) once the runtime had judged
    assert not _stopped_by_speedrift(run_dir) and outcome.exit_code == -15


@pytest.mark.parametrize("cli", ["claude", "codex", "opencode"])
def test_garbage_on_stdout_is_skipped(cli: str, fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario(START, {"do": "garbage"}, EDIT, {"do": "garbage"}, FINISH)
    outcome = run_session(runtime_for(cli), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.success, outcome.reason
    assert outcome.usage.output_tokens == 60


def test_wall_clock_kills_the_whole_group_even_a_grandchild(
    fakes: FakeAgents, make_request: Make, run_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    fakes.scenario(
        START,
        {"do": "spawn_grandchild", "pid_file": str(pid_file)},
        {"do": "ignore_sigterm"},  # so the grace period runs out and SIGKILL follows
        {"do": "tool_loop", "count": 1000, "every_s": 0.05},
    )
    budgets = Budgets(wall_clock_s=1.5, stall_s=30, kill_grace_s=0.5)
    clock = _ClockFrom(EventKind.TOOL_USE)  # by then the grandchild runs and SIGTERM is ignored
    outcome = run_session(
        runtime_for("codex"),
        make_request(budgets=budgets),
        env=fakes.env(),
        run_dir=run_dir,
        on_event=clock.seen,
        clock=clock,
    )
    assert outcome.failure is FailureKind.BUDGET
    assert "wall-clock" in outcome.reason
    assert outcome.exit_code == -9
    assert _count(run_dir, EventKind.TOOL_USE) < 1000  # the budget cut the loop short
    assert not _alive(int(pid_file.read_text()))


def test_a_grandchild_left_behind_after_a_normal_exit_is_ended(
    fakes: FakeAgents, make_request: Make, run_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    fakes.scenario(START, {"do": "spawn_grandchild", "pid_file": str(pid_file)}, EDIT, FINISH)
    outcome = run_session(runtime_for("claude"), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.success
    # the grandchild's open stdout does not hold the run: it ends on the agent's own exit, not
    # when a budget (the stall window) stops it
    assert not _stopped_by_speedrift(run_dir) and outcome.exit_code == 0
    assert not _alive(int(pid_file.read_text()))


def test_killed_mid_run_is_a_crash(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario(START, EDIT, {"do": "kill_self"})
    outcome = run_session(runtime_for("claude"), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.failure is FailureKind.CRASHED
    assert outcome.exit_code == -9


@pytest.mark.parametrize(("code", "failure"), [(0, FailureKind.INCOMPLETE), (1, FailureKind.CRASHED)])
def test_no_final_event_is_never_success(
    code: int, failure: FailureKind, fakes: FakeAgents, make_request: Make, run_dir: Path
) -> None:
    fakes.scenario(
        START, EDIT, {"do": "stderr", "text": "boom: lost connection\n"}, {"do": "exit", "code": code}
    )
    outcome = run_session(runtime_for("codex"), make_request(), env=fakes.env(), run_dir=run_dir)
    assert not outcome.success and outcome.failure is failure
    if failure is FailureKind.CRASHED:
        assert "boom: lost connection" in outcome.reason


def test_opencode_auto_rejected_permissions(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario({"do": "rejected"})
    outcome = run_session(runtime_for("opencode"), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.exit_code == 0
    assert outcome.failure is FailureKind.INCOMPLETE


def test_cancel_kills_the_group(fakes: FakeAgents, make_request: Make, run_dir: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    fakes.scenario(START, {"do": "spawn_grandchild", "pid_file": str(pid_file)}, {"do": "sleep", "s": 60})
    cancel = threading.Event()

    def cancel_once_the_grandchild_runs() -> None:  # not on a timer: a loaded machine starts slowly
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (pid_file.exists() and pid_file.read_text().strip()):
            time.sleep(0.02)
        cancel.set()

    threading.Thread(target=cancel_once_the_grandchild_runs, daemon=True).start()
    outcome = run_session(
        runtime_for("claude"), make_request(), env=fakes.env(), run_dir=run_dir, cancel=cancel
    )
    assert (outcome.failure, outcome.reason) == (FailureKind.CRASHED, "cancelled")
    # the cancel stopped it, not a budget: the session's last word is why it stopped the agent
    assert _events(run_dir)[-1]["text"] == "speedrift stopped the agent: cancelled"
    assert not _alive(int(pid_file.read_text()))


def test_stderr_goes_to_a_capped_log(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario({"do": "stderr", "text": "x" * 1023 + "\n", "times": 1500}, START, FINISH)
    outcome = run_session(runtime_for("claude"), make_request(), env=fakes.env(), run_dir=run_dir)
    assert outcome.success
    log = (run_dir / "stderr.log").read_bytes()
    assert len(log) < 1024 * 1024 + 200
    assert log.endswith(
        f"[speedrift: {1500 * 1024 - 1024 * 1024} further bytes of stderr dropped]\n".encode()
    )


def test_missing_executable_is_not_installed(make_request: Make, run_dir: Path, tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path / "empty-bin"), "HOME": str(tmp_path)}
    outcome = run_session(runtime_for("opencode"), make_request(), env=env, run_dir=run_dir)
    assert outcome.failure is FailureKind.NOT_INSTALLED
    assert "npm install -g opencode-ai" in outcome.reason
    shell = run_session(
        runtime_for("shell"), make_request(options={"command": ["no-such-agent"]}), env=env, run_dir=run_dir
    )
    assert shell.failure is FailureKind.NOT_INSTALLED


def test_invalid_options_are_a_config_failure(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    request = make_request(options={"sandbox": "wide-open"})
    outcome = run_session(runtime_for("codex"), request, env=fakes.env(), run_dir=run_dir)
    assert outcome.failure is FailureKind.CONFIG and "sandbox" in outcome.reason


def test_shell_exec_task(make_request: Make, run_dir: Path, fakes: FakeAgents) -> None:
    request = make_request(exec_command="echo built > out.txt; echo line one; echo 'line two'")
    outcome = run_session(runtime_for("shell"), request, env=fakes.env(), run_dir=run_dir)
    assert outcome.success and outcome.final_text == "line two"
    assert (request.cwd / "out.txt").read_text() == "built\n"
    assert [e["text"] for e in _events(run_dir)] == ["line one", "line two"]


def test_shell_failure_and_command_with_prompt(make_request: Make, run_dir: Path, fakes: FakeAgents) -> None:
    failing = run_session(
        runtime_for("shell"), make_request(exec_command="exit 3"), env=fakes.env(), run_dir=run_dir
    )
    assert failing.failure is FailureKind.AGENT_ERROR and failing.exit_code == 3
    request = make_request("prompt via stdin", options={"command": ["/bin/sh", "-c", "cat > got.txt"]})
    assert run_session(runtime_for("shell"), request, env=fakes.env(), run_dir=run_dir).success
    assert (request.cwd / "got.txt").read_text() == "prompt via stdin"


def test_result_file_is_handed_over_and_a_blocked_report_fails_the_attempt(
    fakes: FakeAgents, make_request: Make, run_dir: Path
) -> None:
    report = {"status": "blocked", "summary": "which database?", "concerns": ["spec gap"]}
    request = make_request()
    stale = request.cwd / ".speedrift" / "result.json"
    stale.parent.mkdir()
    stale.write_text('{"status": "done"}')  # from an earlier run: must not count
    fakes.scenario(START, {"do": "result_file", "report": report}, FINISH)
    outcome = run_session(runtime_for("claude"), request, env=fakes.env(), run_dir=run_dir)
    assert outcome.success and outcome.result_file == stale
    parsed, reason = read_report(stale)
    assert parsed == AgentReport("blocked", "which database?", concerns=("spec gap",)) and reason == ""
    final = apply_report(outcome, parsed)
    assert final.failure is FailureKind.BLOCKED and "which database?" in final.reason


def test_stale_result_file_is_removed(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    request = make_request()
    stale = request.cwd / ".speedrift" / "result.json"
    stale.parent.mkdir()
    stale.write_text('{"status": "blocked"}')
    fakes.scenario(START, FINISH)
    outcome = run_session(runtime_for("claude"), request, env=fakes.env(), run_dir=run_dir)
    assert outcome.success and not stale.exists()
    assert read_report(stale)[0] is None


def test_a_failing_callback_still_ends_the_group(
    fakes: FakeAgents, make_request: Make, run_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    fakes.scenario({"do": "spawn_grandchild", "pid_file": str(pid_file)}, START, {"do": "sleep", "s": 60})

    def explode(event: AgentEvent) -> None:
        raise RuntimeError("dashboard down")

    with pytest.raises(RuntimeError, match="dashboard down"):
        run_session(runtime_for("claude"), make_request(), env=fakes.env(), run_dir=run_dir, on_event=explode)
    assert not _alive(int(pid_file.read_text()))


def test_no_process_is_left_in_the_group(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    fakes.scenario(START, {"do": "sleep", "s": 60})
    seen: list[int] = []
    budgets = Budgets(stall_s=0.5, wall_clock_s=30, kill_grace_s=1)
    clock = _ClockFrom(EventKind.STARTED)  # the stall window opens once the fake has spoken

    def look(event: AgentEvent) -> None:
        clock.seen(event)
        seen.extend(p for p in _group_pids() if p != os.getpid())

    run_session(
        runtime_for("claude"),
        make_request(budgets=budgets),
        env=fakes.env(),
        run_dir=run_dir,
        on_event=look,
        clock=clock,
    )
    assert seen  # the fake was in a group of its own while it ran ...
    assert not any(_alive(p) for p in seen)  # ... and nothing of it is left


def _group_pids() -> list[int]:
    """Processes that are group leaders of a group other than ours (the session's children)."""
    own = os.getpgrp()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[1]) == os.getpid() and int(fields[2]) != own:  # our child, own group
                found.append(int(entry.name))
    return found


def test_budgets_run_on_the_injected_clock(fakes: FakeAgents, make_request: Make, run_dir: Path) -> None:
    # A clock that jumps an hour after the spawn: the wall-clock budget is spent at once.
    ticks = iter([0.0, 0.0])
    fakes.scenario(START, {"do": "sleep", "s": 60})
    outcome = run_session(
        runtime_for("claude"),
        make_request(budgets=Budgets(wall_clock_s=600, stall_s=7200, kill_grace_s=1)),
        env=fakes.env(),
        run_dir=run_dir,
        clock=lambda: next(ticks, 3600.0),
    )
    assert outcome.failure is FailureKind.BUDGET
    assert outcome.duration_s == 3600.0
