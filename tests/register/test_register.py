"""The register, on SQLite and on PostgreSQL alike: versioned schema, cycles, actions that survive a
kill -9 as 'interrupted', corrective tasks, approvals, mode changes and register gaps."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from speedrift.errors import Refused
from speedrift.register.actions import Action
from speedrift.register.record import (
    CycleRecord,
    Metric,
    Outcome,
    OutcomeStatus,
    Reason,
    RepoReport,
    RepoSnapshot,
    Skipped,
)
from speedrift.register.schema import SCHEMA_VERSION, cycle_status
from speedrift.register.store import Register
from speedrift.serialize import cycle_to_dict
from tests.builders import task
from tests.gitrepo import make_repo

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def action(repo: str = "a", kind: str = "dispatch_ready", subject: str | None = None) -> Action:
    action_id = f"{repo}:{kind}" + (f":{subject}" if subject else "")
    return Action(id=action_id, repo=repo, kind=kind, priority=90, reason="why", subject=subject)  # type: ignore[arg-type]


def outcome(act: Action, status: OutcomeStatus = "succeeded", **evidence: object) -> Outcome:
    return Outcome(
        act.id, act.repo, act.kind, status, "done it", NOW, NOW + timedelta(seconds=2), dict(evidence)
    )


def cycle(cycle_id: str = "c-1", at: datetime = NOW, executed: tuple[Outcome, ...] = ()) -> dict[str, object]:
    return cycle_to_dict(cycle_record(cycle_id, at, executed))


def cycle_record(
    cycle_id: str = "c-1", at: datetime = NOW, executed: tuple[Outcome, ...] = ()
) -> CycleRecord:
    snap = RepoSnapshot(name="a", path="/r/a", observed_at=at, exists=True)
    act = action()
    return CycleRecord(
        cycle_id=cycle_id,
        generated_at=at,
        finished_at=at + timedelta(seconds=1),
        plan_only=not executed,
        ecosystem="/eco/ecosystem.toml",
        repos=(
            RepoReport(
                "a",
                55,
                "at-risk",
                "new",
                None,
                (Reason("svc", "service down", 30.0),),
                "stalled",
                "down",
                snap,
            ),
        ),
        edges=(),
        planned=(act,),
        skipped=() if executed else (Skipped(act, "plan_only", "plan_only is on"),),
        executed=executed,
        hints=(),
        inputs={"repos_total": 1},
        narrative="Alert posture.",
        metrics={"flow_health": Metric("flow_health", "Flow", 80.0, "healthy", "new", None, "f", {})},
    )


def test_a_new_register_is_at_the_latest_schema_and_reopening_migrates_nothing_twice(
    register: Register, hub: Path, register_url: str, backend: str
) -> None:
    assert register.backend == backend
    assert register.schema_version() == SCHEMA_VERSION == 2
    assert register.leases() == [] and register.gaps() == []  # migration 2's tables are there
    register.close()
    with Register.open(hub, url=register_url) as again:
        assert again.schema_version() == SCHEMA_VERSION
        versions = again._rows("SELECT version FROM schema_version ORDER BY version")
        assert [row["version"] for row in versions] == [1, 2]


def test_a_register_from_a_newer_speedrift_is_refused(
    register: Register, hub: Path, register_url: str
) -> None:
    with register._db.write() as db:
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    register.close()
    with pytest.raises(Refused, match="knows up to"):
        Register.open(hub, url=register_url).cycles()  # PostgreSQL connects (and checks) on first use


def test_a_cycle_is_stored_with_one_health_row_per_repo_and_recording_twice_replaces(
    register: Register,
) -> None:
    record = cycle()
    register.record_cycle(record)
    register.record_cycle(record)
    (row,) = register.cycles()
    assert row["cycle_id"] == "c-1" and row["plan_only"] is True and row["status"] == "plan_only"
    assert (
        row["summary"]["skipped_by_rule"] == {"plan_only": 1}
        and row["summary"]["narrative"] == "Alert posture."
    )
    (health,) = register.repo_history("a")
    assert (health["score"], health["tier"], health["stall"]) == (55, "at-risk", "down")
    assert health["reasons"] == [{"code": "svc", "text": "service down", "points": 30.0}]
    assert health["generated_at"] == "2026-11-20T12:00:00.000000Z"
    register.record_cycle({"kind": "recovery", "generated_at": "x"})  # ledger-only entries are ignored
    assert len(register.cycles()) == 1


def test_the_cycle_record_object_is_stored_exactly_like_its_dict(
    tmp_path: Path, fresh_url: Callable[[], str]
) -> None:
    done = outcome(action(), "failed")
    with (
        Register.open(tmp_path, fresh_url()) as from_dict,
        Register.open(tmp_path, fresh_url()) as from_object,
    ):
        from_dict.record_cycle(cycle(executed=(done,)))
        from_object.record_cycle(cycle_record(executed=(done,)))
        assert from_object.cycles() == from_dict.cycles()
        assert from_object.repo_history("a") == from_dict.repo_history("a")
        assert from_dict.cycles()[0]["status"] == "failed"
        assert from_dict.cycles()[0]["summary"]["metrics"] == {"flow_health": 80.0}


def test_cycle_status_summarizes_the_outcomes() -> None:
    assert cycle_status(True, []) == "plan_only"
    assert cycle_status(False, []) == "noop"
    assert cycle_status(False, [{"status": "succeeded"}]) == "executed"
    assert cycle_status(False, [{"status": "succeeded"}, {"status": "failed"}]) == "partial_failed"
    assert cycle_status(False, [{"status": "failed"}]) == "failed"


def test_an_action_is_started_then_finished_and_history_holds_the_window(register: Register) -> None:
    first = action()
    row_id = register.action_started(first, "c-1", NOW)
    assert row_id >= 1
    assert [(p.action_id, p.status) for p in register.history(NOW, timedelta(hours=1)).executions] == [
        ("a:dispatch_ready", "started")
    ]
    register.action_finished(outcome(first, "failed"))
    old = action("b", "sync_upstream")
    assert register.action_started(old, "c-0", NOW - timedelta(days=2)) > row_id
    register.action_finished(outcome(old))
    history = register.history(NOW, timedelta(hours=1))
    assert [(p.action_id, p.status, p.started_at) for p in history.executions] == [
        ("a:dispatch_ready", "failed", NOW)
    ]
    rows = register.actions()
    assert rows[0]["action_id"] == "b:sync_upstream" and rows[1]["detail"] == "done it"
    assert [r["id"] for r in register.actions(repo="a")] == [row_id]


def test_an_outcome_without_a_started_row_is_still_recorded(register: Register) -> None:
    register.action_finished(outcome(action(), "refused", rule="lease", note="100% refused"))
    (row,) = register.actions()
    assert row["status"] == "refused" and row["evidence"] == {"rule": "lease", "note": "100% refused"}


STARTER = """
import sys, time
from datetime import datetime, UTC
from pathlib import Path
from speedrift.register.actions import Action
from speedrift.register.store import Register
register = Register.open(Path(sys.argv[1]), url=sys.argv[2])
act = Action(id="a:restart_service", repo="a", kind="restart_service", priority=96, reason="down")
register.action_started(act, "c-9", datetime.now(UTC))
print("started", flush=True)
time.sleep(60)
"""


def test_an_action_cut_off_by_kill_9_becomes_interrupted_but_a_live_hubs_action_does_not(
    register: Register, hub: Path, register_url: str
) -> None:
    argv = [sys.executable, "-c", STARTER, str(hub), register_url]
    killed = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    alive = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        for proc in (killed, alive):
            assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        interrupted = register.interrupted_actions()
        assert [(r["action_id"], r["pid"]) for r in interrupted] == [("a:restart_service", killed.pid)]
        assert register.mark_interrupted(["a:restart_service"], NOW) == 1
        assert register.interrupted_actions() == []
        statuses = sorted((r["pid"], r["status"]) for r in register.actions())
        assert statuses == sorted([(killed.pid, "interrupted"), (alive.pid, "started")])
        (closed,) = [r for r in register.actions() if r["status"] == "interrupted"]
        assert f"the hub process {killed.pid} stopped while this action ran" in closed["detail"]
    finally:
        alive.kill()
        alive.wait()


WRITER = """
import sys
from datetime import datetime, UTC
from pathlib import Path
from speedrift.register.actions import Action
from speedrift.register.record import Outcome
from speedrift.register.store import Register
register = Register.open(Path(sys.argv[1]), url=sys.argv[2])
for i in range(150):
    act = Action(id=f"{sys.argv[3]}:sync_upstream:{i}", repo=sys.argv[3], kind="sync_upstream", priority=1,
                 reason="r", subject=str(i))
    now = datetime.now(UTC)
    register.action_started(act, "c", now)
    register.action_finished(Outcome(act.id, act.repo, act.kind, "succeeded", "ok", now, now, {}))
