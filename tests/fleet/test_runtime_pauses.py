"""Runtime pauses are machine-wide and durable, and a runtime that cannot run is found before any
task fails on it: usage limits, auth failures and failed preflights pause the runtime in the
state home every supervisor reads (``speedrift run``, the service, the hub's workers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift import pausestore
from speedrift.agents import preflight
from speedrift.agents.protocol import FailureKind
from speedrift.fleet import pauses
from speedrift.fleet.pipeline import RunOptions
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops
from speedrift.graph.store import GraphStore, init_graph_dir
from speedrift.pausestore import RuntimePause
from tests.fleet.conftest import Workshop, claude_bin
from tests.gitrepo import make_repo

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def scenario(tmp_path: Path, *steps: dict[str, object]) -> None:
    (tmp_path / "scenario.json").write_text(json.dumps(list(steps)))  # $FAKE_AGENT_SCENARIO (on_path)


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = claude_bin(tmp_path)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(tmp_path / "scenario.json"))
    preflight.forget()  # verdicts cached by an earlier test in this process
    return folder


FAKE_ENV = {"allow": ["FAKE_AGENT_SCENARIO"]}


def usage_limit(tmp_path: Path, reset_in_s: int = 5400) -> None:
    scenario(tmp_path, {"do": "start"}, {"do": "usage_limit", "reset_in_s": reset_in_s})


def other_repo(tmp_path: Path, task_id: str) -> Path:
    repo = make_repo(tmp_path / "other", {"README.md": "# other\n"})
    store = GraphStore(init_graph_dir(repo))
    spec = ops.NewTask("Waits for claude", task_id=task_id, model="claude:sonnet")
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
    return repo


def test_a_usage_limit_in_one_repo_makes_speedrift_run_in_another_refuse_without_claiming(
    workshop: Workshop, tmp_path: Path, on_path: Path
) -> None:
    usage_limit(tmp_path)
    workshop.add("limited", model="claude:sonnet")
    result = workshop.pipeline(env=FAKE_ENV).run("limited", RunOptions())
    assert (result.status, result.failure) == ("failed", "usage_limit")
    recorded = pauses.blocking_pause("claude")
    assert recorded is not None and recorded.cause == "usage_limit" and recorded.task == "limited"
    assert recorded.until is not None and recorded.until > datetime.now(UTC) + timedelta(minutes=80)

    other = other_repo(tmp_path, "waiting")
    done = subprocess.run(
        [sys.executable, "-m", "speedrift", "run", "waiting"],
        cwd=other, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done
    assert "claude is paused until" in done.stderr and "usage limit" in done.stderr
    assert "speedrift resume-runtime claude" in done.stderr
    task = GraphStore(other / ".workgraph").load().tasks["waiting"]
    assert task["status"] == "open" and "speedrift" not in task  # never claimed: no attempt burned
    assert not (other / ".speedrift" / "runs").exists()


def test_the_pause_lifts_at_its_reset_time() -> None:
    reset = NOW + timedelta(minutes=90)
    pause = RuntimePause("claude", "usage_limit", "session limit", NOW, reset, "", "test")
    assert pausestore.put(pause, NOW) == (pause, True)
    assert pauses.blocking_pause("claude", None, NOW + timedelta(minutes=89, seconds=59)) == pause
    assert pauses.blocking_pause("claude", None, reset) is None
    assert pauses.blocking_pause("codex", None, NOW) is None  # one runtime's pause holds only it
    text = pause.sentence(NOW)
    assert text == "claude is paused until 13:30 UTC: usage limit: session limit"


def test_a_second_process_hitting_the_same_limit_raises_no_second_escalation() -> None:
    first = RuntimePause(
        "claude", "auth_failure", "401", NOW, None, "claude auth login", "a", needs_human=True
    )
    later = RuntimePause("claude", "usage_limit", "limit", NOW, NOW + timedelta(hours=1), "", "b")
    assert pausestore.put(first, NOW) == (first, True)
    assert pausestore.put(later, NOW) == (first, False)  # only a human lifts the first one anyway
    assert [p.set_by for p in pausestore.read().pauses] == ["a"]


def test_writers_in_several_processes_lose_no_pause(tmp_path: Path) -> None:
    code = (
        "import sys; from datetime import UTC, datetime, timedelta; from speedrift import pausestore;"
        "now = datetime.now(UTC); r = sys.argv[1];"
        "until = now + timedelta(hours=1);"
        "pausestore.put(pausestore.RuntimePause(r, 'usage_limit', 'x', now, until, '', r), now)"
    )
    runtimes = ["claude", "codex", "opencode", "shell"]
    procs = [subprocess.Popen([sys.executable, "-c", code, r], env=dict(os.environ)) for r in runtimes]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert sorted(p.runtime for p in pausestore.read().pauses) == sorted(runtimes)


def test_a_missing_cli_pauses_its_runtime_once_with_one_escalation_and_fails_no_task(
    workshop: Workshop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no claude anywhere on it
    preflight.forget()
    for task_id in ("t1", "t2", "t3"):
        workshop.add(task_id, model="claude:sonnet")
    pipeline = workshop.pipeline()
    for task_id in ("t1", "t2", "t3"):
        with pytest.raises(pauses.RuntimePaused) as refused:
            pipeline.run(task_id, RunOptions())
        assert "claude is not installed" in str(refused.value)
        assert "npm install -g @anthropic-ai/claude-code" in str(refused.value)
    [pause] = pausestore.read().pauses
    assert (pause.runtime, pause.cause, pause.needs_human, pause.until) == ("claude", "preflight", True, None)
    assert pause.fix == "install Claude Code: npm install -g @anthropic-ai/claude-code"
    assert pause.task == "t1" and pause.sentence(NOW).startswith("claude is paused until a human lifts it")
    tasks = workshop.store.load().tasks
    assert {tasks[t]["status"] for t in ("t1", "t2", "t3")} == {"open"}
    assert not any("speedrift" in tasks[t] for t in ("t1", "t2", "t3"))  # no attempt, no failure
    assert not (workshop.repo / ".speedrift" / "runs").exists()


def test_an_unauthenticated_cli_is_paused_before_its_first_task_with_the_login_fix(
    workshop: Workshop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = claude_bin(tmp_path, logged_in=False)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin:/bin")
    preflight.forget()
    workshop.add("t1", model="claude:sonnet")
    with pytest.raises(pauses.RuntimePaused) as refused:
        workshop.pipeline().run("t1", RunOptions())
    assert "claude is not logged in" in str(refused.value)
    [pause] = pausestore.read().pauses
    assert "claude auth login" in pause.fix and "[env] secrets" in pause.fix
    assert workshop.store.load().tasks["t1"]["status"] == "open"


def test_an_auth_failure_pauses_the_runtime_until_a_human_lifts_it(
    workshop: Workshop, tmp_path: Path, on_path: Path
) -> None:
    scenario(tmp_path, {"do": "start"}, {"do": "auth_failure"})
    workshop.add("t1", model="claude:sonnet")
    workshop.add("t2", model="claude:sonnet")
    pipeline = workshop.pipeline(env=FAKE_ENV)
    assert pipeline.run("t1", RunOptions()).failure == "auth_failure"
    pause = pauses.blocking_pause("claude", None, datetime.now(UTC) + timedelta(days=30))
    assert pause is not None and pause.cause == "auth_failure" and pause.needs_human
    assert "claude auth login" in pause.fix
    with pytest.raises(pauses.RuntimePaused):
        pipeline.run("t2", RunOptions())
    assert workshop.store.load().tasks["t2"]["status"] == "open"
    lifted = pauses.resume("claude", by="test")
    assert [p.cause for p in lifted] == ["auth_failure"] and pauses.blocking_pause("claude") is None


def test_repeated_rate_limits_pause_the_runtime() -> None:
    now = NOW
    for n in range(pauses.RATE_LIMIT_STRIKES):
        noted = pauses.note_failure(
            runtime="claude",
            model=None,
            failure_class="transient_infra",
            reason="API Error: Request rejected (429) · rate limited",
            reset_at=None,
            set_by="test",
            now=now + timedelta(minutes=n),
        )
        if n < pauses.RATE_LIMIT_STRIKES - 1:
            assert noted is None
    assert noted is not None
    pause, new = noted
    assert (
        new
        and pause.cause == "rate_limit"
        and pause.until == now + timedelta(minutes=2) + pauses.RATE_LIMIT_PAUSE
    )
    assert pauses.note_failure(  # a 5xx is not a rate limit
        runtime="codex", model=None, failure_class="transient_infra", reason="HTTP 502", reset_at=None,
        set_by="test", now=now,
    ) is None  # fmt: skip


def test_a_rate_limit_with_a_reset_holds_the_runtime_until_that_reset_at_once() -> None:
    reset = NOW + timedelta(seconds=95)
    noted = pauses.note_failure(
        runtime="claude",
        model=None,
        failure_class="transient_infra",
        reason="API Error: Request rejected (429) · Number of requests has exceeded your rate limit",
        reset_at=reset,
        set_by="test",
        now=NOW,
        runtime_failure=FailureKind.RATE_LIMIT,
    )
    assert noted is not None
    pause, new = noted
    assert new and pause.cause == "rate_limit" and pause.until == reset and pause.reset_at == reset
    assert not pause.needs_human
    assert pauses.blocking_pause("claude", None, reset - timedelta(seconds=1)) == pause
    assert pauses.blocking_pause("claude", None, reset) is None
    assert pause.sentence(NOW).startswith("claude is paused until 12:01:35 UTC: rate limit: API Error")


def test_a_rate_limit_without_a_reset_holds_the_runtime_for_a_minute() -> None:
    noted = pauses.note_failure(
        runtime="codex",
        model=None,
        failure_class="transient_infra",
        reason="exceeded retry limit, last status: 429 Too Many Requests",
        reset_at=None,
        set_by="test",
        now=NOW,
        runtime_failure=FailureKind.RATE_LIMIT,
    )
    assert noted is not None
    pause, _ = noted
    assert pause.until == NOW + pauses.RATE_LIMIT_HOLD and "no reset time given" in pause.reason


def test_a_transient_fault_that_is_no_rate_limit_holds_nothing() -> None:
    noted = pauses.note_failure(
        runtime="codex",
        model=None,
        failure_class="transient_infra",
        reason="stream disconnected before completion",
        reset_at=None,
        set_by="test",
        now=NOW,
        runtime_failure=FailureKind.TRANSIENT,
    )
    assert noted is None and pauses.blocking_pause("codex", None, NOW) is None


def test_a_pause_survives_a_service_restart(workshop: Workshop, tmp_path: Path, on_path: Path) -> None:
    usage_limit(tmp_path)
    workshop.add("limited", model="claude:sonnet")
    assert workshop.pipeline(env=FAKE_ENV).run("limited", RunOptions()).failure == "usage_limit"
    # a service started afterwards (a restart, another process): it knows the pause from disk
    workshop.add("next", model="claude:sonnet")
    workshop.add("plain", "echo plain > plain.txt")
    loop = ServiceLoop(workshop.pipeline(env=FAKE_ENV, service={"poll_seconds": 0.05}))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while workshop.store.load().tasks["plain"]["status"] != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    loop.stop.set()
    thread.join(timeout=30)
    tasks = workshop.store.load().tasks
    assert tasks["plain"]["status"] == "done"
    assert tasks["next"]["status"] == "open" and "speedrift" not in tasks["next"]  # skipped, never claimed
