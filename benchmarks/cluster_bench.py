"""Scale-out, measured side by side in one run: the dask executor against the local one, and the
register on PostgreSQL against SQLite.

Run from the repository root::

    .venv/bin/python benchmarks/cluster_bench.py [--tasks 200] [--rounds 3] [--json]
    .venv/bin/python benchmarks/cluster_bench.py --sections pipeline --tasks 20 --rounds 1
    .venv/bin/python benchmarks/cluster_bench.py --sections register,cycle --repos 1000

``pipeline``: N shell tasks (each edits one file) through the real pipeline under the service, 4
attempts in flight, in a real repo: once with the local executor (each attempt's agent runs in the
hub's worker process) and once with the dask executor on a 4-worker cluster started by
``speedrift cluster up``'s code on 127.0.0.1 (each attempt's agent runs in a Dask worker, which
obtains the repo from a bundle, commits, gates and ships a bundle back; the hub lands it). Gates
are skipped on both sides (the comparison is of the transport), the sandbox as ``--sandbox`` says.
Each side first runs ``--warmup`` tasks, not counted (first imports in the scheduler, the workers
and the forkserver; each worker cache's first repository). Reported: throughput (tasks/min),
per-task time (the attempt from hand-over to report, as the service saw it, less the merge-queue
and worktree-lock waits) and the whole machine's busy CPU per task (/proc/stat: hub, scheduler,
workers, git and agents together), and their dask/local ratios (target for the per-task ratio:
<= 1.3x; with the machine's cores busy, the per-task time follows the CPU each task costs).
Rounds are interleaved local/dask pairs; medians.

``register``: one hub cycle's register writes for ``--repos`` repos — the hub's leases taken on
every repo, the cycle recorded (one cycles row, one repo_health row per repo), and ``--actions``
actions each recorded started then finished — on SQLite (the hub directory's WAL file) and on a
throwaway PostgreSQL server (tests/pgserver.py: ``initdb`` + ``pg_ctl`` in a temp dir, fsync off,
as the tests run it). Reported: each operation's median time and the operations per second.

``cycle``: the hub's whole cycle (plan_only: observe, score, plan, ledger and register writes) on
the cached fleet of ``--repos`` real repos (benchmarks/fleetgen.py), cold (a new hub) and
incremental (1% of the repos changed), with the register on SQLite and on PostgreSQL.

Timings are reported, never asserted; the exit code is 1 only when a correctness check fails (a
task not done, run twice or lost, a dask attempt that did not run on a Dask worker, a cycle whose
snapshots are missing or in error).
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
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleetgen import IN_USE, ensure_fleet
from benchmarks.hub_bench import CHANGED_SHARE, Changes
from benchmarks.pipeline_bench import machine_cpu_s, make_repo, per_task_times
from speedrift.fleet import workers
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline
from speedrift.fleet.remote import cluster
from speedrift.fleet.remote.config import ExecutorConfig
from speedrift.fleet.remote.executor import Executor, executor_for
from speedrift.fleet.remote.spec import ExecutorKind
from speedrift.fleet.service import ServiceLoop
from speedrift.gates.config import GateName
from speedrift.graph import ops
from speedrift.graph.store import GraphStore, init_graph_dir

IN_FLIGHT = 4
TARGET = 1.3
REGISTER_ENV = "SPEEDRIFT_REGISTER_URL"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- pipeline: local vs dask -------------------------------------------------------------------------
def run_tasks(root: Path, tasks: int, executor: Executor, sandbox: str) -> dict[str, Any]:
    """N shell tasks through the service with IN_FLIGHT attempts at once; what it took."""
    repo = make_repo(root / "repo", tasks)
    store = GraphStore(init_graph_dir(repo))

    def add_all(graph: Any, now: Any) -> ops.Mutation:
        merged = ops.Mutation()
        for i in range(1, tasks + 1):
            spec = ops.NewTask(f"edit file {i}", task_id=f"t{i}", exec_command=f"echo {i} > files/f{i}.txt")
            one = ops.add_task(graph, spec, now=now, actor="bench")
            for task in one.tasks:
                graph.put_task(task)
            merged.tasks += one.tasks
            merged.records += one.records
        return merged

    store.mutate(add_all, actor="bench")
    config = RepoConfig.model_validate(
        {
            "service": {"max_agents": IN_FLIGHT, "poll_seconds": 0.05, "backoff_seconds": 0},
            "default_runtime": "shell",
            "sandbox": {"mode": sandbox},
            "gates": {"skip": list(get_args(GateName))},  # the transport is compared, not the gate tools
        }
    )
    loop = ServiceLoop(Pipeline(repo, store, config, executor=executor))
    cpu_before = machine_cpu_s()
    started = time.perf_counter()
    thread = threading.Thread(target=loop.run)
    thread.start()
    deadline = time.monotonic() + max(600.0, tasks * 10.0)
    while time.monotonic() < deadline:
        if all(t.get("status") in ("done", "failed") for t in store.load().tasks.values()):
            break
        time.sleep(0.05)
    loop.stop.set()
    thread.join()
    elapsed = time.perf_counter() - started
    cpu = machine_cpu_s() - cpu_before
    graph = store.load()
    statuses = [t.get("status") for t in graph.tasks.values()]
    per_task = per_task_times(loop)
    claims = {
        task_id: sum(1 for e in t.get("log", []) if "claimed" in e.get("message", ""))
        for task_id, t in graph.tasks.items()
    }
    retried = {task_id: _first_failure(repo, task_id) for task_id, count in claims.items() if count > 1}
    landings = subprocess.run(
        ["git", "log", "--format=", "--name-only", "main", "--", "files"],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    # every file is in the initial commit once: a task's file named more than twice landed twice
    landed_twice = sum(1 for i in range(1, tasks + 1) if landings.count(f"files/f{i}.txt") > 2)
    machines = [
        (r.evidence.get("machine") or {}).get("executor")
        for r in loop.results
        if isinstance(r.evidence, dict)
    ]
    return {
        "elapsed_s": elapsed,
        "tasks_per_minute": tasks / elapsed * 60,
        "per_task_s": statistics.mean(per_task) if per_task else float("nan"),
        # the whole machine's busy CPU over the run, per task: hub, scheduler, workers, git, agents
        "cpu_per_task_s": cpu / tasks,
        "done": statuses.count("done"),
        "failed": statuses.count("failed"),
        "retried": retried,  # task -> why its first attempt failed (a retry is not a double landing)
        "landed_twice": landed_twice,
        "lost": tasks - len(loop.results),
        "content_ok": all(
            (repo / "files" / f"f{i}.txt").read_text() == f"{i}\n" for i in range(1, tasks + 1)
        ),
        "executors": sorted({str(m) for m in machines}),
    }


def _first_failure(repo: Path, task_id: str) -> str:
    try:
        record = json.loads((repo / ".speedrift" / "runs" / task_id / "1" / "attempt.json").read_text())
    except (OSError, ValueError):
        return "unknown"
    return f"{record.get('failure')}: {str(record.get('reason'))[:200]}"


def pipeline(tasks: int, rounds: int, sandbox: str, warmup: int = 0) -> dict[str, Any]:
    """Interleaved local/dask pairs on one 4-worker cluster; medians and ratios. ``warmup``: tasks
    each side runs first, not counted (the scheduler's and workers' first imports of speedrift,
    each worker cache's first repository, the forkserver's first children)."""
    work = Path(tempfile.mkdtemp(prefix="speedrift-cluster-bench-"))
    env = {**os.environ, "SPEEDRIFT_WORKER_CACHE": str(work / "worker-cache")}
    started = time.perf_counter()
    local_cluster = cluster.up(IN_FLIGHT, port=0, resources={"runtime:shell": 1.0}, env=env, timeout=300)
    startup_s = time.perf_counter() - started
    log(f"cluster of {IN_FLIGHT} workers at {local_cluster.address} up in {startup_s:.1f} s")
    dask = executor_for(ExecutorConfig(ExecutorKind.DASK, local_cluster.address, connect_timeout_s=60))
    local = executor_for(ExecutorConfig())
    # both sides fork their attempts from this process's one forkserver: started here with Dask's
    # client preloaded, as a service using the dask executor starts it (fleet/workers.py)
    workers.context(("distributed",))
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "dask": []}
    try:
        if warmup:
            for name, executor in (("local", local), ("dask", dask)):
                root = work / f"warmup-{name}"
                root.mkdir()
                done = run_tasks(root, warmup, executor, sandbox)["done"]
                shutil.rmtree(root, ignore_errors=True)
                log(f"warm-up {name}: {done}/{warmup} tasks done (not counted)")
        for number in range(rounds):
            for name, executor in (("local", local), ("dask", dask)):
                root = work / f"{name}-{number}"
                root.mkdir()
                runs[name].append(run_tasks(root, tasks, executor, sandbox))
                shutil.rmtree(root, ignore_errors=True)
                got = runs[name][-1]
                log(
                    f"round {number + 1}/{rounds} {name}: {got['tasks_per_minute']:.0f} tasks/min, "
                    f"{got['per_task_s'] * 1000:.0f} ms per task, done {got['done']}/{tasks}"
                )
    finally:
        local_cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[name]))

    sides = {
        name: {
            "tasks_per_minute": median(name, "tasks_per_minute"),
            "per_task_s": median(name, "per_task_s"),
            "cpu_per_task_s": median(name, "cpu_per_task_s"),
            "elapsed_s": median(name, "elapsed_s"),
            "done": min(r["done"] for r in runs[name]),
            "failed": sum(r["failed"] for r in runs[name]),
            "lost": sum(r["lost"] for r in runs[name]),
            "retried": {k: v for r in runs[name] for k, v in r["retried"].items()},
            "landed_twice": sum(r["landed_twice"] for r in runs[name]),
            "content_ok": all(r["content_ok"] for r in runs[name]),
            "executors": sorted({e for r in runs[name] for e in r["executors"]}),
        }
        for name in runs
    }
    correct = all(
        s["done"] == tasks and s["lost"] == 0 and s["landed_twice"] == 0 and s["content_ok"]
        for s in sides.values()
    )
    correct = correct and sides["dask"]["executors"] == ["dask"] and sides["local"]["executors"] == ["local"]
    return {
        "tasks": tasks,
        "warmup": warmup,
        "in_flight": IN_FLIGHT,
        "rounds": rounds,
        "sandbox": sandbox,
        "cluster_startup_s": startup_s,
        **sides,
        "per_task_ratio": sides["dask"]["per_task_s"] / sides["local"]["per_task_s"],
        "throughput_ratio": sides["dask"]["tasks_per_minute"] / sides["local"]["tasks_per_minute"],
        "cpu_ratio": sides["dask"]["cpu_per_task_s"] / sides["local"]["cpu_per_task_s"],
        "round_ratios": [
            d["per_task_s"] / loc["per_task_s"] for loc, d in zip(runs["local"], runs["dask"], strict=True)
        ],
        "correct": correct,
    }


# --- register: one cycle's writes on SQLite vs PostgreSQL --------------------------------------------
def cycle_record(cycle_id: str, names: list[str], now: datetime) -> dict[str, Any]:
    """A cycle in the ledger's shape with one scored repo per name (what record_cycle stores)."""
    repos = [
        {
            "name": name,
            "score": 40 + (index * 7) % 60,
            "tier": ("healthy", "watch", "at_risk")[index % 3],
            "trend": ("flat", "up", "down")[index % 3],
            "activity": "active",
            "stall": None if index % 5 else "no commit for 3 days",
            "reasons": [{"text": f"{index % 4} ready task(s) waiting", "weight": 5}],
        }
        for index, name in enumerate(names)
    ]
    return {
        "cycle_id": cycle_id,
        "generated_at": now,
        "finished_at": now + timedelta(seconds=2),
        "plan_only": False,
        "ecosystem": "bench",
        "narrative": f"{len(names)} repos observed",
        "repos": repos,
        "planned": [],
        "executed": [],
        "skipped": [],
    }


