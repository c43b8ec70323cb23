"""Whole-process benchmark of the human tables against ``--json`` on a large graph.

Run from the repository root::

    .venv/bin/python benchmarks/output_bench.py [--size 100000] [--repeat 5] [--json]

It generates (or reuses, as graph_bench.py does) a deterministic ``.workgraph/graph.jsonl`` of
``--size`` tasks under ``benchmarks/.data/``, then times whole processes, interleaved round by
round, stdout to a pipe that is read and thrown away (a pipe, not a terminal: what a script or
``| less`` sees):

* ``ready --json``, ``ready`` (the capped table, 50 rows), ``ready --all`` (every row);
* ``list --json``, ``list``, ``list --all``.

Each command runs once as a warm-up, then ``--repeat`` times; medians are reported, each table as
a ratio of its own command's ``--json`` form. Target: the capped table within 1.5x of ``--json``.
Timings are reported, never asserted; the exit code is 1 only when a command fails or prints
the wrong number of rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks.graph_bench import DEFAULT_DATA, prepare_graph

REPO = Path(__file__).resolve().parent.parent
SPEEDRIFT = REPO / ".venv" / "bin" / "speedrift"
TARGET = 1.5
CAPPED_ROWS = 50
COMMANDS = {
    "ready-json": ["ready", "--json"],
    "ready-table": ["ready"],
    "ready-all": ["ready", "--all"],
    "list-json": ["list", "--json"],
    "list-table": ["list"],
    "list-all": ["list", "--all"],
}


class BenchError(Exception):
    """A command failed or printed what it should not: the numbers would be meaningless."""


def _run(graph_dir: Path, argv: list[str]) -> tuple[float, bytes]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8"}
    began = time.perf_counter()
    done = subprocess.run(
        [str(SPEEDRIFT), "--dir", str(graph_dir), *argv], capture_output=True, env=env, check=False
    )
    elapsed = (time.perf_counter() - began) * 1000
    if done.returncode != 0:
        raise BenchError(f"speedrift {' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]!r}")
    return elapsed, done.stdout


def _check(name: str, out: bytes, expected: dict[str, int]) -> None:
    """The JSON forms give the row counts; the tables must show 50 rows and count the rest, or all."""
    kind, form = name.split("-")
    if form == "json":
        expected[kind] = len(orjson.loads(out))
        return
    lines = out.decode().splitlines()
    header = 3 if kind == "ready" else 2  # title (ready only), header, rule
    rows = len(lines) - header - (1 if form == "table" else 0)
    want = min(CAPPED_ROWS, expected[kind]) if form == "table" else expected[kind]
    if kind == "list" and form == "all":
        return  # --all adds system tasks to list: none are generated, but do not count on it
    if rows != want:
        raise BenchError(f"{name}: {rows} rows printed, expected {want}")
    if form == "table" and expected[kind] > CAPPED_ROWS and f"{expected[kind]:,} in all" not in lines[-1]:
        raise BenchError(f"{name}: the last line does not count the rows left out: {lines[-1]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", dest="as_json", action="store_true")
    args = parser.parse_args(argv)
    graph_dir = prepare_graph(args.data_dir, args.size, args.seed)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    expected: dict[str, int] = {}
    try:
        for name, command in COMMANDS.items():  # warm-up, and the correctness checks
            _, out = _run(graph_dir, command)
            _check(name, out, expected)
        for round_ in range(args.repeat):
            sys.stderr.write(f"round {round_ + 1}/{args.repeat}\n")
            for name, command in COMMANDS.items():
                samples[name].append(_run(graph_dir, command)[0])
    except BenchError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    median = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {
        f"{kind}-{form}": median[f"{kind}-{form}"] / median[f"{kind}-json"]
        for kind in ("ready", "list")
        for form in ("table", "all")
    }
    if args.as_json:
        result = {
            "size": args.size,
            "rows": expected,
            "median_ms": median,
            "ratios": ratios,
            "target": TARGET,
        }
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return 0
    print(f"{args.size:,} tasks, {expected['ready']:,} ready; medians of {args.repeat} whole processes")
    print(
        f"{'query':6} {'json ms':>8} {'table ms':>9} {'table x':>8} {'--all ms':>9} {'--all x':>8}  "
        f"table<={TARGET}x"
    )
    for kind in ("ready", "list"):
        table_x = ratios[f"{kind}-table"]
        print(
            f"{kind:6} {median[f'{kind}-json']:8.0f} {median[f'{kind}-table']:9.0f} {table_x:8.2f} "
            f"{median[f'{kind}-all']:9.0f} {ratios[f'{kind}-all']:8.2f}  "
            f"{'PASS' if table_x <= TARGET else 'FAIL'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
