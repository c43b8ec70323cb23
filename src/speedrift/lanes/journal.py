"""The lane guard's journal: ``.speedrift/lanes/guard.jsonl``, one JSON line per guard outcome
(creations and refusals alike) and per lane run, appended and synced under the guard's lock.

Bounded: past :data:`MAX_BYTES` the next append moves the file to
``guard-<UTC stamp>.jsonl.zst`` (the newest :data:`KEEP_ARCHIVES` are kept) and starts a new one
seeded with what the guard still decides by (the caller's ``keep``: latest runs, creations in the
budget window, advice given) — so every record survives in an archive and the live file stays small.
A torn last line (a crash mid-append) is skipped by readers and ended by the next append.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import zstandard

from speedrift import fsutil, layout, serialize
from speedrift.times import now_utc, parse_time, stamp

JOURNAL_FILE = "guard.jsonl"
LOCK_FILE = "guard.lock"
MAX_BYTES = 4 << 20
KEEP_ARCHIVES = 10
Keep = Callable[[Sequence[dict[str, Any]]], list[dict[str, Any]]]


def journal_path(repo: Path) -> Path:
    return layout.lanes_dir(repo) / JOURNAL_FILE


def journal(repo: Path, since: datetime | None = None) -> list[dict[str, Any]]:
    """The live journal's records, oldest first: ``{"record": "outcome", <GuardOutcome fields>,
    "head"}`` and ``{"record": "run", "lane", "task", "head", "at", "fingerprints"}``; ``since``:
    only those at or after it. A torn or unreadable line is skipped."""
    records = read_records(journal_path(repo))
    if since is None:
        return records
    return [r for r in records if (at := parse_time(r.get("at"))) is not None and at >= since]


def archives(repo: Path) -> list[Path]:
    """The rotated journals, oldest first."""
    return sorted(layout.lanes_dir(repo).glob("guard-*.jsonl.zst"))


def read_records(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn last line (a crash mid-append): the rest is whole
        if isinstance(value, dict):
            records.append(value)
    return records


def append(
    path: Path, records: Sequence[dict[str, Any]], *, keep: Keep, max_bytes: int | None = None
) -> None:
    """Whole JSON lines, appended and synced (the caller holds :data:`LOCK_FILE`). A torn last
    line is ended first, so it never swallows the next record; a journal past ``max_bytes`` is
    rotated first (see the module docstring)."""
    if not records:
        return
    size = _size(path)
    if size > (MAX_BYTES if max_bytes is None else max_bytes):
        _rotate(path, keep)
        size = _size(path)
    data = b"".join(serialize.dumps(r) + b"\n" for r in records)
    if size > 0:
        with path.open("rb") as existing:
            existing.seek(-1, os.SEEK_END)
            if existing.read(1) != b"\n":
                data = b"\n" + data
    fsutil.append_synced(path, data)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _rotate(path: Path, keep: Keep) -> None:
    records = read_records(path)
    when = stamp(now_utc())
    archive = path.with_name(f"guard-{when}.jsonl.zst")
    count = 1
    while archive.exists():  # two rotations within one second keep both
        archive = path.with_name(f"guard-{when}-{count}.jsonl.zst")
        count += 1
    fsutil.write_atomic(archive, zstandard.ZstdCompressor(level=3).compress(path.read_bytes()))
    seed = b"".join(serialize.dumps(r) + b"\n" for r in keep(records))
    fsutil.write_atomic(path, seed)
    for old in sorted(path.parent.glob("guard-*.jsonl.zst"))[:-KEEP_ARCHIVES]:
        old.unlink(missing_ok=True)