def register_writes(register: Any, names: list[str], actions: int, number: int) -> dict[str, float]:
    """One cycle's writes, each timed: leases, the cycle record, actions started and finished."""
    from speedrift.register.actions import Action, ActionKind
    from speedrift.register.record import Outcome

    now = datetime.now(UTC)
    cycle_id = f"c-bench-{number}-{os.getpid()}"
    out: dict[str, float] = {}
    started = time.perf_counter()
    grant = register.acquire_leases("bench-hub", names, now, timedelta(minutes=5))
    out["acquire_leases_s"] = time.perf_counter() - started
    if len(grant.held) != len(names):
        raise RuntimeError(f"the hub holds {len(grant.held)} of {len(names)} leases")
    started = time.perf_counter()
    register.record_cycle(cycle_record(cycle_id, names, now))
    out["record_cycle_s"] = time.perf_counter() - started
    pairs = []
    for index in range(actions):
        name = names[(index * 37) % len(names)]
        action = Action(
            f"{name}:dispatch_ready:{number}-{index}", name, ActionKind.DISPATCH_READY, 50, "bench"
        )
        started = time.perf_counter()
        register.action_started(action, cycle_id, now)
        outcome = Outcome(action.id, name, action.kind, "succeeded", "ok", now, now, {"workers": 1})
        register.action_finished(outcome)
        pairs.append(time.perf_counter() - started)
    out["action_pair_s"] = statistics.median(pairs) if pairs else 0.0
    out["actions_s"] = sum(pairs)
    out["total_s"] = out["acquire_leases_s"] + out["record_cycle_s"] + out["actions_s"]
    out["ops"] = 2 + 2 * actions
    return out


