"""A coordination store: one scope's records, append-only, under one writer lock.

``<repo>/.speedrift/coord/<scope>.jsonl`` holds one JSON line per record line (coord/records.py),
``<scope>.lock`` is the writer lock. Every append takes the lock, reads the last sequence number,
writes the next line whole with one ``write`` and fsyncs it, so concurrent writers — processes on
this machine — get gapless, strictly increasing sequence numbers and never interleave.

Crash safety: a line is either entirely there or not. A writer killed mid-write leaves a last line
without its newline; the next writer, under the lock, cuts it off before appending (it never had
a sequence number anyone saw). Readers skip such a tail and name any other bad line with its line
number instead of failing the whole store (an agent cannot write here directly — it posts through
``speedrift signal``, which the supervisor checks and stamps — but a person could edit the file).

Invariants: nothing is ever rewritten; a status change is a new line (:meth:`CoordStore.update`).
No known credential is written: every text and data value is redacted on the way in
(speedrift/redact.py), whoever posts it. Retention: past 4 MiB the closed records move, line for
line, into compressed archives beside the store (:meth:`CoordStore._compact_if_large`); open
records and sequence numbers are never touched by it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import orjson

from speedrift import fsutil, layout, redact
from speedrift.coord.records import (
    Author,
    Draft,
    Record,
    Status,
    check_scope,
    fold,
    fold_into,
    parse_line,
    record_id,
    split_id,
)
from speedrift.errors import NotFound, Refused
from speedrift.times import now_utc, stamp

_TAIL_BYTES = 64 * 1024
_CHECK_BYTES = 256
ARCHIVE_SUFFIX = ".jsonl.zst"
COMPACT_BYTES = 4 * 1024 * 1024  # past this, a writer archives closed records first
ARCHIVE_AFTER = timedelta(days=7)  # closed and untouched this long: archived first


@dataclass(frozen=True)
class BadLine:
    lineno: int
    problem: str


@dataclass
class Snapshot:
    """A store as read: its lines, the folded records, and the lines that could not be read."""

    scope: str
    lines: list[Record] = field(default_factory=list)
    records: dict[str, Record] = field(default_factory=dict)
    bad: list[BadLine] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return self.lines[-1].seq if self.lines else 0

    def open_records(self) -> list[Record]:
        return [r for r in self.records.values() if r.open]


@dataclass
class _Seen:
    """One process's reading of a store so far: up to ``offset`` (the end of a complete line)."""

    dev: int
    ino: int
    offset: int = 0
    lineno: int = 0
    last_line: bytes = b""  # the bytes just before ``offset``, to tell the file was not rewritten
    lines: list[Record] = field(default_factory=list)
    records: dict[str, Record] = field(default_factory=dict)
    bad: list[BadLine] = field(default_factory=list)

    def still(self, handle: BinaryIO, status: os.stat_result) -> bool:
        """Whether ``handle`` is the file read before, grown or not: the same file, not shorter,
        and the same bytes where the last read ended."""
        if (status.st_dev, status.st_ino) != (self.dev, self.ino) or status.st_size < self.offset:
            return False
        if not self.last_line:
            return True
        handle.seek(self.offset - len(self.last_line))
        return handle.read(len(self.last_line)) == self.last_line