"""


def test_two_writer_processes_and_a_reader_share_the_register_without_errors(
    register: Register, hub: Path, register_url: str
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(hub), register_url, who], stderr=subprocess.PIPE, text=True
        )
        for who in ("p", "q")
    ]
    while any(p.poll() is None for p in procs):
        register.history(datetime.now(UTC), timedelta(hours=1))
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    rows = register.actions(limit=1000)
    assert len(rows) == 300 and {r["status"] for r in rows} == {"succeeded"}
    assert len({r["id"] for r in rows}) == 300


def test_corrective_tasks_are_open_until_their_graph_says_they_are_finished(
    register: Register, tmp_path: Path
) -> None:
    emit = action("a", "emit_corrective_task", "speedrift-fix-stall")
    register.action_started(emit, "c-1", NOW)
    register.action_finished(outcome(emit, task="speedrift-fix-stall", created=True))
    repair = action("b", "repair_dependencies")
    register.action_started(repair, "c-1", NOW)
    register.action_finished(outcome(repair, "delegated", task="speedrift-fix-deps"))
    assert register.history(NOW, timedelta(hours=1)).open_corrective == {
        "a": ("speedrift-fix-stall",),
        "b": ("speedrift-fix-deps",),
    }
    repo = make_repo(tmp_path / "a")
    (repo / ".workgraph" / "graph.jsonl").write_bytes(
        orjson.dumps(task("speedrift-fix-stall", "done")) + b"\n"
    )
    before = (repo / ".workgraph" / "graph.jsonl").stat().st_mtime_ns
    assert register.refresh_corrective({"a": repo, "b": tmp_path / "no-such-repo"}, NOW) == 1
    assert register.open_corrective() == {"b": ("speedrift-fix-deps",)}
    assert (repo / ".workgraph" / "graph.jsonl").stat().st_mtime_ns == before


def test_a_corrective_task_found_again_later_is_reopened(register: Register) -> None:
    emit = action("a", "emit_corrective_task", "speedrift-fix-stall")
    register.action_finished(outcome(emit, task="speedrift-fix-stall"))
    assert register.close_corrective("a", ["speedrift-fix-stall"], NOW) == 1
    later = NOW + timedelta(hours=1)
    register.action_finished(
        Outcome(emit.id, "a", emit.kind, "succeeded", "again", later, later, {"task": "speedrift-fix-stall"})
    )
    assert register.open_corrective() == {"a": ("speedrift-fix-stall",)}


def test_approvals_are_pending_until_a_cycle_consumes_them(register: Register) -> None:
    register.record_approval(
        action_id="a:dispatch_ready", repo="a", kind="dispatch_ready", actor="alice", at=NOW
    )
    register.record_approval(
        action_id="a:dispatch_ready", repo="a", kind="dispatch_ready", actor="bob", at=NOW
    )
    register.record_approval(action_id="b:sync_upstream", repo="b", kind="sync_upstream", actor="bob", at=NOW)
    assert register.pending_approvals() == ["a:dispatch_ready", "b:sync_upstream"]
    assert register.pending_approvers() == {"a:dispatch_ready": "alice", "b:sync_upstream": "bob"}
    assert register.consume_approval("a:dispatch_ready", "c-2", NOW) == 2
    assert register.pending_approvals() == ["b:sync_upstream"]


def test_mode_changes_are_recorded_with_who_when_and_from_where(register: Register) -> None:
    register.record_mode_change(
        repo="a",
        mode="supervise",
        lease_owner="alice",
        lease_expires_at=NOW + timedelta(hours=1),
        actor="alice",
        source="dashboard",
        reason="night shift",
        at=NOW,
    )
    register.record_mode_change(repo="b", mode="observe", actor="bob", at=NOW)
    (row,) = register.mode_changes("a")
    assert (row["mode"], row["owner"], row["source"], row["reason"]) == (
        "supervise",
        "alice",
        "dashboard",
        "night shift",
    )
    assert row["expires_at"] == "2026-11-20T13:00:00.000000Z" and row["at"] == "2026-11-20T12:00:00.000000Z"
    assert [r["repo"] for r in register.mode_changes()] == ["b", "a"]


def test_register_gaps_are_recorded_and_listed_newest_first(register: Register) -> None:
    register.record_gap("hub-1", NOW, NOW + timedelta(minutes=5), 3, "connection refused")
    register.record_gap("hub-2", NOW + timedelta(hours=1), NOW + timedelta(hours=2), 0, "server restarted")
    newest, oldest = register.gaps()
    assert (newest["hub"], newest["cycles_backfilled"], newest["detail"]) == ("hub-2", 0, "server restarted")
    assert (oldest["began_at"], oldest["ended_at"]) == (
        "2026-11-20T12:00:00.000000Z",
        "2026-11-20T12:05:00.000000Z",
    )
    assert [gap["hub"] for gap in register.gaps(limit=1)] == ["hub-2"]
