"""The hub's handlers, run for real: services and workers are real processes, the graph is a real
file, git runs in real repositories. Refusals come back as outcomes and change nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.control.controlfile import write_control
from speedrift.control.handlers.base import prune
from speedrift.control.handlers.dispatch import HandlerContext, execute
from speedrift.fleet import service
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.register.actions import (
    NO_PARAMS,
    Action,
    ActionKind,
    ActionParams,
    CorrectiveParams,
    DispatchParams,
    RepairParams,
    TaskCorrectiveParams,
    VerifyParams,
)
from speedrift.register.record import RepoEntry
from speedrift.times import now_utc
from tests.cli.support import Cli, base_env
from tests.control.test_authority import repo_state
from tests.gitrepo import commit_file, make_repo, sh_git
from tests.waiting import wait_for

# fast service ticks, so "the service looked at the graph again" happens within a second
SERVICE_TOML = "[service]\npoll_seconds = 0.2\nbackoff_seconds = 0\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "shop", {"README.md": "# shop\n", "speedrift.toml": SERVICE_TOML})


def store(repo: Path) -> GraphStore:
    return GraphStore(repo / ".workgraph")


def add_task(repo: Path, task_id: str, exec_command: str | None = None, **fields: Any) -> None:
    spec = ops.NewTask(task_id, task_id=task_id, exec_command=exec_command, **fields)
    store(repo).mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))


def status_of(repo: Path, task_id: str) -> str:
    return str(store(repo).load().tasks[task_id]["status"])


def grant(
    repo: Path,
    mode: str = "autonomous",
    ttl: timedelta | None = timedelta(hours=1),
    now: datetime | None = None,
) -> None:
    write_control(
        repo, mode, owner="hub-test", lease_ttl=ttl, actor="tester", reason="test", now=now or now_utc()
    )


def context(repo: Path, tmp_path: Path, **overrides: Any) -> HandlerContext:
    entry = RepoEntry(name="shop", path=repo)
    ctx = HandlerContext(
        repo=repo, entry=entry, env=base_env(), log_dir=tmp_path / "hub-logs", cycle_id="c-test", timeout_s=60
    )
    return replace(ctx, **overrides)


def action(kind: str, subject: str | None = None, /, params: ActionParams = NO_PARAMS) -> Action:
    suffix = f":{subject}" if subject else ""
    return Action(
        id=f"shop:{kind}{suffix}",
        repo="shop",
        kind=ActionKind(kind),
        priority=80,
        reason="ready work waits and nothing runs it",
        subject=subject,
        params=params,
        prompts={"claude": "Claude: look at the shop repo.", "codex": "Codex: look at the shop repo."},
    )


STALL = CorrectiveParams(corrective_kind="stall", title="Find why shop stalls")


@contextlib.contextmanager
def stopping_service(repo: Path) -> Iterator[None]:
    try:
        yield
    finally:
        pid = service.running_pid(repo)
        if pid and pid > 0:
            os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                wait_for(lambda: service.running_pid(repo) is None, "the service to stop", 30)
            if service.running_pid(repo) is not None:
                os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- refusals as outcomes


def test_a_lease_that_expired_between_plan_and_execute_is_refused_at_execution(
    repo: Path, tmp_path: Path
) -> None:
    planned_at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    grant(repo, ttl=timedelta(minutes=10), now=planned_at)
    planned = action("emit_corrective_task", "speedrift-fix-stall-shop", STALL)
    graph_before = store(repo).graph_path.read_bytes()
    ctx = context(repo, tmp_path, now=lambda: planned_at + timedelta(minutes=11))
    outcome = execute(planned, ctx)
    assert outcome.status == "refused"
    assert outcome.evidence == {"rule": "lease"}
    assert "expired" in outcome.detail
    assert store(repo).graph_path.read_bytes() == graph_before
    # the same action within the lease does run: the refusal came from the expiry alone
    assert execute(planned, replace(ctx, now=lambda: planned_at + timedelta(minutes=9))).status == "succeeded"


def test_an_action_in_observe_mode_is_refused_and_an_operators_approval_runs_it(
    repo: Path, tmp_path: Path
) -> None:
    planned = action("emit_corrective_task", "speedrift-fix-stall-shop", STALL)
    outcome = execute(planned, context(repo, tmp_path))
    assert (outcome.status, outcome.evidence["rule"]) == ("refused", "mode")
    assert "speedrift-fix-stall-shop" not in store(repo).load().tasks
    approved = execute(planned, context(repo, tmp_path, approved_by="alice"))
    assert approved.status == "succeeded" and approved.evidence["authority"] == "approved by alice"


def test_an_action_asking_to_land_directly_is_refused_and_starts_nothing(repo: Path, tmp_path: Path) -> None:
    grant(repo)
    add_task(repo, "hello", "echo hi > hello.txt")
    before = repo_state(repo)
    asking = {"tasks": ["hello"], "skip_gates": True}  # what an untyped caller could hand the hub
    outcome = execute(action("dispatch_ready", None, asking), context(repo, tmp_path))  # type: ignore[arg-type]
    assert (outcome.status, outcome.evidence["rule"]) == ("refused", "gate_bypass")
    assert not (tmp_path / "hub-logs").exists()  # no worker was spawned
    assert repo_state(repo) == before and status_of(repo, "hello") == "open"


def test_a_handler_whose_git_call_breaks_the_contract_returns_a_refusal(repo: Path, tmp_path: Path) -> None:
    grant(repo)
    evil = tmp_path / "pwned"
    remote = RepoEntry(name="shop", path=repo, upstream_remote=f"--upload-pack=touch {evil}")
    outcome = execute(action("sync_upstream"), context(repo, tmp_path, entry=remote))
    assert (outcome.status, outcome.evidence["rule"]) == ("refused", "fetch_option")
    assert not evil.exists()


def test_a_failing_handler_returns_a_failed_outcome_instead_of_raising(repo: Path, tmp_path: Path) -> None:
    grant(repo)
    nowhere = RepoEntry(name="shop", path=repo, upstream_remote="nowhere")
    outcome = execute(action("sync_upstream"), context(repo, tmp_path, entry=nowhere))
    assert outcome.status == "failed" and "nowhere" in outcome.detail
    assert outcome.finished_at is not None and outcome.finished_at >= outcome.started_at


# ---------------------------------------------------------------- services and workers


def test_restart_service_brings_a_stopped_service_up_and_marks_it(repo: Path, tmp_path: Path) -> None:
    grant(repo)
    add_task(repo, "bg", "echo bg > bg.txt")
    with stopping_service(repo):
        outcome = execute(action("restart_service"), context(repo, tmp_path))
        assert outcome.status == "succeeded", outcome.detail
        pid = outcome.evidence["pid"]
        assert service.running_pid(repo) == pid
        marker = json.loads(service.hub_marker(repo).read_text())
        assert (
            marker["action"] == "shop:restart_service"
            and marker["cycle"] == "c-test"
            and marker["pid"] == pid
        )
        wait_for(lambda: status_of(repo, "bg") == "done", "the service to run bg")
        assert (repo / "bg.txt").read_text() == "bg\n"
        beat = service.read_heartbeat(repo)
        assert beat is not None and beat.hub is True
        again = execute(action("restart_service"), context(repo, tmp_path))
        assert again.status == "succeeded" and again.evidence["started"] is False


def test_a_hub_started_service_stops_claiming_when_its_lease_expires_while_a_human_run_still_works(
    repo: Path, tmp_path: Path
) -> None:
    grant(repo)
    cli = Cli(repo)
    with stopping_service(repo):
        assert execute(action("restart_service"), context(repo, tmp_path)).status == "succeeded"
        # the lease runs out (written as granted two hours ago for one hour)
        grant(repo, ttl=timedelta(hours=1), now=now_utc() - timedelta(hours=2))
        wait_for(lambda: bool(cli.json("service", "status", "--json")["paused"]), "the service to pause")
        status = cli.json("service", "status", "--json")
        assert status["running"] is True and "expired" in status["paused"]
        assert status["state"].startswith("paused: ")

        add_task(repo, "later", "echo later > later.txt")
        added = now_utc()

        def beat_after(moment: datetime) -> datetime | None:
            beat = service.read_heartbeat(repo)
            at = datetime.fromisoformat(str(beat.at if beat else None))
            return at if at > moment else None

        wait_for(lambda: beat_after(added) is not None, "a service tick after the task was added")
        first = beat_after(added)
        assert first is not None
        wait_for(
            lambda: beat_after(first) is not None, "the tick after that one"
        )  # its dispatch pass is over
        assert status_of(repo, "later") == "open"  # fail-closed: the service did not claim it

        result = cli.ok("run", "later")  # a human acts on their own authority
        assert "later attempt 1: done" in result.stdout
        assert status_of(repo, "later") == "done"


def test_run_with_hub_refuses_to_claim_without_authority(repo: Path) -> None:
    add_task(repo, "t", "echo t > t.txt")
    result = Cli(repo).fails(1, "run", "t", "--hub")
    assert "paused: control mode observe does not permit automation" in result.stderr
    assert status_of(repo, "t") == "open"


def test_dispatch_ready_runs_a_shell_task_to_done(repo: Path, tmp_path: Path) -> None:
    grant(repo)
    add_task(repo, "hello", "echo hi > hello.txt")
    add_task(repo, "other", "echo other > other.txt")
    add_task(repo, "third", "echo third > third.txt")
    outcome = execute(
        action("dispatch_ready", None, DispatchParams(("hello", "other", "third"), max=2)),
        context(repo, tmp_path),
    )
    assert outcome.status == "succeeded", outcome.detail
    assert sorted(outcome.evidence["pids"]) == ["hello", "other"]  # bounded by max
    wait_for(
        lambda: status_of(repo, "hello") == "done" and status_of(repo, "other") == "done", "both workers"
    )
    assert (repo / "hello.txt").read_text() == "hi\n"
    assert status_of(repo, "third") == "open"
    log = Path(outcome.evidence["logs"]["hello"])
    assert log.parent == tmp_path / "hub-logs"
    # the worker prints its last line after the graph already says done
    wait_for(lambda: "hello attempt 1: done" in log.read_text(), "the worker's last log line")


def test_dispatch_ready_refuses_an_id_that_looks_like_an_option(repo: Path, tmp_path: Path) -> None:
    grant(repo)
    outcome = execute(
        action("dispatch_ready", None, DispatchParams(("--force",), max=2)), context(repo, tmp_path)
    )
    assert outcome.status == "failed" and "--force" in outcome.detail
    assert not (tmp_path / "hub-logs").exists()


# ---------------------------------------------------------------- the graph


def test_emit_corrective_task_twice_writes_one_task(repo: Path, tmp_path: Path) -> None:
    grant(repo, mode="supervise")
    emit = action(
        "emit_corrective_task",
        "speedrift-fix-failing-build",
        TaskCorrectiveParams(("build",), corrective_kind="failing", title="Find why build keeps failing"),
    )
    first = execute(emit, context(repo, tmp_path))
    second = execute(emit, context(repo, tmp_path))
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert first.detail.startswith("created") and second.detail.startswith("existing")
    lines = [line for line in store(repo).graph_path.read_bytes().splitlines() if b"speedrift-fix-" in line]
    assert len(lines) == 1
    task = store(repo).load().tasks["speedrift-fix-failing-build"]
    assert task["title"] == "Find why build keeps failing"
    assert task["tags"] == ["speedrift", "corrective", "failing"]
    description = task["description"]
    assert "Cycle: c-test" in description and "Reason: ready work waits" in description
    assert "Claude: look at the shop repo." in description and "Codex: look at the shop repo." in description


def test_repair_dependencies_is_delegated_to_a_corrective_task_and_edits_no_dependency(
    repo: Path, tmp_path: Path
) -> None:
    grant(repo, mode="supervise")
    add_task(repo, "broken", after=["ghost"])
    add_task(repo, "upstream-step")
    store(repo).mutate(lambda g, now: ops.fail(g, "upstream-step", reason="boom", now=now, actor="t"))
    add_task(repo, "waits", after=["upstream-step"])
    before = {t: store(repo).load().tasks[t] for t in ("broken", "upstream-step", "waits")}
    repair = action(
        "repair_dependencies",
        "speedrift-fix-dependencies-broken-ghost",
        RepairParams(
            missing=(("broken", "ghost"),), failed_blockers=1, corrective_kind="dependencies", title=""
        ),
    )
    outcome = execute(repair, context(repo, tmp_path))
    assert outcome.status == "delegated", outcome.detail
    task_id = outcome.evidence["task"]
    assert task_id == "speedrift-fix-dependencies-broken-ghost"
    assert store(repo).load().tasks[task_id]["tags"] == ["speedrift", "corrective", "dependencies"]
    tasks = store(repo).load().tasks
    assert {t: tasks[t] for t in before} == before
    assert "broken waits on ghost, which does not exist" in tasks[task_id]["description"]
    assert "waits waits on upstream-step, which failed" in tasks[task_id]["description"]
    assert execute(repair, context(repo, tmp_path)).detail.endswith("(existing)")


def test_verify_in_progress_reopens_a_dead_claim_and_leaves_a_live_one(repo: Path, tmp_path: Path) -> None:
    grant(repo, mode="supervise")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = os.uname().nodename
    for task_id, pid in (("orphan", gone.pid), ("busy", os.getpid())):
        add_task(repo, task_id)

        def claim(g: Any, now: datetime, task_id: str = task_id, pid: int = pid) -> ops.Mutation:
            mutation = ops.claim(g, task_id, now=now, actor="worker")
            ops.set_speedrift(mutation.tasks[0], worker={"pid": pid, "host": host})
            return mutation

        store(repo).mutate(claim)
    verify = VerifyParams(tasks=("orphan", "busy"), dead=(), aging=())
    outcome = execute(action("verify_in_progress", None, verify), context(repo, tmp_path))
    assert outcome.status == "succeeded", outcome.detail
    tasks = store(repo).load().tasks
    assert tasks["orphan"]["status"] == "open" and "assigned" not in tasks["orphan"]
    assert tasks["orphan"]["log"][-1]["message"] == f"claimant pid {gone.pid} is gone; reopened by the hub"
    assert "worker" not in tasks["orphan"].get("speedrift", {})
    assert tasks["busy"]["status"] == "in-progress"
    assert [r["task"] for r in outcome.evidence["alive"]] == ["busy"]


# ---------------------------------------------------------------- git


@pytest.fixture
def upstreamed(repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    origin = tmp_path / "origin.git"
    origin.mkdir()
    sh_git(origin, "init", "-q", "--bare", "-b", "main")
    sh_git(repo, "remote", "add", "origin", str(origin))
    sh_git(repo, "push", "-q", "-u", "origin", "main")
    return repo, origin


def test_sync_upstream_only_fetches(upstreamed: tuple[Path, Path], tmp_path: Path) -> None:
    repo, origin = upstreamed
    other = tmp_path / "other"
    sh_git(tmp_path, "clone", "-q", str(origin), str(other))
    upstream_tip = commit_file(other, "new.txt", "from upstream\n", "upstream change")
    sh_git(other, "push", "-q", "origin", "main")
    grant(repo, mode="supervise")
    head_before = sh_git(repo, "rev-parse", "main")
    files_before = repo_state(repo)["files"]
    outcome = execute(action("sync_upstream"), context(repo, tmp_path))
    assert outcome.status == "succeeded", outcome.detail
    assert outcome.evidence["updated"] == ["refs/remotes/origin/main"]
    assert sh_git(repo, "rev-parse", "origin/main") == upstream_tip
    assert sh_git(repo, "rev-parse", "main") == head_before and repo_state(repo)["files"] == files_before


def test_prepare_upstream_packet_writes_markdown_and_never_pushes(
    upstreamed: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, origin = upstreamed
    commit_file(repo, "src/parser.py", "def parse():\n    return 1\n", "Fix crash in the parser")
    commit_file(repo, "src/lexer.py", "TOKENS = []\n", "Tidy the lexer")
    origin_refs = sh_git(origin, "for-each-ref")
    grant(repo, mode="supervise")
    outcome = execute(action("prepare_upstream_packet"), context(repo, tmp_path))
    assert outcome.status == "succeeded", outcome.detail
    path = Path(outcome.evidence["path"])
    assert path.parent == repo / ".speedrift" / "upstream"
    text = path.read_text()
    assert "ahead 2, behind 0" in text and "**bugfix**" in text
    assert "Fix crash in the parser" in text and "`src/lexer.py`" in text
    assert sh_git(origin, "for-each-ref") == origin_refs  # nothing was pushed
    assert sh_git(repo, "status", "--porcelain") == ""  # the packet is git-excluded


def test_run_gate_scan_scans_a_detached_copy_of_the_target_branch_and_cleans_up(
    repo: Path, tmp_path: Path
) -> None:
    commit_file(repo, "config.py", 'AWS_KEY = "AKIAZ7VQ3XK2PLM4RB6D"\n', "add config")
    commit_file(repo, "app.py", "print('hello')\n", "add app")
    grant(repo, mode="supervise")
    before = repo_state(repo)
    outcome = execute(action("run_gate_scan"), context(repo, tmp_path))
    assert outcome.status == "succeeded", outcome.detail
    bundle = json.loads(Path(outcome.evidence["bundle"]).read_text())
    assert bundle["scan"]["tip"] == sh_git(repo, "rev-parse", "main")
    assert outcome.evidence["passed"] is False and "secrets" in outcome.evidence["blocking"]
    assert "AKIAZ7VQ3XK2PLM4RB6D" not in Path(outcome.evidence["bundle"]).read_text()
    after = repo_state(repo)
    assert after["worktrees"] == before["worktrees"] == []  # the scratch worktree is gone
    assert after["refs"] == before["refs"]

    def checkout(files: dict[str, bytes]) -> dict[str, bytes]:
        return {k: v for k, v in files.items() if not k.startswith(".speedrift/")}

    assert checkout(after["files"]) == checkout(before["files"])


def test_retention_keeps_only_the_newest_files(tmp_path: Path) -> None:
    for i in range(5):
        path = tmp_path / f"scan-{i}.json"
        path.write_text("{}")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "other.txt").write_text("not a scan")
    prune(tmp_path, "scan-*.json", keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "scan-3.json", "scan-4.json"]
