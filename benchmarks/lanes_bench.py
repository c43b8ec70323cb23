"""Drift lanes at size: every built-in lane except uxdrift on a generated repo of N files, against
the floor of the same underlying tools run by hand, and the run after a small change against the
full run.

Measured in one run, medians over the rounds:

- ``floor``: what the lanes cannot avoid doing, done by hand with the same tools — list the tree
  (``git ls-tree``), read every blob (``git cat-file --batch``), run the secrets detector over every
  text file (``gates.detect.scan_files``, the detector secdrift and the secrets gate use), diff the
  range (``git diff --numstat`` and ``-U0``), parse the task graph, and run the repo's test suite
  once in a checkout of the head (what qadrift's ``tests_failing`` needs);
- ``full``: ``lanes.runner.check`` over the same head and range with every built-in lane but uxdrift
  and no cache (``.speedrift/lanes/`` and qadrift's kept checkout removed first);
- ``incremental``: a commit changing ``--changed`` files, then ``check`` over the new head with the
  caches the full run left (secdrift re-scans only changed blobs; qadrift moves its kept checkout
  to the new head, rewriting only the changed files, runs only the test files the change reaches
  and carries the other files' outcomes from the earlier head).

The state home (kept checkouts) is a temporary directory of the run.

Targets: ``full`` <= 1.5x ``floor``; ``incremental`` <= 25 % of ``full``. Nothing is asserted;
the ratios are printed.

    .venv/bin/python benchmarks/lanes_bench.py --files 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.gitrepo import make_repo, sh_git

from speedrift import layout
from speedrift.gates import basetree, detect
from speedrift.gates.changes import read_blobs
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.lanes.builtin import BUILTIN
from speedrift.lanes.builtin._qasuite import kept_dir
from speedrift.lanes.runner import CheckRequest, check

NOW = datetime(2026, 12, 7, tzinfo=UTC)
LANES = tuple(name for name in BUILTIN if name != "uxdrift")
MODULE = '''"""Module {n} of the generated service."""

import os

TIMEOUT = {n}


def handler_{n}(payload: dict) -> dict:
    """Handle one request."""
    token = os.environ.get("SERVICE_TOKEN", "")
    result = {{"id": {n}, "ok": bool(payload), "auth": bool(token)}}
    for key, value in sorted(payload.items()):
        result[key] = value
    return result


class Record{n}:
    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> str:
        return f"record {n}: {{self.name}}"
'''
TEST = """from app.mod_{n} import handler_{n}


def test_handler_{n}_echoes_the_payload():
    assert handler_{n}({{"a": 1}})["a"] == 1


def test_handler_{n}_marks_an_empty_payload():
    assert handler_{n}({{}})["ok"] is False
