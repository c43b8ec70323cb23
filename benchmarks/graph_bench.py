"""Whole-process benchmark of ``speedrift ready --json`` and ``speedrift claim`` on large graphs.

Run from the repository root::

    .venv/bin/python benchmarks/graph_bench.py [--sizes 10000,100000] [--repeat 7] [--json]

For every size it generates (or reuses) a deterministic, realistic ``.workgraph/graph.jsonl`` under
``benchmarks/.data/`` and times whole processes, interleaved round by round:

* startup: ``python -c pass`` (interpreter start, for context);
* floor:   ``python -c`` that reads the file and ``orjson.loads`` every line;
* ready:   ``speedrift --dir D ready --json`` (stdout to /dev/null);
* claim:   ``speedrift --dir D claim ID --actor bench`` on a fresh copy of the graph each time
  (the copy is made outside the timed region).

Each command runs once as a warm-up, then ``--repeat`` times; the median is reported, and
``ready``/``claim`` as a ratio of the floor. Acceptance (defined at 100k tasks): ready <= 1.5x,
claim <= 2x the floor. Timings are reported, never asserted: the exit code is 0 unless a
correctness check fails (a measured command exits non-zero, or a claim changes any line other
than the claimed one, or does not leave it in-progress), in which case it is 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks import graphgen
from benchmarks.graphgen import generate_graph

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(__file__).resolve().parent / ".data"
DEFAULT_SIZES = (10_000, 100_000)
ACCEPTANCE_SIZE = 100_000
READY_LIMIT = 1.5
CLAIM_LIMIT = 2.0
ACTOR = "bench"
BEADS_READY_MS = 29.0  # beads docs/INTERNALS.md: GetReadyWork on 10K issues, 752 ms -> 29 ms
BEADS_READY_BEFORE_MS = 752.0

FLOOR_CODE = (
    "import sys, orjson\n"
    "p = sys.argv[1]\n"
    "[orjson.loads(l) for l in open(p, 'rb').read().splitlines() if l.strip()]\n"
)


class BenchError(Exception):
    """A correctness failure: the numbers would be meaningless."""


@dataclass
class SizeResult:
    size: int
    lines: int
    bytes: int
    ready_tasks: int
    expected_ready_tasks: int
    claimed_id: str
    startup_ms: float
    floor_ms: float
    ready_ms: float
    claim_ms: float
    ready_ratio: float
    claim_ratio: float
    ready_pass: bool
    claim_pass: bool
    acceptance_applies: bool
    samples_ms: dict[str, list[float]] = field(default_factory=dict)


# --- data ----------------------------------------------------------------------------------------
def _generator_fingerprint() -> str:
    source = Path(graphgen.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:16]


def prepare_graph(data_root: Path, n: int, seed: int) -> Path:
    """The graph dir (``.../.workgraph``) for ``(n, seed)``, generated unless an identical one exists."""
    fingerprint = _generator_fingerprint()
    base = data_root / f"graph-{n}-seed{seed}"
    graph_dir = base / ".workgraph"
    graph_file = graph_dir / "graph.jsonl"
    params_file = base / "params.json"
    if params_file.is_file() and graph_file.is_file():
        try:
            params = json.loads(params_file.read_text())
        except ValueError:
            params = {}
        if (
            params.get("n") == n
            and params.get("seed") == seed
            and params.get("generator") == fingerprint
            and params.get("sha256") == hashlib.sha256(graph_file.read_bytes()).hexdigest()
        ):
            (graph_dir / "graph.lock").touch()
            return graph_dir
    _progress(f"generating {n} tasks (seed {seed}) into {base} ...")
    if base.exists():
        shutil.rmtree(base)
    graph_dir.mkdir(parents=True)
    data = generate_graph(n, seed)
    tmp = graph_file.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(graph_file)
    (graph_dir / "graph.lock").touch()
    params_file.write_text(
        json.dumps(
            {"n": n, "seed": seed, "generator": fingerprint, "sha256": hashlib.sha256(data).hexdigest()},
            indent=2,
        )
        + "\n"
    )
    return graph_dir


def reset_claim_copy(pristine: Path, work_dir: Path) -> None:
    """Make ``work_dir`` a fresh graph dir holding a copy of the pristine graph (no oplog)."""
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    shutil.copyfile(pristine / "graph.jsonl", work_dir / "graph.jsonl")
    (work_dir / "graph.lock").touch()


def _parse_stamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    dot = text.find(".")
    if dot != -1:  # trim nanoseconds to what fromisoformat takes on 3.11
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: dot + 7] + text[end:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def inspect_graph(data: bytes) -> tuple[int, str, int]:
    """(line count, an open task id to claim, expected number of ready tasks).

    The expected count is an independent, simplified readiness rule that holds for generated
    graphs (acyclic, no system tasks, no cron): open/incomplete, not paused, ``not_before`` not
    in the future, every dependency present and done or abandoned.
    """
    lines = [line for line in data.split(b"\n") if line]
    tasks: dict[str, dict[str, Any]] = {}
    for line in lines:
        node = orjson.loads(line)
        if node.get("kind") == "task":
            tasks[node["id"]] = node
    now = datetime.now(UTC)
    ready = 0
    open_ids: list[str] = []
    for task_id, task in tasks.items():
        status = task.get("status", "open")
        if status == "open":
            open_ids.append(task_id)
        if status not in ("open", "incomplete") or task.get("paused") is True:
            continue
        gate = _parse_stamp(task.get("not_before"))
        if gate is not None and gate > now:
            continue
        deps = task.get("after") or task.get("blocked_by") or []
        if all(d in tasks and tasks[d].get("status") in ("done", "abandoned") for d in deps):
            ready += 1
    if not open_ids:
        raise BenchError("the generated graph has no open task to claim")
    return len(lines), open_ids[len(open_ids) // 2], ready


def verify_claim(before: bytes, after: bytes, task_id: str, actor: str) -> None:
    """Raise :class:`BenchError` unless ``after`` is ``before`` with only the claimed line changed."""
    old = before.split(b"\n")
    new = after.split(b"\n")
    if len(old) != len(new):
        raise BenchError(f"claim changed the line count: {len(old)} -> {len(new)}")
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    target = [i for i, line in enumerate(old) if line and orjson.loads(line).get("id") == task_id]
    if len(target) != 1:
        raise BenchError(f"expected exactly one line for {task_id!r}, found {len(target)}")
    if changed != target:
        others = [i + 1 for i in changed if i != target[0]][:10]
        raise BenchError(
            f"claim of {task_id!r} (line {target[0] + 1}) changed other lines: {others}"
            if others
            else f"claim of {task_id!r} left its line unchanged"
        )
    old_task = orjson.loads(old[target[0]])
    new_task = orjson.loads(new[target[0]])
    if new_task.get("status") != "in-progress" or new_task.get("assigned") != actor:
        raise BenchError(
            f"claimed line has status={new_task.get('status')!r} assigned={new_task.get('assigned')!r}"
        )
    for key, value in old_task.items():
        if key in ("status", "assigned", "started_at", "log"):
            continue
        if new_task.get(key) != value:
            raise BenchError(f"claim changed or dropped field {key!r} of {task_id!r}")
    old_log = old_task.get("log") or []
    if new_task.get("log", [])[: len(old_log)] != old_log:
        raise BenchError(f"claim rewrote the existing log of {task_id!r}")


# --- timing --------------------------------------------------------------------------------------
def run_timed(argv: list[str]) -> float:
    """Wall time of one whole process in ms; a non-zero exit is a correctness failure."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000.0
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        raise BenchError(f"`{' '.join(argv)}` exited {proc.returncode}: {stderr[-2000:]}")
    return elapsed


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def bench_size(
    n: int, *, seed: int, repeat: int, data_root: Path, python: Path, speedrift: Path
) -> SizeResult:
    graph_dir = prepare_graph(data_root, n, seed)
    graph_file = graph_dir / "graph.jsonl"
    pristine = graph_file.read_bytes()
    lines, claim_id, expected_ready = inspect_graph(pristine)
    work_dir = data_root / f"claim-work-{n}-seed{seed}" / ".workgraph"

    commands: dict[str, list[str]] = {
        "startup": [str(python), "-c", "pass"],
        "floor": [str(python), "-c", FLOOR_CODE, str(graph_file)],
        "ready": [str(speedrift), "--dir", str(graph_dir), "ready", "--json"],
        "claim": [str(speedrift), "--dir", str(work_dir), "claim", claim_id, "--actor", ACTOR],
    }

    # Correctness, outside any timing: what `ready` prints, and what one claim does to the file.
    out = subprocess.run(commands["ready"], capture_output=True, check=False)
    if out.returncode != 0:
        raise BenchError(f"ready --json exited {out.returncode}: {out.stderr.decode(errors='replace')}")
    ready_rows = orjson.loads(out.stdout)
    if not isinstance(ready_rows, list):
        raise BenchError("ready --json did not print a JSON list")
    if len(ready_rows) != expected_ready:
        _progress(
            f"warning: {n}: ready --json listed {len(ready_rows)} tasks, the benchmark's simplified "
            f"rule expects {expected_ready}"
        )

    _progress(f"{n}: warm-up and claim check (claiming {claim_id!r}) ...")
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for name, argv in commands.items():  # warm-up (page cache, .pyc files); not recorded
        if name == "claim":
            reset_claim_copy(graph_dir, work_dir)
        run_timed(argv)
        if name == "claim":
            verify_claim(pristine, (work_dir / "graph.jsonl").read_bytes(), claim_id, ACTOR)

    for round_number in range(repeat):
        _progress(f"{n}: round {round_number + 1}/{repeat}")
        for name, argv in commands.items():
            if name == "claim":
                reset_claim_copy(graph_dir, work_dir)
            samples[name].append(run_timed(argv))
    shutil.rmtree(work_dir.parent, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in samples.items()}
    ready_ratio = med["ready"] / med["floor"]
    claim_ratio = med["claim"] / med["floor"]
    return SizeResult(
        size=n,
        lines=lines,
        bytes=len(pristine),
        ready_tasks=len(ready_rows),
        expected_ready_tasks=expected_ready,
        claimed_id=claim_id,
        startup_ms=med["startup"],
        floor_ms=med["floor"],
        ready_ms=med["ready"],
        claim_ms=med["claim"],
        ready_ratio=ready_ratio,
        claim_ratio=claim_ratio,
        ready_pass=ready_ratio <= READY_LIMIT,
        claim_pass=claim_ratio <= CLAIM_LIMIT,
        acceptance_applies=n == ACCEPTANCE_SIZE,
        samples_ms={name: [round(v, 2) for v in values] for name, values in samples.items()},
    )