class CoordStore:
    def __init__(self, path: Path, scope: str, *, compact_bytes: int = COMPACT_BYTES) -> None:
        self.path = path
        self.scope = check_scope(scope)
        self.lock_path = path.with_suffix(".lock")
        self.compact_bytes = compact_bytes
        self._seen: _Seen | None = None

    @classmethod
    def for_scope(cls, repo: Path, scope: str) -> CoordStore:
        check_scope(scope)
        return cls(layout.coord_dir(repo) / f"{scope}.jsonl", scope)

    @classmethod
    def scopes(cls, repo: Path) -> list[str]:
        folder = layout.coord_dir(repo)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.jsonl"))

    # --- writing -------------------------------------------------------------------------------
    def post(self, draft: Draft, *, now: datetime | None = None) -> Record:
        """Append a new record; returns it with its sequence number and id."""
        moment = now or now_utc()
        with self._locked() as last:
            self._compact_if_large(moment)
            seq = last + 1
            record = Record(
                seq=seq,
                id=record_id(self.scope, seq),
                kind=draft.kind,
                status=draft.initial_status(),
                author=draft.author,
                summary=redact.redact_text(draft.summary),
                at=moment,
                created_at=moment,
                detail=redact.redact_text(draft.detail),
                targets=draft.targets,
                artifact_refs=draft.artifact_refs,
                depends_on=draft.depends_on,
                closure_condition=draft.closure_condition,
                data=redact.redact_value(dict(draft.data)),
                expires_at=draft.expires_at,
            )
            self._append(record)
        return record

    def update(
        self,
        ident: str,
        status: Status,
        *,
        author: Author,
        summary: str = "",
        detail: str = "",
        data: dict[str, object] | None = None,
        now: datetime | None = None,
        only_if_open: bool = False,
    ) -> Record:
        """Append a status change of record ``ident``; returns the record as it now stands.
        NotFound when the store has no such record; Refused with ``only_if_open`` when it is no
        longer open (someone closed it first: the caller's change is not made)."""
        scope, _seq = split_id(ident)
        if scope != self.scope:
            raise NotFound(f"record {ident} is not in scope {self.scope}")
        moment = now or now_utc()
        with self._locked() as last:
            current = self.read().records.get(ident)
            if current is None:
                raise NotFound(f"no coordination record {ident} in {self.path}")
            if only_if_open and not current.open:
                raise Refused(f"record {ident} is already {current.status.value}")
            self._compact_if_large(moment)
            line = Record(
                seq=last + 1,
                id=ident,
                kind=current.kind,
                status=status,
                author=author,
                summary=redact.redact_text(summary),
                at=moment,
                created_at=current.created_at,
                detail=redact.redact_text(detail),
                data=redact.redact_value(dict(data or {})),
                updates=True,
            )
            self._append(line)
        return self.read().records.get(ident, current)

    # --- reading -------------------------------------------------------------------------------
    def read(self) -> Snapshot:
        """The store as it stands. Incremental within one process: only the lines appended since
        the last read are parsed and folded (an attempt's supervisor, the observer and a writer
        checking a record read the same store again and again); a store rewritten meanwhile (a
        compaction: another file, or other bytes where the last read ended) is read whole again."""
        try:
            with self.path.open("rb") as handle:
                seen = self._continue(handle)
        except FileNotFoundError:
            self._seen = None
            return Snapshot(self.scope)
        self._seen = seen
        return Snapshot(self.scope, list(seen.lines), dict(seen.records), list(seen.bad))

    def _continue(self, handle: BinaryIO) -> _Seen:
        """What was read before, carried on to the end of the last complete line."""
        status = os.fstat(handle.fileno())
        seen = self._seen
        if seen is not None and not seen.still(handle, status):
            seen = None
        if seen is None:
            seen = _Seen(status.st_dev, status.st_ino)
        handle.seek(seen.offset)
        data = handle.read()
        end = data.rfind(b"\n") + 1  # after the last newline: a torn write (or nothing), not read
        fresh: list[Record] = []
        for chunk in data[:end].split(b"\n")[:-1]:
            seen.lineno += 1
            if not chunk.strip():
                continue
            try:
                value = orjson.loads(chunk)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                fresh.append(parse_line(value))
            except (orjson.JSONDecodeError, ValueError) as error:
                seen.bad.append(BadLine(seen.lineno, str(error)[:200]))
        if end:
            seen.offset += end
            seen.last_line = data[max(0, end - _CHECK_BYTES) : end]
        if fresh:
            in_order = all(a.seq < b.seq for a, b in pairwise(fresh))
            if in_order and (not seen.lines or seen.lines[-1].seq < fresh[0].seq):
                seen.lines += fresh
                fold_into(seen.records, fresh)
            else:  # a line out of sequence order (a hand edit): fold everything again
                seen.lines = sorted([*seen.lines, *fresh], key=lambda r: r.seq)
                seen.records = fold(seen.lines)
        return seen

    def get(self, ident: str) -> Record:
        found = self.read().records.get(ident)
        if found is None:
            raise NotFound(f"no coordination record {ident}", hint="`speedrift board` lists the records")
        return found

    # --- internals -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """The writer lock held; yields the last sequence number (a torn tail cut off first)."""
        with fsutil.flocked(self.lock_path):
            yield self._last_seq()

    def _last_seq(self) -> int:
        """The last sequence number, from the file's tail (a torn last line is cut off first)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size == 0:
            return 0
        with self.path.open("rb") as handle:
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= _TAIL_BYTES else None)
            if keep is None:  # a torn line longer than the tail window: read the whole file
                keep = self.path.read_bytes().rfind(b"\n") + 1
            os.truncate(self.path, keep)
            return self._last_seq()
        for chunk in reversed(tail.split(b"\n")):
            if not chunk.strip():
                continue
            try:
                value = orjson.loads(chunk)
            except orjson.JSONDecodeError:
                continue
            seq = value.get("seq") if isinstance(value, dict) else None
            if isinstance(seq, int) and not isinstance(seq, bool):
                return seq
        return max((line.seq for line in self.read().lines), default=0)

    def archives(self) -> list[Path]:
        """The compressed archives of this scope's closed records, oldest first."""
        return sorted(self.path.parent.glob(f"{self.scope}.*{ARCHIVE_SUFFIX}"))

    def _compact_if_large(self, now: datetime) -> None:
        """Under the writer lock, past :attr:`compact_bytes`: move every line of the closed records
        untouched for :data:`ARCHIVE_AFTER` (or, when none is, of every closed record) into a new
        ``<scope>.<stamp>-<last seq>.jsonl.zst`` archive, each line as it was, and keep the rest. The record
        holding the last line is always kept, so the next sequence number stays the next one; an
        open record is never archived, nor a line that cannot be read."""
        try:
            if self.path.stat().st_size < self.compact_bytes:
                return
        except FileNotFoundError:
            return
        snapshot = self.read()
        last_id = snapshot.lines[-1].id if snapshot.lines else None
        closed = {i for i, r in snapshot.records.items() if not r.open and i != last_id}
        chosen = {i for i in closed if snapshot.records[i].at <= now - ARCHIVE_AFTER} or closed
        if not chosen:
            return
        keep: list[bytes] = []
        move: list[bytes] = []
        for chunk in self.path.read_bytes().split(b"\n")[:-1]:
            try:
                value = orjson.loads(chunk)
            except orjson.JSONDecodeError:
                keep.append(chunk)
                continue
            moved = isinstance(value, dict) and value.get("id") in chosen
            (move if moved else keep).append(chunk)
        import zstandard  # only when compacting: off every post's path

        last = snapshot.last_seq
        archive = self.path.with_name(f"{self.scope}.{stamp(now)}-{last}{ARCHIVE_SUFFIX}")
        n = 1
        while archive.exists():  # never over an earlier archive
            n += 1
            archive = self.path.with_name(f"{self.scope}.{stamp(now)}-{last}-{n}{ARCHIVE_SUFFIX}")
        packed = zstandard.ZstdCompressor(level=3).compress(b"\n".join(move) + b"\n")
        fsutil.write_atomic(archive, packed)
        fsutil.write_atomic(self.path, b"".join(line + b"\n" for line in keep))

    def _append(self, record: Record) -> None:
        data = orjson.dumps(record.as_line()) + b"\n"
        fsutil.append_synced(self.path, data)
