"""Halting automatic retries when too many recent attempts failed, and resuming them."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from speedrift.failure_class import FailureClass
from speedrift.fleet import halt
from speedrift.fleet.config import RecoveryConfig
from speedrift.fleet.service import ServiceLoop
from tests.cli.support import Cli
from tests.fleet.conftest import Workshop


def outcomes(*statuses: str, cls: str | None = None) -> list[dict[str, Any]]:
    return [{"status": s, **({"class": cls} if cls else {})} for s in statuses]


def verdict(records: list[dict[str, Any]], threshold: float = 0.3, window: int = 20) -> halt.HaltState:
    return halt.halt_state(records, threshold=threshold, window=window, min_attempts=5)


# --- the verdict ------------------------------------------------------------------------------------------
def test_fewer_attempts_than_the_minimum_never_halt() -> None:
    state = verdict(outcomes("failed", "failed", "failed", "failed"))
    assert not state.halted and "from 5" in state.reason


def test_more_than_the_threshold_failing_halts_retries() -> None:
    state = verdict(outcomes("done", "done", "done", "failed", "failed"))
    assert (state.halted, state.failed, state.counted) == (True, 2, 5)
    assert "2 of the last 5 attempts failed (40%" in state.reason


def test_exactly_the_threshold_does_not_halt() -> None:
    # speedrift halts when the rate *exceeds* the threshold; SPEED halts at >= 30%
    state = verdict(outcomes(*(["done"] * 7 + ["failed"] * 3)))
    assert (state.halted, round(state.rate, 2)) == (False, 0.3)


def test_only_the_recent_window_counts() -> None:
    records = outcomes(*(["failed"] * 10 + ["done"] * 20))
    assert not verdict(records).halted
    assert verdict(records, window=30).halted  # 10 of 30: 33%


def test_usage_limits_and_cancelled_attempts_say_nothing_about_the_work() -> None:
    records = outcomes("done", "done", "done", "done", "done") + outcomes(
        "failed", "failed", cls="usage_limit"
    )
    records += outcomes("cancelled", "cancelled", "cancelled")
    state = verdict(records)
    assert (state.halted, state.counted) == (False, 5)


# --- the ledger ---------------------------------------------------------------------------------------------
def test_outcomes_are_appended_and_read_back_oldest_first(tmp_path: Path) -> None:
    halt.record_outcome(tmp_path, "a", 1, "failed", FailureClass.REGRESSION)
    halt.record_outcome(tmp_path, "b", 2, "done")
    read = halt.recent_outcomes(tmp_path)
    assert [(r["task"], r["attempt"], r["status"], r.get("class")) for r in read] == [
        ("a", 1, "failed", "regression"),
        ("b", 2, "done", None),
    ]


def test_a_torn_or_foreign_line_never_stops_the_count(tmp_path: Path) -> None:
    halt.record_outcome(tmp_path, "a", 1, "done")
    with open(halt.ledger_path(tmp_path), "ab") as handle:
        handle.write(b'{"status": "fai\n[1, 2]\n')
    halt.record_outcome(tmp_path, "b", 1, "failed")
    assert [r["task"] for r in halt.recent_outcomes(tmp_path)] == ["a", "b"]


def test_a_large_ledger_is_compacted_to_its_newest_lines(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(halt, "MAX_LEDGER_BYTES", 2_000)
    monkeypatch.setattr(halt, "KEEP_LINES", 5)
    for n in range(40):
        halt.record_outcome(tmp_path, f"t{n}", 1, "done")
    lines = halt.ledger_path(tmp_path).read_bytes().splitlines()
    assert len(lines) < 40 and lines[-1].count(b'"t39"') == 1


def test_concurrent_writers_lose_no_line(tmp_path: Path) -> None:
    def write(prefix: str) -> None:
        for n in range(50):
            halt.record_outcome(tmp_path, f"{prefix}{n}", 1, "done")

    threads = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(halt.recent_outcomes(tmp_path)) == 200


def test_resuming_makes_earlier_outcomes_stop_counting(tmp_path: Path) -> None:
    config = RecoveryConfig()
    for n in range(6):
        halt.record_outcome(tmp_path, f"t{n}", 1, "failed")
    assert halt.retries_halted(tmp_path, config).halted
    halt.resume_retries(tmp_path)
    state = halt.retries_halted(tmp_path, config)
    assert not state.halted and state.counted == 0 and state.resumed_at


# --- the service --------------------------------------------------------------------------------------------
def run_until(loop: ServiceLoop, task_id: str, statuses: tuple[str, ...], timeout: float = 60) -> None:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if loop.pipeline.store.load().tasks[task_id].get("status") in statuses:
            break
        time.sleep(0.05)
    loop.stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_halted_repo_withholds_retries_until_a_human_resumes_them(workshop: Workshop) -> None:
    for n in range(5):
        halt.record_outcome(workshop.repo, f"earlier{n}", 1, "failed", FailureClass.REGRESSION)
    flag = workshop.repo.parent / "second-try"
    workshop.add("flaky", f"if [ -f {flag} ]; then echo ok > ok.txt; else touch {flag}; kill -9 $$; fi")
    # unsandboxed: the command keeps its flag outside its worktree, across attempts
    pipeline = workshop.pipeline(
        service={"poll_seconds": 0.05, "backoff_seconds": 0}, sandbox={"mode": "off"}
    )
    run_until(ServiceLoop(pipeline), "flaky", ("failed",))
    deadline = time.monotonic() + 60  # a wait for a condition, not a speed assertion
    while "withheld" not in (workshop.store.load().tasks["flaky"].get("speedrift", {}).get("recovery") or {}):
        if time.monotonic() > deadline:
            pytest.fail(f"the retry was never withheld: {workshop.task('flaky')}")
        time.sleep(0.05)
    task = workshop.store.load().tasks["flaky"]
    assert task["status"] == "failed" and "retry_count" not in task
    assert task["speedrift"]["failure_class"] == "transient_infra"
    assert "Automatic retry withheld" in task["log"][-1]["message"]

    cli = Cli(workshop.repo)
    status = cli.json("service", "status")
    assert status["retries"]["halted"] and "6 of the last 6 attempts failed" in status["retries"]["reason"]
    resumed = cli.json("service", "resume-retries")
    assert resumed["was"]["halted"] and not resumed["now"]["halted"]

    run_until(ServiceLoop(pipeline), "flaky", ("done",))
    task = workshop.store.load().tasks["flaky"]
    assert (task["status"], task["retry_count"]) == ("done", 1)


def test_the_heartbeat_reports_the_halt_verdict(workshop: Workshop) -> None:
    loop = ServiceLoop(workshop.pipeline(service={"poll_seconds": 0.05}))
    loop.check_retries()
    loop.heartbeat("running")
    from speedrift.fleet import service

    beat = service.read_heartbeat(workshop.repo)
    assert beat is not None and beat.retries is not None
    assert beat.retries["halted"] is False and beat.retries["counted"] == 0
