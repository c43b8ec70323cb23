"""Set malformed graph lines aside so the graph becomes writable again, losing nothing.

Every kind of line the codec refuses (see graph/codec.py: broken JSON, invalid UTF-8, a lone
surrogate, a raw control character, nesting past 128 levels, a non-object, a task without an id or
with both ``after`` and ``blocked_by``) goes, byte for byte, into ``<repo>/.speedrift/repair/``
with a JSON report naming each line number and problem; only then is the graph rewritten without
them. What the codec reads but wg cannot — a leading byte-order mark, mixed CRLF/LF line endings —
is corrected in the same rewrite, and the task on such a line is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from speedrift import fsutil, layout
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.times import format_time, now_utc, stamp


@dataclass
class RepairReport:
    moved: list[tuple[int, str]]  # (1-based line, problem): set aside
    side_file: Path | None
    report_file: Path | None
    fixed: list[tuple[int, str]] = field(default_factory=list)  # (line, correction); line 0: the file
    warnings: list[str] = field(default_factory=list)  # e.g. duplicate ids (kept: wg reads them)


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
        fixed = [*graph.fixes, *graph.ending_fixes()]
        if not graph.problems and not fixed:
            return RepairReport([], None, None, [], graph.warnings)
        if dry_run:
            return RepairReport(graph.problems, None, None, fixed, graph.warnings)
        when = stamp(now_utc())
        folder = layout.repair_dir(store.directory.parent)
        folder.mkdir(parents=True, exist_ok=True)
        bad = {lineno for lineno, _ in graph.problems}
        side = None
        if bad:
            side = folder / f"graph-{when}.rejected.jsonl"
            _write_synced(side, b"".join(graph.raw_lines[n - 1] + b"\n" for n in sorted(bad)))
        report = folder / f"graph-{when}.report.json"
        _write_synced(
            report,
            orjson.dumps(
                {
                    "graph": str(store.graph_path),
                    "repaired_at": format_time(now_utc()),
                    "side_file": str(side) if side else None,
                    "lines": [{"line": n, "problem": p} for n, p in graph.problems],
                    "fixed": [{"line": n, "fix": f} for n, f in fixed],
                },
                option=orjson.OPT_INDENT_2,
            ),
        )
        store.write_bytes_locked(graph.without_lines(bad).to_bytes())
        return RepairReport(graph.problems, side, report, fixed, graph.warnings)
