"""`plan compile` against a real repo's graph: deterministic ids, dependencies, scope, criteria and
closure tasks; compiling twice changes no byte; an edited spec updates only open tasks, keeps the
others, abandons what it dropped; and closure tasks never reach a developer attempt."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from speedrift import layout
from speedrift.control.observe.graph import analyze
from speedrift.coord.records import Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.errors import Refused
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.fleet.roles.inputs import TASK_CRITERIA_KEY, acceptance_criteria
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ids, ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import declared_scope, dispatch_hold, plan_data, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.plans import compile_tasks, spec
from speedrift.plans.compile import ChangeKind, behind
from speedrift.plans.compiler import DECISION_SOURCE
from speedrift.plans.spec import ClosureStage
from speedrift.repo import worktrees
from speedrift.times import now_utc
from tests.plans.compile_support import compile_spec, edited, new_repo, task, three_tasks, write_spec

CLOSURE = ["w1.integration", "w1.documentation", "w1.evaluation"]


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, GraphStore]:
    return new_repo(tmp_path / "repo")


def claim(store: GraphStore, task_id: str) -> None:
    store.mutate(lambda g, now: ops.claim(g, task_id, now=now, actor="dev"), actor="dev")


def finish(store: GraphStore, *task_ids: str) -> None:
    for task_id in task_ids:

        def done(graph: Graph, now: datetime, task_id: str = task_id) -> ops.Mutation:
            return ops.done(graph, task_id, now=now, actor="dev", force=True)

        store.mutate(done, actor="dev")


def test_a_three_task_wave_compiles_into_namespaced_tasks_with_their_dependencies_scope_and_criteria(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    done = compile_spec(path, store, three_tasks())
    assert [(c.kind, c.task_id) for c in done.compiled.changes] == [
        (ChangeKind.ADDED, t) for t in ["w1-a1", "w1-a2", "w1-a3", *CLOSURE]
    ]
    tasks = store.load().tasks
    a1, a2, a3 = tasks["w1-a1"], tasks["w1-a2"], tasks["w1-a3"]
    assert "after" not in a1 and a2["after"] == ["w1-a1"] and a3["after"] == ["w1-a1"]
    assert a1["tags"] == ["wave-1", "implementation"] and a2["tags"] == ["wave-1", "qa"]
    assert declared_scope(a1) == ["src/limiter.py", "src/limiter.py"]  # touch, then deliverables
    assert speedrift_data(a2)["touch"] == ["tests/test_limiter.py"]
    assert a1["model"] == "claude:sonnet" and "model" not in a2
    assert a1["description"].startswith("Do the a1 part.")
    assert "`python -m pytest -q tests/test_limiter.py`" in a1["description"]
    criteria = acceptance_criteria(a1)
    assert criteria[0] == "src/limiter.py exists and is committed (verified by: the contract gate)"
    assert any("completion integrated" in c for c in criteria)
    assert any("`python -m pytest -q tests/test_limiter.py` passes" in c for c in criteria)
    plan = plan_data(a1)
    value = spec.read(spec.spec_path(path, 1))
    assert plan["wave"] == 1 and plan["task"] == "a1" and plan["role"] == "implementation"
    assert plan["spec_hash"] == spec.spec_hash(value)
    assert plan["task_hash"] == compile_tasks.task_hash(value["tasks"][0])
    assert plan["validation"] == ["python -m pytest -q tests/test_limiter.py"]
    assert plan["runtime"] == {"fallbacks": ["codex"], "budgets": {"max_turns": 30}}
    assert speedrift_data(a1)["spec"]["source"] == "plans/waves/specs/wave-1.json"
    integration, documentation, evaluation = (tasks[t] for t in CLOSURE)
    assert integration["after"] == ["w1-a1", "w1-a2", "w1-a3"]
    assert documentation["after"] == ["w1.integration"] and evaluation["after"] == ["w1.documentation"]
    assert [plan_data(t)["stage"] for t in (integration, documentation, evaluation)] == [
        s.value for s in ClosureStage
    ]
    assert [plan_data(t)["role"] for t in (integration, documentation, evaluation)] == [
        "integration",
        "documentation",
        "evaluator",
    ]
    assert plan_data(integration)["validation"] == ["python -m pytest -q"]
    assert integration["tags"] == ["wave-1", "integration"]
    assert dispatch_hold(integration) and dispatch_hold(a1) is None


def test_the_change_list_is_posted_as_one_decision_in_the_wave_scope(repo: tuple[Path, GraphStore]) -> None:
    path, store = repo
    done = compile_spec(path, store, three_tasks())
    records = list(CoordStore.for_scope(path, spec.scope_of(1)).read().records.values())
    assert [r.id for r in records] == [done.record]
    record = records[0]
    assert record.kind is Kind.DECISION and record.status is Status.RESOLVED
    assert record.author.name == "tester" and record.data["source"] == DECISION_SOURCE
    assert [c["task"] for c in record.data["changes"]] == ["w1-a1", "w1-a2", "w1-a3", *CLOSURE]
    assert "task:w1-a2" in record.targets and "w1-a2: added" in record.detail


def test_compiling_the_same_spec_twice_leaves_the_graph_file_byte_identical(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    compile_spec(path, store, three_tasks())
    before = store.graph_path.read_bytes()
    oplog = (store.directory / "log" / "operations.jsonl").read_bytes()
    again = compile_spec(path, store, three_tasks())
    assert store.graph_path.read_bytes() == before
    assert (store.directory / "log" / "operations.jsonl").read_bytes() == oplog
    assert not again.compiled.writes and again.compiled.changes == [] and again.record is None
    assert len(again.compiled.unchanged) == 6
    assert len(CoordStore.for_scope(path, spec.scope_of(1)).read().records) == 1


def test_an_edited_prompt_updates_the_open_task_and_keeps_the_one_in_progress(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    value = three_tasks()
    compile_spec(path, store, value)
    claim(store, "w1-a1")
    running = store.load().tasks["w1-a1"]
    changed = edited(value)
    changed["tasks"][0]["prompt"] = "Do the a1 part, with a burst of 20."
    changed["tasks"][1]["prompt"] = "Test the burst too."
    done = compile_spec(path, store, changed)
    by_task = {c.task_id: c for c in done.compiled.changes}
    assert set(by_task) == {"w1-a1", "w1-a2"}
    assert by_task["w1-a1"].kind is ChangeKind.KEPT and by_task["w1-a1"].status == "in-progress"
    assert str(by_task["w1-a1"]).startswith("w1-a1: kept: in-progress — changed in the spec")
    assert by_task["w1-a2"].kind is ChangeKind.UPDATED and "description" in by_task["w1-a2"].reason
    tasks = store.load().tasks
    assert tasks["w1-a1"] == running  # never edited while it runs
    assert tasks["w1-a2"]["description"].startswith("Test the burst too.")
    assert plan_data(tasks["w1-a2"])["task_hash"] == compile_tasks.task_hash(changed["tasks"][1])
    assert "Updated from wave 1's spec" in tasks["w1-a2"]["log"][-1]["message"]
    assert tasks["w1-a3"]["description"].startswith("Do the a3 part.")  # unchanged, untouched
    record = CoordStore.for_scope(path, spec.scope_of(1)).get(str(done.record))
    assert {c["kind"] for c in record.data["changes"]} == {"kept", "updated"}


def test_a_task_removed_from_the_spec_is_abandoned_and_the_closure_follows_the_new_task_set(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    value = three_tasks()
    compile_spec(path, store, value)
    changed = edited(value)
    changed["tasks"] = [changed["tasks"][0], changed["tasks"][1], task("a4", ["src/burst.py"], after=["a1"])]
    done = compile_spec(path, store, changed)
    kinds = {c.task_id: c.kind for c in done.compiled.changes}
    assert kinds == {
        "w1-a3": ChangeKind.ABANDONED,
        "w1-a4": ChangeKind.ADDED,
        "w1.integration": ChangeKind.UPDATED,
    }
    tasks = store.load().tasks
    assert tasks["w1-a3"]["status"] == "abandoned"
    assert "removed from wave 1's spec" in tasks["w1-a3"]["log"][-1]["message"]
    assert tasks["w1.integration"]["after"] == ["w1-a1", "w1-a2", "w1-a4"]
    # the id comes back: an abandoned task is never reopened, only reported
    back = edited(value)
    again = compile_spec(path, store, back)
    kept = [c for c in again.compiled.changes if c.task_id == "w1-a3"]
    assert kept and kept[0].kind is ChangeKind.KEPT and kept[0].status == "abandoned"
    assert store.load().tasks["w1-a3"]["status"] == "abandoned"


def test_a_removed_task_that_is_done_is_kept(repo: tuple[Path, GraphStore]) -> None:
    path, store = repo
    value = three_tasks()
    compile_spec(path, store, value)
    finish(store, "w1-a1", "w1-a3")
    changed = edited(value)
    del changed["tasks"][2]
    done = compile_spec(path, store, changed)
    kept = next(c for c in done.compiled.changes if c.task_id == "w1-a3")
    assert kept.kind is ChangeKind.KEPT and kept.status == "done"
    assert store.load().tasks["w1-a3"]["status"] == "done"


def test_an_update_keeps_the_tags_and_dependencies_compile_did_not_write(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    value = three_tasks()
    compile_spec(path, store, value)
    store.mutate(
        lambda g, now: ops.add_task(g, ops.NewTask("Outside", task_id="outside"), now=now, actor="t")
    )
    store.mutate(lambda g, now: ops.add_dep(g, "w1-a2", "outside", now=now, actor="t"))
    store.mutate(
        lambda g, now: ops.edit_task(g, "w1-a2", ops.Edit(add_tags=["needs-human"]), now=now, actor="t")
    )
    changed = edited(value)
    changed["tasks"][1]["role"] = "implementation"
    changed["tasks"][1]["owned"] = ["tests/test_limiter.py", "tests/conftest.py"]
    compile_spec(path, store, changed)
    a2 = store.load().tasks["w1-a2"]
    assert a2["after"] == ["w1-a1", "outside"]
    assert a2["tags"] == ["wave-1", "implementation", "needs-human"]  # the old role tag is gone
    assert speedrift_data(a2)["touch"] == ["tests/test_limiter.py", "tests/conftest.py"]


def test_a_wave_after_an_uncompiled_wave_is_refused_until_that_wave_is_compiled(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    write_spec(path, three_tasks(1))
    second = three_tasks(2, sequencing={"after_waves": [1]})
    with pytest.raises(Refused) as refused:
        compile_spec(path, store, second)
    assert "wave 1, which is not compiled" in refused.value.message
    assert refused.value.hint == "compile wave 1 first: `speedrift plan compile 1`"
    assert "w2-a1" not in store.load().tasks
    compile_spec(path, store, three_tasks(1))
    compile_spec(path, store, second)
    tasks = store.load().tasks
    assert tasks["w2-a1"]["after"] == ["w1.evaluation"]  # the first task waits for wave 1's close
    assert tasks["w2-a2"]["after"] == ["w2-a1"]  # the others wait for their own wave's tasks


def test_a_task_id_the_graph_uses_for_something_else_is_refused(repo: tuple[Path, GraphStore]) -> None:
    path, store = repo
    store.mutate(lambda g, now: ops.add_task(g, ops.NewTask("Mine", task_id="w1-a2"), now=now, actor="t"))
    before = store.graph_path.read_bytes()
    with pytest.raises(Refused, match="w1-a2"):
        compile_spec(path, store, three_tasks())
    assert store.graph_path.read_bytes() == before


def test_a_dry_run_writes_nothing_and_posts_nothing(repo: tuple[Path, GraphStore]) -> None:
    path, store = repo
    before = store.graph_path.read_bytes()
    done = compile_spec(path, store, three_tasks(), dry_run=True)
    assert len(done.compiled.changes) == 6 and done.record is None
    assert store.graph_path.read_bytes() == before
    assert not CoordStore.for_scope(path, spec.scope_of(1)).path.exists()


def test_closure_ids_are_valid_task_ids_and_make_valid_branch_names() -> None:
    for stage in ClosureStage:
        task_id = compile_tasks.closure_id(12, stage)
        assert ids.validate_id(task_id) == task_id and layout.safe_name(task_id) == task_id
        branch = worktrees.branch_name(task_id, 1)
        checked = subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True)
        assert checked.returncode == 0, branch
    assert (
        compile_tasks.task_id(12, "a1") == "w12-a1" != compile_tasks.closure_id(12, ClosureStage.INTEGRATION)
    )


# --- a closure task never reaches a developer attempt -----------------------------------------------
def closure_ready(repo: tuple[Path, GraphStore]) -> GraphStore:
    path, store = repo
    compile_spec(path, store, three_tasks())
    finish(store, "w1-a1", "w1-a2", "w1-a3")
    return store


def test_the_service_never_dispatches_a_ready_closure_task(repo: tuple[Path, GraphStore]) -> None:
    store = closure_ready(repo)
    said: list[str] = []
    loop = ServiceLoop(Pipeline(repo[0], store, RepoConfig()), log=said.append)
    assert loop.dispatch() == 0
    assert loop.dispatch() == 0
    assert store.load().tasks["w1.integration"]["status"] == "open"
    held = [line for line in said if "w1.integration" in line]
    assert len(held) == 1  # said once, not every tick
    assert "not dispatching w1.integration: a closure stage (integration) of wave 1" in held[0]
    assert "`speedrift plan run`" in held[0]
    # an ordinary task next to it still runs
    store.mutate(
        lambda g, now: ops.add_task(
            g, ops.NewTask("Other", task_id="other", exec_command="true"), now=now, actor="t"
        )
    )
    assert loop.dispatch() == 1
    loop.wait_idle(timeout=60)
    tasks = store.load().tasks
    assert tasks["other"]["status"] == "done" and tasks["w1.integration"]["status"] == "open"


def test_a_pipeline_run_of_a_closure_task_is_refused_before_any_claim(repo: tuple[Path, GraphStore]) -> None:
    store = closure_ready(repo)
    before = store.graph_path.read_bytes()
    pipeline = Pipeline(repo[0], store, RepoConfig())
    with pytest.raises(Refused, match="closure stage") as refused:
        pipeline.run("w1.integration", RunOptions(force=True))
    assert "speedrift plan run" in str(refused.value.hint)
    assert store.graph_path.read_bytes() == before
    assert worktrees.attempt_branches(repo[0], "w1.integration") == set()


def test_the_hub_sees_no_dispatchable_work_in_a_ready_closure_task(repo: tuple[Path, GraphStore]) -> None:
    store = closure_ready(repo)
    reading = analyze(store.load(), str(store.directory), now_utc())
    assert reading.state.ready_count == 0
    assert TASK_CRITERIA_KEY in speedrift_data(store.load().tasks["w1.integration"])


def test_after_a_recompile_the_wave_is_not_behind_though_untouched_tasks_keep_their_spec_hash(
    repo: tuple[Path, GraphStore],
) -> None:
    path, store = repo
    value = three_tasks()
    compile_spec(path, store, value)
    assert behind(store.load(), value, now=now_utc()) == []
    changed = edited(value)
    changed["tasks"][1]["prompt"] = "Test the burst too."
    write_spec(path, changed)
    assert [(c.kind, c.task_id) for c in behind(store.load(), changed, now=now_utc())] == [
        (ChangeKind.UPDATED, "w1-a2")
    ]
    compile_spec(path, store, changed)
    tasks = store.load().tasks
    assert behind(store.load(), changed, now=now_utc()) == []
    assert plan_data(tasks["w1-a2"])["spec_hash"] == spec.spec_hash(changed)
    assert plan_data(tasks["w1-a1"])["spec_hash"] == spec.spec_hash(value)  # not rewritten for nothing


def test_a_compile_that_only_keeps_tasks_is_recorded_once(repo: tuple[Path, GraphStore]) -> None:
    path, store = repo
    value = three_tasks()
    compile_spec(path, store, value)
    claim(store, "w1-a1")
    changed = edited(value)
    changed["tasks"][0]["prompt"] = "Do the a1 part, with a burst of 20."
    first = compile_spec(path, store, changed)
    assert not first.compiled.writes and first.record is not None
    assert [c.kind for c in first.compiled.changes] == [ChangeKind.KEPT]
    again = compile_spec(path, store, changed)
    assert [c.kind for c in again.compiled.changes] == [ChangeKind.KEPT] and again.record is None
    assert len(CoordStore.for_scope(path, spec.scope_of(1)).read().records) == 2