def register_side(url: str | None, repos: int, actions: int, rounds: int) -> dict[str, Any]:
    from speedrift.register.store import Register

    names = [f"repo-{i:04d}" for i in range(repos)]
    hub = Path(tempfile.mkdtemp(prefix="speedrift-register-bench-"))
    try:
        with Register.open(hub, url) as register:
            register_writes(register, names, actions, 0)  # warm-up: tables, connections, first leases
            samples = [register_writes(register, names, actions, n + 1) for n in range(rounds)]
    finally:
        shutil.rmtree(hub, ignore_errors=True)
    row = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    row["ops_per_s"] = row["ops"] / row["total_s"]
    return row


def register_bench(repos: int, actions: int, rounds: int, pg: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"repos": repos, "actions": actions, "rounds": rounds}
    result["sqlite"] = register_side(None, repos, actions, rounds)
    log(f"register sqlite: {result['sqlite']['total_s'] * 1000:.0f} ms per cycle's writes")
    result["postgresql"] = register_side(pg.create_database(), repos, actions, rounds)
    log(f"register postgresql: {result['postgresql']['total_s'] * 1000:.0f} ms per cycle's writes")
    return result


# --- cycle: the hub's whole cycle at N repos on each register -------------------------------------------
def hub_cycles(eco_path: Path, repos: list[Path], url: str | None, index: int) -> dict[str, Any]:
    from speedrift.control.cycle import Hub

    hub_dir = Path(tempfile.mkdtemp(prefix="speedrift-cycle-bench-"))
    saved = {k: os.environ.get(k) for k in ("SPEEDRIFT_HUB_DIR", REGISTER_ENV)}
    os.environ["SPEEDRIFT_HUB_DIR"] = str(hub_dir)
    os.environ.pop(REGISTER_ENV, None)
    if url:
        os.environ[REGISTER_ENV] = url
    errors: list[str] = []
    try:
        started = time.perf_counter()
        hub = Hub(eco_path)
        first = hub.cycle(execute_actions=False)
        cold = time.perf_counter() - started
        bad = [r.name for r in first.repos if r.snapshot.errors]
        if len(first.repos) != len(repos) or bad:
            errors.append(f"cold cycle: {len(first.repos)} repos of {len(repos)}, in error: {bad[:3]}")
        changes = Changes(repos, CHANGED_SHARE, index)
        changes.apply()
        try:
            started = time.perf_counter()
            hub.cycle(execute_actions=False)
            incr = time.perf_counter() - started
        finally:
            changes.undo()
        if not hub.register.cycles(limit=5):
            errors.append("the register holds no cycle")
        hub.register.close()
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
        shutil.rmtree(hub_dir, ignore_errors=True)
    return {"cold_s": cold, "incr_s": incr, "errors": errors}


