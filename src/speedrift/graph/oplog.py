"""``log/operations.jsonl``: wg's append-only provenance log, rotated as wg rotates it.

At 10 MB the file is compressed with zstd to ``<UTC stamp>.jsonl.zst`` (the name and format
``wg`` reads back) and a fresh file is started. Appends happen under the graph lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, times

ROTATION_BYTES = 10 * 1024 * 1024


def log_dir(graph_dir: Path) -> Path:
    return graph_dir / "log"


def append(graph_dir: Path, record: dict[str, Any], threshold: int = ROTATION_BYTES) -> None:
    directory = log_dir(graph_dir)
    directory.mkdir(exist_ok=True)
    path = directory / "operations.jsonl"
    try:
        if path.stat().st_size >= threshold:
            rotate(path)
    except FileNotFoundError:
        pass
    entry = {k: v for k, v in record.items() if v is not None}  # wg omits null, keeps {} detail
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, orjson.dumps(entry) + b"\n")  # one write(2) per record: never interleaved
    finally:
        os.close(fd)


def rotate(path: Path) -> Path:
    import zstandard  # only on rotation: keeps the import off every mutation's path

    stamp = times.stamp(times.now_utc())
    target = path.with_name(f"{stamp}.jsonl.zst")
    fsutil.write_atomic(target, zstandard.ZstdCompressor(level=3).compress(path.read_bytes()))
    path.write_bytes(b"")
    return target


def read_all(graph_dir: Path) -> list[dict[str, Any]]:
    """Every record, oldest first: the rotated archives by name, then the live file."""
    directory = log_dir(graph_dir)
    if not directory.is_dir():
        return []
    chunks: list[bytes] = []
    rotated = sorted(p for p in directory.iterdir() if p.name.endswith(".jsonl.zst"))
    if rotated:
        import zstandard

        for archive in rotated:
            with zstandard.ZstdDecompressor().stream_reader(archive.read_bytes()) as reader:
                chunks.append(reader.read())
    live = directory / "operations.jsonl"
    if live.exists():
        chunks.append(live.read_bytes())
    records: list[dict[str, Any]] = []
    for chunk in chunks:
        for line in chunk.splitlines():
            if line.strip():
                records.append(orjson.loads(line))
    return records
