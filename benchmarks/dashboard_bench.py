"""Dashboard benchmark: from a graph change on disk to every connected client holding the delta.

Run from the repository root::

    .venv/bin/python benchmarks/dashboard_bench.py [--repos 500] [--tasks 100] [--clients 100]
                                                  [--changes 30] [--no-browser] [--json]

It builds (or reuses) a fleet under ``benchmarks/.data/``: ``--repos`` real git repositories, each
with a ``graph.jsonl`` of ``--tasks`` tasks from ``graphgen`` (500 x 100 = 50k tasks by default),
and an ``ecosystem.toml`` registering them. Then:

* the dashboard runs as its own process: ``speedrift dashboard --port 0`` (standalone, as an
  operator would start it), and the benchmark waits until it has observed and scored the fleet
  once (so cards, metrics and queues are real);
* ``--clients`` websocket clients connect from this process (one asyncio loop, the ``websockets``
  library) and each takes its snapshot;
* ``--changes`` times (after 3 warm-ups), one open task of a random repo is marked done by an
  atomic rewrite of that repo's ``graph.jsonl`` (temp file, fsync, rename — what speedrift and wg
  do); the latency is from the rename to the moment the *last* client has received and decoded
  a delta carrying that task with its new status. Changes are spaced by a random pause, so they
  land at random points of the server's poll;
* the floor, measured between changes: a whole ``python -c`` process that reads and parses the
  changed file (JSON lines) — the least any separate tool can do to notice the change;
* bytes: each delta as received vs the snapshot a client gets on connect (the whole fleet's
  cards, metrics and queues) and the fleet's graph files;
* with Chromium (``/usr/bin/chromium``): the page's first render, from navigation start to the five
  sections filled from the first snapshot (the page's ``speedrift-first-render`` mark), 3 runs.

Acceptance: latency p95 <= 10x the floor's median. Timings are reported, never asserted: the exit
code is 1 only when the numbers would be meaningless (a client missed the delta, saw a gap in
``seq`` without a resync, or the server failed to start).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
import websockets

from benchmarks import graphgen

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(__file__).resolve().parent / ".data"
CHROMIUM = "/usr/bin/chromium"
LIMIT = 10.0
WARMUPS = 3
FLOOR_CODE = (
    "import sys, orjson\n"
    "p = sys.argv[1]\n"
    "[orjson.loads(l) for l in open(p, 'rb').read().splitlines() if l.strip()]\n"
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@speedrift.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@speedrift.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


class BenchError(Exception):
    """A correctness failure: the numbers would be meaningless."""


@dataclass
class Result:
    repos: int
    tasks: int
    clients: int
    changes: int
    fleet_graph_bytes: int
    latency_ms: list[float] = field(default_factory=list)
    floor_ms: list[float] = field(default_factory=list)
    delta_bytes: list[int] = field(default_factory=list)
    snapshot_bytes: int = 0
    first_render_ms: list[float] = field(default_factory=list)
    setup_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat, floor = self.latency_ms, self.floor_ms
        floor_med = statistics.median(floor)
        p50, p95 = percentile(lat, 50), percentile(lat, 95)
        return {
            "latency_p50_ms": round(p50, 1),
            "latency_p95_ms": round(p95, 1),
            "latency_max_ms": round(max(lat), 1),
            "floor_p50_ms": round(floor_med, 1),
            "floor_p95_ms": round(percentile(floor, 95), 1),
            "p50_ratio": round(p50 / floor_med, 2),
            "p95_ratio": round(p95 / floor_med, 2),
            "pass": p95 <= LIMIT * floor_med,
            "delta_bytes_median": int(statistics.median(self.delta_bytes)),
            "delta_bytes_max": max(self.delta_bytes),
            "snapshot_bytes": self.snapshot_bytes,
            "delta_per_snapshot": round(statistics.median(self.delta_bytes) / self.snapshot_bytes, 5),
            "first_render_ms": round(statistics.median(self.first_render_ms), 1)
            if self.first_render_ms
            else None,
        }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --- the fleet -------------------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def _fingerprint(repos: int, tasks: int, seed: int) -> str:
    source = Path(graphgen.__file__).read_bytes() + Path(__file__).read_bytes()
    return hashlib.sha256(source + f"{repos}/{tasks}/{seed}".encode()).hexdigest()[:16]


def prepare_fleet(data_root: Path, repos: int, tasks: int, seed: int) -> Path:
    """The fleet's ecosystem.toml; repos are (re)built when the parameters or generator changed."""
    base = data_root / f"dashboard-fleet-{repos}x{tasks}-seed{seed}"
    eco = base / "ecosystem.toml"
    stamp = base / "params.json"
    fingerprint = _fingerprint(repos, tasks, seed)
    fresh = not (stamp.is_file() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint)
    if fresh:
        _progress(f"building {repos} repos x {tasks} tasks in {base} ...")
        if base.exists():
            shutil.rmtree(base)
        template = base / "template"
        template.mkdir(parents=True)
        _git(template, "init", "-q", "-b", "main")
        (template / "README.md").write_text("# bench repo\n")
        (template / ".gitignore").write_text(".speedrift/\n")
        _git(template, "add", "-A")
        _git(template, "commit", "-q", "-m", "initial")
        lines = ["schema = 1", 'suite = "speedrift"', ""]
        for index in range(repos):
            name = f"r{index:03d}"
            shutil.copytree(template, base / "repos" / name, symlinks=True)
            lines += [
                f"[repos.{name}]",
                f'path = "repos/{name}"',
                f'tags = ["{["api", "web", "data"][index % 3]}"]',
            ]
            if index and index % 7 == 0:
                lines.append(f'depends_on = ["r{index - 1:03d}"]')
            lines.append("")
        shutil.rmtree(template)
        eco.write_text("\n".join(lines))
    # every run starts from the same graphs (earlier runs marked tasks done)
    for index in range(repos):
        graph_dir = base / "repos" / f"r{index:03d}" / ".workgraph"
        graph_dir.mkdir(parents=True, exist_ok=True)
        (graph_dir / "graph.jsonl").write_bytes(graphgen.generate_graph(tasks, seed * 100_000 + index))
        (graph_dir / "graph.lock").touch()
    if fresh:
        stamp.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    return eco


