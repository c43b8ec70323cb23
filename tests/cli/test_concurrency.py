"""Several speedrift processes writing one graph at once: the graph lock serialises them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.support import Cli, graph_tasks, oplog_records

WRITERS = 6


def test_concurrent_adds_of_the_same_title_all_land_with_unique_ids(cli: Cli, repo: Path) -> None:
    # real processes, started together: the graph lock is an flock between processes
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "speedrift", "add", "Same title here"],
            cwd=repo,
            env=cli.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(WRITERS)
    ]
    errors = [p.communicate(timeout=60)[1] for p in processes]

    assert [p.returncode for p in processes] == [0] * WRITERS, errors
    expected = ["same-title-here"] + [f"same-title-here-{n}" for n in range(2, WRITERS + 1)]
    assert sorted(graph_tasks(repo)) == sorted(expected)
    assert len(oplog_records(repo)) == WRITERS
    assert not list((repo / ".workgraph").glob(".graph.tmp.*"))
