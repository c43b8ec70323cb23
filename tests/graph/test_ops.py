"""Status transitions and edits as pure functions: what is allowed, what is refused, what is kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from speedrift.errors import NotFound, Refused, UsageError
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.wgcompat import WgCompatError
from speedrift.times import format_time
from tests.builders import graph_of, task
from tests.conftest import NOW


def apply(graph: Graph, mutation: ops.Mutation) -> dict[str, Any]:
    for new in mutation.tasks:
        graph.put_task(new)
    return mutation.tasks[0]


CLAIMABLE = ["open", "blocked", "incomplete"]
UNCLAIMABLE = ["in-progress", "waiting", "done", "failed", "abandoned", "pending-validation", "pending-eval"]


@pytest.mark.parametrize("status", CLAIMABLE)
def test_claim_moves_a_claimable_task_to_in_progress(status: str) -> None:
    graph = graph_of(task("a", status))
    claimed = apply(graph, ops.claim(graph, "a", now=NOW, actor="alice"))
    assert claimed["status"] == "in-progress"
    assert claimed["assigned"] == "alice"
    assert claimed["started_at"] == format_time(NOW)
    assert claimed["log"][-1]["message"] == "Task claimed by @alice"


@pytest.mark.parametrize("status", UNCLAIMABLE)
def test_claim_refuses_other_statuses(status: str) -> None:
    graph = graph_of(task("a", status, assigned="bob"))
    with pytest.raises(Refused) as refusal:
        ops.claim(graph, "a", now=NOW, actor="alice")
    assert status in str(refusal.value)


def test_claim_refusal_names_who_holds_the_task() -> None:
    graph = graph_of(task("a", "in-progress", assigned="bob"))
    with pytest.raises(Refused, match="held by bob"):
        ops.claim(graph, "a", now=NOW, actor="alice")


def test_ops_never_modify_the_loaded_graph() -> None:
    graph = graph_of(task("a"))
    before = dict(graph.tasks["a"])
    ops.claim(graph, "a", now=NOW, actor="alice")
    assert graph.tasks["a"] == before


def test_unclaim_returns_an_in_progress_task_to_open() -> None:
    graph = graph_of(task("a", "in-progress", assigned="bob"))
    released = apply(graph, ops.unclaim(graph, "a", now=NOW, actor="alice"))
    assert released["status"] == "open"
    assert "assigned" not in released


@pytest.mark.parametrize("status", ["open", "in-progress"])
def test_done_from_open_or_in_progress(status: str) -> None:
    graph = graph_of(task("a", status))
    finished = apply(graph, ops.done(graph, "a", now=NOW, actor=None))
    assert finished["status"] == "done"
    assert finished["completed_at"] == format_time(NOW)


@pytest.mark.parametrize("status", ["failed", "abandoned", "waiting"])
def test_done_is_refused_from_other_statuses(status: str) -> None:
    with pytest.raises(Refused):
        ops.done(graph_of(task("a", status)), "a", now=NOW, actor=None)


def test_done_on_a_done_task_is_a_no_op_like_wg() -> None:
    mutation = ops.done(graph_of(task("a", "done")), "a", now=NOW, actor=None)
    assert mutation.tasks == [] and "already done" in mutation.warnings[0]


def test_done_is_refused_while_blockers_are_unresolved_unless_forced() -> None:
    graph = graph_of(task("a"), task("b", after=["a", "gone"]))
    with pytest.raises(Refused, match="2 unresolved task"):
        ops.done(graph, "b", now=NOW, actor=None)
    assert ops.done(graph, "b", now=NOW, actor=None, force=True).tasks[0]["status"] == "done"


def test_fail_records_the_reason_in_wg_field() -> None:
    graph = graph_of(task("a", "in-progress"))
    failed = apply(graph, ops.fail(graph, "a", reason="tests red", now=NOW, actor=None))
    assert failed["status"] == "failed"
    assert failed["failure_reason"] == "tests red"
    assert "failure_class" not in failed  # only wg's enum may go there; speedrift sets none here


def test_retry_reopens_a_failed_task_and_keeps_failure_and_context_for_next_attempt() -> None:
    graph = graph_of(task("a", "failed", failure_reason="boom", retry_count=1, assigned="bob"))
    reopened = apply(graph, ops.retry(graph, "a", context="use the v2 API", now=NOW, actor=None))
    assert reopened["status"] == "open"
    assert reopened["retry_count"] == 2
    assert "failure_reason" not in reopened
    assert "assigned" not in reopened
    assert reopened["speedrift"]["retry_context"] == "use the v2 API"
    assert reopened["speedrift"]["failures"][-1]["reason"] == "boom"


def test_retry_is_refused_for_a_task_that_did_not_fail() -> None:
    with pytest.raises(Refused):
        ops.retry(graph_of(task("a", "done")), "a", context=None, now=NOW, actor=None)


def test_abandon_works_from_failed_and_is_refused_when_done() -> None:
    graph = graph_of(task("a", "failed"), task("b", "done"))
    assert (
        apply(graph, ops.abandon(graph, "a", reason="obsolete", now=NOW, actor=None))["status"] == "abandoned"
    )
    with pytest.raises(Refused):
        ops.abandon(graph, "b", reason=None, now=NOW, actor=None)


def test_pause_and_resume_toggle_the_flag_and_refuse_repeats() -> None:
    graph = graph_of(task("a"))
    assert apply(graph, ops.set_paused(graph, "a", True, now=NOW, actor=None))["paused"] is True
    with pytest.raises(Refused):
        ops.set_paused(graph, "a", True, now=NOW, actor=None)
    assert "paused" not in apply(graph, ops.set_paused(graph, "a", False, now=NOW, actor=None))


def test_unknown_task_is_not_found() -> None:
    with pytest.raises(NotFound):
        ops.done(graph_of(task("a")), "zzz", now=NOW, actor=None)


# --- add ------------------------------------------------------------------------------------------
def test_add_slugs_the_first_three_words_of_the_title_like_wg() -> None:
    graph = graph_of()
    added = apply(graph, ops.add_task(graph, ops.NewTask("Design the API surface"), now=NOW, actor=None))
    assert added["id"] == "design-the-api"
    again = apply(graph, ops.add_task(graph, ops.NewTask("Design the API later"), now=NOW, actor=None))
    assert again["id"] == "design-the-api-2"


def test_add_writes_new_edges_as_after_and_before() -> None:
    graph = graph_of(task("a"), task("z", blocked_by=["a"]))
    mutation = ops.add_task(
        graph, ops.NewTask("B", task_id="b", after=["a"], before=["z"]), now=NOW, actor=None
    )
    added = apply(graph, mutation)
    assert added["after"] == ["a"] and added["before"] == ["z"]
    assert graph.tasks["z"]["blocked_by"] == ["a", "b"]  # the existing line keeps its legacy key
    assert "after" not in graph.tasks["z"]


def test_add_with_unknown_dependency_warns_and_strict_refuses() -> None:
    graph = graph_of()
    mutation = ops.add_task(graph, ops.NewTask("B", task_id="b", after=["later"]), now=NOW, actor=None)
    assert "does not exist yet" in mutation.warnings[0]
    with pytest.raises(Refused, match="--strict"):
        ops.add_task(graph, ops.NewTask("B", task_id="b", after=["later"]), now=NOW, actor=None, strict=True)


def test_add_delay_sets_not_before() -> None:
    graph = graph_of()
    added = apply(graph, ops.add_task(graph, ops.NewTask("x", delay=timedelta(hours=2)), now=NOW, actor=None))
    assert added["not_before"] == format_time(NOW + timedelta(hours=2))


def test_add_keeps_declared_scope_in_the_speedrift_object() -> None:
    graph = graph_of()
    added = apply(graph, ops.add_task(graph, ops.NewTask("x", touch=["src/*.py"]), now=NOW, actor=None))
    assert added["speedrift"] == {"touch": ["src/*.py"]}


def test_add_refuses_an_existing_id() -> None:
    with pytest.raises(Refused, match="already exists"):
        ops.add_task(graph_of(task("a")), ops.NewTask("A", task_id="a"), now=NOW, actor=None)


# --- dependencies and cycles ----------------------------------------------------------------------
def test_add_dep_refuses_a_cycle_and_shows_it() -> None:
    graph = graph_of(task("a"), task("b", after=["a"]), task("c", after=["b"]))
    with pytest.raises(Refused) as refusal:
        ops.add_dep(graph, "a", "c", now=NOW, actor=None)
    assert "a -> c -> b -> a" in str(refusal.value)


def test_add_dep_allows_a_cycle_through_a_declared_loop() -> None:
    graph = graph_of(task("a", cycle_config={"max_iterations": 3}), task("b", after=["a"]))
    updated = apply(graph, ops.add_dep(graph, "a", "b", now=NOW, actor=None))
    assert updated["after"] == ["b"]


def test_add_dep_keeps_the_legacy_blocked_by_key() -> None:
    graph = graph_of(task("a"), task("b"), task("c", blocked_by=["a"]))
    updated = apply(graph, ops.add_dep(graph, "c", "b", now=NOW, actor=None))
    assert updated["blocked_by"] == ["a", "b"] and "after" not in updated


def test_rm_dep_removes_the_edge_and_the_mirrored_before() -> None:
    graph = graph_of(task("a", before=["b"]), task("b", after=["a"]))
    mutation = ops.rm_dep(graph, "b", "a", now=NOW, actor=None)
    apply(graph, mutation)
    assert "after" not in graph.tasks["b"]
    assert "before" not in graph.tasks["a"]


def test_self_dependency_is_refused() -> None:
    with pytest.raises(Refused, match="after itself"):
        ops.add_dep(graph_of(task("a")), "a", "a", now=NOW, actor=None)


# --- hostile input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad_id", ["../x", "a/b", "-rf", "x\ny", "..", "a..b", "name.lock", "", "a b", "x" * 200]
)
def test_hostile_ids_are_rejected(bad_id: str) -> None:
    with pytest.raises(UsageError):
        ops.add_task(graph_of(), ops.NewTask("t", task_id=bad_id), now=NOW, actor=None)


@pytest.mark.parametrize("bad_dep", ["../x", "-o", "a\nb"])
def test_hostile_dependency_ids_are_rejected(bad_dep: str) -> None:
    with pytest.raises(UsageError):
        ops.add_task(graph_of(), ops.NewTask("t", after=[bad_dep]), now=NOW, actor=None)


@pytest.mark.parametrize(
    "title",
    ["line\nbreak", "bell\x07", "x" * 2_000, "surrogate \udcff"],
)
def test_hostile_titles_are_rejected_with_a_reason(title: str) -> None:
    with pytest.raises(UsageError):
        ops.add_task(graph_of(), ops.NewTask(title), now=NOW, actor=None)


def test_a_ten_megabyte_description_is_rejected_not_stored() -> None:
    with pytest.raises(UsageError, match="limit"):
        ops.add_task(graph_of(), ops.NewTask("t", description="x" * 10_000_000), now=NOW, actor=None)


def test_peer_dependency_refs_are_accepted() -> None:
    graph = graph_of()
    added = apply(
        graph, ops.add_task(graph, ops.NewTask("t", after=["other-repo:task-1"]), now=NOW, actor=None)
    )
    assert added["after"] == ["other-repo:task-1"]


def test_done_and_unclaim_log_the_message_they_are_given_instead_of_wgs_own() -> None:
    graph = graph_of(task("a", "in-progress", assigned="bob"), task("b", "in-progress", assigned="bob"))
    finished = ops.done(graph, "a", now=NOW, actor="w", force=True, message="Landed abc on main")
    released = ops.unclaim(graph, "b", now=NOW, actor="w", message="worker 12 is gone")
    entry = {"timestamp": format_time(NOW), "actor": "w", "message": "Landed abc on main"}
    assert finished.tasks[0]["log"][-1] == entry
    assert released.tasks[0]["log"][-1]["message"] == "worker 12 is gone"
    assert [(r.op, r.detail) for r in finished.records + released.records] == [
        ("done", {}),
        ("unclaim", {"previous": "bob"}),
    ]
    assert ops.done(graph, "a", now=NOW, actor="w").tasks[0]["log"][-1]["message"] == "Task marked as done"


def test_set_fields_alone_is_one_edit_naming_what_it_set() -> None:
    graph = graph_of(task("a", tags=["x"], speedrift={"touch": ["src/*"]}))
    mutation = ops.set_fields(
        graph, "a", {"paused": True, "model": "opus"}, speedrift={"state": "running"}, now=NOW, actor="w"
    )
    changed = mutation.tasks[0]
    assert (changed["paused"], changed["model"]) == (True, "opus")
    assert changed["speedrift"] == {"touch": ["src/*"], "state": "running"}
    assert "log" not in changed
    assert [(r.op, r.task_id, r.detail) for r in mutation.records] == [
        ("edit", "a", {"fields": ["model", "paused"], "speedrift": ["state"]})
    ]


def test_set_fields_removes_a_field_or_a_speedrift_key_given_none() -> None:
    graph = graph_of(task("a", tags=["x"], speedrift={"state": "running", "worker": {"pid": 1}}))
    mutation = ops.set_fields(graph, "a", {"tags": None}, speedrift={"state": None}, now=NOW, actor=None)
    changed = mutation.tasks[0]
    assert "tags" not in changed
    assert changed["speedrift"] == {"worker": {"pid": 1}}
    emptied = ops.set_fields(graph, "a", speedrift={"state": None, "worker": None}, now=NOW, actor=None)
    assert "speedrift" not in emptied.tasks[0]


def test_set_fields_logs_its_message_like_the_verbs_do() -> None:
    graph = graph_of(task("a"))
    changed = ops.set_fields(graph, "a", {"paused": True}, message="Needs re-planning", now=NOW, actor="w")
    assert changed.tasks[0]["log"] == [
        {"timestamp": format_time(NOW), "actor": "w", "message": "Needs re-planning"}
    ]


def test_set_fields_within_a_verbs_mutation_changes_that_copy_and_adds_no_record() -> None:
    graph = graph_of(task("a", "in-progress", assigned="bob", speedrift={"worker": {"pid": 1}}))
    mutation = ops.unclaim(graph, "a", now=NOW, actor="hub", message="claimant pid 1 is gone")
    verbs_copy = mutation.tasks[0]
    same = ops.set_fields(graph, "a", speedrift={"worker": None}, now=NOW, actor="hub", within=mutation)
    assert same is mutation and mutation.tasks == [verbs_copy]
    assert "speedrift" not in verbs_copy and verbs_copy["status"] == "open"
    assert [r.op for r in mutation.records] == ["unclaim"]  # the op log records one change, as wg would


def test_set_fields_adds_new_keys_at_the_end_of_the_line_in_the_order_given() -> None:
    graph = graph_of(task("a"))
    changed = ops.set_fields(
        graph, "a", {"tried_models": ["sonnet"], "model": "opus", "title": "A"}, now=NOW, actor=None
    ).tasks[0]
    assert list(changed) == ["kind", "id", "title", "status", "tried_models", "model"]


def test_set_fields_never_modifies_the_loaded_graph() -> None:
    graph = graph_of(task("a", tags=["x"]))
    before = dict(graph.tasks["a"])
    ops.set_fields(graph, "a", {"tags": ["x", "y"]}, speedrift={"s": 1}, message="m", now=NOW, actor=None)
    assert graph.tasks["a"] == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_class", "merge_conflict"),  # speedrift's class, not wg's enum
        ("not_before", "tomorrow"),
        ("tags", ["ok", 3]),
        ("paused", "yes"),
        ("retry_count", -1),
    ],
)
def test_set_fields_refuses_a_value_wg_could_not_parse(field: str, value: Any) -> None:
    graph = graph_of(task("a"))
    with pytest.raises(WgCompatError, match=field):
        ops.set_fields(graph, "a", {field: value}, now=NOW, actor=None)


def test_set_fields_judges_only_what_it_changes() -> None:
    graph = graph_of(task("a", failure_class="someone-elses-value"))
    changed = ops.set_fields(graph, "a", {"paused": True}, now=NOW, actor=None).tasks[0]
    assert changed["failure_class"] == "someone-elses-value"


@pytest.mark.parametrize("field", ["id", "kind", "status", "log", "speedrift"])
def test_set_fields_refuses_identity_status_the_log_and_the_whole_speedrift_object(field: str) -> None:
    graph = graph_of(task("a"))
    with pytest.raises(ValueError, match=field):
        ops.set_fields(graph, "a", {field: "x"}, now=NOW, actor=None)


def test_set_fields_within_a_mutation_that_does_not_change_the_task_is_refused() -> None:
    graph = graph_of(task("a"), task("b"))
    other = ops.log_message(graph, "b", "note", now=NOW, actor=None)
    with pytest.raises(ValueError, match="does not change 'a'"):
        ops.set_fields(graph, "a", {"paused": True}, now=NOW, actor=None, within=other)
    with pytest.raises(ValueError, match="needs a field"):
        ops.set_fields(graph, "a", now=NOW, actor=None)
