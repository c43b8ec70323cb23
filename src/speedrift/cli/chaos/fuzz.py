"""The hypothesis fuzz suite (``tests/fuzz/`` of a source checkout), run with a raised example count.

Job: run every fuzz test of the checkout speedrift is installed from, in its own pytest process,
with ``$SPEEDRIFT_FUZZ_EXAMPLES`` set from the time the run gives it (or ``--fuzz-examples``; the
suite's own CI default is 200, a soak raises it), and count the inputs tried: from
the suite's own report (``$SPEEDRIFT_FUZZ_REPORT``, every property counts each input it tried),
else from hypothesis's statistics (``--hypothesis-show-statistics``: passing plus failing test
cases). Where there is no ``tests/fuzz/`` (an installed wheel, or a checkout before the suite
exists) or no pytest, nothing runs and the figure is 0 with a note that says why; the suite is
picked up as soon as it exists.

Invariant: a fuzz test that fails is counted (and fails the run); inputs are counted only from
what the suite or hypothesis reported, never estimated.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import speedrift
from speedrift.cli.chaos.figures import Figures

EXAMPLES_ENV = "SPEEDRIFT_FUZZ_EXAMPLES"
REPORT_ENV = "SPEEDRIFT_FUZZ_REPORT"
SUITE_DEFAULT = 200  # the suite's own default count: what its CI pass tries
_CASES = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")
_FAILED = re.compile(r"(\d+) (?:failed|errors?)\b")


def suite() -> Path | None:
    """``tests/fuzz`` of the source checkout speedrift runs from, if there is one."""
    checkout = Path(speedrift.__file__).resolve().parents[2]
    folder = checkout / "tests" / "fuzz"
    return folder if folder.is_dir() and (checkout / "pyproject.toml").is_file() else None


def examples_for(seconds: float) -> int:
    """The example count per property for a phase of ``seconds``: a short run tries fewer than the
    suite's CI default (which CI runs anyway), a soak many more."""
    return max(20, min(100_000, int(seconds * 4)))


@dataclass
class FuzzRun:
    folder: Path
    examples: int
    report: Path
    out: Path
    proc: subprocess.Popen[bytes]
    timeout: float


def start(
    figures: Figures, workdir: Path, seconds: float, env: dict[str, str], examples: int | None = None
) -> FuzzRun | None:
    folder = suite()
    if folder is None:
        figures.notes.append(
            "fuzz: no tests/fuzz/ in the checkout speedrift runs from: 0 inputs tried "
            "(it is picked up as soon as it exists)"
        )
        return None
    if importlib.util.find_spec("pytest") is None or importlib.util.find_spec("hypothesis") is None:
        figures.notes.append(
            "fuzz: pytest and hypothesis are not installed (pip install -e '.[dev]'): 0 tried"
        )
        return None
    examples = examples or examples_for(seconds)
    cwd = workdir / "fuzz"  # hypothesis keeps its example database here, not in the checkout
    cwd.mkdir(parents=True, exist_ok=True)
    report, out = cwd / "report.json", cwd / "pytest.out"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics"]
    with open(out, "wb") as handle:
        proc = subprocess.Popen(
            [*argv, str(folder)],
            cwd=cwd,
            env={**env, EXAMPLES_ENV: str(examples), REPORT_ENV: str(report)},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return FuzzRun(folder, examples, report, out, proc, max(180.0, seconds * 6))


def finish(figures: Figures, run: FuzzRun | None, waited_since: float) -> None:
    """Wait for the suite (within its timeout, counted from its start) and add its figures."""
    if run is None:
        return
    try:
        run.proc.wait(timeout=max(1.0, run.timeout - (time.monotonic() - waited_since)))
    except subprocess.TimeoutExpired:
        run.proc.kill()
        run.proc.wait()
        figures.errors.append(f"fuzz: the suite ran past {run.timeout:.0f}s at {run.examples} examples each")
        return
    output = run.out.read_text(errors="replace")
    counted = None
    with contextlib.suppress(OSError, ValueError):
        counted = json.loads(run.report.read_text())
    if isinstance(counted, dict) and isinstance(counted.get("inputs"), int):
        figures.fuzz_tried += counted["inputs"]
        figures.fuzz_tests += len(counted.get("properties") or {})
    else:  # a suite without its own counter: hypothesis's statistics
        cases = [tuple(int(n) for n in match) for match in _CASES.findall(output)]
        figures.fuzz_tried += sum(passing + failing for passing, failing, _ in cases)
        figures.fuzz_tests += len(re.findall(r"^\S+::\S+:$", output, flags=re.MULTILINE))
    lines = output.strip().splitlines()
    summary = lines[-1] if lines else ""
    failed = sum(int(n) for n in _FAILED.findall(summary))
    if run.proc.returncode not in (0, 5) and not failed:
        failed = 1  # pytest failed without a count (a collection error, an internal error)
    figures.fuzz_failed += failed
    figures.notes.append(
        f"fuzz: {run.folder} with {EXAMPLES_ENV}={run.examples} (the suite's CI default is "
        f"{SUITE_DEFAULT}): {summary or f'pytest exited {run.proc.returncode}'}"
    )
