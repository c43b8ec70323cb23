"""The coordination store at size: reading, inboxes, the board, and writers at once.

For each store size (records in one scope, 70% of them closed by an update line, targets spread
over 200 tasks) the benchmark measures, interleaved round by round, medians:

- ``floor``: read the file and ``orjson.loads`` every line — the least any reader can do;
- ``read``: a fresh ``CoordStore(...).read()`` (parse every line, fold updates in sequence order);
- ``again``: the same store read once more after one more line was appended (a reader in a
  long-running process — the service, the hub — parses only what is new);
- ``inbox``: a fresh ``read()`` plus ``compile_inbox`` for one task (what an attempt's prompt costs);
- ``board``: the whole process ``speedrift board --json``, against ``floor-proc``, a whole process
  that only does ``floor`` (interpreter start included in both);
- ``post``: one ``post`` (lock, tail read, one write, fsync) by a single writer, and the wall time
  of 4 processes posting 100 records each at once against 1 process posting 400.

Ratios are to the floor measured in the same run. No goal is asserted; the numbers are printed.

    .venv/bin/python benchmarks/coord_bench.py --sizes 1000,10000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from speedrift.coord.inbox import Reader, compile_inbox
from speedrift.coord.records import Actor, Author, Draft, Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.gates.globs import matches

KINDS = [Kind.REQUEST, Kind.CLAIM, Kind.DECISION, Kind.BLOCKER, Kind.HANDOFF, Kind.CLARIFICATION_REQUEST]
WRITER = """
import sys
from pathlib import Path
from speedrift.coord.records import Actor, Author, Draft, Kind
from speedrift.coord.store import CoordStore
store = CoordStore.for_scope(Path(sys.argv[1]), "repo")
for n in range(int(sys.argv[2])):
    store.post(Draft(Kind.EVIDENCE, f"post {n}", Author(Actor.AGENT, task="t", attempt=1)))
"""
FLOOR = "import orjson,sys\nfor line in open(sys.argv[1],'rb'):\n    line.strip() and orjson.loads(line)\n"


def build(repo: Path, size: int) -> CoordStore:
    store = CoordStore.for_scope(repo, "repo")
    base = datetime(2026, 11, 1, tzinfo=UTC)
    author = Author(Actor.AGENT, task="t0", attempt=1, role="developer")
    closer = Author(Actor.SPEEDRIFT)
    posted = 0
    while posted < size:
        n = posted
        draft = Draft(
            KINDS[n % len(KINDS)],
            f"record {n}: " + "word " * 12,
            author,
            targets=(f"task:t{n % 200}",),
            artifact_refs=(f"src/module{n % 50}.py",),
        )
        record = store.post(draft, now=base + timedelta(seconds=n))
        posted += 1
        if n % 10 < 7:
            store.update(record.id, Status.CLOSED, author=closer, now=base + timedelta(seconds=n))
    return store


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_process(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def writers(repo: Path, processes: int, each: int) -> float:
    start = time.perf_counter()
    running = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(repo), str(each)]) for _ in range(processes)
    ]
    for proc in running:
        proc.wait()
    return time.perf_counter() - start


def measure(size: int, rounds: int, work: Path) -> dict[str, float]:
    repo = work / f"repo-{size}"
    (repo / ".workgraph").mkdir(parents=True)
    (repo / ".workgraph" / "graph.jsonl").write_text("")
    sys.stderr.write(f"building a store of {size} records …\n")
    store = build(repo, size)
    reader = Reader(task="t7", role="developer", capabilities=(), files=("src/module7.py",))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    speedrift = [sys.executable, "-m", "speedrift", "board", "--json"]
    names = ("floor", "read", "again", "inbox", "board", "floor-proc")
    samples: dict[str, list[float]] = {k: [] for k in names}
    warm = CoordStore.for_scope(repo, "repo")
    warm.read()
    extra = Draft(Kind.EVIDENCE, "one more", Author(Actor.AGENT, task="t1", attempt=1))

    def floor() -> None:
        for line in store.path.read_bytes().splitlines():
            if line.strip():
                orjson.loads(line)

    def cold() -> None:
        CoordStore.for_scope(repo, "repo").read()

    def inbox() -> None:
        records = CoordStore.for_scope(repo, "repo").read().records.values()
        compile_inbox(records, reader, scope="repo", now=now, matches=matches)

    for _ in range(rounds):
        samples["floor"].append(timed(floor))
        samples["read"].append(timed(cold))
        store.post(extra)
        samples["again"].append(timed(warm.read))
        samples["inbox"].append(timed(inbox))
        samples["floor-proc"].append(run_process([sys.executable, "-c", FLOOR, str(store.path)], repo))
        samples["board"].append(run_process(speedrift, repo))
    post_store = CoordStore.for_scope(work / f"posts-{size}", "repo")
    draft = Draft(Kind.EVIDENCE, "one post", Author(Actor.AGENT, task="t", attempt=1))
    post = [timed(lambda: post_store.post(draft)) for _ in range(50)]
    one = writers(work / f"one-{size}", 1, 400)
    four = writers(work / f"four-{size}", 4, 100)
    seqs = [r.seq for r in CoordStore.for_scope(work / f"four-{size}", "repo").read().lines]
    if seqs != list(range(1, 401)):
        raise SystemExit("4 writers did not leave gapless sequence numbers 1..400")
    result = {k: median_ms(v) for k, v in samples.items()}
    result |= {"post": median_ms(post), "1x400": one * 1000, "4x100": four * 1000}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("SPEEDRIFT_STATE_DIR", str(Path(folder) / "state"))
        for size in (int(s) for s in args.sizes.split(",")):
            results[size] = measure(size, args.rounds, Path(folder))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        f"{'records':>8} {'floor':>8} {'read':>8} {'read x':>7} {'again':>7} {'inbox':>8} {'inbox x':>8} "
        f"{'floor-proc':>10} {'board':>8} {'board x':>8} {'post':>7} {'1x400':>8} {'4x100':>8}"
    )
    for size, r in results.items():
        print(
            f"{size:>8} {r['floor']:>7.1f}ms {r['read']:>7.1f}ms {r['read'] / r['floor']:>6.1f}x "
            f"{r['again']:>5.2f}ms "
            f"{r['inbox']:>7.1f}ms {r['inbox'] / r['floor']:>7.1f}x {r['floor-proc']:>9.1f}ms "
            f"{r['board']:>7.1f}ms {r['board'] / r['floor-proc']:>7.1f}x {r['post']:>6.2f}ms "
            f"{r['1x400']:>7.0f}ms {r['4x100']:>7.0f}ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
