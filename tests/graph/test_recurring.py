"""Recurring tasks recur (graph/ops.py ``done``): a done cron task is re-armed for its next slot as
wg's ``reset_cron_task`` does it, and readiness (graph/query.py) holds it until that slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from speedrift.graph import oplog, ops, query
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.graph.wgcompat import check_task
from speedrift.times import format_time
from tests.builders import graph_of, task

FINISHED = datetime(2026, 12, 7, 16, 20, tzinfo=UTC)
NEXT_SLOT = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
WG_CRON_FIELDS = {"cron_schedule", "cron_enabled", "last_cron_fire", "next_cron_fire"}


def nightly(status: str = "in-progress", **fields: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "cron_schedule": "0 3 * * *",
        "cron_enabled": True,
        "next_cron_fire": format_time(FINISHED - timedelta(hours=13, minutes=20)),  # today's 03:00
        "assigned": "worker-1",
        "started_at": format_time(FINISHED - timedelta(minutes=5)),
    }
    return task("nightly", status, **{**defaults, **fields})


def finish(graph: Graph, task_id: str = "nightly", **kwargs: Any) -> tuple[dict[str, Any], ops.Mutation]:
    mutation = ops.done(graph, task_id, now=FINISHED, actor="alice", **kwargs)
    for new in mutation.tasks:
        graph.put_task(new)
    return mutation.tasks[0], mutation


def test_a_done_recurring_task_is_open_again_for_its_next_slot_as_wg_resets_it() -> None:
    rearmed, mutation = finish(graph_of(nightly()))
    assert rearmed["status"] == "open"
    assert rearmed["last_cron_fire"] == format_time(FINISHED)
    assert rearmed["next_cron_fire"] == format_time(NEXT_SLOT) == "2026-12-08T03:00:00+00:00"
    assert "assigned" not in rearmed and "completed_at" not in rearmed  # wg clears both
    assert "not_before" not in rearmed  # wg's readiness waits for next_cron_fire, not not_before
    assert rearmed["cron_schedule"] == "0 3 * * *" and rearmed["cron_enabled"] is True
    assert [e["message"] for e in rearmed["log"]] == [
        "Task marked as done",
        "Recurring task re-armed for 2026-12-08T03:00:00+00:00",
    ]
    assert mutation.warnings == ["task 'nightly' recurs: re-armed for 2026-12-08T03:00:00Z"]
    assert [(r.op, r.detail) for r in mutation.records] == [("done", {"recurs": "2026-12-08T03:00:00+00:00"})]


def test_a_re_armed_task_is_not_ready_before_its_slot_and_ready_once_it_passes() -> None:
    graph = graph_of(nightly(), task("after-nightly", after=["nightly"]))
    finish(graph)
    assert query.ready_ids(graph, FINISHED) == []
    assert query.time_gate(graph.tasks["nightly"], FINISHED) == "cron not due until 2026-12-08T03:00:00+00:00"
    assert query.ready_ids(graph, NEXT_SLOT - timedelta(seconds=1)) == []
    assert query.ready_ids(graph, NEXT_SLOT) == ["nightly"]
    assert query.ready_ids(graph, NEXT_SLOT + timedelta(hours=30)) == ["nightly"]  # missed slots: one run
    # its dependent ran after the done it saw; open again, the recurring task holds it again (as in wg)
    assert "after-nightly" not in query.ready_ids(graph, NEXT_SLOT)


def test_readiness_falls_back_to_the_schedule_after_the_last_fire_without_a_next_fire() -> None:
    last = format_time(FINISHED)
    graph = graph_of(task("a", cron_schedule="0 3 * * *", cron_enabled=True, last_cron_fire=last))
    assert query.ready_ids(graph, NEXT_SLOT - timedelta(minutes=1)) == []
    assert query.ready_ids(graph, NEXT_SLOT) == ["a"]
    # unparsable timestamps and schedules never block (wg's rule for timestamps)
    odd_values: list[dict[str, Any]] = [
        {"next_cron_fire": "soon", "last_cron_fire": "yesterday"},
        {"last_cron_fire": last, "cron_schedule": "every night"},
        {"cron_schedule": 7, "last_cron_fire": last},
    ]
    for fields in odd_values:
        odd = graph_of(task("b", cron_enabled=True, **{"cron_schedule": "0 3 * * *", **fields}))
        assert query.ready_ids(odd, FINISHED) == ["b"], fields


def test_a_stored_numeric_weekday_is_read_in_wgs_numbering_for_readiness() -> None:
    # wg's "1" is Sunday: after Monday 2026-12-07 the next slot is Sunday the 13th, not Monday the 14th
    graph = graph_of(
        task("a", cron_schedule="0 3 * * 1", cron_enabled=True, last_cron_fire=format_time(FINISHED))
    )
    assert query.ready_ids(graph, datetime(2026, 12, 13, 3, 0, tzinfo=UTC)) == ["a"]
    assert query.ready_ids(graph, datetime(2026, 12, 13, 2, 59, tzinfo=UTC)) == []


@pytest.mark.parametrize(
    "fields",
    [{"cron_enabled": False}, {"cron_enabled": None}, {"cron_schedule": None}],
)
def test_a_task_with_cron_disabled_or_no_schedule_just_finishes(fields: dict[str, Any]) -> None:
    node = {k: v for k, v in {**nightly(), **fields}.items() if v is not None}
    done, mutation = finish(graph_of(node))
    assert done["status"] == "done" and done["completed_at"] == format_time(FINISHED)
    assert "last_cron_fire" not in done and mutation.warnings == []


def test_a_recurring_task_with_a_schedule_wg_cannot_read_stays_done_with_a_warning() -> None:
    done, mutation = finish(graph_of(nightly(cron_schedule="@fortnightly")))
    assert done["status"] == "done"
    assert "last_cron_fire" not in done
    assert "is not valid: it stays done" in mutation.warnings[0]
    assert "speedrift edit nightly --cron EXPR" in mutation.warnings[0]


def test_a_failed_or_abandoned_recurring_task_is_not_re_armed() -> None:
    graph = graph_of(nightly(), nightly_twin := {**nightly(), "id": "twin"})
    failed = ops.fail(graph, "nightly", reason="broke", now=FINISHED, actor="alice").tasks[0]
    abandoned = ops.abandon(graph, nightly_twin["id"], reason=None, now=FINISHED, actor="alice").tasks[0]
    assert (failed["status"], abandoned["status"]) == ("failed", "abandoned")
    assert "last_cron_fire" not in failed and "last_cron_fire" not in abandoned


def test_marking_an_open_recurring_task_done_re_arms_it_from_now() -> None:
    rearmed, _ = finish(graph_of(nightly("open", next_cron_fire=format_time(NEXT_SLOT))))
    assert rearmed["status"] == "open"
    assert rearmed["next_cron_fire"] == format_time(NEXT_SLOT)  # the next slot after now: the same one


def test_a_re_armed_graph_file_keeps_wgs_field_names_and_reads_back(graph_store: GraphStore) -> None:
    graph_store.write_bytes_locked(orjson.dumps(nightly()) + b"\n")
    graph_store.mutate(
        lambda g, now: ops.done(g, "nightly", now=now, actor="alice"), actor="alice", now=FINISHED
    )
    raw = graph_store.graph_path.read_bytes()
    line = orjson.loads(raw.splitlines()[0])
    assert set(line) >= WG_CRON_FIELDS
    assert line["cron_enabled"] is True and isinstance(line["cron_schedule"], str)
    check_task(line)  # what wg could not load would raise
    reread = Graph.from_bytes(raw)
    assert reread.problems == [] and reread.tasks["nightly"] == line
    assert [r["op"] for r in oplog.read_all(graph_store.directory)] == ["done"]
