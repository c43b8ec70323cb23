"""The demo feeder: new tasks with rotating scenarios, bounded open work, continued on a rerun."""

from __future__ import annotations

from pathlib import Path

from speedrift.demo.feeder import ACTOR, MAX_OPEN, ROTATION, TAG, fed_so_far, feed_once, interval_s
from speedrift.graph.store import GraphStore, init_graph_dir
from tests.conftest import NOW


def _repo(root: Path, name: str) -> GraphStore:
    path = root / name
    path.mkdir(parents=True)
    return GraphStore(init_graph_dir(path))


def test_the_feeder_adds_tasks_with_rotating_scenarios_as_the_demo_feeder(tmp_path: Path) -> None:
    store = _repo(tmp_path, "factory")

    first = feed_once(tmp_path, "factory", 0, NOW)
    second = feed_once(tmp_path, "factory", 1, NOW)

    assert first is not None and second is not None
    assert (first.scenario, second.scenario) == ROTATION[:2]
    task = store.load().tasks[second.task]
    assert TAG in task["tags"] and f"demo-scenario: {ROTATION[1]}" in task["description"]
    operations = (store.directory / "log" / "operations.jsonl").read_text()
    assert f'"actor":"{ACTOR}"' in operations


def test_a_repo_with_enough_open_work_gets_nothing_new(tmp_path: Path) -> None:
    _repo(tmp_path, "factory")
    for seq in range(MAX_OPEN):
        assert feed_once(tmp_path, "factory", seq, NOW) is not None

    assert feed_once(tmp_path, "factory", MAX_OPEN, NOW) is None
    assert fed_so_far(tmp_path, "factory") == MAX_OPEN


def test_the_feeding_interval_is_twenty_to_forty_seconds_times_the_pace() -> None:
    waits = [interval_s(0.5, tick) for tick in range(50)]

    assert all(10.0 <= wait <= 20.0 for wait in waits)
    assert len(set(waits)) > 1
