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


def test_past_its_size_a_store_archives_old_closed_records_line_for_line_and_keeps_counting(
    tmp_path: Path,
) -> None:
    import zstandard

    store = CoordStore(tmp_path / "repo.jsonl", "repo", compact_bytes=4_000)
    old = [store.post(draft(f"old question {n} " + "x" * 200), now=NOW) for n in range(8)]
    for record in old[:6]:
        store.update(record.id, Status.RESOLVED, author=SPEEDRIFT, now=NOW)
    later = NOW + timedelta(days=8)
    fresh = store.post(draft("a fresh question"), now=later)
    assert fresh.seq == 15  # 8 posts, 6 updates: the next number, archived lines or not
    moved = [
        line
        for archive in store.archives()
        for line in zstandard.ZstdDecompressor().stream_reader(archive.read_bytes()).read().splitlines()
    ]
    # every closed record but the one holding the last line (it keeps the sequence going)
    assert sorted({orjson.loads(line)["id"] for line in moved}) == sorted(r.id for r in old[:5])
    assert len(moved) == len(set(moved)) == 10  # creating line and update of each, as written
    live = store.read().records
    assert set(live) == {old[5].id, old[6].id, old[7].id, fresh.id}
    assert [r.id for r in live.values() if not r.open] == [old[5].id]
    assert store.post(draft("and one more"), now=later).seq == 16


def test_a_reader_sees_what_other_writers_appended_and_a_compaction_under_it(tmp_path: Path) -> None:
    writer = CoordStore(tmp_path / "repo.jsonl", "repo", compact_bytes=3_000)
    reader = CoordStore(tmp_path / "repo.jsonl", "repo")
    first = [writer.post(draft(f"question {n} " + "y" * 150), now=NOW) for n in range(4)]
    assert list(reader.read().records) == [r.id for r in first]
    for record in first[:3]:
        writer.update(record.id, Status.RESOLVED, author=SPEEDRIFT, now=NOW)
    assert [r.status for r in reader.read().records.values()][:3] == [Status.RESOLVED] * 3
    assert reader.read().records[first[3].id].open
    later = NOW + timedelta(days=8)
    for n in range(6):  # past 3,000 bytes: the writer compacts, the file is another one
        writer.post(draft(f"later {n} " + "z" * 150), now=later)
    assert writer.archives()
    seen = reader.read()
    assert seen.records == CoordStore(tmp_path / "repo.jsonl", "repo").read().records  # a fresh reader
    assert first[0].id not in seen.records and first[3].id in seen.records
