"""The decision ledger: one fsynced line per record, torn tails skipped and repaired, rotation bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from speedrift.register.ledger import Ledger

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def records(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"cycle_id": f"c-{i}", "generated_at": NOW, "n": i} for i in range(start, start + n)]


def test_records_are_appended_one_line_each_and_read_back_oldest_first(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    for record in records(5):
        ledger.append(record)
    lines = ledger.path.read_bytes().splitlines()
    assert len(lines) == 5 and orjson.loads(lines[0])["generated_at"] == "2026-11-20T12:00:00Z"
    assert [r["n"] for r in ledger.read()] == [0, 1, 2, 3, 4]
    assert [r["n"] for r in ledger.read(last=2)] == [3, 4]
    assert ledger.read(last=0) == [] and Ledger(tmp_path / "empty").read() == []
    assert ledger.torn is None and ledger.problems == []


def test_a_dataclass_is_written_as_the_same_line_as_its_dict(tmp_path: Path) -> None:
    from speedrift.register.record import Reason
    from speedrift.serialize import to_plain

    reason = Reason("code", "text", 1.5)
    Ledger(tmp_path / "a").append(reason)
    Ledger(tmp_path / "b").append(to_plain(reason))
    assert (tmp_path / "a" / "ledger" / "cycles.jsonl").read_bytes() == (
        tmp_path / "b" / "ledger" / "cycles.jsonl"
    ).read_bytes()


def test_a_torn_last_line_is_skipped_reported_and_repaired_with_a_copy(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    for record in records(3):
        ledger.append(record)
    with open(ledger.path, "ab") as handle:
        handle.write(b'{"cycle_id":"c-3","n":3,"half')
    assert [r["n"] for r in ledger.read()] == [0, 1, 2]
    assert ledger.torn is not None and "torn last line" in ledger.torn
    assert [r["n"] for r in ledger.read(last=1)] == [2]
    assert ledger.repair() == len(b'{"cycle_id":"c-3","n":3,"half')
    assert ledger.path.read_bytes().endswith(b"}\n")
    assert b'"half' in ledger.torn_path.read_bytes()
    ledger.read()
    assert ledger.torn is None
    assert ledger.repair() == 0


def test_the_next_append_repairs_a_torn_tail_first_so_no_record_is_glued_to_it(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(records(1)[0])
    with open(ledger.path, "ab") as handle:
        handle.write(b'{"torn":')
    ledger.append(records(1, start=1)[0])
    assert [r["n"] for r in ledger.read()] == [0, 1]
    assert ledger.torn is None and ledger.problems == []


TORN_WRITER = """
import os, sys, time
from pathlib import Path
from speedrift.register.ledger import Ledger
ledger = Ledger(Path(sys.argv[1]))
for i in range(3):
    ledger.append({"cycle_id": f"c-{i}", "n": i})
fd = os.open(ledger.path, os.O_WRONLY | os.O_APPEND)
os.write(fd, b'{"cycle_id":"c-3","n":3,"payload":"' + b"x" * 5000)  # the write the kill cuts off
print("mid-append", flush=True)
time.sleep(60)
"""


def test_a_writer_killed_mid_append_leaves_nothing_torn_after_repair(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", TORN_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "mid-append"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ledger = Ledger(tmp_path)
    assert [r["n"] for r in ledger.read()] == [0, 1, 2] and ledger.torn is not None
    ledger.repair()
    ledger.append({"cycle_id": "c-4", "n": 4})
    lines = ledger.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [orjson.loads(line)["n"] for line in lines[:-1]] == [0, 1, 2, 4]


BIG_WRITER = """
import sys
from pathlib import Path
from speedrift.register.ledger import Ledger
ledger = Ledger(Path(sys.argv[1]))
i = 0
while True:
    ledger.append({"cycle_id": f"c-{i}", "n": i, "payload": "y" * 2_000_000})
    i += 1
"""


def test_kill_9_at_an_arbitrary_moment_never_leaves_a_bad_record_after_repair(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", BIG_WRITER, str(tmp_path)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ledger.path.exists() and ledger.path.stat().st_size > 5_000_000:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    complete = ledger.read()
    assert [r["n"] for r in complete] == list(range(len(complete))) and len(complete) >= 2
    ledger.repair()
    data = ledger.path.read_bytes()
    assert data.endswith(b"\n")
    assert [orjson.loads(line)["n"] for line in data.splitlines()] == list(range(len(complete)))


def test_two_processes_appending_never_interleave_lines(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from speedrift.register.ledger import Ledger\n"
        "ledger = Ledger(Path(sys.argv[1]))\n"
        "for i in range(100):\n"
        "    ledger.append({'who': sys.argv[2], 'n': i, 'pad': 'z' * 10000})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), who]) for who in ("p", "q")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    ledger = Ledger(tmp_path)
    got = ledger.read()
    assert ledger.problems == [] and len(got) == 200
    for who in ("p", "q"):
        assert [r["n"] for r in got if r["who"] == who] == list(range(100))


def test_a_full_ledger_is_compressed_aside_and_only_the_newest_archives_are_kept(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, max_bytes=600, keep_archives=3)
    for record in records(60):
        ledger.append({**record, "pad": "p" * 50})
    archives = ledger.archives()
    assert len(archives) == 3 and all(a.name.endswith(".jsonl.zst") for a in archives)
    assert ledger.path.stat().st_size < 600 + 200
    kept = [r["n"] for r in ledger.read()]
    assert kept == list(range(kept[0], 60))  # contiguous up to the newest; the oldest were dropped
    assert [r["n"] for r in ledger.read(last=12)] == list(range(48, 60))  # reaches into archives


def test_tail_follows_new_records_across_a_rotation(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, max_bytes=400, keep_archives=10)
    for record in records(2):
        ledger.append(record)
    seen: list[int] = []
    done = threading.Event()

    def write_more() -> None:
        writer = Ledger(tmp_path, max_bytes=400, keep_archives=10)
        for record in records(8, start=2):
            writer.append(record)
            time.sleep(0.02)

    thread = threading.Thread(target=write_more)
    for record in ledger.tail(follow=True, last=5, poll_s=0.01, stop=done.is_set):
        seen.append(int(record["n"]))  # type: ignore[call-overload]
        if len(seen) == 2:  # the tail has read the two records there were: now the writer starts
            thread.start()
        if seen[-1] == 9:
            done.set()
            break
    thread.join()
    assert seen[:2] == [0, 1] and seen[-1] == 9
    assert sorted(set(seen)) == seen  # no record twice, none out of order


@pytest.mark.parametrize("bad", [b"not json\n", b"[1,2]\n"])
def test_a_bad_line_in_the_middle_is_skipped_and_reported(tmp_path: Path, bad: bytes) -> None:
    ledger = Ledger(tmp_path)
    ledger.append({"n": 0})
    with open(ledger.path, "ab") as handle:
        handle.write(bad)
    ledger.append({"n": 1})
    assert [r["n"] for r in ledger.read()] == [0, 1]
    assert len(ledger.problems) == (1 if bad.startswith(b"not") else 0)
    assert os.path.exists(ledger.path)