def cycle_bench(repos: int, rounds: int, pg: Any, base: Path) -> dict[str, Any]:
    from speedrift.control.ecosystem.load import load_ecosystem

    root = ensure_fleet(repos, base, log=log)
    eco_path = root / "ecosystem.toml"
    paths = [entry.path for entry in load_ecosystem(eco_path).repos]
    (root / IN_USE).touch()
    runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
    try:
        hub_cycles(eco_path, paths, None, 0)  # warm-up: the page cache, imports
        for number in range(rounds):  # interleaved pairs: both registers see the same machine noise
            runs["sqlite"].append(hub_cycles(eco_path, paths, None, number + 1))
            runs["postgresql"].append(hub_cycles(eco_path, paths, pg.create_database(), number + 1))
            log(
                f"cycle round {number + 1}/{rounds}: sqlite cold {runs['sqlite'][-1]['cold_s']:.2f} s, "
                f"postgresql cold {runs['postgresql'][-1]['cold_s']:.2f} s"
            )
    finally:
        (root / IN_USE).unlink(missing_ok=True)
    out: dict[str, Any] = {"repos": repos, "rounds": rounds}
    for name, rows in runs.items():
        out[name] = {
            "cold_s": statistics.median(r["cold_s"] for r in rows),
            "incr_s": statistics.median(r["incr_s"] for r in rows),
            "errors": [e for r in rows for e in r["errors"]],
        }
    return out


