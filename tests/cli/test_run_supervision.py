"""`speedrift run` under the supervisor: admitted against the limits before it claims, says what
happens after a failure and who does it, and gives its claim back when it is signalled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from speedrift import layout, records
from speedrift.control.controlfile import write_control
from speedrift.fleet import supervisor
from speedrift.fleet.supervisor import Limits
from speedrift.procs import group_alive, identity_of
from speedrift.times import now_utc
from tests.cli.support import Cli, base_env, git, graph_tasks
from tests.waiting import wait_for

CRASH = "kill -9 $$"  # the shell dies by a signal: a transient crash, retried automatically


@pytest.fixture
def committed(repo: Path) -> Path:
    (repo / "README.md").write_text("# r\n")
    (repo / ".gitignore").write_text(".speedrift/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def test_a_run_past_the_repo_limit_is_refused_with_the_limit(cli: Cli, committed: Path) -> None:
    (committed / "speedrift.toml").write_text("[service]\nmax_agents = 1\n")
    cli.ok("add", "T", "--id", "t", "--exec", "echo t > t.txt")
    sleeper = subprocess.Popen(["sleep", "120"])
    try:  # another live attempt in this repo holds its one slot
        held = supervisor.admit(committed, "other", "shell", Limits(), identity=identity_of(sleeper.pid))
        assert held.admitted
        result = cli.fails(1, "run", "t")
        assert "not starting t: repo limit reached: 1 attempt(s) already run" in result.stderr
        assert "[service] max_agents = 1" in result.stderr
        assert graph_tasks(committed)["t"]["status"] == "open"
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone: its entry is pruned at the limit and the run goes ahead
    assert "t attempt 1: done" in cli.ok("run", "t").stdout
    assert supervisor.live_attempts(committed) == []


def test_a_failed_run_prints_its_recovery_and_that_nobody_acts_in_observe_mode(
    cli: Cli, committed: Path
) -> None:
    cli.ok("add", "Crashes", "--id", "c", "--exec", CRASH)
    out = cli.fails(1, "run", "c").stdout
    assert "failure class: transient_infra" in out
    assert "recovery: retry (automatic, attempt 1 of 3, after 30s)" in out
    assert "carried out by: nobody: repo in observe mode — run `speedrift retry c`" in out


def test_a_failed_run_in_an_autonomous_repo_names_the_hub_and_json_says_it_too(
    cli: Cli, committed: Path
) -> None:
    write_control(
        committed,
        "autonomous",
        owner="hub",
        lease_ttl=timedelta(hours=1),
        actor="t",
        reason="t",
        now=now_utc(),
    )
    cli.ok("add", "Crashes", "--id", "c", "--exec", CRASH)
    out = cli.fails(1, "run", "c").stdout
    assert "carried out by: the hub at its next cycle (repo mode autonomous)" in out
    cli.ok("add", "Again", "--id", "d", "--exec", CRASH)
    report = json.loads(cli.fails(1, "run", "d", "--json").stdout)
    assert report["next"] == {
        "recovery": "retry",
        "automatic": True,
        "by": "hub",
        "who": "the hub at its next cycle (repo mode autonomous)",
    }


def test_a_failed_run_next_to_a_running_service_names_the_service_which_carries_it_out(
    committed: Path,
) -> None:
    (committed / "speedrift.toml").write_text("[service]\npoll_seconds = 0.2\nbackoff_seconds = 0\n")
    git(committed, "add", "-A")
    git(committed, "commit", "-q", "-m", "config")
    service = Cli(committed, process=True)  # `service start` leaves a detached service behind
    cli = Cli(committed)
    cli.ok("add", "Crashes", "--id", "c", "--exec", CRASH, "--paused")  # the service never dispatches it
    service.ok("service", "start")
    try:
        out = cli.fails(1, "run", "c", "--force").stdout
        assert "carried out by: the service running in this repo (pid " in out
        # and it does: the task is reopened by the service (still paused, as it was)
        wait_for(lambda: graph_tasks(committed)["c"]["status"] == "open", "the service to reopen it")
    finally:
        service.ok("service", "stop")
    assert graph_tasks(committed)["c"]["retry_count"] == 1


def test_sigterm_to_a_foreground_run_releases_the_claim_and_ends_the_agent_group(committed: Path) -> None:
    cli = Cli(committed)
    cli.ok("add", "Slow", "--id", "slow", "--exec", "echo started; sleep 120")
    # a process of its own: the signal goes to it, as to a `speedrift run` in a terminal
    runner = subprocess.Popen(
        [sys.executable, "-m", "speedrift", "run", "slow"], cwd=committed, env=base_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    folder = layout.attempt_dir(committed, "slow", 1)

    def agent() -> int | None:
        record = records.read_attempt(folder)
        pgid = record.raw.get("agent_pgid") if record else None
        return pgid if isinstance(pgid, int) else None

    try:
        wait_for(agent, "the agent to start")
        pgid = agent()
        assert pgid is not None and group_alive(pgid)
        assert graph_tasks(committed)["slow"]["status"] == "in-progress"
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 1, (out, err)
    assert "interrupted by SIGTERM" in out
    task = graph_tasks(committed)["slow"]
    assert task["status"] == "open" and "assigned" not in task  # the claim went back
    assert not group_alive(pgid)  # the agent's whole group is gone
    assert supervisor.live_attempts(committed) == []