# --- reporting -----------------------------------------------------------------------------------
def _verdict(passed: bool, applies: bool) -> str:
    word = "PASS" if passed else "FAIL"
    return word if applies else word.lower() + "*"


def beads_line(result: SizeResult) -> str:
    return (
        f"10k ready: speedrift {result.ready_ms:.0f} ms (whole process, incl. ~{result.startup_ms:.0f} ms "
        f"bare interpreter start) vs beads {BEADS_READY_MS:.0f} ms (GetReadyWork, an in-process SQL "
        f"query over its blocked-issues cache on 10K issues; {BEADS_READY_BEFORE_MS:.0f} ms without "
        f"the cache; beads docs/INTERNALS.md) -> {result.ready_ms / BEADS_READY_MS:.1f}x"
    )


def render_table(results: list[SizeResult], repeat: int) -> str:
    header = (
        f"{'size':>8} {'lines':>8} {'MB':>6} {'start ms':>9} {'floor ms':>9} {'ready ms':>9} "
        f"{'ready x':>8} {'claim ms':>9} {'claim x':>8} {'#ready':>7}  "
        f"{'ready<=' + str(READY_LIMIT) + 'x':>11} {'claim<=' + str(CLAIM_LIMIT) + 'x':>11}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(
            f"{r.size:>8} {r.lines:>8} {r.bytes / 1e6:>6.1f} {r.startup_ms:>9.1f} {r.floor_ms:>9.1f} "
            f"{r.ready_ms:>9.1f} {r.ready_ratio:>7.2f}x {r.claim_ms:>9.1f} {r.claim_ratio:>7.2f}x "
            f"{r.ready_tasks:>7}  {_verdict(r.ready_pass, r.acceptance_applies):>11} "
            f"{_verdict(r.claim_pass, r.acceptance_applies):>11}"
        )
    notes = [
        "",
        f"median of {repeat} interleaved runs after 1 warm-up each; whole-process wall time "
        f"(python {platform.python_version()}, orjson {orjson.__version__})",
        "floor = `python -c` reading graph.jsonl and orjson.loads-ing every line; start = `python -c pass`",
    ]
    if any(not r.acceptance_applies for r in results):
        notes.append(f"* acceptance is defined at {ACCEPTANCE_SIZE} tasks; other sizes are for information")
    for r in results:
        if r.size == 10_000:
            notes.append(beads_line(r))
    return "\n".join(rows + notes)


