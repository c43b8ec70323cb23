"""The flow metrics' collector at ecosystem size: ``speedrift metrics``' reading of many repos against
the least any reader can do with the same files.

Builds ``--repos`` repos, each with a generated ``graph.jsonl`` of ``--tasks`` tasks (graphgen.py)
and ``--runs`` run directories (``attempt.json`` + ``evidence.json`` shaped like the pipeline's:
landed, failed with a class, gate verdicts, usage), then measures, interleaved round by round,
medians of:

- ``floor``: read every ``graph.jsonl``, ``attempt.json`` and ``evidence.json`` and ``orjson.loads``
  them (the graph line by line) — no metric computed;
- ``collect``: control/metrics/collect.py's ``metrics_of`` over the same repos (read, decode the
  graph, build the records, compute every metric per repo and for the ecosystem).

The ratio collect / floor is printed. No goal is asserted.

    .venv/bin/python benchmarks/metrics_bench.py --repos 200 --tasks 500 --runs 50 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from benchmarks.graphgen import generate_graph
from speedrift import layout
from speedrift.control.metrics.collect import metrics_of
from speedrift.graph.codec import Graph

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CLASSES = ["regression", "implementation_error", "merge_conflict", "secret_leak", "transient_infra"]
GATES = ["syntax", "secrets", "scope", "lint", "types", "tests"]


def _evidence(rng: random.Random, task: str, number: int, failed: str | None) -> dict[str, object]:
    blocking = [rng.choice(GATES)] if failed in ("regression", "secret_leak") else []
    results: list[dict[str, object]] = [
        {"gate": g, "status": "fail" if g in blocking else "pass", "reason": "", "findings": []}
        for g in GATES
    ]
    verdict = {
        "commit": "c" * 40,
        "base": "b" * 40,
        "results": results,
        "passed": not blocking,
        "blocking": blocking,
    }
    usage = {"input_tokens": rng.randint(1000, 90000), "output_tokens": rng.randint(100, 9000)}
    return {
        "task": task,
        "attempt": number,
        "runtime": "claude",
        "failure": failed,
        "usage": usage | {"cost_usd": round(rng.uniform(0.01, 2.0), 4), "turns": 3},
        "duration_s": 42.0,
        "gates": [verdict],
        "refused": [],
        "agent_summary": "x" * 400,
    }


def build(root: Path, repos: int, tasks: int, runs: int) -> list[tuple[str, Path]]:
    made: list[tuple[str, Path]] = []
    for index in range(repos):
        rng = random.Random(index)
        repo = root / f"repo-{index:03d}"
        (repo / ".workgraph").mkdir(parents=True)
        data = generate_graph(tasks, seed=index)
        (repo / ".workgraph" / "graph.jsonl").write_bytes(data)
        ids = [str(t.get("id")) for t in Graph.from_bytes(data).iter_tasks()]
        for n in range(runs):
            task = ids[rng.randrange(len(ids))]
            number = len(layout.attempt_dirs(repo, task)) + 1
            folder = layout.attempt_dir(repo, task, number)
            folder.mkdir(parents=True)
            started = NOW - timedelta(hours=rng.uniform(1, 150))
            failed = rng.choice(CLASSES) if rng.random() < 0.35 else None
            attempt = {
                "pid": 1,
                "started": started.isoformat(),
                "updated": (started + timedelta(minutes=rng.uniform(1, 40))).isoformat(),
                "state": "failed" if failed else "done",
                "runtime": "claude",
                "failure": failed,
                "landed_commit": None if failed else f"{n:040x}",
            }
            (folder / layout.ATTEMPT_FILE).write_bytes(orjson.dumps(attempt))
            (folder / layout.EVIDENCE_FILE).write_bytes(orjson.dumps(_evidence(rng, task, number, failed)))
            (folder / layout.EVENTS_FILE).write_bytes(b'{"ts":"x","kind":"message"}\n' * 200)  # never read
        made.append((repo.name, repo))
    return made


def floor(repos: list[tuple[str, Path]]) -> None:
    for _name, repo in repos:
        for line in (repo / ".workgraph" / "graph.jsonl").read_bytes().splitlines():
            if line.strip():
                orjson.loads(line)
        for task_dir in os.scandir(layout.runs_dir(repo)):
            for attempt in os.scandir(task_dir.path):
                for name in (layout.ATTEMPT_FILE, layout.EVIDENCE_FILE):
                    orjson.loads(Path(attempt.path, name).read_bytes())


def collect(repos: list[tuple[str, Path]]) -> None:
    metrics_of(repos, NOW, timedelta(days=7))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=500, help="tasks per repo graph")
    parser.add_argument("--runs", type=int, default=50, help="run directories per repo")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        repos = build(Path(folder), args.repos, args.tasks, args.runs)
        timings: dict[str, list[float]] = {"floor": [], "collect": []}
        steps: dict[str, Callable[[list[tuple[str, Path]]], None]] = {"floor": floor, "collect": collect}
        for _ in range(args.rounds):
            for name, step in steps.items():
                began = time.perf_counter()
                step(repos)
                timings[name].append(time.perf_counter() - began)
        medians = {name: statistics.median(values) for name, values in timings.items()}
        print(
            f"{args.repos} repos × {args.tasks} tasks × {args.runs} run dirs, median of {args.rounds} rounds"
        )
        for name, value in medians.items():
            print(f"  {name:8} {value * 1000:9.1f} ms")
        print(f"  collect / floor = {medians['collect'] / medians['floor']:.2f}x")


if __name__ == "__main__":
    main()
