"""Readiness, exactly as workgraph defines it (src/query.rs), one rule per test."""

from __future__ import annotations

from datetime import timedelta

from speedrift.graph import query
from speedrift.times import format_time
from tests.builders import graph_of, task
from tests.conftest import NOW


def ready_set(*nodes: dict[str, object]) -> set[str]:
    return set(query.ready_ids(graph_of(*nodes), NOW))


def test_open_task_without_blockers_is_ready() -> None:
    assert ready_set(task("a")) == {"a"}


def test_incomplete_task_is_ready_like_open() -> None:
    assert ready_set(task("a", "incomplete")) == {"a"}


def test_a_task_with_no_status_field_defaults_to_open() -> None:
    assert ready_set({"kind": "task", "id": "a", "title": "A"}) == {"a"}


def test_every_other_status_is_not_ready() -> None:
    statuses = ["in-progress", "waiting", "done", "blocked", "failed", "abandoned", "pending-validation",
                "pending-eval", "failed-pending-eval", "pending-review"]  # fmt: skip
    assert ready_set(*(task(f"t{i}", s) for i, s in enumerate(statuses))) == set()


def test_paused_task_is_not_ready() -> None:
    assert ready_set(task("a", paused=True)) == set()


def test_not_before_in_the_future_holds_the_task() -> None:
    assert ready_set(task("a", not_before=format_time(NOW + timedelta(minutes=1)))) == set()


def test_not_before_in_the_past_does_not_hold() -> None:
    assert ready_set(task("a", not_before=format_time(NOW - timedelta(minutes=1)))) == {"a"}


def test_ready_after_in_the_future_holds_the_task() -> None:
    assert ready_set(task("a", ready_after=format_time(NOW + timedelta(hours=1)))) == set()


def test_unparsable_time_gate_never_blocks() -> None:
    assert ready_set(task("a", not_before="next tuesday")) == {"a"}


def test_nanosecond_timestamps_as_wg_writes_them_are_understood() -> None:
    assert ready_set(task("a", not_before="2099-01-25T15:47:23.499021493+00:00")) == set()


def test_done_blocker_releases_dependent() -> None:
    assert ready_set(task("a", "done"), task("b", after=["a"])) == {"b"}


def test_abandoned_blocker_releases_dependent() -> None:
    assert ready_set(task("a", "abandoned"), task("b", after=["a"])) == {"b"}


def test_failed_blocker_blocks_dependent() -> None:
    assert ready_set(task("a", "failed"), task("b", after=["a"])) == set()


def test_missing_blocker_blocks_dependent() -> None:
    assert ready_set(task("b", after=["not-yet-created"])) == set()


def test_open_blocker_blocks_dependent() -> None:
    assert ready_set(task("a"), task("b", after=["a"])) == {"a"}


def test_legacy_blocked_by_key_is_read_as_after() -> None:
    assert ready_set(task("a"), task("b", blocked_by=["a"])) == {"a"}


def test_legacy_pending_review_counts_as_done_for_dependents() -> None:
    assert ready_set(task("a", "pending-review"), task("b", after=["a"])) == {"b"}


def test_pending_evaluation_gate_holds_dependents_of_a_done_task() -> None:
    nodes = (task("a", "done"), task(".evaluate-a", "open"), task("b", after=["a"]))
    assert ready_set(*nodes) == {".evaluate-a"}


def test_finished_evaluation_gate_releases_dependents() -> None:
    nodes = (task("a", "done"), task(".evaluate-a", "done"), task("b", after=["a"]))
    assert ready_set(*nodes) == {"b"}


def test_system_dependents_bypass_the_eval_gate_and_run_over_pending_eval() -> None:
    nodes = (task("a", "pending-eval"), task(".evaluate-a", "open", after=["a"]), task("b", after=["a"]))
    assert ready_set(*nodes) == {".evaluate-a"}


def test_back_edge_of_a_deliberate_loop_does_not_block_its_header() -> None:
    # entry is done; header -> body -> header is a loop with cycle_config on the header
    nodes = (
        task("entry", "done"),
        task("header", after=["entry", "body"], cycle_config={"max_iterations": 3}),
        task("body", after=["header"]),
    )
    assert ready_set(*nodes) == {"header"}


def test_self_loop_back_edge_is_exempt() -> None:
    assert ready_set(task("a", after=["a"], cycle_config={"max_iterations": 2})) == {"a"}


def test_loop_header_still_waits_for_its_forward_dependencies() -> None:
    nodes = (task("entry"), task("header", after=["entry", "body"]), task("body", after=["header"]))
    assert ready_set(*nodes) == {"entry"}


def test_cron_task_is_ready_when_its_next_fire_has_passed() -> None:
    due = task("a", cron_enabled=True, next_cron_fire=format_time(NOW - timedelta(minutes=1)))
    later = task("b", cron_enabled=True, next_cron_fire=format_time(NOW + timedelta(minutes=1)))
    assert ready_set(due, later) == {"a"}


def test_cron_task_uses_its_schedule_after_the_last_fire() -> None:
    fired = format_time(NOW - timedelta(minutes=30))
    daily = task("a", cron_enabled=True, cron_schedule="30 13 * * *", last_cron_fire=fired)
    every_minute = task("b", cron_enabled=True, cron_schedule="* * * * *", last_cron_fire=fired)
    assert ready_set(daily, every_minute) == {"b"}


def test_ready_is_sorted_by_priority_then_fewest_dispatches() -> None:
    graph = graph_of(
        task("low", priority=5),
        task("normal-busy", dispatch_count=3),
        task("normal-fresh"),
        task("critical", priority=100),
    )
    order = [t["id"] for t in query.ready(graph, NOW)]
    assert order == ["critical", "normal-fresh", "normal-busy", "low"]


def test_idle_tasks_are_offered_only_when_nothing_normal_is_ready() -> None:
    graph = graph_of(task("idle", priority=0), task("busy", "in-progress"))
    assert [t["id"] for t in query.ready(graph, NOW)] == ["idle"]
    graph = graph_of(task("idle", priority=0), task("normal"))
    assert [t["id"] for t in query.ready(graph, NOW)] == ["normal"]


def test_age_bumps_priority_one_tier_per_day() -> None:
    old_low = task("old-low", priority=5, created_at=format_time(NOW - timedelta(days=2, hours=1)))
    new_normal = task("new-normal", created_at=format_time(NOW))
    effective = query.effective_priorities(graph_of(old_low, new_normal), ["old-low", "new-normal"], NOW)
    assert effective == {"old-low": 50, "new-normal": 10}


def test_priority_is_inherited_from_a_high_priority_dependent() -> None:
    graph = graph_of(task("base"), task("other"), task("urgent", after=["base"], priority=100))
    assert [t["id"] for t in query.ready(graph, NOW)] == ["base", "other"]
    assert query.effective_priorities(graph, ["base", "other"], NOW) == {"base": 100, "other": 10}


def test_legacy_string_priorities_are_understood() -> None:
    graph = graph_of(task("a", priority="high"), task("b"))
    assert [t["id"] for t in query.ready(graph, NOW)] == ["a", "b"]
