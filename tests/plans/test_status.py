"""`plan status` over a real repo's graph: each task's state and what holds it, the closure stage
from implementation to closed, and drift between the spec and what was compiled."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from speedrift.errors import NotFound
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.plans import spec
from speedrift.plans.closure import Phase
from speedrift.plans.compile import ChangeKind
from speedrift.plans.status import WaveStatus, statuses
from speedrift.times import now_utc
from tests.plans.compile_support import compile_spec, edited, new_repo, three_tasks, write_spec


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, GraphStore]:
    return new_repo(tmp_path / "repo")


def status_of(repo: tuple[Path, GraphStore], wave: int | None = 1) -> WaveStatus:
    found = statuses(repo[0], repo[1], wave, now=now_utc())
    assert len(found) == 1
    return found[0]


def finish(store: GraphStore, *task_ids: str) -> None:
    for task_id in task_ids:

        def done(graph: Graph, now: datetime, task_id: str = task_id) -> ops.Mutation:
            return ops.done(graph, task_id, now=now, actor="dev", force=True)

        store.mutate(done, actor="dev")


def holds(status: WaveStatus) -> dict[str, str]:
    return {row.id: row.holds for row in status.tasks}


def test_the_stage_follows_the_wave_from_implementation_through_each_closure_task_to_closed(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    compile_spec(path, store, three_tasks())
    assert status_of(repo).stage is Phase.IMPLEMENTATION
    finish(store, "w1-a1", "w1-a2")
    store.mutate(lambda g, now: ops.abandon(g, "w1-a3", reason="not needed", now=now, actor="dev"))
    seen = [status_of(repo).stage]
    for stage in ("w1.integration", "w1.documentation", "w1.evaluation"):
        finish(store, stage)
        seen.append(status_of(repo).stage)
    assert seen == [Phase.INTEGRATION, Phase.DOCUMENTATION, Phase.EVALUATION, Phase.CLOSED]


def test_each_task_says_what_holds_it_and_a_ready_closure_task_names_plan_run(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    compile_spec(path, store, three_tasks())
    store.mutate(lambda g, now: ops.claim(g, "w1-a1", now=now, actor="dev"), actor="dev")
    status = status_of(repo)
    assert [row.id for row in status.tasks] == [
        "w1-a1",
        "w1-a2",
        "w1-a3",
        "w1.integration",
        "w1.documentation",
        "w1.evaluation",
    ]
    said = holds(status)
    assert said["w1-a1"] == ""  # running: nothing holds it
    assert said["w1-a2"] == "after w1-a1 (in-progress)"
    assert said["w1.integration"] == "after w1-a1 (in-progress); after w1-a2, w1-a3 (open)"
    row = status.tasks[1]
    assert row.reasons == ({"kind": "blocker", "blocker": "w1-a1", "detail": "in-progress"},)
    assert (
        status.tasks[0].assigned == "dev"
        and status.tasks[3].closure
        and status.tasks[3].role == "integration"
    )
    finish(store, "w1-a1", "w1-a2", "w1-a3")
    ready = holds(status_of(repo))["w1.integration"]
    assert ready.startswith("ready: a closure stage (integration) of wave 1")
    assert "`speedrift plan run`" in ready


def test_a_spec_edited_after_its_compile_shows_as_drift_until_compiled_again(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    value = three_tasks()
    compile_spec(path, store, value)
    assert status_of(repo).drift == [] and not status_of(repo).recompile
    changed = edited(value)
    changed["tasks"][2]["prompt"] = "Document the limits and the burst."
    write_spec(path, changed)
    status = status_of(repo)
    assert status.recompile
    assert [(c.kind, c.task_id) for c in status.drift] == [(ChangeKind.UPDATED, "w1-a3")]
    assert status.spec_hash == spec.spec_hash(changed)
    compile_spec(path, store, changed)
    assert status_of(repo).drift == []


def test_an_edit_to_a_task_that_left_open_is_drift_that_a_compile_keeps(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    value = three_tasks()
    compile_spec(path, store, value)
    finish(store, "w1-a1")
    changed = edited(value)
    changed["tasks"][0]["title"] = "The limiter, renamed"
    write_spec(path, changed)
    status = status_of(repo)
    assert not status.recompile
    assert [(c.kind, c.status) for c in status.drift] == [(ChangeKind.KEPT, "done")]


def test_every_wave_is_listed_compiled_or_not_with_what_stops_a_compile(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    write_spec(path, three_tasks(1))
    write_spec(path, three_tasks(2, sequencing={"after_waves": [1]}))
    found = statuses(path, store, None, now=now_utc())
    assert [(s.wave, s.compiled, s.stage) for s in found] == [(1, False, None), (2, False, None)]
    assert found[1].spec_problem is not None and "wave 1, which is not compiled" in found[1].spec_problem
    assert "(fix: compile wave 1 first: `speedrift plan compile 1`)" in found[1].spec_problem
    assert found[0].as_dict()["stage"] is None and found[0].title == "Rate limiting"


def test_a_compiled_wave_whose_spec_is_gone_still_shows_its_tasks(repo: tuple[Path, GraphStore]) -> None:
    path, store = repo
    compile_spec(path, store, three_tasks())
    spec.spec_path(path, 1).unlink()
    status = status_of(repo)
    assert status.stage is Phase.IMPLEMENTATION and len(status.tasks) == 6
    assert status.spec_problem is not None and "no such wave spec" in status.spec_problem


def test_a_wave_with_neither_spec_nor_tasks_is_not_found(repo: tuple[Path, GraphStore]) -> None:
    with pytest.raises(NotFound, match="wave 7"):
        statuses(repo[0], repo[1], 7, now=now_utc())