"""


def generate(root: Path, files: int) -> Path:
    tests = max(1, files // 20)
    modules = files - tests - 3
    content: dict[str, str] = {
        "README.md": "# bench\n",
        "pyproject.toml": '[project]\nname = "bench"\nversion = "0"\ndependencies = ["requests>=2"]\n',
        "uv.lock": "version = 1\n",
    }
    for n in range(modules):
        folder = f"app/part{n // 200}" if n >= 200 else "app"
        content[f"{folder}/mod_{n}.py" if folder != "app" else f"app/mod_{n}.py"] = MODULE.format(n=n)
    content["app/__init__.py"] = ""
    for n in range(tests):
        content[f"tests/test_mod_{n}.py"] = TEST.format(n=n)
    # modules in sub-packages are imported by their tests through app.mod_N only below 200
    repo = make_repo(root / "repo", content)
    for sub in {str(Path(p).parent) for p in content if p.startswith("app/part")}:
        (repo / sub / "__init__.py").write_text("")
    for n in range(50):  # chains of five tasks
        spec = ops.NewTask(f"task {n}", task_id=f"t{n}", after=[f"t{n - 1}"] if n % 5 else [])
        add_task(repo, spec)
    sh_git(repo, "add", "-A")
    sh_git(repo, "commit", "-q", "-m", "packages and tasks")
    return repo


def add_task(repo: Path, spec: ops.NewTask) -> None:
    def build(graph: Graph, now: datetime) -> ops.Mutation:
        return ops.add_task(graph, spec, now=now, actor="bench")

    GraphStore(repo / ".workgraph").mutate(build)


def change(repo: Path, count: int, round_: int) -> None:
    for n in range(count):
        path = repo / "app" / f"mod_{n}.py"
        path.write_text(path.read_text() + f"\n# round {round_}\n")
    sh_git(repo, "commit", "-q", "-am", f"change {count} files")


def floor(repo: Path, base: str, head: str) -> None:
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "-l", "-z", "--full-tree", head], cwd=repo, check=True, capture_output=True
    ).stdout
    entries = []
    for record in listing.split(b"\0"):
        if record:
            meta, _, path = record.partition(b"\t")
            entries.append((os.fsdecode(path), meta.split()[2].decode()))
    blobs = read_blobs(repo, [sha for _, sha in entries])
    texts = [(path, blobs[sha].decode("utf-8", "replace"), True) for path, sha in entries if sha in blobs]
    detect.scan_files(texts)
    subprocess.run(["git", "diff", "--numstat", "-z", base, head], cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "diff", "-U0", base, head], cwd=repo, check=True, capture_output=True)
    Graph.from_bytes((repo / ".workgraph" / "graph.jsonl").read_bytes())
    with basetree.full_tree(repo, head) as tree:
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tree, capture_output=True
        )


def ours(repo: Path, base: str, head: str) -> dict[str, int]:
    report = check(repo, now=NOW, request=CheckRequest(lanes=LANES, base=base, tip=head, head=head))
    errors = {r.lane: r.error for r in report.results if r.error}
    if errors:
        raise SystemExit(f"a lane could not judge the benchmark repo: {errors}")
    return {r.lane: r.duration_ms for r in report.results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--changed", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanes-bench-") as scratch:
        os.environ["SPEEDRIFT_STATE_DIR"] = str(Path(scratch) / "state")
        repo = generate(Path(scratch), args.files)
        times: dict[str, list[float]] = {"floor": [], "full": [], "incremental": []}
        per_lane: dict[str, list[int]] = {}
        per_lane_incremental: dict[str, list[int]] = {}
        for round_ in range(args.rounds):
            base = sh_git(repo, "rev-parse", "HEAD")
            change(repo, args.changed, round_ * 2)
            head = sh_git(repo, "rev-parse", "HEAD")
            started = time.perf_counter()
            floor(repo, base, head)
            times["floor"].append(time.perf_counter() - started)
            shutil.rmtree(layout.lanes_dir(repo), ignore_errors=True)  # no lane cache,
            shutil.rmtree(kept_dir(repo), ignore_errors=True)  # and no kept checkout
            started = time.perf_counter()
            durations = ours(repo, base, head)
            times["full"].append(time.perf_counter() - started)
            for lane, ms in durations.items():
                per_lane.setdefault(lane, []).append(ms)
            change(repo, args.changed, round_ * 2 + 1)
            newer = sh_git(repo, "rev-parse", "HEAD")
            started = time.perf_counter()
            durations = ours(repo, head, newer)
            times["incremental"].append(time.perf_counter() - started)
            for lane, ms in durations.items():
                per_lane_incremental.setdefault(lane, []).append(ms)
        med = {k: statistics.median(v) for k, v in times.items()}
        result = {
            "files": args.files,
            "rounds": args.rounds,
            "seconds": {k: round(v, 3) for k, v in med.items()},
            "full_vs_floor": round(med["full"] / med["floor"], 2),
            "incremental_vs_full": round(med["incremental"] / med["full"], 3),
            "full_by_lane_ms": {k: int(statistics.median(v)) for k, v in per_lane.items()},
            "incremental_by_lane_ms": {k: int(statistics.median(v)) for k, v in per_lane_incremental.items()},
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.files} files, {args.changed} changed per round, {args.rounds} rounds (medians)")
    print("| case | s | ratio |\n|---|---|---|")
    print(f"| floor (ls-tree, cat-file, detector, diff, graph, test suite) | {med['floor']:.2f} | 1.00x |")
    full, incremental = result["full_vs_floor"], result["incremental_vs_full"]
    print(f"| full check, {len(LANES)} lanes, no cache | {med['full']:.2f} | {full:.2f}x floor |")
    changed = f"incremental, {args.changed} files changed"
    print(f"| {changed} | {med['incremental']:.2f} | {incremental:.1%} of full |")
    print("full run by lane (ms): " + ", ".join(f"{k} {v}" for k, v in result["full_by_lane_ms"].items()))
    by_lane = result["incremental_by_lane_ms"]
    print("incremental run by lane (ms): " + ", ".join(f"{k} {v}" for k, v in by_lane.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
