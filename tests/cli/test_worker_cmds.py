"""`speedrift run`, `agents`, `tail`, `cancel`, `worktrees` and `service` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from speedrift import layout, records
from tests.cli.support import Cli, base_env, git, graph_tasks


@pytest.fixture
def committed(repo: Path) -> Path:
    (repo / "README.md").write_text("# r\n")
    (repo / ".gitignore").write_text(".speedrift/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def test_run_lands_a_shell_task_and_exits_zero(cli: Cli, committed: Path) -> None:
    cli.ok("add", "Write hello", "--id", "hello", "--exec", "echo hi > hello.txt")
    result = cli.ok("run", "hello")
    assert "hello attempt 1: done" in result.stdout
    assert "claimed hello" in result.stderr  # live progress
    assert (committed / "hello.txt").read_text() == "hi\n"
    assert graph_tasks(committed)["hello"]["status"] == "done"


def test_run_of_a_failing_task_exits_one_with_its_class(cli: Cli, committed: Path) -> None:
    cli.ok("add", "Broken", "--id", "broken", "--exec", "exit 4")
    result = cli.fails(1, "run", "broken")
    assert "failed" in result.stdout and "failure class: implementation_error" in result.stdout
    task = graph_tasks(committed)["broken"]
    assert task["status"] == "failed" and "code 4" in task["failure_reason"]


def test_run_json_reports_the_attempt(cli: Cli, committed: Path) -> None:
    cli.ok("add", "J", "--id", "j", "--exec", "true")
    report = cli.json("run", "j", "--json")
    assert report["status"] == "done" and report["attempt"] == 1


def test_run_in_a_repo_without_commits_is_a_clear_error(cli: Cli, repo: Path) -> None:
    cli.ok("add", "T", "--id", "t", "--exec", "true")
    result = cli.fails(1, "run", "t")
    assert "no commit" in result.stderr
    assert graph_tasks(repo)["t"]["status"] == "open"


def test_run_with_an_agent_cli_that_is_not_installed_names_the_install(cli: Cli, committed: Path) -> None:
    cli.ok("add", "T", "--id", "t", "--model", "codex:gpt-5.5")
    env = {**base_env(), "PATH": "/usr/bin:/bin"}
    result = cli.fails(1, "run", "t", env=env)
    assert "not installed" in result.stdout + result.stderr
    assert "npm" in result.stdout + result.stderr


def test_tail_shows_the_events_of_the_last_attempt(cli: Cli, committed: Path) -> None:
    cli.ok("add", "Talk", "--id", "talk", "--exec", "echo first line; echo second line")
    cli.ok("run", "talk")
    out = cli.ok("tail", "talk").stdout
    assert "first line" in out and "second line" in out


def test_tail_prints_each_events_timestamp(cli: Cli, committed: Path) -> None:
    cli.ok("add", "Talk", "--id", "talk", "--exec", "echo first line")
    cli.ok("run", "talk")
    events = list(records.read_events(layout.attempt_dir(committed, "talk", 1)))
    assert events and all(e.ts and e.ts.endswith("Z") for e in events)  # written under "ts"
    lines = cli.ok("tail", "talk").stdout.splitlines()
    for event in events:
        assert any(line.startswith(f"{event.ts} ") for line in lines), (event, lines)


def test_agents_lists_running_attempts_and_cancel_stops_one(cli: Cli, committed: Path) -> None:
    cli.ok("add", "Slow", "--id", "slow", "--exec", "echo started; sleep 60")
    # a process of its own: the attempt runs while this test lists and cancels it
    runner = subprocess.Popen(
        [sys.executable, "-m", "speedrift", "run", "slow"], cwd=committed, env=base_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline and not rows:
        rows = cli.json("agents", "--json")
        time.sleep(0.1)
    assert rows and rows[0]["attempt"] == 1
    cli.ok("cancel", "slow")
    out, _err = runner.communicate(timeout=30)
    assert runner.returncode == 1 and "cancelled" in out
    worktree = committed / ".speedrift" / "worktrees" / "slow-1"
    assert worktree.is_dir()  # cancel keeps the worktree
    assert cli.json("agents", "--json") == []


def test_worktrees_list_and_gc_keep_unlanded_work(cli: Cli, committed: Path) -> None:
    cli.ok("add", "Fails with work", "--id", "wip", "--exec", "echo partial > p.txt; exit 1")
    cli.fails(1, "run", "wip")
    rows = cli.json("worktrees", "list", "--json")
    assert rows[0]["verdict"] == "keep" and "dirty" in rows[0]["reason"]
    report = cli.json("worktrees", "gc", "--json")
    assert report["removed"] == [] and report["kept"][0]["worktree"] == "wip-1"
    assert (committed / ".speedrift" / "worktrees" / "wip-1" / "p.txt").exists()


def test_service_start_status_stop(committed: Path) -> None:
    # Subprocess: `service start` leaves a detached service running, whose parent must be a
    # speedrift process that exits (as for a user), not the test process.
    cli = Cli(committed, process=True)
    cli.ok("add", "Background", "--id", "bg", "--exec", "echo bg > bg.txt")
    cli.ok("service", "start")
    try:
        assert cli.fails(1, "service", "start").stderr.count("already running") == 1
        deadline = time.monotonic() + 30
        while graph_tasks(committed)["bg"]["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert graph_tasks(committed)["bg"]["status"] == "done"
        status = cli.json("service", "status", "--json")
        assert status["running"] is True and status["heartbeat_age_s"] < 30
    finally:
        cli.ok("service", "stop")
    assert cli.json("service", "status", "--json")["running"] is False
