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
(speedrift/redact.py), whoever posts it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from speedrift import fsutil, layout, redact
from speedrift.coord.records import (
    Author,
    Draft,
    Record,
    Status,
    check_scope,
    fold,
    parse_line,
    record_id,
    split_id,
)
from speedrift.errors import NotFound, Refused
from speedrift.times import now_utc

_TAIL_BYTES = 64 * 1024


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


class CoordStore:
    def __init__(self, path: Path, scope: str) -> None:
        self.path = path
        self.scope = check_scope(scope)
        self.lock_path = path.with_suffix(".lock")

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
        return fold([*self.read().lines]).get(ident, current)

    # --- reading -------------------------------------------------------------------------------
    def read(self) -> Snapshot:
        snapshot = Snapshot(self.scope)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return snapshot
        chunks = raw.split(b"\n")
        complete = chunks[:-1]  # the part after the last newline is a torn write (or empty)
        for lineno, chunk in enumerate(complete, 1):
            if not chunk.strip():
                continue
            try:
                value = orjson.loads(chunk)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                snapshot.lines.append(parse_line(value))
            except (orjson.JSONDecodeError, ValueError) as error:
                snapshot.bad.append(BadLine(lineno, str(error)[:200]))
        snapshot.lines.sort(key=lambda r: r.seq)
        snapshot.records = fold(snapshot.lines)
        return snapshot

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

    def _append(self, record: Record) -> None:
        data = orjson.dumps(record.as_line()) + b"\n"
        fsutil.append_synced(self.path, data)
