"""The fuzz suite's figures: how many inputs each property tried, summed over xdist workers.

Printed at the end of the run; with ``SPEEDRIFT_FUZZ_REPORT=<file>`` also written there as JSON
(``{"inputs": N, "properties": {name: n}, "examples_per_property": k}``) for the chaos suite.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz.support import TRIED, examples

_TOTALS: Counter[str] = Counter()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the counts to the controller
        workeroutput["speedrift_fuzz"] = dict(TRIED)
        return
    _TOTALS.update(TRIED)
    report = os.environ.get("SPEEDRIFT_FUZZ_REPORT")
    if report and _TOTALS:
        Path(report).write_text(json.dumps(_figures(), indent=2, sort_keys=True) + "\n")


def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist's controller: a worker finished; add up what its properties tried."""
    counts = getattr(node, "workeroutput", {}).get("speedrift_fuzz")
    if counts:
        _TOTALS.update(counts)


def _figures() -> dict[str, Any]:
    return {
        "inputs": sum(_TOTALS.values()),
        "properties": dict(sorted(_TOTALS.items())),
        "examples_per_property": examples(),
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TOTALS:
        figures = _figures()
        terminalreporter.write_line(
            f"fuzz: {figures['inputs']:,} inputs tried over {len(_TOTALS)} properties "
            f"(up to {figures['examples_per_property']} examples each; SPEEDRIFT_FUZZ_EXAMPLES sets it)"
        )
