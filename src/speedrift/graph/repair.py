"""Set malformed graph lines aside so the graph becomes writable again, losing nothing.

The bad lines go, byte for byte, into ``<repo>/.speedrift/repair/`` with a JSON report naming
each line number and problem; only then is the graph rewritten without them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from speedrift import fsutil, layout
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.times import format_time, now_utc, stamp


@dataclass
class RepairReport:
    moved: list[tuple[int, str]]
    side_file: Path | None
    report_file: Path | None


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fsutil.write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def repair(store: GraphStore, dry_run: bool = False) -> RepairReport:
    with store.locked():
        graph = Graph.from_bytes(store.read_bytes())
        if not graph.problems:
            return RepairReport([], None, None)
        if dry_run:
            return RepairReport(graph.problems, None, None)
        when = stamp(now_utc())
        folder = layout.repair_dir(store.directory.parent)
        folder.mkdir(parents=True, exist_ok=True)
        bad = {lineno for lineno, _ in graph.problems}
        side = folder / f"graph-{when}.rejected.jsonl"
        _write_synced(side, b"".join(graph.raw_lines[n - 1] + b"\n" for n in sorted(bad)))
        report = folder / f"graph-{when}.report.json"
        _write_synced(
            report,
            orjson.dumps(
                {
                    "graph": str(store.graph_path),
                    "repaired_at": format_time(now_utc()),
                    "side_file": str(side),
                    "lines": [{"line": n, "problem": p} for n, p in graph.problems],
                },
                option=orjson.OPT_INDENT_2,
            ),
        )
        store.write_bytes_locked(graph.without_lines(bad).to_bytes())
        return RepairReport(graph.problems, side, report)
