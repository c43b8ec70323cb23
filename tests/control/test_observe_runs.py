"""Runtime facts from .speedrift/: service liveness (without touching its lock), attempts, gate findings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from speedrift.control.observe.runs import read_lock_table, runs_state, service_state
from speedrift.times import iso_utc

NOW = datetime.now(UTC)

HOLDER = """
import fcntl, os, sys, time
folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
fd = os.open(os.path.join(folder, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
open(os.path.join(folder, "pid"), "w").write(str(os.getpid()))
print("ready", flush=True)
time.sleep(120)
"""


def hold_service_lock(repo: Path) -> subprocess.Popen[str]:
    """A process that holds the repo's service lock like a running `speedrift service` does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo / ".speedrift" / "service")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = hold_service_lock(tmp_path)
    yield proc
    proc.kill()
    proc.wait()


def heartbeat(repo: Path, at: datetime, running: list[str]) -> None:
    folder = repo / ".speedrift" / "service"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "heartbeat.json").write_bytes(orjson.dumps({"at": iso_utc(at), "running": running}))


def test_a_held_service_lock_means_running_without_the_observer_touching_the_lock(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    heartbeat(tmp_path, NOW - timedelta(seconds=5), ["t1", "t2"])
    lock = tmp_path / ".speedrift" / "service" / "lock"
    before = lock.stat()
    state = service_state(tmp_path, None, read_lock_table(), NOW)
    assert state.running and state.kind == "speedrift" and state.pid == holder.pid
    assert state.active_agents == 2 and state.heartbeat_age_seconds == pytest.approx(5, abs=1)
    assert lock.stat().st_mtime_ns == before.st_mtime_ns
    holder.kill()
    holder.wait()
    stopped = service_state(tmp_path, None, read_lock_table(), NOW)  # every file is still there
    assert not stopped.running and stopped.kind == "speedrift"


def test_without_the_kernels_lock_table_a_live_pid_with_a_fresh_heartbeat_counts(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    heartbeat(tmp_path, NOW, [])
    assert service_state(tmp_path, None, None, NOW).running
    heartbeat(tmp_path, NOW - timedelta(minutes=10), [])
    assert not service_state(tmp_path, None, None, NOW).running


def test_a_live_wg_service_is_reported_as_wg(tmp_path: Path) -> None:
    graph_dir = tmp_path / ".workgraph"
    (graph_dir / "service").mkdir(parents=True)
    (graph_dir / "service" / "state.json").write_bytes(orjson.dumps({"pid": os.getpid()}))
    state = service_state(tmp_path, graph_dir, read_lock_table(), NOW)
    assert state.running and state.kind == "wg" and state.pid == os.getpid()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (graph_dir / "service" / "state.json").write_bytes(orjson.dumps({"pid": gone.pid}))
    assert not service_state(tmp_path, graph_dir, read_lock_table(), NOW).running


def test_the_hubs_marker_is_reported_even_when_the_service_is_down(tmp_path: Path) -> None:
    folder = tmp_path / ".speedrift" / "service"
    folder.mkdir(parents=True)
    (folder / "started-by-hub").write_text("{}")
    state = service_state(tmp_path, None, read_lock_table(), NOW)
    assert not state.running and state.started_by_hub
    assert service_state(tmp_path / "nothing", None, read_lock_table(), NOW).kind is None


def attempt(repo: Path, task: str, number: int, state: str, at: datetime, **extra: Any) -> Path:
    folder = repo / ".speedrift" / "runs" / task / str(number)
    folder.mkdir(parents=True)
    record = {"state": state, "started": iso_utc(at - timedelta(minutes=5)), "updated": iso_utc(at), **extra}
    (folder / "attempt.json").write_bytes(orjson.dumps(record))
    return folder


def test_recent_attempts_are_counted_with_failure_classes_and_repeated_failures(tmp_path: Path) -> None:
    attempt(tmp_path, "a", 1, "failed", NOW - timedelta(hours=3), failure="transient")
    attempt(tmp_path, "a", 2, "failed", NOW - timedelta(hours=2), failure="scope_violation")
    attempt(tmp_path, "a", 3, "running", NOW - timedelta(minutes=1))
    attempt(tmp_path, "b", 1, "failed", NOW - timedelta(hours=2), failure="transient")
    attempt(tmp_path, "b", 2, "done", NOW - timedelta(hours=1))
    attempt(tmp_path, "old", 1, "failed", NOW - timedelta(days=30), failure="ancient")
    stats, _ = runs_state(tmp_path, NOW)
    assert (stats.recent, stats.succeeded, stats.failed) == (5, 1, 3)
    assert stats.failure_classes == {"scope_violation": 1, "transient": 2}
    assert stats.repeated_failures == ("a",)
    assert stats.last_finished_at is not None
    assert abs((stats.last_finished_at - (NOW - timedelta(hours=1))).total_seconds()) < 1


def bundle(*results: dict[str, Any], created: datetime = NOW) -> dict[str, Any]:
    return {"commit": "c", "base": "b", "created_at": iso_utc(created), "results": list(results)}


def finding(severity: str, new: bool = True) -> dict[str, Any]:
    return {"file": "a.py", "line": 1, "kind": "k", "message": "m", "severity": severity, "new": new}


def test_gate_findings_come_from_the_latest_bundles_and_the_newest_scan(tmp_path: Path) -> None:
    folder = attempt(tmp_path, "a", 1, "failed", NOW - timedelta(hours=1))
    evidence = {
        "task": "a",
        "gates": [
            bundle(
                {
                    "gate": "secrets",
                    "status": "fail",
                    "failure_class": "secret_leak",
                    "findings": [finding("critical")],
                },
                {"gate": "lint", "status": "warn", "findings": [finding("low"), finding("high", new=False)]},
                created=NOW - timedelta(hours=1),
            )
        ],
    }
    (folder / "evidence.json").write_bytes(orjson.dumps(evidence))
    scans = tmp_path / ".speedrift" / "scans"
    scans.mkdir(parents=True)
    (scans / "20260101T000000Z.json").write_bytes(
        orjson.dumps(bundle({"status": "fail", "findings": [finding("high")] * 5}))
    )
    (scans / "20261120T000000Z.json").write_bytes(
        orjson.dumps(bundle({"gate": "sast", "status": "pass", "findings": [finding("medium", new=False)]}))
    )
    _, gates = runs_state(tmp_path, NOW)
    # the target branch: the newest scan only (the failed attempt landed nothing)
    assert (gates.critical, gates.high, gates.medium, gates.low, gates.secret_leaks) == (0, 0, 1, 0, 0)
    assert gates.last_status == "pass" and (gates.where, gates.source) == ("target_branch", "scan")
    # the blocked attempt: its new findings, under the attempt, never landed
    [blocked] = gates.blocked_attempts
    assert (blocked.task, blocked.attempt, blocked.where, blocked.landed) == (
        "a",
        1,
        "blocked_attempt",
        False,
    )
    assert (blocked.critical, blocked.high, blocked.low, blocked.secret_leaks) == (1, 0, 1, 1)


def test_an_attempt_that_landed_after_the_newest_scan_counts_on_the_target_branch_at_its_commit(
    tmp_path: Path,
) -> None:
    scans = tmp_path / ".speedrift" / "scans"
    scans.mkdir(parents=True)
    scan = bundle({"gate": "sast", "status": "pass", "findings": []}, created=NOW - timedelta(hours=2))
    scan["scan"] = {"where": "target_branch", "tip": "aaa111", "commit": "aaa111"}
    (scans / "20261120T000000Z.json").write_bytes(orjson.dumps(scan))
    landed = {
        "task": "b",
        "landed_commit": "bbb222",
        "gates": [
            bundle(
                {"gate": "lint", "status": "warn", "findings": [finding("high")]},
                created=NOW - timedelta(hours=1),
            )
        ],
    }
    (attempt(tmp_path, "b", 1, "done", NOW - timedelta(hours=1)) / "evidence.json").write_bytes(
        orjson.dumps(landed)
    )
    before = dict(landed, task="c", landed_commit="ccc333")
    (attempt(tmp_path, "c", 1, "done", NOW - timedelta(hours=3)) / "evidence.json").write_bytes(
        orjson.dumps(before)
    )
    _, gates = runs_state(tmp_path, NOW)
    # b landed after the scan: its finding is on the target branch at b's commit; c landed before
    # the scan, which judged the branch after it: superseded
    assert (gates.high, gates.commit, gates.source, gates.last_status) == (
        1,
        "bbb222",
        "landed attempt",
        "warn",
    )
    assert gates.blocked_attempts == ()


def test_a_blocked_attempt_whose_worktree_is_gone_or_that_a_retry_superseded_is_not_shown(
    tmp_path: Path,
) -> None:
    leak = bundle(
        {
            "gate": "secrets",
            "status": "fail",
            "failure_class": "secret_leak",
            "findings": [finding("critical")],
        }
    )
    gone = {"task": "a", "worktree": str(tmp_path / "no-such-worktree"), "gates": [leak]}
    (attempt(tmp_path, "a", 1, "failed", NOW - timedelta(hours=1)) / "evidence.json").write_bytes(
        orjson.dumps(gone)
    )
    kept = tmp_path / "kept-worktree"
    kept.mkdir()
    first = {"task": "b", "worktree": str(kept), "gates": [leak]}
    (attempt(tmp_path, "b", 1, "failed", NOW - timedelta(hours=2)) / "evidence.json").write_bytes(
        orjson.dumps(first)
    )
    attempt(tmp_path, "b", 2, "running", NOW - timedelta(minutes=1))  # the retry
    _, gates = runs_state(tmp_path, NOW)
    assert gates.blocked_attempts == () and gates.secret_leaks == 0


def test_no_runs_means_empty_stats(tmp_path: Path) -> None:
    stats, gates = runs_state(tmp_path, NOW)
    assert stats.recent == 0 and gates.last_status == "none"


def test_the_lock_table_parser_reads_holders_and_skips_waiters(tmp_path: Path) -> None:
    table = tmp_path / "locks"
    table.write_text(
        "1: FLOCK  ADVISORY  WRITE 4242 fe:01:123 0 EOF\n"
        "1: -> FLOCK  ADVISORY  WRITE 4343 fe:01:123 0 EOF\n"
        "2: POSIX  ADVISORY  WRITE 99 08:02:7 0 EOF\n"
    )
    assert read_lock_table(table) == {(os.makedev(0xFE, 1), 123): 4242}
    assert read_lock_table(tmp_path / "absent") is None
