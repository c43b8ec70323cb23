"""The worker plane's own overhead, and the supervisor's: three sections, each side by side.

Run from the repository root::

    .venv/bin/python benchmarks/pipeline_bench.py [--tasks 200] [--workers 1,4,8] [--json]
    .venv/bin/python benchmarks/pipeline_bench.py --sections admission
    .venv/bin/python benchmarks/pipeline_bench.py --sections latency --latency-tasks 100 --latency-repos 20

``pipeline``: every task edits one file through the real pipeline (claim, worktree, shell runtime,
commit, merge queue, done), each attempt in a worker process under the service. The floor
is a shell script doing only the git work one task needs (worktree add, commit, rebase +
fast-forward under a lock, worktree remove) on an identical repo, with the same number of
concurrent workers. Reported per worker count (1, 4, 8): per-task speedrift time (from the service
handing the attempt to a worker process — starting one when none is idle — to its report, as the
service saw it) excluding the waits for the merge queue and the worktree-admin lock (the floor
excludes the same two), against the floor's per-task time (acceptance <= 2x at 4 workers); the
whole machine's CPU time per task on each side (what no choice of what to time can hide: work
done outside an attempt's window counts too), tasks per minute, and a check that no task was lost
or run twice.

``admission``: the supervisor's decision time with 1,000 live attempts registered across 200
repos (acceptance <= 5 ms), admitted and refused at a limit.

``latency``: from a task written ready into an autonomous repo's graph to its agent process
starting, under ``speedrift hub up`` (default interval, dashboard on), p95 over 100 tasks in 20
repos (acceptance <= 1 s).

Timings are reported, never asserted; the exit code is 1 only when a correctness check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops
from speedrift.graph.store import GraphStore, init_graph_dir

# One floor worker: the git work each task needs, nothing else. Workers run concurrently like
# speedrift's; the fast-forward (with the rebase it needs once main has moved) is serialized by
# flock like speedrift's merge queue. `git worktree add` and `remove` are serialized too: run
# concurrently, a git command that lists worktrees can trip over one half-created ("failed to read
# .git/worktrees/wtN/commondir"), which fails the script at 4 and 8 workers. Waiting for either
# lock is excluded, as speedrift's queue and worktree-lock waits are. Prints "<task ns> <wait ns>" per task.
FLOOR_WORKER = r"""
set -eu
cd "$1"
for i in $(seq "$2" "$3" "$4"); do
  start=$(date +%s%N)
  exec 8>worktrees.lock
  flock 8
  got_wt=$(date +%s%N)
  git worktree add -q -b "bench/b$i" "wt$i" main
  flock -u 8
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
  asked_rm=$(date +%s%N)
  flock 8
  got_rm=$(date +%s%N)
  git worktree remove "wt$i"
  flock -u 8
  echo "$(( $(date +%s%N) - start )) $(( got_wt - start + got - asked + got_rm - asked_rm ))"
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


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy so far (/proc/stat: everything but idle and
    iowait): around one side of a round, the CPU that side cost, its supervisor and git included."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def floor(root: Path, tasks: int, workers: int) -> float:
    """Mean per-task time of the floor workers, excluding the waits for the merge and worktree locks."""
    repo = make_repo(root / "floor", tasks)
    (repo / ".git" / "info" / "exclude").write_text("merge.lock\nworktrees.lock\nwt*\n")
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


def per_task_times(loop: Any) -> list[float]:
    """Each attempt as its supervisor (the service) saw it, hand-over to report, less the
    waits the floor excludes too: the merge queue and the worktree-admin lock."""
    per_task = []
    for result in loop.results:
        wait = float(result.evidence.get("timings_s", {}).get("queue_wait", 0.0))
        wait += loop.admin_waits.get(result.task_id, 0.0)
        per_task.append(loop.walls[result.task_id] - wait)
    return per_task


def speedrift(root: Path, tasks: int, workers: int, sandbox: str = "auto") -> dict[str, Any]:
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
        {
            "service": {"max_agents": workers, "poll_seconds": 0.05},
            "default_runtime": "shell",
            "sandbox": {"mode": sandbox},
        }
    )
    loop = ServiceLoop(Pipeline(repo, store, config))
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
    per_task = per_task_times(loop)
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


