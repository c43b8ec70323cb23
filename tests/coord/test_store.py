"""One coordination store per scope: append-only lines under one writer lock, gapless sequence
numbers across processes, torn and bad lines never taken for records, status changes folded in
sequence order."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from speedrift.coord.records import Actor, Author, Draft, Kind, Status, fold
from speedrift.coord.store import CoordStore
from speedrift.errors import Refused

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AGENT = Author(Actor.AGENT, task="t1", attempt=1, role="developer")
SPEEDRIFT = Author(Actor.SPEEDRIFT)

WRITER = """
import sys
from pathlib import Path
from speedrift.coord.records import Actor, Author, Draft, Kind
from speedrift.coord.store import CoordStore

store = CoordStore.for_scope(Path(sys.argv[1]), "repo")
writer = sys.argv[2]
for n in range(50):
    author = Author(Actor.AGENT, task=f"task-{writer}", attempt=1)
    store.post(Draft(Kind.EVIDENCE, f"writer {writer} post {n} " + "x" * 300, author))
"""


def draft(summary: str = "Which endpoint does v2 call?", kind: Kind = Kind.CLARIFICATION_REQUEST) -> Draft:
    return Draft(kind, summary, AGENT, targets=("human",))


def test_eight_processes_posting_fifty_records_each_get_gapless_sequence_numbers_and_whole_lines(
    tmp_path: Path,
) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(n)], env=dict(os.environ))
        for n in range(8)
    ]
    assert [w.wait(timeout=300) for w in writers] == [0] * 8
    store = CoordStore.for_scope(tmp_path, "repo")
    raw = store.path.read_bytes()
    assert raw.endswith(b"\n")
    lines = [orjson.loads(chunk) for chunk in raw.split(b"\n")[:-1]]  # every line whole JSON
    assert [line["seq"] for line in lines] == list(range(1, 401))  # in file order, no gap, no repeat
    snapshot = store.read()
    assert snapshot.bad == [] and len(snapshot.records) == 400
    assert [r.id for r in snapshot.records.values()] == [f"repo-{n}" for n in range(1, 401)]
    per_writer = {f"task-{n}": 0 for n in range(8)}
    for record in snapshot.records.values():
        per_writer[str(record.author.task)] += 1
    assert set(per_writer.values()) == {50}


def test_a_torn_last_line_is_cut_by_the_next_writer_and_never_read(tmp_path: Path) -> None:
    store = CoordStore.for_scope(tmp_path, "repo")
    first = store.post(draft(), now=NOW)
    # a writer killed mid-write: half a line, no newline
    torn = b'{"v":1,"seq":2,"summary":"TORN WRITE","id":"repo-2","kind":"blocker","sta'
    with store.path.open("ab") as handle:
        handle.write(torn)
    seen = store.read()
    assert list(seen.records) == [first.id] and seen.bad == [] and seen.last_seq == 1
    second = store.post(draft("Is the old endpoint still served?"), now=NOW)
    assert second.seq == 2 and second.id == "repo-2"
    raw = store.path.read_bytes()
    assert b"TORN WRITE" not in raw
    assert [orjson.loads(c)["summary"] for c in raw.split(b"\n")[:-1]] == [
        "Which endpoint does v2 call?",
        "Is the old endpoint still served?",
    ]


def test_a_bad_line_is_named_by_its_line_number_and_the_rest_still_read(tmp_path: Path) -> None:
    store = CoordStore.for_scope(tmp_path, "repo")
    store.post(draft("one"), now=NOW)
    with store.path.open("ab") as handle:  # a person edited the file
        handle.write(b"this is not json\n")
        handle.write(orjson.dumps({"seq": 9, "id": "repo-9", "kind": "rumour", "status": "open"}) + b"\n")
    store.post(draft("two"), now=NOW)
    snapshot = store.read()
    assert [b.lineno for b in snapshot.bad] == [2, 3]
    assert "'rumour' is not a valid Kind" in snapshot.bad[1].problem
    assert [r.summary for r in snapshot.records.values()] == ["one", "two"]
    # a number some line claims is never given again, even when that line is not a record we read
    assert [r.id for r in snapshot.records.values()] == ["repo-1", "repo-10"]


def test_update_lines_fold_in_sequence_order_whatever_the_file_order(tmp_path: Path) -> None:
    store = CoordStore.for_scope(tmp_path, "repo")
    posted = store.post(draft(), now=NOW)
    store.update(posted.id, Status.ACKNOWLEDGED, author=SPEEDRIFT, now=NOW + timedelta(minutes=1))
    store.update(
        posted.id, Status.RESOLVED, author=SPEEDRIFT, summary="Answered: v2 calls /api/v2", now=NOW
    )  # an earlier wall clock: the sequence number still decides
    record = store.get(posted.id)
    assert record.status is Status.RESOLVED and record.history == (1, 2, 3)
    assert record.summary == "Answered: v2 calls /api/v2"
    assert record.kind is Kind.CLARIFICATION_REQUEST and record.author == AGENT  # kept from the post
    assert record.updated_by == SPEEDRIFT
    lines = store.read().lines
    assert fold(reversed(lines))[posted.id] == record  # the order lines are given in does not matter


def test_an_update_only_if_open_is_refused_for_a_closed_record_and_writes_nothing(tmp_path: Path) -> None:
    store = CoordStore.for_scope(tmp_path, "repo")
    posted = store.post(draft(), now=NOW)
    store.update(posted.id, Status.CLOSED, author=SPEEDRIFT, now=NOW)
    before = store.path.read_bytes()
    with pytest.raises(Refused, match="already closed"):
        store.update(posted.id, Status.RESOLVED, author=SPEEDRIFT, now=NOW, only_if_open=True)
    assert store.path.read_bytes() == before
    assert store.get(posted.id).status is Status.CLOSED


def test_a_credential_in_a_posted_record_is_never_written(tmp_path: Path) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    store = CoordStore.for_scope(tmp_path, "repo")
    posted = store.post(
        Draft(Kind.EVIDENCE, f"pushed with {token}", AGENT, detail=token, data={"log": [token]}), now=NOW
    )
    store.update(posted.id, Status.CLOSED, author=SPEEDRIFT, summary=f"closed {token}", now=NOW)
    written = store.path.read_text()
    assert token not in written
    assert "pushed with" in written and store.read().records[posted.id].status is Status.CLOSED