# --- report ---------------------------------------------------------------------------------------------
def render(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    row = report.get("pipeline")
    if row:
        verdict = "PASS" if row["per_task_ratio"] <= TARGET else "FAIL"
        lines += [
            f"{row['tasks']} shell tasks, {row['in_flight']} in flight, gates skipped, "
            f"sandbox {row['sandbox']}, {row['rounds']} round(s) after {row['warmup']} warm-up task(s) "
            "per side; "
            f"a {row['in_flight']}-worker Dask cluster on 127.0.0.1 "
            f"(up in {row['cluster_startup_s']:.1f} s, not counted)",
        ]
        for name in ("local", "dask"):
            side = row[name]
            lines.append(
                f"  {name:5}  {side['tasks_per_minute']:7.1f} tasks/min ({side['elapsed_s']:.1f} s), "
                f"{side['per_task_s'] * 1000:7.0f} ms per task, machine CPU "
                f"{side['cpu_per_task_s'] * 1000:.0f} ms per task; done {side['done']}, "
                f"failed {side['failed']}, lost {side['lost']}, landed twice {side['landed_twice']}, "
                f"retried {len(side['retried'])}, contents " + ("ok" if side["content_ok"] else "WRONG")
            )
            for task_id, why in sorted(side["retried"].items())[:5]:
                lines.append(f"    retried {task_id}: its first attempt {why}")
        lines.append(
            f"  dask/local: per-task {row['per_task_ratio']:.2f}x (target <= {TARGET}x: {verdict}), "
            f"throughput {row['throughput_ratio']:.2f}x, machine CPU per task {row['cpu_ratio']:.2f}x; "
            "per round: " + ", ".join(f"{r:.2f}x" for r in row["round_ratios"])
        )
    reg = report.get("register")
    if reg:
        lines.append(
            f"register writes of one hub cycle at {reg['repos']} repos ({reg['repos']} leases, a cycle "
            f"with {reg['repos']} repo rows, {reg['actions']} actions started+finished), "
            f"medians of {reg['rounds']}:"
        )
        for name in ("sqlite", "postgresql"):
            side = reg[name]
            lines.append(
                f"  {name:10} leases {side['acquire_leases_s'] * 1000:6.1f} ms, record_cycle "
                f"{side['record_cycle_s'] * 1000:6.1f} ms, "
                f"action pair {side['action_pair_s'] * 1000:5.2f} ms; "
                f"whole cycle {side['total_s'] * 1000:6.0f} ms = {side['ops_per_s']:6.0f} ops/s"
            )
        ratio = reg["postgresql"]["ops_per_s"] / reg["sqlite"]["ops_per_s"]
        lines.append(f"  postgresql/sqlite ops/s: {ratio:.2f}x")
    cyc = report.get("cycle")
    if cyc:
        lines.append(f"hub cycle (plan_only) at {cyc['repos']} real repos, medians of {cyc['rounds']}:")
        for name in ("sqlite", "postgresql"):
            side = cyc[name]
            lines.append(
                f"  {name:10} cold {side['cold_s']:6.2f} s, incremental (1% changed) {side['incr_s']:6.2f} s"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="pipeline: shell tasks per side (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per section; medians")
    parser.add_argument(
        "--warmup", type=int, default=8, help="pipeline: tasks per side run first, not counted (default 8)"
    )
    parser.add_argument(
        "--sections", default="pipeline,register,cycle", help="any of pipeline, register, cycle"
    )
    parser.add_argument("--repos", type=int, default=1000, help="register and cycle: repos (default 1000)")
    parser.add_argument("--actions", type=int, default=100, help="register: actions per cycle (default 100)")
    parser.add_argument(
        "--sandbox", default="auto", choices=("auto", "off"), help="the attempts' [sandbox] mode"
    )
    parser.add_argument("--base", type=Path, default=Path("/tmp"), help="cycle: where fleets are cached")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"pipeline", "register", "cycle"}
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    report: dict[str, Any] = {}
    ok = True
    if "pipeline" in sections:
        report["pipeline"] = pipeline(args.tasks, args.rounds, args.sandbox, args.warmup)
        ok = report["pipeline"]["correct"]
    if sections & {"register", "cycle"}:
        from tests.pgserver import PgServer

        pg = PgServer.launch()
        try:
            if "register" in sections:
                report["register"] = register_bench(args.repos, args.actions, args.rounds, pg)
            if "cycle" in sections:
                report["cycle"] = cycle_bench(args.repos, args.rounds, pg, args.base)
                problems = report["cycle"]["sqlite"]["errors"] + report["cycle"]["postgresql"]["errors"]
                for problem in problems:
                    log(f"check failed: {problem}")
                ok = ok and not problems
        finally:
            pg.stop()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(render(report)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
