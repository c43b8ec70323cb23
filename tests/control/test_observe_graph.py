"""What the observer reads from a task graph: counts, ready work, aging, blockers, dead claims, mentions."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from speedrift.control.observe.graph import analyze, read_graph, refresh
from speedrift.graph.store import repo_graph_file
from speedrift.times import format_time
from tests.builders import graph_of, task

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return format_time(NOW - timedelta(**delta))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def claimed(task_id: str, pid: int, host: str | None = None, **fields: Any) -> dict[str, Any]:
    worker = {"pid": pid, "host": host or socket.gethostname()}
    return task(task_id, "in-progress", speedrift={"worker": worker}, **fields)


def test_counts_ready_work_in_dispatch_order_and_blocked_work() -> None:
    reading = analyze(
        graph_of(
            task("low", created_at=ago(hours=1)),
            task("urgent", priority=100, created_at=ago(hours=1)),
            task("waits", after=["low"]),
            task("done-one", "done"),
            task("broken", "failed"),
            task("after-broken", after=["broken"]),
            task("orphan", after=["ghost"]),
        ),
        ".workgraph",
        NOW,
    )
    state = reading.state
    assert state.graph_dir == ".workgraph"
    assert state.counts == {"open": 5, "done": 1, "failed": 1}
    assert [b.id for b in state.ready] == ["urgent", "low"] and state.ready_count == 2
    assert state.ready[0].priority == 100 and state.ready[0].age_seconds == 3600.0
    assert state.blocked == 3  # waits, after-broken, orphan
    assert state.failed_blockers == 1
    assert state.missing_dependencies == (("orphan", "ghost"),)
    assert state.problems == 0


def test_in_progress_work_is_listed_oldest_first_and_aging_is_counted() -> None:
    state = analyze(
        graph_of(
            task("fresh", "in-progress", started_at=ago(hours=2)),
            task("old", "in-progress", started_at=ago(days=4), created_at=ago(days=30)),
            task("stale-open", created_at=ago(days=15)),
            task("young-open", created_at=ago(days=2)),
        ),
        ".workgraph",
        NOW,
    ).state
    assert [(b.id, b.age_seconds) for b in state.in_progress] == [("old", 4 * 86400.0), ("fresh", 7200.0)]
    assert state.stale_in_progress == 1
    assert state.stale_open == 1


def test_claims_by_a_local_process_that_is_gone_are_dead_claims() -> None:
    state = analyze(
        graph_of(
            claimed("dead", dead_pid()),
            claimed("alive", os.getpid()),
            claimed("elsewhere", dead_pid(), host="another-machine"),
            task("human", "in-progress", assigned="alice"),
        ),
        ".workgraph",
        NOW,
    ).state
    assert state.dead_claims == ("dead",)


def test_lines_the_parser_cannot_read_are_counted_as_problems() -> None:
    from speedrift.graph.codec import Graph

    graph = Graph.from_bytes(b'{"kind":"task","id":"a","status":"open"}\n{not json\n')
    assert analyze(graph, ".wg", NOW).state.problems == 1


def test_other_registered_repos_named_in_titles_descriptions_or_dependencies_are_mentions() -> None:
    state = analyze(
        graph_of(
            task("a", title="Wait for the Billing API"),
            task("b", description="needs web-ui. Also see docs"),
            task("c", after=["auth-service:login"]),
            task("d", title="billingsystem is not billing-x"),
        ),
        ".workgraph",
        NOW,
        frozenset({"billing", "web-ui", "auth-service", "unmentioned"}),
    ).state
    assert state.mentions == ("auth-service", "billing", "web-ui")


def test_a_reading_stays_valid_until_the_next_time_based_change_and_refresh_moves_ages() -> None:
    reading = analyze(
        graph_of(
            task("gated", not_before=format_time(NOW + timedelta(hours=1))),
            task("working", "in-progress", started_at=ago(hours=1)),
        ),
        ".workgraph",
        NOW,
    )
    assert [b.id for b in reading.state.ready] == []
    assert reading.valid_until == NOW + timedelta(hours=1)
    later = refresh(reading, NOW + timedelta(minutes=30))
    assert later is not None
    assert later.state.in_progress[0].age_seconds == 5400.0
    again = refresh(later, NOW + timedelta(minutes=45))
    assert again is not None and again.state.in_progress[0].age_seconds == 6300.0
    assert refresh(reading, NOW + timedelta(hours=1)) is None  # the gate opened: read again


def test_the_horizon_includes_the_stale_lines() -> None:
    reading = analyze(graph_of(task("open", created_at=ago(days=13))), ".workgraph", NOW)
    assert reading.valid_until == NOW + timedelta(days=1)  # open work turns stale at 14 days
    quiet = analyze(graph_of(task("old", "done")), ".workgraph", NOW)
    assert quiet.valid_until is None


def test_refresh_rechecks_claimants_without_reading_the_graph() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        reading = analyze(graph_of(claimed("t", sleeper.pid)), ".workgraph", NOW)
        assert reading.state.dead_claims == ()
    finally:
        sleeper.kill()
        sleeper.wait()
    moved = refresh(reading, NOW + timedelta(seconds=1))
    assert moved is not None and moved.state.dead_claims == ("t",)


def test_graph_files_are_found_in_wgs_order_and_read(tmp_path: Path) -> None:
    assert repo_graph_file(tmp_path) is None and read_graph(tmp_path, NOW) is None
    (tmp_path / ".workgraph").mkdir()
    (tmp_path / ".workgraph" / "graph.jsonl").write_bytes(orjson.dumps(task("old-dir")) + b"\n")
    (tmp_path / ".wg").mkdir()
    (tmp_path / ".wg" / "graph.jsonl").write_bytes(orjson.dumps(task("new-dir")) + b"\n")
    reading = read_graph(tmp_path, NOW)
    assert reading is not None
    assert reading.state.graph_dir == ".wg" and [b.id for b in reading.state.ready] == ["new-dir"]


def test_a_ready_task_with_its_own_fallback_order_names_no_runtime_for_the_hub_to_hold() -> None:
    reading = analyze(
        graph_of(
            task("pinned", model="claude:sonnet", created_at=ago(hours=1)),
            task(
                "falls-back",
                model="claude:sonnet",
                created_at=ago(hours=1),
                speedrift={"fallback": ["claude:sonnet", "codex:gpt-5"]},
            ),
            task(
                "agent-run",
                created_at=ago(hours=1),
                speedrift={"agent": {"name": "nightly", "fallback": ["codex:gpt-5"]}},
                model="claude:haiku",
            ),
        ),
        ".workgraph",
        NOW,
    )
    runtimes = {brief.id: brief.runtime for brief in reading.state.ready}
    # a pause of claude holds the pinned task; the others move down their own order in the worker
    assert runtimes == {"pinned": "claude", "falls-back": None, "agent-run": None}
