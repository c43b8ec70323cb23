"""The hub under the supervisor: its dispatch never starts a worker past a limit (and the cycle
shows what it held and why), and the recovery recorded for an attempt it dispatched is carried
out by its next cycle — only where the repo's mode lets the hub act. Real hub cycles, real
``speedrift run`` workers, real repos."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.control.controlfile import write_control
from speedrift.control.cycle import Hub
from speedrift.control.handlers.dispatch import HandlerContext, execute
from speedrift.control.handlers.warm import WARM
from speedrift.fleet import supervisor
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.procs import identity_alive, identity_of
from speedrift.register.actions import Action, ActionKind, DispatchParams, VerifyParams
from speedrift.register.record import CycleRecord, Outcome, RepoEntry
from speedrift.serialize import cycle_to_dict
from speedrift.times import now_utc
from tests.cli.support import Cli, base_env
from tests.gitrepo import make_repo
from tests.waiting import wait_for

ECOSYSTEM = """schema = 1

[policy]
plan_only = false
cooldown_seconds = { dispatch_ready = 0, retry_failed = 0 }
max_actions_per_repo_per_hour = 100

[repos.shop]
path = "shop"
"""


def store(repo: Path) -> GraphStore:
    return GraphStore(repo / ".workgraph")


def add(repo: Path, task_id: str, command: str) -> None:
    spec = ops.NewTask(task_id, task_id=task_id, exec_command=command)
    store(repo).mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))


def status(repo: Path, task_id: str) -> str:
    return str(store(repo).load().tasks[task_id]["status"])


def grant(repo: Path, mode: str = "autonomous") -> None:
    write_control(
        repo, mode, owner="hub-test", lease_ttl=timedelta(hours=1), actor="t", reason="t", now=now_utc()
    )


@pytest.fixture
def ecosystem(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    repo = make_repo(
        tmp_path / "shop", {"README.md": "# shop\n", "speedrift.toml": "[service]\nmax_agents = 1\n"}
    )
    path = tmp_path / "ecosystem.toml"
    path.write_text(ECOSYSTEM)
    yield path, repo
    # whatever workers are still running (a test that failed half-way) go with the test
    for entry in supervisor.live_attempts(repo):
        if identity_alive(entry.identity) and entry.identity.pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(entry.identity.pid, signal.SIGKILL)


def outcomes(record: CycleRecord, kind: ActionKind) -> list[Outcome]:
    return [o for o in record.executed if o.kind == kind]


def live(repo: Path) -> int:
    return sum(1 for e in supervisor.live_attempts(repo) if identity_alive(e.identity))


def test_the_hub_never_starts_more_agents_than_max_agents_over_three_cycles(
    ecosystem: tuple[Path, Path], tmp_path: Path
) -> None:
    path, repo = ecosystem
    # unsandboxed: the agents mark themselves in a folder outside their worktrees
    with (repo / "speedrift.toml").open("a") as config:
        config.write('\n[sandbox]\nmode = "off"\n')
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    marks.mkdir()
    for i in range(8):  # 8 ready tasks that hold their agent until the test lets them go
        add(repo, f"t{i}", f"touch {marks}/$SPEEDRIFT_TASK_ID; while [ ! -f {gate} ]; do sleep 0.05; done")
    grant(repo)
    hub = Hub(path)
    try:
        first = hub.cycle()
        [dispatched] = outcomes(first, ActionKind.DISPATCH_READY)
        assert dispatched.status == "succeeded" and len(dispatched.evidence["pids"]) == 1, dispatched
        assert live(repo) == 1
        wait_for(lambda: any(marks.iterdir()), "the first agent to start")
        for _ in range(2):  # the hub keeps planning dispatch: 7 tasks are still ready
            record = hub.cycle()
            [held] = outcomes(record, ActionKind.DISPATCH_READY)
            assert held.status == "skipped" and held.evidence["pids"] == {}, held
            assert "repo limit reached: 1 attempt(s) already run" in held.detail
            assert "[service] max_agents = 1" in held.detail
            assert {h["limit"] for h in held.evidence["held"]} == {"repo"}
            assert live(repo) <= 1
        assert len(list(marks.iterdir())) == 1
        assert sum(status(repo, f"t{i}") == "in-progress" for i in range(8)) == 1
        # the record, as the ledger and `speedrift why` show it, carries what was held and why
        shown = cycle_to_dict(record)
        assert any("held t" in o["detail"] for o in shown["executed"])
    finally:
        gate.touch()
    wait_for(lambda: sum(status(repo, f"t{i}") == "done" for i in range(8)) == 1, "the running task to land")
    wait_for(lambda: live(repo) == 0, "its worker to exit")


def test_the_next_hub_cycle_retries_a_hub_dispatched_transient_crash(
    ecosystem: tuple[Path, Path], tmp_path: Path
) -> None:
    path, repo = ecosystem
    # unsandboxed: the command keeps its flag outside its worktree, across attempts
    (repo / "speedrift.toml").write_text(
        '[service]\nmax_agents = 1\nbackoff_seconds = 0\n[sandbox]\nmode = "off"\n'
    )
    flag = tmp_path / "crashed-once"
    add(repo, "flaky", f"if [ -f {flag} ]; then echo ok > ok.txt; else touch {flag}; kill -9 $$; fi")
    grant(repo)
    hub = Hub(path)
    first = hub.cycle()
    assert outcomes(first, ActionKind.DISPATCH_READY)[0].status == "succeeded"
    wait_for(lambda: status(repo, "flaky") == "failed", "the dispatched attempt to crash")
    wait_for(lambda: live(repo) == 0, "its worker to exit")
    task: dict[str, Any] = store(repo).load().tasks["flaky"]
    assert task["speedrift"]["failure_class"] == "transient_infra"
    assert task["speedrift"]["recovery"]["automatic"] is True

    # before the next cycle, `why` says what will happen and who does it
    why = Cli(tmp_path).json("why", "shop:flaky", "--ecosystem", str(path))
    assert why["next"]["by"] == "hub" and "automatic retry" in why["next"]["step"]
    assert "carried out by the hub at its next cycle (repo mode autonomous)" in why["answer"]

    second = hub.cycle()
    [retried] = outcomes(second, ActionKind.RETRY_FAILED)
    assert retried.status == "succeeded" and "flaky: reopened for attempt 2" in retried.detail, retried
    assert status(repo, "flaky") == "open"
    third = hub.cycle()
    assert outcomes(third, ActionKind.DISPATCH_READY)[0].status == "succeeded"
    wait_for(lambda: status(repo, "flaky") == "done", "the retried attempt to land")
    assert store(repo).load().tasks["flaky"]["retry_count"] == 1
    assert (repo / "ok.txt").read_text() == "ok\n"


def test_in_observe_mode_the_hub_plans_the_retry_but_never_carries_it_out(
    ecosystem: tuple[Path, Path], tmp_path: Path
) -> None:
    path, repo = ecosystem
    add(repo, "crashes", "kill -9 $$")
    Cli(repo).fails(1, "run", "crashes")  # a person ran it; the repo is in observe mode
    record = Hub(path).cycle()
    assert outcomes(record, ActionKind.RETRY_FAILED) == []
    [held] = [s for s in record.skipped if s.action.kind == ActionKind.RETRY_FAILED]
    assert held.rule == "mode"
    assert status(repo, "crashes") == "failed"
    why = Cli(tmp_path).json("why", "shop:crashes", "--ecosystem", str(path))
    assert why["next"]["by"] == "nobody" and "run `speedrift retry crashes`" in why["next"]["who"]


def test_verify_in_progress_reopens_a_claim_held_by_a_reused_pid(
    ecosystem: tuple[Path, Path], tmp_path: Path
) -> None:
    _path, repo = ecosystem
    grant(repo, "supervise")
    add(repo, "stuck", "true")
    me = identity_of()
    reused = {"pid": me.pid, "proc_start": (me.started or 0) + 1, "host": socket.gethostname()}

    def claim(graph: Any, now: Any) -> ops.Mutation:
        mutation = ops.claim(graph, "stuck", now=now, actor="gone")
        ops.set_speedrift(mutation.tasks[0], worker=reused)
        return mutation

    store(repo).mutate(claim)
    action = Action(
        id="shop:verify_in_progress",
        repo="shop",
        kind=ActionKind.VERIFY_IN_PROGRESS,
        priority=62,
        reason="dead claims",
        params=VerifyParams(tasks=("stuck",), dead=("stuck",), aging=()),
    )
    ctx = HandlerContext(
        repo=repo, entry=RepoEntry(name="shop", path=repo), env=base_env(), log_dir=tmp_path / "logs"
    )
    outcome = execute(action, ctx)
    assert outcome.status == "succeeded", outcome.detail
    assert status(repo, "stuck") == "open"  # our pid, but not the process that claimed it


def test_the_hub_hands_the_ecosystem_cap_to_the_workers_it_starts(
    ecosystem: tuple[Path, Path], tmp_path: Path
) -> None:
    _path, repo = ecosystem
    ctx = HandlerContext(repo=repo, entry=RepoEntry(name="shop", path=repo), env=base_env(), max_agents=3)
    env = ctx.process_env()
    assert env[supervisor.ECOSYSTEM_LIMIT_ENV] == "3"
    inherited = HandlerContext(
        repo=repo, entry=RepoEntry(name="shop", path=repo), env={**base_env(), supervisor.SLOT_ENV: "x"}
    )
    assert supervisor.SLOT_ENV not in inherited.process_env()
    assert supervisor.ECOSYSTEM_LIMIT_ENV not in inherited.process_env()
    sleeper = subprocess.Popen(["sleep", "120"])
    try:  # three attempts live elsewhere on the machine: the cap holds this repo's dispatch
        for name in ("a", "b", "c"):
            supervisor.admit(
                tmp_path / name, "t", "shell", supervisor.Limits(), identity=identity_of(sleeper.pid)
            )
        grant(repo)
        add(repo, "waits", "true")
        dispatch = Action(
            id="shop:dispatch_ready",
            repo="shop",
            kind=ActionKind.DISPATCH_READY,
            priority=92,
            reason="ready work",
            params=DispatchParams(tasks=("waits",), max=2),
        )
        outcome = execute(dispatch, replace(ctx, log_dir=tmp_path / "logs"))
        assert outcome.status == "skipped" and outcome.evidence["held"][0]["limit"] == "ecosystem"
        assert "[policy] max_agents = 3" in outcome.detail
        assert status(repo, "waits") == "open"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_hub_publishes_the_ecosystem_cap_for_every_supervisor_on_the_machine(
    ecosystem: tuple[Path, Path], tmp_path: Path
) -> None:
    path, repo = ecosystem
    path.write_text(ECOSYSTEM.replace("plan_only = false", "plan_only = true\nmax_agents = 1"))
    Hub(path).cycle(execute_actions=False)
    assert supervisor.ecosystem_limit() == 1  # no $SPEEDRIFT_MAX_AGENTS here: read from the state dir
    add(repo, "mine", "echo mine > mine.txt")
    sleeper = subprocess.Popen(["sleep", "120"])
    try:  # an attempt in another repo holds the machine's one slot; a person's run is held too
        supervisor.admit(
            tmp_path / "elsewhere", "t", "shell", supervisor.Limits(), identity=identity_of(sleeper.pid)
        )
        refused = Cli(repo).fails(1, "run", "mine")
        assert "ecosystem limit reached" in refused.stderr and "[policy] max_agents = 1" in refused.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    path.write_text(ECOSYSTEM)  # the cap removed from the policy: lifted for everyone
    Hub(path).cycle(execute_actions=False)
    assert supervisor.ecosystem_limit() is None


def test_a_warm_worker_becomes_the_next_dispatched_run(ecosystem: tuple[Path, Path], tmp_path: Path) -> None:
    _path, repo = ecosystem
    (repo / "speedrift.toml").write_text("[service]\nmax_agents = 2\n")
    grant(repo)
    for name in ("cold", "warm"):
        add(repo, name, f"echo {name} > {name}.txt")
    ctx = HandlerContext(
        repo=repo,
        entry=RepoEntry(name="shop", path=repo),
        env=base_env(),
        log_dir=tmp_path / "logs",
        warm_workers=True,
    )

    def dispatch(task_id: str) -> Outcome:
        action = Action(
            id="shop:dispatch_ready",
            repo="shop",
            kind=ActionKind.DISPATCH_READY,
            priority=92,
            reason="ready work",
            params=DispatchParams(tasks=(task_id,), max=1),
        )
        return execute(action, ctx)

    try:
        first = dispatch("cold")  # no warm worker yet: started cold, and one warmed for next time
        assert first.status == "succeeded", first.detail
        spare = WARM.ready_pid
        assert spare is not None
        second = dispatch("warm")
        assert second.status == "succeeded", second.detail
        assert second.evidence["pids"]["warm"] == spare  # the warm process became this worker
        wait_for(lambda: status(repo, "cold") == "done" and status(repo, "warm") == "done", "both workers")
        assert (repo / "warm.txt").read_text() == "warm\n"
        log = Path(second.evidence["logs"]["warm"])
        wait_for(lambda: "warm attempt 1: done" in log.read_text(), "the warm worker's log")
    finally:
        WARM.close()