def pipeline_rounds(tasks: int, workers: int, rounds: int, sandbox: str = "auto") -> dict[str, Any]:
    """Interleaved floor/speedrift pairs at one worker count; medians."""
    floors: list[float] = []
    runs: list[dict[str, Any]] = []
    cpu: dict[str, list[float]] = {"floor": [], "speedrift": []}  # machine CPU seconds per task
    for number in range(rounds):  # interleaved pairs: both sides see the same machine noise
        with tempfile.TemporaryDirectory(prefix="speedrift-pipeline-bench-") as tmp:
            root = Path(tmp)
            before = machine_cpu_s()
            floors.append(floor(root, tasks, workers))
            middle = machine_cpu_s()
            runs.append(speedrift(root, tasks, workers, sandbox))
            cpu["floor"].append((middle - before) / tasks)
            cpu["speedrift"].append((machine_cpu_s() - middle) / tasks)
        print(f"{workers} worker(s), round {number + 1}/{rounds}: floor {floors[-1] * 1000:.1f} ms, "
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
    ratios = [r["per_task_s"] / f for r, f in zip(runs, floors, strict=True)]
    ok = ours["done"] == tasks and ours["double_runs"] == 0 and ours["lost"] == 0 and ours["content_ok"]
    return {
        "tasks": tasks,
        "workers": workers,
        "rounds": rounds,
        "sandbox": sandbox,
        "floor_per_task_s": floor_s,
        **ours,
        "round_ratios": ratios,
        "ratio": ours["per_task_s"] / floor_s,
        "cpu_per_task_s": {side: statistics.median(values) for side, values in cpu.items()},
        "cpu_ratio": statistics.median(cpu["speedrift"]) / statistics.median(cpu["floor"]),
        "correct": ok,
    }


# --- admission -------------------------------------------------------------------------------------
def admission(live: int, repos: int, samples: int) -> dict[str, Any]:
    """The supervisor's decision time with ``live`` attempts registered across ``repos`` repos.

    The live entries name this process (a live identity, as the brief allows: what is measured is
    the decision, listing and counting ``live`` entries under the lock, not ``live`` real agents).
    Three paths: admitted (no limit reached: a directory listing), refused at a repo's limit (the
    repo's entries are checked for liveness first), refused at the ecosystem limit (every entry is
    checked; all name one process here, so the identity check is done once — a lower bound)."""
    from speedrift.fleet import supervisor
    from speedrift.fleet.supervisor import Limits

    with tempfile.TemporaryDirectory(prefix="speedrift-admission-bench-") as tmp:
        os.environ["SPEEDRIFT_STATE_DIR"] = tmp
        per_repo = max(1, live // repos)
        names = [Path(tmp) / f"repo-{r}" for r in range(repos)]
        for index in range(live):
            supervisor.admit(
                names[index % repos], f"t{index}", ("claude", "codex", "shell")[index % 3], Limits()
            )
        probe = Path(tmp) / "new-repo"

        def timed(limits: Limits, repo: Path) -> tuple[float, bool]:
            started = time.perf_counter()
            decision = supervisor.admit(repo, "probe", "claude", limits)
            elapsed = time.perf_counter() - started
            if decision.slot is not None:
                decision.slot.release()
            return elapsed, decision.admitted

        paths = {
            "admitted": (Limits(repo=per_repo + 1, runtime=live, ecosystem=live + 1), probe),
            "refused_repo_limit": (Limits(repo=per_repo), names[0]),
            "refused_ecosystem_limit": (Limits(repo=per_repo + 1, ecosystem=live), probe),
        }
        out: dict[str, Any] = {"live": len(supervisor.live_attempts()), "repos": repos}
        for label, (limits, repo) in paths.items():
            times = []
            for _ in range(samples):
                elapsed, admitted = timed(limits, repo)
                assert admitted == (label == "admitted"), label
                times.append(elapsed)
            times.sort()
            out[label] = {
                "median_ms": statistics.median(times) * 1000,
                "p95_ms": times[int(0.95 * (len(times) - 1))] * 1000,
            }
        del os.environ["SPEEDRIFT_STATE_DIR"]
    return out


# --- dispatch latency under `speedrift hub up` -----------------------------------------------------
LATENCY_POLICY = """schema = 1

[policy]
plan_only = false
# every other key at its default; dispatch may act on every change (admission holds the limits)
cooldown_seconds = {{ dispatch_ready = 0 }}
max_actions_per_hour = 100000
max_actions_per_repo_per_hour = 100000
max_repos_per_cycle = {repos}
max_actions_per_cycle = {actions}
"""


def _add_one(graph: Any, now: Any, spec: ops.NewTask) -> ops.Mutation:
    return ops.add_task(graph, spec, now=now, actor="bench")


def dispatch_latency(tasks: int, repos: int, gap_s: float) -> dict[str, Any]:
    """From a task written ready into an autonomous repo's graph to its agent process starting,
    under `speedrift hub up` (default interval, dashboard on an ephemeral port); one task at a
    time, round-robin over the repos. The agent's first act is to write the time it started."""
    from speedrift.control.controlfile import write_control
    from speedrift.times import now_utc

    with tempfile.TemporaryDirectory(prefix="speedrift-latency-bench-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("WG_DIR", "SPEEDRIFT_HUB_DIR")}
        env["SPEEDRIFT_STATE_DIR"] = str(root / "state")
        marks = root / "marks"
        marks.mkdir()
        stores: list[GraphStore] = []
        lines = [LATENCY_POLICY.format(repos=repos, actions=2 * repos)]
        for r in range(repos):
            repo = make_repo(root / f"r{r}", 0)
            (repo / "speedrift.toml").write_text('default_runtime = "shell"\n')
            stores.append(GraphStore(init_graph_dir(repo)))
            write_control(
                repo, "autonomous", owner="bench", lease_ttl=timedelta(hours=2), actor="bench",
                reason="bench", now=now_utc(),
            )  # fmt: skip
            lines.append(f'[repos.r{r}]\npath = "r{r}"\n')
        ecosystem = root / "ecosystem.toml"
        ecosystem.write_text("\n".join(lines))
        hub = subprocess.Popen(
            [sys.executable, "-m", "speedrift", "hub", "up", "--ecosystem", str(ecosystem), "--port", "0"],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        ledger = root / ".speedrift-hub" / "ledger" / "cycles.jsonl"
        latencies: list[float] = []
        missed = 0
        try:
            deadline = time.monotonic() + 120
            while not (ledger.exists() and ledger.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # past the first cycle
            for index in range(tasks):
                store = stores[index % repos]
                task_id = f"t{index}"
                mark = marks / task_id
                spec = ops.NewTask(
                    f"task {index}", task_id=task_id, exec_command=f"date +%s.%N > {mark}; sleep 0.1"
                )
                store.mutate(partial(_add_one, spec=spec), actor="bench")
                written = time.time()
                until = time.monotonic() + 30
                while not (mark.exists() and mark.stat().st_size) and time.monotonic() < until:
                    time.sleep(0.005)
                if not (mark.exists() and mark.stat().st_size):
                    missed += 1
                    continue
                latencies.append(float(mark.read_text().strip()) - written)
                print(f"latency {index + 1}/{tasks}: {latencies[-1] * 1000:.0f} ms", file=sys.stderr)
                time.sleep(gap_s)
        finally:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.communicate()
        started = time.perf_counter()  # context: starting a worker process at all costs this much
        subprocess.run([sys.executable, "-c", "import speedrift.cli.app"], check=True)
        interpreter = time.perf_counter() - started
    latencies.sort()
    return {
        "tasks": tasks,
        "repos": repos,
        "measured": len(latencies),
        "missed": missed,
        "p50_s": statistics.median(latencies) if latencies else float("nan"),
        "p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
        "max_s": latencies[-1] if latencies else float("nan"),
        "worker_import_floor_s": interpreter,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", default="1,4,8", help="worker counts, comma-separated (default 1,4,8)")
    parser.add_argument("--rounds", type=int, default=3, help="floor/speedrift pairs; medians reported")
    parser.add_argument(
        "--sections", default="pipeline,admission,latency", help="any of pipeline, admission, latency"
    )
    parser.add_argument("--live", type=int, default=1000, help="admission: live attempts registered")
    parser.add_argument("--live-repos", type=int, default=200, help="admission: across this many repos")
    parser.add_argument("--latency-tasks", type=int, default=100)
    parser.add_argument("--latency-repos", type=int, default=20)
    parser.add_argument("--latency-gap", type=float, default=0.5, help="seconds between two tasks written")
    parser.add_argument(
        "--sandbox",
        default="auto",
        choices=("auto", "off"),
        help="the attempts' [sandbox] mode (default auto: bubblewrap where it works, as users get it)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sections = {s.strip() for s in args.sections.split(",")}
    report: dict[str, Any] = {}
    ok = True
    if "pipeline" in sections:
        report["pipeline"] = [
            pipeline_rounds(args.tasks, int(w), args.rounds, args.sandbox)
            for w in args.workers.split(",")
            if w.strip()
        ]
        ok = all(r["correct"] for r in report["pipeline"])
    if "admission" in sections:
        report["admission"] = admission(args.live, args.live_repos, 200)
    if "latency" in sections:
        report["latency"] = dispatch_latency(args.latency_tasks, args.latency_repos, args.latency_gap)
        ok = ok and report["latency"]["missed"] == 0
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if ok else 1
    lines: list[str] = []
    for row in report.get("pipeline", []):
        verdict = "PASS" if row["ratio"] <= 2 else "FAIL"
        acceptance = f"(acceptance <= 2x: {verdict})" if row["workers"] == 4 else "(informational)"
        contents = "ok" if row["content_ok"] else "WRONG"
        lines += [
            f"{row['tasks']} shell tasks, {row['workers']} worker(s), gates off, sandbox {row['sandbox']}, "
            f"{row['rounds']} rounds",
            f"  floor (git work only, per task, excl. lock waits): {row['floor_per_task_s'] * 1000:8.1f} ms",
            f"  speedrift per task (hand-over to report, excl. lock waits): "
            f"{row['per_task_s'] * 1000:8.1f} ms (median {row['per_task_median_s'] * 1000:.1f} ms)",
            f"  ratio: {row['ratio']:.2f}x {acceptance}; per round: "
            + ", ".join(f"{r:.2f}x" for r in row["round_ratios"]),
            f"  machine CPU per task: floor {row['cpu_per_task_s']['floor'] * 1000:.0f} ms, speedrift "
            f"{row['cpu_per_task_s']['speedrift'] * 1000:.0f} ms ({row['cpu_ratio']:.2f}x; setup included)",
            f"  throughput {row['tasks_per_minute']:.1f} tasks/min ({row['elapsed_s']:.1f} s);"
            f" done {row['done']}, failed {row['failed']}, lost {row['lost']},"
            f" run twice {row['double_runs']}, contents {contents}",
        ]
    if "admission" in report:
        adm = report["admission"]
        lines.append(
            f"admission with {adm['live']} live attempts across {adm['repos']} repos (200 decisions each):"
        )
        for label in ("admitted", "refused_repo_limit", "refused_ecosystem_limit"):
            row = adm[label]
            verdict = " (acceptance <= 5 ms: " + ("PASS)" if row["p95_ms"] <= 5 else "FAIL)")
            lines.append(
                f"  {label:24} median {row['median_ms']:.2f} ms, p95 {row['p95_ms']:.2f} ms"
                + (verdict if label == "admitted" else "")
            )
    if "latency" in report:
        lat = report["latency"]
        verdict = "PASS" if lat["p95_s"] <= 1.0 else "FAIL"
        lines += [
            f"dispatch latency under `speedrift hub up` ({lat['measured']} tasks in {lat['repos']}"
            f" autonomous repos, {lat['missed']} missed): graph written -> agent started",
            f"  p50 {lat['p50_s'] * 1000:.0f} ms, p95 {lat['p95_s'] * 1000:.0f} ms,"
            f" max {lat['max_s'] * 1000:.0f} ms"
            f" (acceptance p95 <= 1 s: {verdict}); a worker's interpreter start + imports alone:"
            f" {lat['worker_import_floor_s'] * 1000:.0f} ms",
        ]
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
