"""`speedrift attach`: following a RUNNING attempt of the fake claude CLI live, with a header and a
footer; `--all` across an ecosystem; detaching (SIGINT, SIGKILL) leaves the agent running and
completing; the tmux argv (window names, escaping, inside/outside tmux) and, when tmux is installed,
a real tmux server on a private socket directory ($TMUX_TMPDIR, so the user's server is never touched).

Each attempt runs in a `speedrift run` process of its own; the fake agent prints its first events,
then blocks on a FIFO until the test opens it (the pattern of test_tail_cmd.py), so the attempt
certainly runs while attach follows it — no sleep decides anything.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speedrift.cli import attach_cmd
from tests.agents.conftest import FAKES
from tests.cli.live_agent import BASH, EDIT, RUN_CONFIG, assistant, pump, take, tool_result
from tests.cli.support import Cli, base_env, git
from tests.waiting import release, wait_for


class Agent:
    """A repo whose task `v2` runs the fake claude CLI, which holds on a FIFO after its tool calls."""

    def __init__(self, repo: Path, tmp: Path, extra_env: dict[str, str] | None = None) -> None:
        (repo / "app.py").write_text("print('v1')\n")
        (repo / ".gitignore").write_text(".speedrift/\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "initial")
        (repo / "speedrift.toml").write_text(RUN_CONFIG)
        self.scenario = tmp / f"{repo.name}-scenario.json"
        self.fifo = tmp / f"{repo.name}-hold.fifo"
        os.mkfifo(self.fifo)
        env = {**base_env(), "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}"}
        self.cli = Cli(repo, {**env, "FAKE_AGENT_SCENARIO": str(self.scenario), **(extra_env or {})})
        self.runner: subprocess.Popen[str] | None = None

    def start(self, hold: bool = True) -> None:
        lines = [
            assistant({"type": "tool_use", "id": "t1", "name": "Edit", "input": EDIT}, 1),
            tool_result("t1", "The file app.py has been updated."),
            assistant({"type": "tool_use", "id": "t2", "name": "Bash", "input": BASH}, 2),
            tool_result("t2", "1 passed"),
        ]
        steps: list[dict[str, Any]] = [{"do": "start"}, {"do": "emit", "lines": lines}]
        if hold:
            steps.append({"do": "hold", "fifo": str(self.fifo)})
        steps += [
            {"do": "edit", "path": "app.py", "content": "print('v2')\n"},
            {"do": "finish", "text": "Done."},
        ]
        self.scenario.write_text(json.dumps(steps))
        self.cli.ok("add", "Make v2", "--id", "v2", "--model", "claude:sonnet")
        self.runner = subprocess.Popen(
            [sys.executable, "-m", "speedrift", "run", "v2"], cwd=self.cli.cwd, env=self.cli.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        if hold:
            wait_for(lambda: self.record().get("agent_pgid") is not None, "the agent to start")
        else:
            self.runner.communicate(timeout=120)

    def record(self) -> dict[str, Any]:
        path = self.cli.cwd / ".speedrift" / "runs" / "v2" / "1" / "attempt.json"
        try:
            value: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return value

    def finish(self) -> None:
        release(self.fifo)
        if self.runner is not None and self.runner.poll() is None:
            self.runner.communicate(timeout=120)


class Follower:
    """`speedrift ARGS` in a process of its own, its stdout collected line by line."""

    def __init__(self, cli: Cli, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "speedrift", *args], cwd=cwd or cli.cwd, env=cli.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.got: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: list[str] = []
        assert self.proc.stdout is not None
        threading.Thread(target=pump, args=(self.proc.stdout, self.got), daemon=True).start()

    def wait_until(self, text: str) -> str:
        """All lines so far, once one holds ``text``; fails at once if the process ended without it."""

        def there() -> bool:
            take(self.got, self.seen)
            if text in "".join(self.seen):
                return True
            assert self.proc.poll() is None or not self.got.empty(), f"ended without {text!r}: {self.seen}"
            return False

        wait_for(there, repr(text))
        return "".join(self.seen)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def agent(repo: Path, tmp_path: Path) -> Iterator[Agent]:
    made = Agent(repo, tmp_path)
    yield made
    made.finish()


def test_attach_follows_a_running_attempt_with_a_header_readable_events_and_a_footer(agent: Agent) -> None:
    agent.start()
    follower = Follower(agent.cli, "attach", "v2")
    try:
        shown = follower.wait_until("tool     Bash: pytest -q")
        assert agent.runner is not None and agent.runner.poll() is None  # shown while it runs
        assert "Attached to v2 — attempt 1 (running)" in shown
        assert "  runtime   claude · sonnet" in shown
        worktree = agent.cli.cwd / ".speedrift" / "worktrees"
        tree_line = next(line for line in follower.seen if line.startswith("  worktree  "))
        assert tree_line.split()[1].startswith(str(worktree)) and Path(tree_line.split()[1]).is_dir()
        pgid = agent.record()["agent_pgid"]
        assert f"  pid       {pgid} (agent process group)" in shown
        assert "edit     Edit app.py (+2 −1)" in shown
        agent.finish()
        assert follower.proc.wait(timeout=120) == 0
        shown = follower.wait_until("— v2 ended ")
    finally:
        follower.stop()
    state = agent.record()["state"]
    assert f"— attempt 1 {state}" in shown and "said     Done." in shown
    assert follower.seen[-1].startswith(f"— v2 ended {state}; `speedrift tail v2` shows it again")


def test_attach_json_prints_the_header_then_each_event_then_the_end(agent: Agent) -> None:
    agent.start()
    follower = Follower(agent.cli, "attach", "v2", "--json")
    try:
        follower.wait_until('"Bash"')
        head = json.loads(follower.seen[0])["attach"]
        assert Path(head["worktree"]).is_dir()  # while it runs (a landed attempt's is removed)
        agent.finish()
        assert follower.proc.wait(timeout=120) == 0
        follower.wait_until('"end"')
    finally:
        follower.stop()
    rows = [json.loads(line) for line in follower.seen]
    head = rows[0]["attach"]
    assert head["task"] == "v2" and head["attempt"] == 1 and head["runtime"] == "claude"
    assert head["pid"] == agent.record()["agent_pgid"] and head["worktree"].endswith("/v2-1")
    assert any(r.get("kind") == "tool_use" and r["view"]["line"] == "Bash: pytest -q" for r in rows[1:])
    assert rows[-1]["end"]["state"] == agent.record()["state"]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_detaching_leaves_the_agent_running_and_its_attempt_completing_normally(
    agent: Agent, how: signal.Signals
) -> None:
    agent.start()
    follower = Follower(agent.cli, "attach", "v2")
    try:
        follower.wait_until("tool     Bash: pytest -q")
        follower.proc.send_signal(how)
        code = follower.proc.wait(timeout=60)
        if how is signal.SIGINT:
            assert code == 0
            assert follower.wait_until("— detached from v2; the agent keeps running")
        pgid = agent.record()["agent_pgid"]
        os.killpg(pgid, 0)  # the agent's process group is still there (raises if it is gone)
        assert agent.record()["state"] == "running"
        agent.finish()
    finally:
        follower.stop()
    assert agent.runner is not None and agent.runner.returncode == 0
    record = agent.record()
    assert record["state"] in ("done", "merge-pending") and not record.get("failure")
    assert (agent.cli.cwd / "app.py").read_text() == "print('v2')\n" or record["state"] == "merge-pending"


def test_attach_without_a_running_attempt_names_its_latest_state_and_the_hints(agent: Agent) -> None:
    agent.cli.ok("add", "Idle", "--id", "idle")
    never = agent.cli.fails(1, "attach", "idle")
    assert "no attempt of 'idle' has run here" in never.stderr
    assert "speedrift run idle" in never.stderr and "speedrift tail idle" in never.stderr
    agent.start(hold=False)
    state = agent.record()["state"]
    ended = agent.cli.fails(1, "attach", "v2")
    assert f"'v2' has no running attempt: attempt 1 is {state}" in ended.stderr
    assert "speedrift run v2" in ended.stderr and "speedrift tail v2" in ended.stderr
    assert "attempt 4 of 'v2' has not run here" in agent.cli.fails(1, "attach", "v2", "--attempt", "4").stderr
    assert "takes no TASK" in agent.cli.fails(2, "attach", "v2", "--all").stderr
    assert "name a TASK" in agent.cli.fails(2, "attach").stderr
    assert "--ecosystem goes with --all" in agent.cli.fails(2, "attach", "v2", "--ecosystem", "e.toml").stderr


def test_attach_all_with_nothing_running_says_so(agent: Agent) -> None:
    assert agent.cli.ok("attach", "--all").stdout == "No attempts are running.\n"


def test_attach_all_follows_every_running_attempt_of_the_ecosystem(
    template_repo: Path, tmp_path: Path
) -> None:
    repos = {name: tmp_path / name for name in ("shop-api", "web")}
    agents = {}
    for name, path in repos.items():
        shutil.copytree(template_repo, path, symlinks=True)
        agents[name] = Agent(path, tmp_path)
    ecosystem = tmp_path / "ecosystem.toml"
    ecosystem.write_text("".join(f'[repos.{name}]\npath = "{path}"\n\n' for name, path in repos.items()))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        for made in agents.values():
            made.start()
        listed = Follower(agents["web"].cli, "attach", "--all", "--ecosystem", str(ecosystem), cwd=elsewhere)
        try:
            listed.wait_until("[web:v2] ")
            wait_for(lambda: _calls(listed) == {"[shop-api:v2]", "[web:v2]"}, "both agents' Bash calls")
            shown = "".join(listed.seen)
            assert (
                "[shop-api:v2] attempt 1 · claude · pid " in shown and "[web:v2] attempt 1 · claude" in shown
            )
            agents["shop-api"].finish()
            shown = listed.wait_until("[shop-api:v2] — attempt 1 ")
            assert listed.proc.poll() is None  # still following web's
            agents["web"].finish()
            assert listed.proc.wait(timeout=120) == 0
            shown = listed.wait_until("[web:v2] — attempt 1 ")
        finally:
            listed.stop()
    finally:
        for made in agents.values():
            made.finish()
    for name, made in agents.items():
        assert f"[{name}:v2] — attempt 1 {made.record()['state']}" in shown


def _calls(follower: Follower) -> set[str]:
    take(follower.got, follower.seen)
    return {line.split()[0] for line in follower.seen if line.endswith(" tool     Bash: pytest -q\n")}


# --- tmux ------------------------------------------------------------------------------------


def test_window_names_are_slugs_that_tmux_never_reads_as_a_target_or_format() -> None:
    assert attach_cmd.window_name("v2") == "v2"
    assert attach_cmd.window_name("shop-api:fix.parser") == "shop-api-fix-parser"
    assert attach_cmd.window_name("a.b:c #{pane_pid} d") == "a-b-c-pane_pid-d"
    assert attach_cmd.window_name("::..") == "task"
    assert len(attach_cmd.window_name("x" * 300)) == attach_cmd.WINDOW_NAME_MAX


def test_tmux_argv_opens_a_session_outside_tmux_and_windows_inside_it() -> None:
    cmd_a, cmd_b = ["speedrift", "attach", "--", "a:1.0"], ["speedrift", "attach", "--", "b"]
    windows = [("a-1-0", Path("/r"), cmd_a), ("b", Path("/s"), cmd_b)]
    keep = [";", "set-option", "-w", "remain-on-exit", "on"]
    outside = attach_cmd.tmux_argv(windows, inside=False, session_exists=False)
    assert outside == [
        ["tmux", "new-session", "-d", "-s", "speedrift", "-n", "a-1-0", "-c", "/r", "--", *cmd_a, *keep],
        ["tmux", "new-window", "-d", "-t", "=speedrift:", "-n", "b", "-c", "/s", "--", *cmd_b, *keep],
    ]
    existing = attach_cmd.tmux_argv(windows[:1], inside=False, session_exists=True)
    assert existing == [
        ["tmux", "new-window", "-d", "-t", "=speedrift:", "-n", "a-1-0", "-c", "/r", "--", *cmd_a, *keep]
    ]
    inside = attach_cmd.tmux_argv(windows, inside=True, session_exists=False)
    assert inside == [
        ["tmux", "new-window", "-n", "a-1-0", "-c", "/r", "--", *cmd_a, *keep],  # the first one is shown
        ["tmux", "new-window", "-d", "-n", "b", "-c", "/s", "--", *cmd_b, *keep],
    ]


def test_the_window_command_is_an_argv_naming_the_graph_and_the_task_after_a_double_dash(
    tmp_path: Path,
) -> None:
    target = attach_cmd.Running(tmp_path, tmp_path / ".workgraph", "a:b.c", 3, {})
    argv = attach_cmd.follow_argv(target, pinned=True)
    assert argv == [
        sys.executable, "-m", "speedrift", "attach", "--dir", str(tmp_path / ".workgraph"), "--attempt", "3",
        "--", "a:b.c",
    ]  # fmt: skip
    assert attach_cmd.follow_argv(target, pinned=False)[-4:] == [
        "--dir",
        str(tmp_path / ".workgraph"),
        "--",
        "a:b.c",
    ]


def test_attach_tmux_without_tmux_installed_says_how_to_get_it(repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-tmux-here"
    empty.mkdir()
    cli = Cli(repo, {**base_env(), "PATH": str(empty)}, process=True)  # which("tmux") reads its PATH
    result = cli.fails(1, "attach", "--all", "--tmux")
    assert "tmux is not installed: apt-get install tmux, or run without --tmux" in result.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/test installs it)")
def test_attach_tmux_opens_a_window_named_after_the_task_running_attach_in_a_private_tmux_server(
    repo: Path,
) -> None:
    sockets = Path(tempfile.mkdtemp(prefix="tmx", dir="/tmp"))  # short: a socket path has ~100 bytes
    tmux_env = {"TMUX_TMPDIR": str(sockets)}
    made = Agent(repo, sockets, extra_env=tmux_env)
    made.cli.env.pop("TMUX", None)  # "outside tmux", whatever runs the tests
    made.cli.process = True

    def tmux(*args: str) -> str:
        done = subprocess.run(
            ["tmux", *args], env={**made.cli.env}, capture_output=True, text=True, check=True
        )
        return done.stdout

    try:
        made.start()
        first = made.cli.ok("attach", "v2", "--tmux")
        assert "Opened window v2 in tmux session speedrift: following v2 attempt 1" in first.stdout
        assert first.stdout.endswith("See it with:\n  tmux attach -t speedrift\n")
        second = json.loads(
            made.cli.ok("attach", "--all", "--tmux", "--json").stdout
        )  # the session exists now
        assert second["windows"][0]["argv"][:4] == ["tmux", "new-window", "-d", "-t"]
        assert tmux("list-windows", "-t", "=speedrift", "-F", "#{window_name}").split() == ["v2", "v2"]
        pane = "=speedrift:0"

        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", pane)

        wait_for(lambda: "tool     Bash: pytest -q" in screen(), "the window to show the events")
        assert "Attached to v2 — attempt 1 (running)" in screen()
        made.finish()
        wait_for(lambda: "— v2 ended " in screen(), "the footer in the window (it stays open)")
        assert made.record()["state"] in ("done", "merge-pending")
    finally:
        made.finish()
        subprocess.run(["tmux", "kill-server"], env={**made.cli.env}, capture_output=True, check=False)
        shutil.rmtree(sockets, ignore_errors=True)
