"""The register: SQLite in WAL mode, versioned schema, actions that survive a kill -9 as 'interrupted'."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from speedrift.errors import Refused, UsageError
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
from speedrift.register.sqlite import Register
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
    record = CycleRecord(
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
    return record


@pytest.fixture
def register(tmp_path: Path) -> Register:
    return Register.open(tmp_path / "hub")


def test_a_new_register_is_a_wal_database_at_the_latest_schema(register: Register, tmp_path: Path) -> None:
    assert register.path == tmp_path / "hub" / "register.db"
    assert register.schema_version() == SCHEMA_VERSION and register.notice is None
    with sqlite3.connect(register.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"cycles", "repo_health", "actions", "corrective_tasks", "mode_changes", "approvals"} <= tables
    register.close()
    again = Register.open(tmp_path / "hub")
    assert again.schema_version() == SCHEMA_VERSION  # reopening migrates nothing twice


def test_a_register_from_a_newer_speedrift_is_refused(tmp_path: Path) -> None:
    Register.open(tmp_path).close()
    with sqlite3.connect(tmp_path / "register.db") as db:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(Refused, match="knows up to"):
        Register.open(tmp_path)


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
    register.record_cycle({"kind": "recovery", "generated_at": "x"})  # ledger-only entries are ignored
    assert len(register.cycles()) == 1


def test_the_cycle_record_object_is_stored_exactly_like_its_dict(tmp_path: Path) -> None:
    done = outcome(action(), "failed")
    from_dict, from_object = Register.open(tmp_path / "d"), Register.open(tmp_path / "o")
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
    register.action_started(first, "c-1", NOW)
    assert [(p.action_id, p.status) for p in register.history(NOW, timedelta(hours=1)).executions] == [
        ("a:dispatch_ready", "started")
    ]
    register.action_finished(outcome(first, "failed"))
    old = action("b", "sync_upstream")
    register.action_started(old, "c-0", NOW - timedelta(days=2))
    register.action_finished(outcome(old))
    history = register.history(NOW, timedelta(hours=1))
    assert [(p.action_id, p.status, p.started_at) for p in history.executions] == [
        ("a:dispatch_ready", "failed", NOW)
    ]
    rows = register.actions()
    assert rows[0]["action_id"] == "b:sync_upstream" and rows[1]["detail"] == "done it"


def test_an_outcome_without_a_started_row_is_still_recorded(register: Register) -> None:
    register.action_finished(outcome(action(), "refused", rule="lease"))
    (row,) = register.actions()
    assert row["status"] == "refused" and row["evidence"] == {"rule": "lease"}


STARTER = """
import sys, time
from datetime import datetime, UTC
from pathlib import Path
from speedrift.register.actions import Action
from speedrift.register.sqlite import Register
register = Register.open(Path(sys.argv[1]))
act = Action(id="a:restart_service", repo="a", kind="restart_service", priority=96, reason="down")
register.action_started(act, "c-9", datetime.now(UTC))
print("started", flush=True)
time.sleep(60)
"""


def test_an_action_cut_off_by_kill_9_becomes_interrupted_but_a_live_hubs_action_does_not(
    tmp_path: Path,
) -> None:
    killed = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    alive = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        for proc in (killed, alive):
            assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        register = Register.open(tmp_path)
        interrupted = register.interrupted_actions()
        assert [(r["action_id"], r["pid"]) for r in interrupted] == [("a:restart_service", killed.pid)]
        assert register.mark_interrupted(["a:restart_service"], NOW) == 1
        assert register.interrupted_actions() == []
        statuses = sorted((r["pid"], r["status"]) for r in register.actions())
        assert statuses == sorted([(killed.pid, "interrupted"), (alive.pid, "started")])
        assert "stopped while this action ran" in register.actions(repo="a")[-1]["detail"] or any(
            "stopped while" in (r["detail"] or "") for r in register.actions()
        )
    finally:
        alive.kill()
        alive.wait()


WRITER = """
import sys
from datetime import datetime, UTC
from pathlib import Path
from speedrift.register.actions import Action
from speedrift.register.record import Outcome
from speedrift.register.sqlite import Register
register = Register.open(Path(sys.argv[1]))
for i in range(150):
    act = Action(id=f"{sys.argv[2]}:sync_upstream:{i}", repo=sys.argv[2], kind="sync_upstream", priority=1,
                 reason="r", subject=str(i))
    now = datetime.now(UTC)
    register.action_started(act, "c", now)
    register.action_finished(Outcome(act.id, act.repo, act.kind, "succeeded", "ok", now, now, {}))
"""


def test_two_writer_processes_and_a_reader_share_the_register_without_errors(tmp_path: Path) -> None:
    register = Register.open(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), who], stderr=subprocess.PIPE, text=True
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
    (row,) = register.mode_changes("a")
    assert (row["mode"], row["owner"], row["source"], row["reason"]) == (
        "supervise",
        "alice",
        "dashboard",
        "night shift",
    )
    assert row["expires_at"] == "2026-11-20T13:00:00.000000Z" and row["at"] == "2026-11-20T12:00:00.000000Z"


def test_a_postgresql_url_is_accepted_and_the_register_says_it_uses_sqlite(tmp_path: Path) -> None:
    register = Register.open(tmp_path, url="postgresql://hub:s3cret@db.internal/speedrift")
    assert register.backend == "sqlite" and register.path == tmp_path / "register.db"
    assert register.notice is not None and "not supported yet" in register.notice
    assert "s3cret" not in register.notice and str(tmp_path / "register.db") in register.notice


def test_a_sqlite_url_places_the_file_and_other_urls_are_refused(tmp_path: Path) -> None:
    register = Register.open(tmp_path / "hub", url=f"sqlite:///{tmp_path}/elsewhere/central.db")
    assert register.path == tmp_path / "elsewhere" / "central.db" and register.path.exists()
    with pytest.raises(UsageError):
        Register.open(tmp_path, url="sqlite://relative.db")
    with pytest.raises(UsageError):
        Register.open(tmp_path, url="mysql://x")
