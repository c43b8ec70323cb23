"""`speedrift tail TASK -f` on a real running attempt of the fake claude CLI: readable lines (tool
calls, file edits) printed while the attempt runs, ending with the attempt's final state.

The attempt runs in a process of its own (`speedrift run`); the fake agent prints its first events,
then blocks on a FIFO until the test opens it — so the lines are seen while the attempt certainly
runs, with no sleep deciding anything.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.agents.conftest import FAKES
from tests.cli.live_agent import BASH, EDIT, READ, RUN_CONFIG, assistant, pump, take, tool_result
from tests.cli.support import Cli, base_env, git
from tests.waiting import release, wait_for


@pytest.fixture
def agent(repo: Path, tmp_path: Path) -> tuple[Cli, Path]:
    (repo / "app.py").write_text("print('v1')\n")
    (repo / ".gitignore").write_text(".speedrift/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    (repo / "speedrift.toml").write_text(RUN_CONFIG)
    scenario = tmp_path / "scenario.json"
    env = {
        **base_env(),
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "FAKE_AGENT_SCENARIO": str(scenario),
    }
    return Cli(repo, env), scenario


def test_tail_follows_a_running_agent_attempt_with_readable_tool_calls_and_ends_with_its_state(
    agent: tuple[Cli, Path], tmp_path: Path
) -> None:
    cli, scenario = agent
    fifo = tmp_path / "hold.fifo"
    os.mkfifo(fifo)
    lines = [
        assistant({"type": "tool_use", "id": "t1", "name": "Edit", "input": EDIT}, 1),
        tool_result("t1", "The file app.py has been updated."),
        assistant({"type": "tool_use", "id": "t2", "name": "Bash", "input": BASH}, 2),
        tool_result("t2", "1 failed\nFAILED tests/test_app.py::test_v2", is_error=True),
    ]
    steps = [
        {"do": "start"},
        {"do": "emit", "lines": lines},
        {"do": "hold", "fifo": str(fifo)},
        {"do": "edit", "path": "app.py", "content": "print('v2')\n"},
        {"do": "finish", "text": "All done."},
    ]
    scenario.write_text(json.dumps(steps))
    cli.ok("add", "Make v2", "--id", "v2", "--model", "claude:sonnet")
    runner = subprocess.Popen(
        [sys.executable, "-m", "speedrift", "run", "v2"], cwd=cli.cwd, env=cli.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    follower: subprocess.Popen[str] | None = None
    seen: list[str] = []
    try:
        wait_for(lambda: (cli.cwd / ".speedrift" / "runs" / "v2" / "1").is_dir(), "the attempt to start")
        follower = subprocess.Popen(
            [sys.executable, "-m", "speedrift", "tail", "v2", "-f"], cwd=cli.cwd, env=cli.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        got: queue.SimpleQueue[str] = queue.SimpleQueue()
        assert follower.stdout is not None
        threading.Thread(target=pump, args=(follower.stdout, got), daemon=True).start()
        wait_for(lambda: take(got, seen) and any("Bash failed" in s for s in seen), "the tool calls")
        assert runner.poll() is None and follower.poll() is None  # shown while the attempt runs
        shown = "".join(seen)
        assert "edit     Edit app.py (+2 −1)" in shown
        assert "tool     Bash: pytest -q" in shown
        assert "failed   Bash failed: 1 failed … FAILED tests/test_app.py::test_v2" in shown
        assert all(line[:4].isdigit() and line[10] == "T" for line in seen)  # each with its time
        release(fifo)
        assert follower.wait(timeout=120) == 0  # it ends with the attempt
        take(got, seen)
        wait_for(lambda: take(got, seen) and seen[-1].startswith("— attempt 1 "), "the end line")
    finally:
        release(fifo)
        runner.communicate(timeout=120)
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.wait()
    shown = "".join(seen)
    assert "edit     Write app.py (+1 −0)" in shown and "said     All done." in shown
    assert "finished finished · $0.0097 — All done." in shown
    state = json.loads((cli.cwd / ".speedrift" / "runs" / "v2" / "1" / "attempt.json").read_text())["state"]
    assert seen[-1].startswith(f"— attempt 1 {state}")  # the attempt's final state, as recorded


def test_tail_json_prints_each_event_with_its_rendering_and_the_end(agent: tuple[Cli, Path]) -> None:
    cli, scenario = agent
    read = assistant({"type": "tool_use", "id": "t1", "name": "Read", "input": READ}, 1)
    steps = [
        {"do": "start"},
        {"do": "emit", "lines": [read]},
        {"do": "edit", "path": "app.py", "content": "print('v2')\n"},
        {"do": "finish"},
    ]  # fmt: skip
    scenario.write_text(json.dumps(steps))
    cli.ok("add", "Make v2", "--id", "v2", "--model", "claude:sonnet")
    subprocess.run(
        [sys.executable, "-m", "speedrift", "run", "v2"], cwd=cli.cwd, env=cli.env, capture_output=True
    )
    rows = [json.loads(line) for line in cli.ok("tail", "v2", "--json").stdout.splitlines()]
    assert all(row["attempt"] == 1 for row in rows)
    events, end = rows[:-1], rows[-1]
    assert all(e["ts"] and e["ts"].endswith("Z") for e in events)  # stamped when written (#11)
    call = next(e for e in events if e["kind"] == "tool_use")
    assert call["data"]["tool"] == "Read" and call["view"] == {
        "ts": call["ts"], "kind": "tool_use", "style": "tool", "line": "Read README.md"
    }  # fmt: skip
    assert end["end"]["state"] in ("done", "failed", "merge-pending", "waiting")


def test_tail_of_a_task_that_never_ran_names_the_fix(agent: tuple[Cli, Path]) -> None:
    cli, _ = agent
    cli.ok("add", "Idle", "--id", "idle")
    result = cli.fails(1, "tail", "idle")
    assert "has not run here" in result.stderr and "speedrift run TASK" in result.stderr
