"""The worker pipeline's own overhead: 200 shell tasks, 4 workers, gates off.

Run from the repository root::

    .venv/bin/python benchmarks/pipeline_bench.py [--tasks 200] [--workers 4] [--json]

Every task edits one file through the real pipeline (claim, worktree, shell runtime, commit,
merge queue, done). The floor is a shell script doing only the git work one task needs
(worktree add, commit, rebase + fast-forward under a lock, worktree remove) on an identical repo,
with the same number of concurrent workers. Reported: per-task
speedrift time excluding merge-queue waiting, against the floor's per-task time (acceptance
<= 2x), tasks per minute, and a check that no task was lost or run twice. Timings are reported,
never asserted; the exit code is 1 only when the correctness check fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import AttemptResult, Pipeline, RunOptions
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops
from speedrift.graph.store import GraphStore, init_graph_dir

# One floor worker: the git work each task needs, nothing else. Workers run concurrently like
# speedrift's; the fast-forward (with the rebase it needs once main has moved) is serialized by
# flock like speedrift's merge queue. Prints "<task ns> <queue-wait ns>" per task.
FLOOR_WORKER = r"""
set -eu
cd "$1"
for i in $(seq "$2" "$3" "$4"); do
  start=$(date +%s%N)
  git worktree add -q -b "bench/b$i" "wt$i" main
  echo "$i" > "wt$i/files/f$i.txt"
  git -C "wt$i" add -A
  git -C "wt$i" commit -q -m "task $i"
  asked=$(date +%s%N)
  exec 9>merge.lock
  flock 9
  got=$(date +%s%N)
  git -C "wt$i" rebase -q main
  git merge --ff-only -q "bench/b$i"
  flock -u 9
  git worktree remove "wt$i"
  echo "$(( $(date +%s%N) - start )) $(( got - asked ))"
done
"""


def make_repo(path: Path, tasks: int) -> Path:
    path.mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "bench")
    git("config", "user.email", "bench@example.invalid")
    (path / "files").mkdir()
    for i in range(1, tasks + 1):
        (path / "files" / f"f{i}.txt").write_text("0\n")
    (path / ".gitignore").write_text(".speedrift/\n")
    git("add", "-A")
    git("commit", "-q", "-m", "initial")
    return path


def floor(root: Path, tasks: int, workers: int) -> float:
    """Mean per-task time of the floor workers, excluding the wait for the merge lock."""
    repo = make_repo(root / "floor", tasks)
    (repo / ".git" / "info" / "exclude").write_text("merge.lock\nwt*\n")
    procs = [
        subprocess.Popen(
            ["bash", "-c", FLOOR_WORKER, "floor", str(repo), str(w + 1), str(workers), str(tasks)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    samples: list[float] = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError("the floor script failed")
        for line in out.splitlines():
            total, wait = (int(x) for x in line.split())
            samples.append((total - wait) / 1e9)
    return statistics.mean(samples)


class TimedPipeline(Pipeline):
    """Measures each attempt's wall time from the outside, claim to done."""

    walls: dict[str, float]

    def run(self, task_id: str, options: RunOptions) -> AttemptResult:
        started = time.perf_counter()
        result = super().run(task_id, options)
        self.walls[task_id] = time.perf_counter() - started
        return result


