"""The decision ledger: ``<hub>/ledger/cycles.jsonl``, one JSON line per cycle, append-only, fsynced.

Writers take an exclusive flock on ``ledger/.lock``, append one whole line and ``fsync`` before
returning, so a record the hub reported as written survives a crash. A hub killed with -9 in the
middle of a write can leave a *torn* last line (no newline): readers skip it and report it
(:attr:`Ledger.torn`); :meth:`Ledger.repair` — run by the next writer automatically — cuts it off
and keeps the cut bytes in ``cycles.jsonl.torn``, so no torn record ever sits before a good one.
An append that fails (a full disk can take part of a line) is cut back before the error is raised,
so a failed write leaves no half record either.

Retention: when ``cycles.jsonl`` passes ``max_bytes`` (50 MB), the next append first compresses
it to ``cycles-<UTC timestamp>.jsonl.zst`` and starts a new file; only the newest ``keep_archives``
(20) archives are kept, so the ledger holds at most ~50 MB live plus 20 compressed archives.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from speedrift import fsutil, hubdir, times
from speedrift.serialize import dumps

MAX_BYTES = 50 * 1024 * 1024
KEEP_ARCHIVES = 20
_BLOCK = 64 * 1024


class Ledger:
    def __init__(self, hub: Path, *, max_bytes: int = MAX_BYTES, keep_archives: int = KEEP_ARCHIVES) -> None:
        self.directory = hubdir.ledger_dir(hub)
        self.path = hubdir.cycles_path(hub)
        self.torn_path = self.path.with_name(self.path.name + ".torn")
        self.max_bytes = max_bytes
        self.keep_archives = keep_archives
        self.torn: str | None = None  # set by read(): the torn last line it skipped, described
        self.problems: list[str] = []  # set by read(): lines that did not parse, described

    # ------------------------------------------------------------------ writing
    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return fsutil.flocked(self.directory / ".lock")

    def append(self, record: Mapping[str, Any] | Any) -> None:
        """Append one record as one fsynced line (repairing a torn tail and rotating first if due).

        ``record`` is a mapping or a dataclass (a ``CycleRecord`` is written directly, without
        converting it to a dict first)."""
        value = record if isinstance(record, dict) or is_dataclass(record) else dict(record)
        line = dumps(value) + b"\n"
        with self._locked():
            self._repair_locked()
            self._rotate_locked()
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            try:
                fsutil.append_synced(self.path, line)
            except OSError:
                # a full disk can take part of the line: cut it off again (under the lock no other
                # writer appends), so a failed append leaves no half record behind
                with contextlib.suppress(OSError):
                    os.truncate(self.path, size)
                raise

    def repair(self) -> int:
        """Cut a torn last line off (kept in ``cycles.jsonl.torn``). Returns the bytes cut (0: intact)."""
        with self._locked():
            return self._repair_locked()

    def _repair_locked(self) -> int:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size == 0:
            return 0
        with open(self.path, "rb+") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return 0
            keep = self._last_newline_end(handle, size)
            handle.seek(keep)
            fragment = handle.read()
            stamp = times.iso_utc(times.now_utc().replace(microsecond=0))
            note = f"# {stamp}: {len(fragment)} bytes cut from the end of {self.path.name}\n".encode()
            fsutil.append_synced(self.torn_path, note + fragment + b"\n")
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        return len(fragment)

    @staticmethod
    def _last_newline_end(handle: BinaryIO, size: int) -> int:
        """Offset just after the last newline in the file (0 when there is none)."""
        position = size
        while position > 0:
            start = max(0, position - _BLOCK)
            handle.seek(start)
            block = handle.read(position - start)
            index = block.rfind(b"\n")
            if index != -1:
                return start + index + 1
            position = start
        return 0

    def _rotate_locked(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self.max_bytes:
            return
        import zstandard

        stamp = times.stamp(times.now_utc())
        archive = self.directory / f"cycles-{stamp}.jsonl.zst"
        with open(self.path, "rb") as source, fsutil.atomic_writer(archive) as target:
            zstandard.ZstdCompressor(level=3).copy_stream(source, target)  # streamed: 50 MB never in memory
        os.unlink(self.path)  # readers holding it open keep their view; new appends start afresh
        fsutil.fsync_dir(self.directory)
        archives = self.archives()
        for old in archives[: max(0, len(archives) - self.keep_archives)]:
            with contextlib.suppress(OSError):
                old.unlink()

    def archives(self) -> list[Path]:
        """Rotated archives, oldest first."""
        return sorted(self.directory.glob("cycles-*.jsonl.zst"))

    # ------------------------------------------------------------------ reading
    def _parse(self, data: bytes, *, final: bool) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the data ends with a newline
        if tail and final:
            self.torn = f"{self.path}: torn last line ({len(tail)} bytes, no newline) skipped; run repair"
        for raw in lines:
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.problems.append(f"{self.path}: a line that is not JSON ({len(raw)} bytes) skipped")
                continue
            if isinstance(value, dict):
                records.append(value)
        return records

    def _tail_bytes(self, wanted: int) -> bytes:
        """The end of the current file holding at least ``wanted`` complete lines (or all of it)."""
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return b""
        with handle:
            size = os.fstat(handle.fileno()).st_size
            position = size
            chunks: list[bytes] = []
            newlines = 0
            while position > 0 and newlines <= wanted:
                start = max(0, position - _BLOCK)
                handle.seek(start)
                block = handle.read(position - start)
                chunks.append(block)
                newlines += block.count(b"\n")
                position = start
            data = b"".join(reversed(chunks))
            if position > 0:
                data = data[data.index(b"\n") + 1 :]  # drop the partial first line
            return data

    def _archive_records(self, archive: Path) -> list[dict[str, Any]]:
        import zstandard

        try:
            data = zstandard.ZstdDecompressor().stream_reader(archive.read_bytes()).read()
        except (OSError, zstandard.ZstdError):
            self.problems.append(f"{archive}: unreadable archive skipped")
            return []
        return self._parse(data, final=False)

    def read(self, last: int | None = None) -> list[dict[str, Any]]:
        """Records oldest first: every one (``last=None``), or the newest ``last`` (archives included)."""
        self.torn = None
        self.problems = []
        if last is not None and last <= 0:
            return []
        if last is None:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            records = self._parse(data, final=True)
            archived: list[dict[str, Any]] = []
            for archive in self.archives():
                archived.extend(self._archive_records(archive))
            return archived + records
        records = self._parse(self._tail_bytes(last), final=True)
        for archive in reversed(self.archives()):
            if len(records) >= last:
                break
            records = self._archive_records(archive) + records
        return records[-last:]

    def tail(
        self,
        follow: bool = False,
        *,
        last: int = 10,
        poll_s: float = 0.5,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The newest ``last`` records, then (with ``follow``) each new one as it is appended.

        Follows across rotation (a new file replaces the old one). ``stop()`` returning True ends it.
        """
        yield from self.read(last=last)
        if not follow:
            return
        handle = self._open_at_end()
        pending = b""
        try:
            while not (stop and stop()):
                data = handle.read() if handle else b""
                if data:
                    pending += data
                    complete, _, pending = pending.rpartition(b"\n")
                    if complete:
                        yield from self._parse(complete + b"\n", final=False)
                    continue
                if self._replaced(handle):  # rotated: the old file is drained, go on with the new one
                    if handle:
                        handle.close()
                    handle = self._open_at_start()
                    pending = b""
                    continue
                time.sleep(poll_s)
        finally:
            if handle:
                handle.close()

    def _open_at_start(self) -> BinaryIO | None:
        try:
            return open(self.path, "rb")  # tail() owns and closes it
        except FileNotFoundError:
            return None

    def _open_at_end(self) -> BinaryIO | None:
        handle = self._open_at_start()
        if handle:
            handle.seek(0, os.SEEK_END)
        return handle

    def _replaced(self, handle: BinaryIO | None) -> bool:
        """Whether the path names another file than ``handle`` now (held open, its inode is not reused)."""
        try:
            current = self.path.stat()
        except FileNotFoundError:
            return False
        if handle is None:
            return True
        mine = os.fstat(handle.fileno())
        return (mine.st_dev, mine.st_ino) != (current.st_dev, current.st_ino)
