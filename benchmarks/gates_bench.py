"""The gate pipeline against the same tools run by hand, on a generated repo of thousands of files.

Run from the repository root::

    .venv/bin/python benchmarks/gates_bench.py [--modules 2000] [--rounds 3] [--json]

Three measurements, each a whole process, in interleaved rounds after one warm-up round (so the
caches of both sides are warm: ruff's, mypy's, speedrift's base-result cache):

* **gates, full**: ``speedrift gates run --base <README-only commit>`` — every file is changed,
  so every gate checks the whole project;
* **by hand, full**: the same tools, one after another, the way a developer would run them on
  the whole project: ``ruff check .``, ``mypy`` (the repo's config), ``semgrep`` with speedrift's
  rules and the same flags, ``ruff --select S``, ``detect-secrets scan`` over the tracked files
  and ``pytest -q``;
* **gates, incremental**: ``speedrift gates run`` on a commit that edits 5 modules, against its
  parent.

Printed: medians, ``full / by hand`` (acceptance <= 1.2x) and ``incremental / full``. Figures are
reported, never asserted; the exit code is 1 only when a measured command fails unexpectedly.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import gatesgen

BIN = Path(sys.executable).parent
RULES = Path(__file__).resolve().parent.parent / "src" / "speedrift" / "gates" / "rules"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds of the process and everything it waited for, stdout)."""
    cpu = _cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, check=False, env=bench_env())
    elapsed = time.perf_counter() - started
    cpu = _cpu() - cpu
    if done.returncode not in ok:
        sys.stderr.write(f"unexpected exit {done.returncode} from {' '.join(argv[:4])}:\n")
        sys.stderr.write(done.stderr.decode("utf-8", "replace")[-2000:] + "\n")
        raise SystemExit(1)
    return elapsed, cpu, done.stdout


def bench_env() -> dict[str, str]:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def gates(repo: Path, base: str) -> dict[str, float]:
    """Whole-process time, plus each gate's own duration from the bundle."""
    # exit 1 is fine: the generated project has a little debt, and the full run counts all of it as new
    elapsed, cpu, out = timed(
        [str(BIN / "speedrift"), "gates", "run", "--base", base, "--json"], repo, ok=(0, 1)
    )
    bundle = json.loads(out)
    parts = {r["gate"]: r["duration_ms"] / 1000 for r in bundle["results"]}
    return {"total": elapsed, "cpu": cpu, **parts}


def by_hand(repo: Path) -> dict[str, float]:
    tracked = gatesgen.git(repo, "ls-files").splitlines()
    python = [p for p in tracked if p.endswith(".py")]
    semgrep = [str(BIN / "semgrep"), "scan", "--metrics=off", "--disable-version-check", "--json", "--quiet"]
    commands = {
        "ruff": ([str(BIN / "ruff"), "check", "."], (0, 1)),
        "mypy": ([str(BIN / "mypy")], (0, 1)),
        "semgrep": ([*semgrep, "--config", str(RULES), "--timeout", "30", "-j", "2", "--", *python], (0, 1)),
        "ruff S": ([str(BIN / "ruff"), "check", "--isolated", "--select", "S", *python], (0, 1)),
        "detect-secrets": ([str(BIN / "detect-secrets"), "scan", *tracked], (0,)),
        "pytest": ([str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"], (0,)),
    }
    runs = {name: timed(argv, repo, ok) for name, (argv, ok) in commands.items()}
    times = {name: run[0] for name, run in runs.items()}
    return {"total": sum(times.values()), "cpu": sum(run[1] for run in runs.values()), **times}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="speedrift-gates-bench-") as scratch:
        files = gatesgen.generate(options.modules)
        full_repo = Path(scratch) / "full"
        base, _full = gatesgen.write_repo(full_repo, files)
        incremental_repo = Path(scratch) / "incremental"
        gatesgen.write_repo(incremental_repo, files)
        parent = gatesgen.git(incremental_repo, "rev-parse", "HEAD")
        gatesgen.small_change(incremental_repo)
        sys.stderr.write(f"generated {len(files)} files ({options.modules} modules); warming up\n")
        gates(full_repo, base)
        by_hand(full_repo)
        gates(incremental_repo, parent)
        samples: dict[str, list[dict[str, float]]] = {
            "gates_full": [],
            "by_hand_full": [],
            "gates_incremental": [],
        }
        for round_number in range(options.rounds):
            samples["gates_full"].append(gates(full_repo, base))
            samples["by_hand_full"].append(by_hand(full_repo))
            samples["gates_incremental"].append(gates(incremental_repo, parent))
            sys.stderr.write(f"round {round_number + 1}/{options.rounds} done\n")
    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in samples.items()
    }
    full, hand, incr = medians["gates_full"], medians["by_hand_full"], medians["gates_incremental"]
    ratio = full["total"] / hand["total"]
    # the same comparison without secrets scanning, where speedrift's prefilter does less work
    # than detect-secrets run by hand
    ratio_no_secrets = (full["total"] - full["secrets"]) / (hand["total"] - hand["detect-secrets"])
    incremental = incr["total"] / full["total"]
    cpu_ratio = full["cpu"] / hand["cpu"]
    report: dict[str, Any] = {
        "files": len(files),
        "rounds": options.rounds,
        "median_s": {k: {part: round(v, 3) for part, v in m.items()} for k, m in medians.items()},
        "full_vs_by_hand": round(ratio, 3),
        "full_vs_by_hand_without_secret_scanning": round(ratio_no_secrets, 3),
        "full_vs_by_hand_cpu": round(cpu_ratio, 3),
        "incremental_vs_full": round(incremental, 3),
        "acceptance_full_vs_by_hand_le_1_2": ratio <= 1.2,
    }
    if options.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{len(files)} files, {options.rounds} interleaved rounds after a warm-up; medians (s):")
    print(f"  gates, full          {full['total']:7.2f}   " + _parts(full, ("total", "cpu")))
    print(f"  by hand, full        {hand['total']:7.2f}   " + _parts(hand, ("total", "cpu")))
    print(
        f"  gates, incremental   {incr['total']:7.2f}   (5 modules changed) " + _parts(incr, ("total", "cpu"))
    )
    print(f"  full / by hand       {ratio:7.2f}x  {'PASS' if ratio <= 1.2 else 'FAIL'} (acceptance <= 1.2x)")
    print(f"  same, no secret scan {ratio_no_secrets:7.2f}x")
    print(f"  same, CPU time       {cpu_ratio:7.2f}x  (user+sys; steadier than wall time on a busy machine)")
    print(f"  incremental / full   {incremental:7.2f}x")
    return 0


def _parts(values: dict[str, float], leave: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in values.items() if k not in leave and v >= 0.005)


if __name__ == "__main__":
    raise SystemExit(main())
