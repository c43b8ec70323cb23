"""Human approval checkpoints on the control plane: the observer reads each task of an oversight wave
that waits for a person (its gated attempt merge-pending, a ready deploy task's start), the scorer
charges it a little (rule awaiting_approval) and not as aging or a dead claim, the hub never
dispatches a start that waits, and each waits in the human queue until it is approved. The graph
is written as speedrift writes it (tests/control/approving.py), in a real graph file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from speedrift.control.assess.conditions import APPROVAL_PRIORITY
from speedrift.control.assess.queues import attention_queues
from speedrift.control.assess.score import score_repo
from speedrift.control.assess.weights import WEIGHTS
from speedrift.control.observe.graph import read_graph
from speedrift.fleet import approval
from speedrift.graph import ops
from speedrift.graph.store import GraphStore, init_graph_dir
from speedrift.register.record import (
    ApprovalWait,
    CycleRecord,
    GraphState,
    RepoReport,
    RepoSnapshot,
)
from speedrift.serialize import cycle_to_dict
from speedrift.times import parse_time
from speedrift.web.queues import display_queues
from tests.control.approving import add_gated, add_plain, finish, wait_to_merge
from tests.control.core_builders import snap

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STARTED = NOW - timedelta(days=4)  # long enough to be aging, were it not waiting for a person
PENDING = NOW - timedelta(hours=5)


@pytest.fixture
def store(tmp_path: Path) -> GraphStore:
    (tmp_path / "billing").mkdir()
    init_graph_dir(tmp_path / "billing")
    return GraphStore(tmp_path / "billing" / ".workgraph")


def observed(store: GraphStore, at: datetime = NOW) -> GraphState:
    reading = read_graph(store.directory.parent, at)
    assert reading is not None
    return reading.state


def test_the_observer_sees_a_gated_attempt_waiting_merge_pending_for_approval(store: GraphStore) -> None:
    add_gated(store, "w3-api", "Invoice API", now=STARTED - timedelta(hours=1))
    wait_to_merge(store, "w3-api", 2, started=STARTED, pending=PENDING)

    state = observed(store)

    assert state.awaiting_approval == 1
    assert state.approvals == (
        ApprovalWait("w3-api", "Invoice API", "merge", attempt=2, wave=3, since=PENDING),
    )
    # still in progress, but neither aging nor a dead claim: its worker exited when it began to wait
    assert [b.id for b in state.in_progress] == ["w3-api"]
    assert state.dead_claims == () and state.stale_in_progress == 0


def test_a_deploy_task_waits_to_start_once_its_blockers_are_done_and_is_never_dispatched(
    store: GraphStore,
) -> None:
    add_plain(store, "w3-schema", "Schema", now=STARTED)
    add_gated(store, "w3-deploy", "Deploy to staging", start=True, after=("w3-schema",), now=STARTED)
    waiting_on_blocker = observed(store)
    assert waiting_on_blocker.approvals == () and waiting_on_blocker.blocked == 1

    finish(store, "w3-schema", now=PENDING)
    state = observed(store)

    assert state.approvals == (
        ApprovalWait("w3-deploy", "Deploy to staging", "start", attempt=None, wave=3, since=PENDING),
    )
    assert state.ready_count == 0 and state.ready == ()  # what the hub may dispatch: not it


def test_an_approved_task_and_a_merge_pending_one_without_a_checkpoint_wait_for_nobody(
    store: GraphStore,
) -> None:
    add_gated(store, "w3-api", "Invoice API", now=STARTED)
    add_gated(store, "w3-deploy", "Deploy", start=True, now=STARTED)
    add_plain(store, "hotfix", "Hotfix (dark-factory: no checkpoint)", now=STARTED)
    wait_to_merge(store, "w3-api", 1, started=STARTED, pending=PENDING)
    reason = wait_to_merge(store, "hotfix", 1, started=STARTED, pending=PENDING)
    assert "uncommitted" in reason  # merge-pending for the checkout, not for a person
    assert {w.task for w in observed(store).approvals} == {"w3-api", "w3-deploy"}

    merge = approval.record(store, "w3-api", by="ana")
    start = approval.record(store, "w3-deploy", by="ana")

    assert (merge.checkpoint, merge.attempt, start.checkpoint) == (
        approval.Checkpoint.MERGE,
        1,
        approval.Checkpoint.START,
    )
    state = observed(store)
    assert state.approvals == () and state.awaiting_approval == 0
    assert state.ready_count == 1 and state.ready[0].id == "w3-deploy"  # approved: dispatchable


def test_a_new_attempt_waits_for_a_new_approval(store: GraphStore) -> None:
    add_gated(store, "w3-api", "Invoice API", now=STARTED)
    wait_to_merge(store, "w3-api", 1, started=STARTED, pending=PENDING)
    approval.record(store, "w3-api", by="ana")
    store.mutate(
        lambda g, at: ops.unclaim(g, "w3-api", now=at, actor="test"),
        now=PENDING + timedelta(minutes=1),
    )
    wait_to_merge(store, "w3-api", 2, started=NOW - timedelta(hours=2), pending=NOW - timedelta(hours=1))

    [wait] = observed(store).approvals

    assert (wait.checkpoint, wait.attempt, wait.since) == ("merge", 2, NOW - timedelta(hours=1))


def test_a_waiting_approval_costs_a_little_and_the_stall_sentence_names_it(store: GraphStore) -> None:
    add_gated(store, "w3-api", "Invoice API", now=STARTED)
    wait_to_merge(store, "w3-api", 2, started=STARTED, pending=PENDING)

    health = score_repo(snap("billing", graph_state=observed(store)), None, NOW)

    [reason] = health.reasons  # not aging, not a dead claim
    assert reason.code == "awaiting_approval" and reason.points == WEIGHTS["awaiting_approval"].first
    assert reason.text == "w3-api waits for approval to merge attempt 2 (wave 3)"
    assert health.tier == "healthy" and health.score == 100 - WEIGHTS["awaiting_approval"].first
    assert health.activity == "stalled" and health.stall == reason.text


def test_the_charge_stays_small_however_many_tasks_wait() -> None:
    weight = WEIGHTS["awaiting_approval"]
    assert weight.points(50) == weight.cap < WEIGHTS["needs_human"].first
    assert 100 - weight.cap >= 80  # alone it never moves a healthy repo out of its tier


def test_each_waiting_approval_is_in_the_human_queue_with_the_command_that_approves_it(
    store: GraphStore,
) -> None:
    add_gated(store, "w3-api", "Invoice API", now=STARTED)
    add_plain(store, "w3-schema", "Schema", now=STARTED)
    add_gated(store, "w3-deploy", "Deploy to staging", start=True, after=("w3-schema",), now=STARTED)
    wait_to_merge(store, "w3-api", 2, started=STARTED, pending=PENDING)
    finish(store, "w3-schema", now=NOW - timedelta(hours=1))
    snapshot = snap("billing", graph_state=observed(store))
    health = score_repo(snapshot, None, NOW)

    queues = {q.key: q for q in attention_queues({"billing": snapshot}, {"billing": health}, [], [], NOW)}

    entries = {e.id: e for e in queues["human"].entries}
    merge = entries["approval:billing:w3-api:merge"]
    assert merge.what == "w3-api waits for approval to merge attempt 2 (wave 3)"
    assert merge.rule == "awaiting_approval" and merge.task == "w3-api"
    assert merge.priority == APPROVAL_PRIORITY == WEIGHTS["needs_human"].first
    assert merge.since == PENDING and merge.waited_seconds == 5 * 3600
    assert merge.detail == {
        "title": "Invoice API",
        "checkpoint": "merge",
        "attempt": 2,
        "wave": 3,
        "answer": "speedrift plan approve w3-api",
        "approve": "w3-api",
    }
    start = entries["approval:billing:w3-deploy:start"]
    assert start.what == "w3-deploy waits for approval to start (wave 3)"
    assert start.detail["checkpoint"] == "start" and start.detail["attempt"] is None
    assert all(not e.id.startswith("approval:") for k, q in queues.items() if k != "human" for e in q.entries)


def test_the_snapshot_and_the_queue_entry_survive_the_ledger_and_an_old_line_still_displays(
    store: GraphStore,
) -> None:
    add_gated(store, "w3-api", "Invoice API", now=STARTED)
    wait_to_merge(store, "w3-api", 2, started=STARTED, pending=PENDING)
    snapshot = snap("billing", graph_state=observed(store))
    record = _record(snapshot)

    line = orjson.loads(orjson.dumps(cycle_to_dict(record)))  # what the ledger stores and reads back

    graph = line["repos"][0]["snapshot"]["graph"]
    assert graph["awaiting_approval"] == 1
    [wait] = graph["approvals"]
    assert wait == {
        "task": "w3-api",
        "title": "Invoice API",
        "checkpoint": "merge",
        "attempt": 2,
        "wave": 3,
        "since": "2026-11-20T07:00:00Z",
    }
    assert parse_time(wait["since"]) == PENDING
    [item] = [i for i in display_queues(line)["human"]["items"] if i["id"].startswith("approval:")]
    assert item["answer"] == {
        "command": "speedrift plan approve w3-api",
        "first": None,
        "approve": "w3-api",
        "checkpoint": "merge",
    }
    # a snapshot written before approvals were observed still loads, with none waiting
    old = GraphState(
        graph_dir=".workgraph", counts={}, ready=(), ready_count=0, in_progress=(), blocked=0,
        missing_dependencies=(), failed_blockers=0, stale_open=0, stale_in_progress=0, dead_claims=(),
        problems=0,
    )  # fmt: skip
    assert old.approvals == () and old.awaiting_approval == 0
    older = orjson.loads(orjson.dumps(cycle_to_dict(_record(snap("billing", graph_state=old)))))
    del older["repos"][0]["snapshot"]["graph"]["approvals"]
    del older["repos"][0]["snapshot"]["graph"]["awaiting_approval"]
    assert display_queues(older)["human"]["items"] == []


def _record(snapshot: RepoSnapshot) -> CycleRecord:
    health = score_repo(snapshot, None, NOW)
    return CycleRecord(
        cycle_id="c-1",
        generated_at=NOW,
        finished_at=NOW,
        plan_only=True,
        ecosystem="/eco/ecosystem.toml",
        repos=(
            RepoReport(
                name=snapshot.name,
                score=health.score,
                tier=health.tier,
                trend="new",
                delta=None,
                reasons=health.reasons,
                activity=health.activity,
                stall=health.stall,
                snapshot=snapshot,
            ),
        ),
        metrics={},
        edges=(),
        planned=(),
        skipped=(),
        executed=(),
        hints=(),
        inputs={},
        queues=attention_queues({snapshot.name: snapshot}, {snapshot.name: health}, [], [], NOW),
    )
