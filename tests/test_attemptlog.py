"""The machine-wide attempt log: one whole line per finished attempt, read back oldest first, a torn
or foreign line skipped, and the older generation still readable after a rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift import attemptlog, statehome
from speedrift.attemptlog import AttemptEntry, CostSource

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def entry(task: str, at: datetime = NOW, **fields: object) -> AttemptEntry:
    values: dict[str, object] = {
        "repo": "/r",
        "task": task,
        "attempt": 1,
        "status": "done",
        "runtime": "claude",
    }
    return AttemptEntry(at=at, **(values | fields))  # type: ignore[arg-type]


def test_an_entry_is_read_back_as_it_was_written_in_the_state_home() -> None:
    written = entry(
        "a",
        model="sonnet",
        agent="nightly",
        input_tokens=1200,
        output_tokens=80,
        cost_usd=0.0123,
        cost_source=CostSource.REPORTED,
        first_event_s=1.5,
        gates_passed=2,
        gates_failed=1,
    )
    attemptlog.append(written)
    assert statehome.attempt_log_path().is_file()
    assert statehome.attempt_log_path().stat().st_mode & 0o777 == 0o600
    [read] = attemptlog.read()
    assert read == written and read.tokens == 1280 and read.day == "2026-11-20"


def test_a_torn_or_foreign_line_is_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    log = tmp_path / "attempts.jsonl"
    attemptlog.append(entry("first", NOW), path=log)
    with log.open("ab") as handle:
        handle.write(b'{"at": "2026-11-20T12:00:01+00:00", "repo": "/r", "task": "torn", "att')  # cut off
        handle.write(b"\n[1, 2, 3]\n")  # not an object
        handle.write(b'{"at": "2026-11-20T12:00:02+00:00", "repo": "/r", "task": 7, "attempt": 1}\n')
        handle.write(b'{"at": "not a time", "repo": "/r", "task": "x", "attempt": 1, "status": "done"}\n')
        handle.write(b"\xff\xfe garbage\n")
    attemptlog.append(entry("last", NOW + timedelta(seconds=3)), path=log)
    assert [e.task for e in attemptlog.read(path=log)] == ["first", "last"]


def test_entries_come_oldest_first_and_since_leaves_out_the_older_ones(tmp_path: Path) -> None:
    log = tmp_path / "attempts.jsonl"
    for task, hours in (("b", 2), ("a", 1), ("c", 3)):
        attemptlog.append(entry(task, NOW + timedelta(hours=hours)), path=log)
    assert [e.task for e in attemptlog.read(path=log)] == ["a", "b", "c"]
    assert [e.task for e in attemptlog.read(NOW + timedelta(hours=2), path=log)] == ["b", "c"]


def test_rotation_keeps_the_older_generation_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "attempts.jsonl"
    monkeypatch.setattr(attemptlog, "ROTATE_BYTES", 600)  # a few lines per generation
    for n in range(6):
        attemptlog.append(entry(f"t{n}", NOW + timedelta(minutes=n)), path=log)
    older = log.with_name("attempts.1.jsonl")
    assert older.is_file() and log.is_file()
    assert log.stat().st_size <= 600
    everything = [e.task for e in attemptlog.read(path=log)]
    # one older generation is kept: what rotated out twice is gone, the rest reads in order
    assert everything == sorted(everything) and everything[-1] == "t5"
    assert {e.task for e in attemptlog.read(path=older)} <= set(everything)
    current = [attemptlog.parse_entry(line) for line in log.read_bytes().splitlines()]
    first = current[0]
    assert first is not None
    # since within the current file: only it is read; since before it: the older one too
    assert [e.task for e in attemptlog.read(first.at, path=log)] == [e.task for e in current if e]
    reaching = attemptlog.read(first.at - timedelta(minutes=1), path=log)
    assert reaching[0].task != first.task and reaching[0].task in {
        e.task for e in attemptlog.read(path=older)
    }


def test_the_agent_of_a_task_is_its_agent_tag() -> None:
    assert attemptlog.agent_of(["docs", "agent:nightly", "agent:other"]) == "nightly"
    assert attemptlog.agent_of(["agent:", 3, None]) is None
    assert attemptlog.agent_of([]) is None


def test_where_an_attempt_ran_is_read_back_and_an_older_line_without_it_still_reads(tmp_path: Path) -> None:
    log = tmp_path / "attempts.jsonl"
    attemptlog.append(entry("remote", machine="tcp://10.0.0.7:40123"), path=log)
    with log.open("ab") as handle:  # a line written before the field existed, and one mistyped
        handle.write(b'{"at": "2026-11-20T12:00:01+00:00", "repo": "/r", "task": "old", "attempt": 1,')
        handle.write(b' "status": "done", "runtime": "shell"}\n')
        handle.write(b'{"at": "2026-11-20T12:00:02+00:00", "repo": "/r", "task": "odd", "attempt": 1,')
        handle.write(b' "status": "done", "runtime": "shell", "machine": 7, "cost_usd": 0.5}\n')
    remote, old, odd = attemptlog.read(path=log)
    assert remote.machine == "tcp://10.0.0.7:40123" and remote.to_json()["machine"] == remote.machine
    assert old.task == "old" and old.machine is None
    assert (odd.task, odd.machine, odd.cost_usd) == ("odd", None, 0.5)  # the cost still counts


def test_the_machine_label_is_the_workers_address_else_the_host() -> None:
    dask = {"executor": "dask", "worker": "tcp://127.0.0.1:4000", "host": "box"}
    assert attemptlog.machine_label(dask) == "tcp://127.0.0.1:4000"
    assert attemptlog.machine_label({"executor": "local", "worker": None, "host": "box"}) == "box"
    assert attemptlog.machine_label({"executor": "local", "worker": "", "host": " "}) is None
    assert attemptlog.machine_label("box") is None and attemptlog.machine_label(None) is None
