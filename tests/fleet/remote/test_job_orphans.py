"""What a dead worker process leaves on its machine (fleet/remote/orphans.py), and the job's watch on
the hub (fleet/remote/job.py ``CancelWatch``): a cancel, or a hub that stopped waiting."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from speedrift.fleet.remote import cluster, orphans, repocache
from speedrift.fleet.remote.job import CancelWatch, heartbeat_window
from speedrift.procs import ProcessIdentity, identity_of


def record(cache: Path, job: str, worker: ProcessIdentity, agent: ProcessIdentity | None) -> orphans.Running:
    checkout = repocache.Checkout(cache / "repos" / "r.git", cache / "work" / job / "repo")
    checkout.worktree.mkdir(parents=True)
    run_dir = repocache.run_dir(cache, job)
    run_dir.mkdir(parents=True)
    running = orphans.Running(f"key-{job}", job, worker, "r", checkout, run_dir, agent)
    orphans.write(cache, running)
    return running


def test_the_sweep_ends_the_agent_group_a_dead_worker_process_left_and_cleans_up(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    agent = subprocess.Popen(["sh", "-c", "sleep 60"], start_new_session=True)
    try:
        dead_worker = ProcessIdentity(os.getpid(), started=1)  # our pid, another start: not us
        left = record(cache, "dead", dead_worker, identity_of(agent.pid))
        alive = record(cache, "alive", identity_of(), identity_of(agent.pid))

        swept = orphans.sweep(cache)

        assert swept == [left.key]
        assert agent.wait(timeout=30) == -9  # the whole group got SIGKILL
        assert not orphans.record_path(cache, "dead").exists()
        assert not left.checkout.worktree.parent.exists() and not left.run_dir.exists()
        # a live worker process's job is never touched
        assert orphans.record_path(cache, "alive").exists() and alive.run_dir.is_dir()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_a_record_naming_paths_outside_the_cache_is_dropped_without_removing_them(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    outside = tmp_path / "precious"
    outside.mkdir()
    path = orphans.record_path(cache, "hostile")
    path.parent.mkdir(parents=True)
    path.write_text(
        '{"key": "k", "job": "hostile", "worker": {"pid": 999999999, "started": 1}, "repo_key": "r",'
        f' "repo": "{cache}/repos/r.git", "worktree": "{outside}/x", "run_dir": "{outside}"}}'
    )

    assert orphans.sweep(cache) == []
    assert outside.is_dir() and not path.exists()


def test_the_watch_cancels_when_the_hub_sets_the_cancel_event() -> None:
    cancel = threading.Event()
    watch = CancelWatch(cancel, cancelled=lambda _t: True, heartbeat=lambda: 1.0, window_s=60)

    assert watch.poll(0) is True
    assert cancel.is_set() and "cancelled" in watch.why and not watch.hub_gone


def test_the_watch_cancels_once_the_hubs_heartbeat_stops_changing_and_not_before() -> None:
    now = [0.0]
    beat: list[object] = [None]
    cancel = threading.Event()
    watch = CancelWatch(
        cancel,
        cancelled=lambda _t: False,
        heartbeat=lambda: beat[0],
        window_s=heartbeat_window(10.0),
        clock=lambda: now[0],
    )
    for second in range(1, 200, 5):  # the hub refreshes it: no cancel however long the job runs
        now[0], beat[0] = float(second), float(second)
        assert watch.poll(0) is False
    now[0] += 59
    assert watch.poll(0) is False
    now[0] += 2
    assert watch.poll(0) is True and cancel.is_set() and "heartbeat" in watch.why and watch.hub_gone


def test_a_scheduler_that_cannot_be_asked_counts_as_no_heartbeat() -> None:
    def unreachable() -> object:
        raise OSError("scheduler gone")

    now = [0.0]
    cancel = threading.Event()
    watch = CancelWatch(
        cancel, cancelled=lambda _t: False, heartbeat=unreachable, window_s=30, clock=lambda: now[0]
    )
    now[0] = 29
    assert watch.poll(0) is False
    now[0] = 31
    assert watch.poll(0) is True


def test_the_heartbeat_window_is_three_beats_and_never_under_a_minute() -> None:
    assert heartbeat_window(10) == 60 and heartbeat_window(45) == 135


def test_a_worker_that_speedrift_cluster_up_starts_first_ends_the_agents_a_dead_worker_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SPEEDRIFT_WORKER_CACHE", str(cache))  # the cluster's workers inherit it
    agent = subprocess.Popen(["sh", "-c", "sleep 120"], start_new_session=True)
    try:
        left = record(cache, "dead", ProcessIdentity(os.getpid(), started=1), identity_of(agent.pid))

        with cluster.up(workers=1, port=0, timeout=120):  # its worker preloads the sweep
            assert agent.wait(timeout=120) == -9
        assert not orphans.record_path(cache, "dead").exists() and not left.run_dir.exists()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