def _parse_sizes(text: str) -> list[int]:
    sizes: list[int] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        scale = 1
        if part.endswith("k"):
            part, scale = part[:-1], 1000
        elif part.endswith("m"):
            part, scale = part[:-1], 1_000_000
        sizes.append(int(float(part) * scale))
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive integers, e.g. 10000,100000 or 10k,100k")
    return sizes


def _venv_bin() -> Path:
    candidate = REPO / ".venv" / "bin"
    return candidate if (candidate / "python").exists() else Path(sys.executable).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", type=_parse_sizes, default=list(DEFAULT_SIZES), help="comma-separated task counts"
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per command (median reported)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="where graphs are generated")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    bin_dir = _venv_bin()
    python, speedrift = bin_dir / "python", bin_dir / "speedrift"
    if not speedrift.exists():
        parser.error(f"{speedrift} not found: install the package into the venv first")

    results: list[SizeResult] = []
    try:
        for n in args.sizes:
            results.append(
                bench_size(
                    n,
                    seed=args.seed,
                    repeat=args.repeat,
                    data_root=args.data_dir.resolve(),
                    python=python,
                    speedrift=speedrift,
                )
            )
    except BenchError as error:
        sys.stderr.write(f"graph_bench: CORRECTNESS FAILURE: {error}\n")
        return 1

    if args.json:
        payload: dict[str, Any] = {
            "python": platform.python_version(),
            "orjson": orjson.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "seed": args.seed,
            "limits": {"ready": READY_LIMIT, "claim": CLAIM_LIMIT, "at_size": ACCEPTANCE_SIZE},
            "results": [asdict(r) for r in results],
        }
        ten_k = next((r for r in results if r.size == 10_000), None)
        if ten_k is not None:
            payload["beads_comparison"] = {
                "beads_ready_ms": BEADS_READY_MS,
                "beads_ready_before_cache_ms": BEADS_READY_BEFORE_MS,
                "beads_source": "beads docs/INTERNALS.md, Blocked Issues Cache: GetReadyWork on 10K issues",
                "beads_measures": "in-process query",
                "speedrift_ready_ms": ten_k.ready_ms,
                "speedrift_measures": "whole process including interpreter start",
                "ratio": ten_k.ready_ms / BEADS_READY_MS,
                "note": beads_line(ten_k),
            }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(render_table(results, args.repeat) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
