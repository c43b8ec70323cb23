"""The register's storage interface: what the SQLite and PostgreSQL backends both provide, and the one
place where the two SQL dialects differ.

The register's SQL is written once, SQLite-style, with ``?`` placeholders. :func:`dialect` turns it
into each backend's text, and this module is the only place that knows the differences:

- placeholders: ``?`` → ``%s`` for psycopg, a literal ``%`` doubled (``%%``);
- ``x IS ?`` (NULL-safe equality) → ``x IS NOT DISTINCT FROM %s``;
- ``… FOR UPDATE SKIP LOCKED`` (row locks for the repo leases) is dropped for SQLite, whose
  ``BEGIN IMMEDIATE`` already serializes every writer;
- "insert or replace" is written as :func:`upsert_sql` (``ON CONFLICT (key) DO UPDATE``, which both
  speak) and a new row's id is read with :meth:`Tx.insert_id` (``RETURNING id`` on PostgreSQL, the
  cursor's ``lastrowid`` on SQLite);
- whether a table exists (:meth:`Tx.has_table`): ``to_regclass`` / ``sqlite_master``.

A :class:`Tx` is one open writing transaction (rows come back as plain dicts); it notes the tables
it writes, so the PostgreSQL backend can announce them (``NOTIFY``) when it commits. Invariant: a
transaction either commits whole or is rolled back whole — a failure in the middle never leaves
half of it applied.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Any, ClassVar

from speedrift.errors import SpeedriftError

Row = dict[str, Any]


class RegisterBackend(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class RegisterUnavailable(SpeedriftError):
    """The register's server cannot be reached (or the connection broke mid-call).

    A write that raised this was rolled back (or, when the connection broke while committing, its
    outcome is stated in the message)."""

    def __init__(self, where: str, error: object, *, during: str = "") -> None:
        text = "; ".join(line.strip() for line in str(error).strip().splitlines() if line.strip())
        super().__init__(
            f"the register at {where} is unreachable{during}: {text or type(error).__name__}",
            hint=f"check that the server is up and accepts connections (pg_isready -d '{where}', "
            "or psql), and the URL in [register] url or $SPEEDRIFT_REGISTER_URL",
        )
        self.where = where


_LITERAL = re.compile(r"('(?:[^']|'')*')")  # a quoted SQL string: left untouched
_NULL_SAFE_EQ = re.compile(r"\bIS\s+\?")
_ROW_LOCKS = re.compile(r"\s+FOR\s+UPDATE(?:\s+SKIP\s+LOCKED)?\b")
_WRITES = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def dialect(sql: str, backend: RegisterBackend) -> str:
    """``sql`` (SQLite-style, ``?`` placeholders) in ``backend``'s words; see the module docstring."""
    parts = _LITERAL.split(sql)  # even indexes: code; odd: quoted literals
    out: list[str] = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(part.replace("%", "%%") if backend is RegisterBackend.POSTGRESQL else part)
        elif backend is RegisterBackend.SQLITE:
            out.append(_ROW_LOCKS.sub("", part))
        else:
            code = _NULL_SAFE_EQ.sub("IS NOT DISTINCT FROM ?", part)
            out.append(code.replace("%", "%%").replace("?", "%s"))
    return "".join(out)


def written_table(sql: str) -> str | None:
    """The table an INSERT, UPDATE or DELETE writes (None for anything else)."""
    found = _WRITES.match(sql)
    return found.group(1).lower() if found else None


def upsert_sql(table: str, keys: Sequence[str], columns: Sequence[str]) -> str:
    """Insert a row, or replace the non-key columns of the row with the same key (both backends)."""
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


def placeholders(count: int) -> str:
    """``?, ?, …`` for an ``IN (…)`` list."""
    return ", ".join("?" for _ in range(count))


class Tx(ABC):
    """One open writing transaction. SQL is SQLite-style (see :func:`dialect`); rows are dicts."""

    backend: ClassVar[RegisterBackend]

    def __init__(self) -> None:
        self.written: set[str] = set()  # the tables this transaction wrote

    def _note(self, sql: str) -> str:
        table = written_table(sql)
        if table is not None:
            self.written.add(table)
        return dialect(sql, self.backend)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        return self._execute(self._note(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(row) for row in rows]
        text = self._note(sql)
        if batch:
            self._executemany(text, batch)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._query(dialect(sql, self.backend), tuple(params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def has_table(self, name: str) -> bool:
        """Whether the table exists (asked without writing, so a read-only database can answer)."""
        if self.backend is RegisterBackend.POSTGRESQL:
            found = self.one("SELECT to_regclass(?) IS NOT NULL AS found", (name,))
        else:
            found = self.one(
                "SELECT count(*) > 0 AS found FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            )
        return bool(found and found["found"])

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        """Run one ``INSERT`` into a table with an ``id`` column; returns the new row's id."""
        return self._insert_id(self._note(sql), tuple(params))

    @abstractmethod
    def _execute(self, sql: str, params: tuple[Any, ...]) -> int: ...

    @abstractmethod
    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    @abstractmethod
    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Row]: ...

    @abstractmethod
    def _insert_id(self, sql: str, params: tuple[Any, ...]) -> int: ...


class Backend(ABC):
    """A connection to one register database. Calls are serialized (safe to share between threads)."""

    kind: ClassVar[RegisterBackend]
    where: str  # the file, or the URL with its password redacted

    @abstractmethod
    def write(self) -> AbstractContextManager[Tx]:
        """One writing transaction: committed when the block ends, rolled back when it raises."""

    @abstractmethod
    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One query outside any transaction (it sees everything committed before it)."""

    @abstractmethod
    def wait_for_change(self, timeout: float, tables: Collection[str] | None) -> bool:
        """True once another process commits a change (to one of ``tables``) within ``timeout``."""

    @abstractmethod
    def close(self) -> None: ...
