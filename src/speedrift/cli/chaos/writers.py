"""Concurrent graph writers: speedrift's store and a wg-protocol writer hammering one graph.

Job: several processes append numbered entries to the log of one shared task as fast as they
can, until a deadline — speedrift writers through :class:`~speedrift.graph.store.GraphStore` (the
one writer the CLI, the service and the hub use), and writers that follow wg's own protocol with
no speedrift code at all (exclusive ``flock`` on ``graph.lock``, re-read, write
``.graph.tmp.<pid>``, fsync, rename) — while a reader keeps loading the graph without a lock.
Each speedrift writer also adds a task of its own now and then.

Invariants checked: every increment a writer reported is in the shared task's log exactly once
(a missing one is a lost update), every task a writer added exists, and no read ever saw a torn
graph.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from speedrift.cli.chaos.figures import Figures
from speedrift.graph import ops
from speedrift.graph.store import GraphStore, init_graph_dir

SHARED = "shared-counter"

SPEEDRIFT_WRITER = """
import sys, time
from pathlib import Path
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
store, name, until = GraphStore(Path(sys.argv[1])), sys.argv[2], float(sys.argv[3])
done = added = 0
while time.time() < until:
    message = f"{name} {done}"
    store.mutate(
        lambda g, now: ops.log_message(g, "shared-counter", message, now=now, actor=name), actor=name
    )
    done += 1
    if done % 7 == 0:
        spec = ops.NewTask(f"{name} task {added}", task_id=f"{name}-t{added}")
        store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor=name), actor=name)
        added += 1
print(done, added)
"""

# wg's protocol and nothing else: no speedrift import, the lines it does not change kept byte for byte
WG_WRITER = """
import fcntl, json, os, sys, time
from datetime import datetime, timezone
folder, name, until = sys.argv[1], sys.argv[2], float(sys.argv[3])
graph, lock = os.path.join(folder, "graph.jsonl"), os.path.join(folder, "graph.lock")
done = 0
while time.time() < until:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with open(graph, "rb") as handle:
            lines = handle.read().split(b"\\n")
        for index, line in enumerate(lines):
            if line.strip() and json.loads(line).get("id") == "shared-counter":
                task = json.loads(line)
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
                entry = {"timestamp": stamp, "actor": name, "message": f"{name} {done}"}
                task.setdefault("log", []).append(entry)
                lines[index] = json.dumps(task, separators=(",", ":"), ensure_ascii=False).encode()
                break
        tmp = os.path.join(folder, f".graph.tmp.{os.getpid()}")
        with open(tmp, "wb") as handle:
            handle.write(b"\\n".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, graph)
        dirfd = os.open(folder, os.O_RDONLY)
        os.fsync(dirfd)
        os.close(dirfd)
        done += 1
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
print(done, 0)
"""

READER = """
import sys, time
from pathlib import Path
from speedrift.graph.store import GraphStore
store, until = GraphStore(Path(sys.argv[1])), float(sys.argv[2])
reads = torn = 0
while time.time() < until:
    graph = store.load()
    reads += 1
    torn += 1 if graph.problems or "shared-counter" not in graph.tasks else 0
print(reads, torn)
"""


def run(figures: Figures, workdir: Path, seconds: float, env: dict[str, str]) -> None:
    folder = workdir / "writers"
    folder.mkdir(parents=True)
    store = GraphStore(init_graph_dir(folder))
    spec = ops.NewTask("the shared counter every writer increments", task_id=SHARED)
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="chaos"))
    until = time.time() + seconds
    plan = [("speedrift", f"speedrift-{n}", SPEEDRIFT_WRITER) for n in range(2)]
    plan += [("wg protocol", f"wg-{n}", WG_WRITER) for n in range(2)]
    procs = [
        (kind, name, subprocess.Popen(
            [sys.executable, "-c", code, str(store.directory), name, f"{until}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        ))
        for kind, name, code in plan
    ]  # fmt: skip
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(store.directory), f"{until}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    reported: dict[str, tuple[int, int]] = {}
    per_kind: Counter[str] = Counter()
    for kind, name, proc in procs:
        out, err = proc.communicate(timeout=seconds + 300)
        if proc.returncode != 0 or not out.split():
            figures.errors.append(
                f"writer {name} crashed: {err.strip().splitlines()[-1:] or proc.returncode}"
            )
            continue
        done, added = (int(x) for x in out.split())
        reported[name] = (done, added)
        per_kind[kind] += done + added
    out, err = reader.communicate(timeout=seconds + 300)
    reads, torn = (int(x) for x in out.split()) if reader.returncode == 0 and out.split() else (0, 0)
    if reader.returncode != 0:
        figures.errors.append(f"the graph reader crashed: {err.strip().splitlines()[-1:]}")
    for _ in range(torn):
        figures.violation("torn file", "a lock-free read of the hammered graph saw a torn graph")
    graph = store.load()
    if graph.problems:
        figures.violation("torn file", f"the hammered graph has malformed lines: {graph.problems[:2]}")
    log = graph.tasks.get(SHARED, {}).get("log") or []
    seen = Counter(str(entry.get("message")) for entry in log if isinstance(entry, dict))
    for name, (done, added) in reported.items():
        missing = [i for i in range(done) if seen[f"{name} {i}"] == 0]
        doubled = [i for i in range(done) if seen[f"{name} {i}"] > 1]
        lost_tasks = [i for i in range(added) if f"{name}-t{i}" not in graph.tasks]
        figures.lost_updates += len(missing) + len(lost_tasks)
        if missing or lost_tasks:
            figures.notes.append(f"writer {name} lost updates {missing[:5]} and tasks {lost_tasks[:5]}")
        if doubled:
            figures.notes.append(f"writer {name}: increments applied twice: {doubled[:5]}")
    figures.updates += sum(done + added for done, added in reported.values())
    for kind, count in per_kind.items():
        figures.writers[kind] = figures.writers.get(kind, 0) + count
    figures.notes.append(f"writers phase: {reads} lock-free reads of the hammered graph, {torn} torn")
