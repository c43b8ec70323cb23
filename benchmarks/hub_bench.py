"""The hub's cycle on fleets of real repos: cold and incremental, against the floor of looking at all of them.

Run from the repository root::

    .venv/bin/python benchmarks/hub_bench.py [--sizes 200,1000] [--rounds 3] [--json]

For each size a cached fleet (``benchmarks/fleetgen.py``) is used, and each round measures,
in this process, interleaved:

* **floor** — per repo, one ``git status --porcelain=v2 --branch`` plus reading its graph file and
  decoding every line with ``orjson.loads`` (as ``graph_bench.py``'s floor: the least any tool in
  this interpreter can do to look at every task), 4 repos at a time;
* **bytes floor** — the same with the graph file only read, not decoded (for context);
* **cold** — a new hub (``control.cycle.Hub``: load ecosystem.toml, open the register) and its
  first cycle in plan_only: observe every repo, score, metrics, edges, plan, policy, narrative, and
  the ledger line + register rows written (fsynced) — the whole cycle;
* **incr** — the same hub's next cycle after 1% of the repos changed (each gets a graph edit and a
  new top-level file, so its git state and graph are both read again);
* **obs cold** / **obs incr** — the observer alone (``Observer.observe``), the same way.

Acceptance: cold <= 1.5x floor, incr <= 10% of cold. Timings are reported, never asserted; the
exit code is 1 only when a correctness check fails (a snapshot missing or in error, the
incremental cycle re-reading more or fewer repos than changed).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks.fleetgen import IN_USE, ensure_fleet
from speedrift.control.ecosystem.load import Ecosystem, load_ecosystem
from speedrift.control.observe.observer import Observer
from speedrift.graph.store import repo_graph_file as graph_file

COLD_LIMIT = 1.5
INCR_LIMIT = 0.10
CHANGED_SHARE = 0.01
WORKERS = 4


@dataclass
class Row:
    size: int
    floor_ms: float
    bytes_floor_ms: float
    cold_ms: float
    incr_ms: float
    obs_cold_ms: float
    obs_incr_ms: float
    changed: int
    errors: list[str] = field(default_factory=list)

    @property
    def cold_x(self) -> float:
        return self.cold_ms / self.floor_ms

    @property
    def incr_share(self) -> float:
        return self.incr_ms / self.cold_ms


def floor(repos: list[Path], *, decode: bool = True) -> float:
    """Per repo one `git status --porcelain=v2 --branch` plus reading (and decoding) its graph; 4 at once."""

    def look(repo: Path) -> int:
        subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch"], cwd=repo, capture_output=True, check=True
        )
        path = graph_file(repo)
        if path is None:
            return 0
        data = path.read_bytes()
        if decode:
            return len([orjson.loads(line) for line in data.splitlines() if line.strip()])
        return len(data)

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(look, repos))
    return (time.perf_counter() - started) * 1000


class Changes:
    """1% of the repos get a graph edit and a top-level file; undone afterwards."""

    def __init__(self, repos: list[Path], share: float, round_index: int) -> None:
        count = max(1, round(len(repos) * share))
        start = (round_index * count * 7) % len(repos)
        self.repos = [repos[(start + k * 13) % len(repos)] for k in range(count)]
        self.saved: list[tuple[Path, bytes]] = []

    def apply(self) -> None:
        stamp = datetime.now(UTC).isoformat()
        for repo in self.repos:
            path = graph_file(repo)
            if path is not None:
                before = path.read_bytes()
                self.saved.append((path, before))
                line = orjson.dumps(
                    {"kind": "task", "id": f"bench-{stamp}", "title": "new", "status": "open"}
                )
                tmp = path.with_name(".graph.bench.tmp")
                tmp.write_bytes(before + line + b"\n")
                os.replace(tmp, path)  # as wg and speedrift write it: atomic rename
            (repo / "BENCH_CHANGE.txt").write_text(stamp)

    def undo(self) -> None:
        for path, content in self.saved:
            tmp = path.with_name(".graph.bench.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, path)
        for repo in self.repos:
            (repo / "BENCH_CHANGE.txt").unlink(missing_ok=True)
        self.saved = []


def _check(snapshots: dict[str, Any], expected: int, what: str) -> list[str]:
    problems = [] if len(snapshots) == expected else [f"{what}: {len(snapshots)} snapshots, want {expected}"]
    problems += [f"{what}: {name}: {s.errors}" for name, s in snapshots.items() if s.errors]
    return problems[:5]


def measure_round(eco_path: Path, ecosystem: Ecosystem, repos: list[Path], index: int) -> Row:
    from speedrift.control.cycle import Hub

    errors: list[str] = []
    floor_ms = floor(repos)
    bytes_floor_ms = floor(repos, decode=False)
    hub_dir = Path(tempfile.mkdtemp(prefix="speedrift-bench-hub-"))
    os.environ["SPEEDRIFT_HUB_DIR"] = str(hub_dir)
    try:
        started = time.perf_counter()
        hub = Hub(eco_path)
        first = hub.cycle(execute_actions=False)
        cold_ms = (time.perf_counter() - started) * 1000
        errors += _check({r.name: r.snapshot for r in first.repos}, len(repos), "cold cycle")
        changes = Changes(repos, CHANGED_SHARE, index)
        changes.apply()
        try:
            started = time.perf_counter()
            second = hub.cycle(execute_actions=False)
            incr_ms = (time.perf_counter() - started) * 1000
        finally:
            changes.undo()
        reread = {r.name for r in second.repos if not r.snapshot.reused}
        if reread != {p.name for p in changes.repos}:
            errors.append(f"incremental cycle re-read {len(reread)} repos, {len(changes.repos)} changed")
    finally:
        shutil.rmtree(hub_dir, ignore_errors=True)
        os.environ.pop("SPEEDRIFT_HUB_DIR", None)

    observer = Observer(ecosystem)
    started = time.perf_counter()
    snapshots = observer.observe(datetime.now(UTC))
    obs_cold_ms = (time.perf_counter() - started) * 1000
    errors += _check(snapshots, len(repos), "observe")
    changes = Changes(repos, CHANGED_SHARE, index + 1)
    changes.apply()
    try:
        started = time.perf_counter()
        observer.observe(datetime.now(UTC))
        obs_incr_ms = (time.perf_counter() - started) * 1000
    finally:
        changes.undo()
    return Row(
        len(repos),
        floor_ms,
        bytes_floor_ms,
        cold_ms,
        incr_ms,
        obs_cold_ms,
        obs_incr_ms,
        len(changes.repos),
        errors,
    )


def run_size(n: int, rounds: int, base: Path, log: Any) -> Row:
    root = ensure_fleet(n, base, log=log)
    eco_path = root / "ecosystem.toml"
    ecosystem = load_ecosystem(eco_path)
    repos = [entry.path for entry in ecosystem.repos]
    (root / IN_USE).touch()  # an interrupted run leaves this: the next run rebuilds the fleet
    try:
        log(f"n={n}: warm-up")
        measure_round(eco_path, ecosystem, repos, 0)
        rows = []
        for index in range(rounds):
            log(f"n={n}: round {index + 1}/{rounds}")
            rows.append(measure_round(eco_path, ecosystem, repos, index + 1))
    finally:
        (root / IN_USE).unlink(missing_ok=True)

    def median(key: str) -> float:
        return float(statistics.median(getattr(row, key) for row in rows))

    return Row(
        size=n,
        floor_ms=median("floor_ms"),
        bytes_floor_ms=median("bytes_floor_ms"),
        cold_ms=median("cold_ms"),
        incr_ms=median("incr_ms"),
        obs_cold_ms=median("obs_cold_ms"),
        obs_incr_ms=median("obs_incr_ms"),
        changed=rows[0].changed,
        errors=[e for row in rows for e in row.errors],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hub cycle benchmark (cold / incremental vs floor)")
    parser.add_argument("--sizes", default="200,1000", help="comma-separated fleet sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", type=Path, default=Path("/tmp"), help="where fleets are cached")
    parser.add_argument("--json", action="store_true", dest="as_json")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    sizes = [int(s.strip().lower().replace("k", "000")) for s in args.sizes.split(",") if s.strip()]
    rows = [run_size(n, args.rounds, args.base, log) for n in sizes]
    if args.as_json:
        payload = [{**asdict(r), "cold_x": r.cold_x, "incr_share": r.incr_share} for r in rows]
        info = {"python": platform.python_version(), "cpus": os.cpu_count(), "rounds": args.rounds}
        print(orjson.dumps({**info, "rows": payload}, option=orjson.OPT_INDENT_2).decode())
    else:
        python = platform.python_version()
        print(f"cpus {os.cpu_count()}, python {python}, {WORKERS} at a time, medians of {args.rounds}")
        print(
            f"{'repos':>6} {'floor':>7} {'bytes fl':>8} {'cold':>7} {'cold x':>7} {'incr':>6} "
            f"{'incr/cold':>9} {'obs cold':>8} {'obs x':>6} {'obs incr':>8} {'obs i/c':>7}  "
            f"cold<={COLD_LIMIT}x incr<={INCR_LIMIT:.0%}"
        )
        for r in rows:
            cold_ok = "PASS" if r.cold_x <= COLD_LIMIT else "FAIL"
            incr_ok = "PASS" if r.incr_share <= INCR_LIMIT else "FAIL"
            print(
                f"{r.size:>6} {r.floor_ms:>7.0f} {r.bytes_floor_ms:>8.0f} {r.cold_ms:>7.0f} "
                f"{r.cold_x:>7.2f} {r.incr_ms:>6.0f} {r.incr_share:>9.1%} {r.obs_cold_ms:>8.0f} "
                f"{r.obs_cold_ms / r.floor_ms:>6.2f} {r.obs_incr_ms:>8.0f} "
                f"{r.obs_incr_ms / r.obs_cold_ms:>7.1%}  {cold_ok:>11} {incr_ok:>9}"
            )
        print(
            "times in ms; cold x = cold / floor; obs x = obs cold / floor; changed per incremental cycle: 1%"
        )
    problems = [e for r in rows for e in r.errors]
    for problem in problems:
        print(f"check failed: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