def fleet_bytes(eco: Path) -> int:
    return sum(p.stat().st_size for p in (eco.parent / "repos").glob("*/.workgraph/graph.jsonl"))


# --- the server ------------------------------------------------------------------------------------
def start_dashboard(eco: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "speedrift",
            "dashboard",
            "--ecosystem",
            str(eco),
            "--port",
            "0",
            "--refresh",
            "3600",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.match(r"Dashboard: (http://[^#\s]+)", line)
    if not match:
        process.kill()
        raise BenchError(
            f"the dashboard did not start: {line!r} {process.stderr.read() if process.stderr else ''}"
        )
    return process, match.group(1)


def wait_observed(base: str, timeout: float = 600.0) -> None:
    """Until the standalone dashboard has observed and scored the fleet once (its start-up work)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        overview = httpx.get(base + "api/status", timeout=30).json()["overview"]
        if str(overview.get("cycle_id") or "").startswith("view-"):
            return
        time.sleep(0.5)
    raise BenchError("the dashboard did not finish observing the fleet")


# --- changes and the floor -------------------------------------------------------------------------
def pick_change(eco: Path, rng: random.Random, repos: int) -> tuple[str, Path, bytes, str]:
    """(repo, graph file, new bytes, task id): one open task of a random repo marked done."""
    for _ in range(1000):
        name = f"r{rng.randrange(repos):03d}"
        path = eco.parent / "repos" / name / ".workgraph" / "graph.jsonl"
        lines = path.read_bytes().split(b"\n")
        candidates = [
            i
            for i, line in enumerate(lines)
            if line and b'"kind":"task"' in line and b'"status":"open"' in line
        ]
        if not candidates:
            continue
        index = rng.choice(candidates)
        node = orjson.loads(lines[index])
        node["status"] = "done"
        lines[index] = orjson.dumps(node)
        return name, path, b"\n".join(lines), str(node["id"])
    raise BenchError("no open task left in the fleet")


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".graph.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def floor_ms(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR_CODE, str(path)], check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000.0


# --- the clients -----------------------------------------------------------------------------------
class Watch:
    """What every client is waiting for: one task of one repo reaching a status."""

    def __init__(self, repo: str, task: str, status: str, clients: int) -> None:
        self.repo, self.task, self.status = repo, task, status
        self.remaining = clients
        self.done = asyncio.Event()
        self.last_at = 0.0
        self.bytes = 0


class BenchClient:
    def __init__(self, number: int) -> None:
        self.number = number
        self.seq = -1
        self.snapshot_bytes = 0
        self.watch: Watch | None = None
        self.seen_for: Watch | None = None

    async def run(self, ws: Any, ready: asyncio.Event) -> None:
        async for raw in ws:
            received = time.perf_counter()
            message = orjson.loads(raw)
            if message["type"] == "snapshot":
                self.seq = message["seq"]
                self.snapshot_bytes = len(raw)
                ready.set()
                continue
            if message["seq"] != self.seq + 1:
                raise BenchError(
                    f"client {self.number}: seq {message['seq']} after {self.seq} with no resync"
                )
            self.seq = message["seq"]
            watch = self.watch
            change = message.get("graph")
            if watch is None or self.seen_for is watch or not change or change["repo"] != watch.repo:
                continue
            if any(n["id"] == watch.task and n["status"] == watch.status for n in change["upsert"]):
                self.seen_for = watch
                watch.remaining -= 1
                watch.last_at = max(watch.last_at, received)
                watch.bytes = len(raw)
                if watch.remaining == 0:
                    watch.done.set()


async def measure(eco: Path, base: str, args: argparse.Namespace, result: Result) -> None:
    url = base.replace("http://", "ws://") + "ws/status"
    rng = random.Random(args.seed)
    clients = [BenchClient(i) for i in range(args.clients)]
    connections = []
    readers = []
    for client in clients:
        ws = await websockets.connect(url, max_size=None, compression=None, ping_interval=None)
        ready = asyncio.Event()
        connections.append(ws)
        readers.append(asyncio.create_task(client.run(ws, ready)))
        await asyncio.wait_for(ready.wait(), 120)
    result.snapshot_bytes = clients[0].snapshot_bytes
    _progress(f"{len(clients)} clients connected; snapshot {result.snapshot_bytes} bytes")
    try:
        for round_number in range(WARMUPS + args.changes):
            repo, path, data, task_id = pick_change(eco, rng, args.repos)
            watch = Watch(repo, task_id, "done", len(clients))
            for client in clients:
                client.watch = watch
            atomic_write(path, data)
            changed_at = time.perf_counter()
            try:
                await asyncio.wait_for(watch.done.wait(), 60)
            except TimeoutError:
                raise BenchError(
                    f"{watch.remaining} client(s) never got the delta for {repo}:{task_id}"
                ) from None
            for reader in readers:
                if reader.done() and reader.exception() is not None:
                    raise reader.exception()  # type: ignore[misc]
            if round_number >= WARMUPS:
                result.latency_ms.append((watch.last_at - changed_at) * 1000.0)
                result.delta_bytes.append(watch.bytes)
                result.floor_ms.append(await asyncio.to_thread(floor_ms, path))
                _progress(
                    f"change {round_number - WARMUPS + 1}/{args.changes}: {repo}:{task_id} "
                    f"{result.latency_ms[-1]:.1f} ms, floor {result.floor_ms[-1]:.1f} ms, {watch.bytes} B"
                )
            await asyncio.sleep(rng.uniform(0.05, 0.3))  # the next change lands at a random poll phase
    finally:
        for reader in readers:
            reader.cancel()
        for ws in connections:
            await ws.close()


def first_render(base: str, runs: int = 3) -> list[float]:
    from playwright.sync_api import sync_playwright

    times: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            for _ in range(runs):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(base)
                page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('section[data-section]')]"
                    ".every(s => s.offsetHeight > 0) && document.querySelectorAll('article.card').length > 0"
                )
                mark = page.evaluate(
                    "() => performance.getEntriesByName('speedrift-first-render')[0].startTime"
                )
                times.append(float(mark))
                page.close()
        finally:
            browser.close()
    return times


# --- reporting -------------------------------------------------------------------------------------
def render(result: Result) -> str:
    s = result.summary()
    verdict = "PASS" if s["pass"] else "FAIL"
    lines = [
        f"fleet: {result.repos} repos x {result.tasks} tasks = {result.repos * result.tasks} tasks "
        f"({result.fleet_graph_bytes / 1e6:.1f} MB of graph files); {result.clients} websocket clients; "
        f"{result.changes} changes after {WARMUPS} warm-ups",
        "",
        f"{'':24}{'p50':>10}{'p95':>10}{'max':>10}",
        f"{'change -> all clients':24}{s['latency_p50_ms']:>8.1f}ms{s['latency_p95_ms']:>8.1f}ms"
        f"{s['latency_max_ms']:>8.1f}ms",
        f"{'floor (python -c parse)':24}{s['floor_p50_ms']:>8.1f}ms{s['floor_p95_ms']:>8.1f}ms",
        f"{'ratio to floor median':24}{s['p50_ratio']:>9.2f}x{s['p95_ratio']:>9.2f}x",
        f"acceptance: p95 <= {LIMIT:.0f}x floor -> {verdict} (the original hub: whole snapshot every 60 s)",
        "",
        f"bytes per update: median {s['delta_bytes_median']} B, max {s['delta_bytes_max']} B; "
        f"a client's snapshot of the fleet: {s['snapshot_bytes']} B "
        f"(delta = {s['delta_per_snapshot'] * 100:.3f}% of it); graph files: {result.fleet_graph_bytes} B",
    ]
    if s["first_render_ms"] is not None:
        lines.append(
            f"page first render in Chromium (navigation start -> five sections filled), median of "
            f"{len(result.first_render_ms)}: {s['first_render_ms']:.0f} ms"
        )
    lines.append(
        "setup: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in result.setup_s.items())
        + f"; python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=500)
    parser.add_argument("--tasks", type=int, default=100, help="tasks per repo")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium first-render timing")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        eco = prepare_fleet(args.data_dir, args.repos, args.tasks, args.seed)
        result = Result(args.repos, args.tasks, args.clients, args.changes, fleet_bytes(eco))
        result.setup_s["fleet"] = time.perf_counter() - started
        started = time.perf_counter()
        process, base = start_dashboard(eco)
    except BenchError as error:
        _progress(f"error: {error}")
        return 1
    try:
        wait_observed(base)
        result.setup_s["dashboard start + first observe"] = time.perf_counter() - started
        asyncio.run(measure(eco, base, args, result))
        if not args.no_browser and Path(CHROMIUM).exists():
            _progress("timing the page's first render in Chromium ...")
            result.first_render_ms = first_render(base)
    except BenchError as error:
        _progress(f"error: {error}")
        return 1
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    if args.json:
        print(json.dumps({**asdict(result), "summary": result.summary()}, indent=2))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