def speedrift(root: Path, tasks: int, workers: int) -> dict[str, Any]:
    repo = make_repo(root / "speedrift", tasks)
    graph_dir = init_graph_dir(repo)
    store = GraphStore(graph_dir)
    specs = [
        ops.NewTask(f"edit file {i}", task_id=f"t{i}", exec_command=f"echo {i} > files/f{i}.txt")
        for i in range(1, tasks + 1)
    ]

    def add_all(graph: Any, now: Any) -> ops.Mutation:
        merged = ops.Mutation()
        for spec in specs:
            one = ops.add_task(graph, spec, now=now, actor="bench")
            for task in one.tasks:
                graph.put_task(task)  # later specs see earlier ones (unique ids)
            merged.tasks += one.tasks
            merged.records += one.records
        return merged

    store.mutate(add_all, actor="bench")
    config = RepoConfig.model_validate(
        {"service": {"max_agents": workers, "poll_seconds": 0.05}, "default_runtime": "shell"}
    )
    pipeline = TimedPipeline(repo, store, config)
    pipeline.walls = {}
    loop = ServiceLoop(pipeline)
    started = time.perf_counter()
    thread = threading.Thread(target=loop.run)
    thread.start()
    while True:
        graph = store.load()
        if all(t.get("status") in ("done", "failed") for t in graph.tasks.values()):
            break
        time.sleep(0.05)
    loop.stop.set()
    thread.join()
    elapsed = time.perf_counter() - started
    graph = store.load()
    statuses = [t.get("status") for t in graph.tasks.values()]
    per_task = []
    for result in loop.results:
        wait = float(result.evidence.get("timings_s", {}).get("queue_wait", 0.0))
        per_task.append(pipeline.walls[result.task_id] - wait)
    claims = [
        sum(1 for e in t.get("log", []) if "claimed" in e.get("message", "")) for t in graph.tasks.values()
    ]
    content_ok = all((repo / "files" / f"f{i}.txt").read_text() == f"{i}\n" for i in range(1, tasks + 1))
    return {
        "elapsed_s": elapsed,
        "per_task_s": statistics.mean(per_task) if per_task else float("nan"),
        "per_task_median_s": statistics.median(per_task) if per_task else float("nan"),
        "done": statuses.count("done"),
        "failed": statuses.count("failed"),
        "double_runs": sum(1 for c in claims if c > 1),
        "lost": tasks - len(loop.results),
        "content_ok": content_ok,
        "tasks_per_minute": tasks / elapsed * 60,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="floor/speedrift pairs; medians reported")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    floors: list[float] = []
    runs: list[dict[str, Any]] = []
    for number in range(args.rounds):  # interleaved pairs: both sides see the same machine noise
        with tempfile.TemporaryDirectory(prefix="speedrift-pipeline-bench-") as tmp:
            root = Path(tmp)
            floors.append(floor(root, args.tasks, args.workers))
            runs.append(speedrift(root, args.tasks, args.workers))
        print(f"round {number + 1}/{args.rounds}: floor {floors[-1] * 1000:.1f} ms, "
              f"speedrift {runs[-1]['per_task_s'] * 1000:.1f} ms", file=sys.stderr)  # fmt: skip
    floor_s = statistics.median(floors)
    ours = dict(runs[0])
    for key in ("per_task_s", "per_task_median_s", "elapsed_s", "tasks_per_minute"):
        ours[key] = statistics.median(r[key] for r in runs)
    ours["done"] = min(r["done"] for r in runs)
    ours["failed"] = sum(r["failed"] for r in runs)
    ours["lost"] = sum(r["lost"] for r in runs)
    ours["double_runs"] = sum(r["double_runs"] for r in runs)
    ours["content_ok"] = all(r["content_ok"] for r in runs)
    ratio = ours["per_task_s"] / floor_s
    ratios = [r["per_task_s"] / f for r, f in zip(runs, floors, strict=True)]
    ok = ours["done"] == args.tasks and ours["double_runs"] == 0 and ours["lost"] == 0 and ours["content_ok"]
    report = {
        "tasks": args.tasks,
        "workers": args.workers,
        "rounds": args.rounds,
        "floor_per_task_s": floor_s,
        **ours,
        "round_ratios": ratios,
        "ratio": ratio,
        "acceptance_ratio": 2.0,
        "correct": ok,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if ok else 1
    verdict = "PASS" if ratio <= 2 else "FAIL"
    contents = "ok" if ours["content_ok"] else "WRONG"
    lines = [
        f"{args.tasks} shell tasks, {args.workers} workers, gates off",
        f"  floor (git work only, per task, excl. queue wait): {floor_s * 1000:8.1f} ms",
        f"  speedrift per task (excl. queue wait): {ours['per_task_s'] * 1000:8.1f} ms"
        f" (median {ours['per_task_median_s'] * 1000:.1f} ms)",
        f"  ratio (medians of {args.rounds} rounds):        {ratio:8.2f}x  (acceptance <= 2x: {verdict});"
        f" per round: {', '.join(f'{r:.2f}x' for r in ratios)}",
        f"  throughput:                            {ours['tasks_per_minute']:8.1f} tasks/min"
        f" ({ours['elapsed_s']:.1f} s total)",
        f"  done {ours['done']}, failed {ours['failed']}, lost {ours['lost']},"
        f" run twice {ours['double_runs']}, file contents {contents}",
    ]
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
