"""`.workgraph/log/operations.jsonl`: one wg-schema record per mutation, nothing for reads or refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.support import TEST_USER, Cli, oplog_records, seed, task_node

RECORD_KEYS = {"timestamp", "op", "task_id", "actor", "user", "detail"}


def test_each_mutation_appends_one_record_in_order(cli: Cli, repo: Path) -> None:
    cli.ok("add", "Task", "--id", "t")
    cli.ok("edit", "t", "--title", "Renamed")
    cli.ok("claim", "t", "--actor", "alice")
    cli.ok("log", "t", "progress")
    cli.ok("done", "t")

    records = oplog_records(repo)

    assert [(r["op"], r["task_id"]) for r in records] == [
        ("add_task", "t"),
        ("edit", "t"),
        ("claim", "t"),
        ("log", "t"),
        ("done", "t"),
    ]


def test_a_record_carries_timestamp_op_task_actor_user_and_detail(cli: Cli, repo: Path) -> None:
    before = datetime.now(UTC)
    cli.ok("add", "Task", "--id", "t", env={"WG_AGENT_ID": "agent-7"})

    (record,) = oplog_records(repo)

    assert set(record) == RECORD_KEYS
    assert record["op"] == "add_task"
    assert record["task_id"] == "t"
    assert record["actor"] == "agent-7"
    assert record["user"] == TEST_USER
    assert record["detail"] == {"title": "Task"}
    stamp = datetime.fromisoformat(record["timestamp"])
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)


def test_claim_records_the_claiming_actor(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))

    cli.ok("claim", "t", "--actor", "alice")

    (record,) = oplog_records(repo)
    assert (record["actor"], record["user"], record["detail"]) == ("alice", TEST_USER, {"actor": "alice"})


def test_add_with_before_records_both_changed_tasks(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("release"))

    cli.ok("add", "Test", "--id", "test", "--before", "release")

    assert [(r["op"], r["task_id"]) for r in oplog_records(repo)] == [
        ("add_task", "test"),
        ("edit", "release"),
    ]


def test_refused_mutations_and_reads_log_nothing(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t", status="done"))

    cli.fails(1, "claim", "t")
    cli.fails(2, "add", "bad", "-p", "nope")
    cli.ok("list")

    assert oplog_records(repo) == []


def test_every_record_has_a_detail_key_even_when_empty(cli: Cli, repo: Path) -> None:
    seed(repo, task_node("t"))
    cli.ok("done", "t")

    (record,) = oplog_records(repo)

    assert set(record) == RECORD_KEYS
