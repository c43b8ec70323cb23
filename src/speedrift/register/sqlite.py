"""The register's SQLite backend: ``<hub>/register.db`` (or the file a ``sqlite:///…`` URL names).

WAL mode (readers never block the writer), ``synchronous=NORMAL``, a 10 s busy timeout and
``BEGIN IMMEDIATE`` for every write, so several processes (``hub up``, ``hub once``, the
dashboard, ``speedrift mode``) share one file safely. Setting a new file up (WAL, migrations) is
serialized across processes with a ``flock``. A full disk or a read-only file surfaces as the
``OSError`` every other write raises, with the transaction rolled back.
The backend-agnostic :class:`~speedrift.register.store.Register` opens it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from speedrift.fsutil import flocked
from speedrift.register.db import Backend, RegisterBackend, Row, Tx, dialect

BUSY_TIMEOUT_S = 10.0
POLL_S = 0.25  # how often wait_for_change looks at PRAGMA data_version


def _storage_error(error: sqlite3.OperationalError, path: Path) -> OSError | None:
    """SQLite's words for a full disk or a read-only file, as the OSError every other write raises
    (the CLI and the hub treat those alike: one clear line, the transaction rolled back)."""
    text = str(error).lower()
    if "disk is full" in text:
        code = errno.ENOSPC
    elif "readonly database" in text or "read-only" in text:
        code = errno.EROFS
    else:
        return None
    return OSError(code, f"{os.strerror(code)} ({error})", str(path))


class SqliteTx(Tx):
    backend = RegisterBackend.SQLITE

    def __init__(self, db: sqlite3.Connection) -> None:
        super().__init__()
        self._db = db

    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._db.execute(sql, params).rowcount

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._db.executemany(sql, rows)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Row]:
        return [dict(row) for row in self._db.execute(sql, params)]

    def _insert_id(self, sql: str, params: tuple[Any, ...]) -> int:
        return int(self._db.execute(sql, params).lastrowid or 0)


class SqliteBackend(Backend):
    """One connection to a register file, opened and migrated at once."""

    kind = RegisterBackend.SQLITE

    def __init__(self, path: Path, prepare: Callable[[Tx, str], None]) -> None:
        self.path = path
        self.where = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._seen_version: int | None = None
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # Switching a new database to WAL takes an exclusive lock that SQLite does not wait for
        # (two processes opening a fresh register at once get "database is locked"): setting up
        # the file is serialized across processes; afterwards WAL handles concurrency itself.
        with flocked(path.with_name(path.name + ".setup.lock")):
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self.write() as tx:
                prepare(tx, self.where)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One writing transaction: BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlock)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield SqliteTx(self._db)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite may have rolled back already (a full disk)
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as error:
                refused = _storage_error(error, self.path)
                if refused is None:
                    raise
                raise refused from error

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return [dict(row) for row in self._db.execute(dialect(sql, self.kind), tuple(params))]

    def _data_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def wait_for_change(self, timeout: float, tables: Collection[str] | None) -> bool:
        """SQLite sends no notifications: poll ``PRAGMA data_version`` (it moves when another
        connection commits). Tables cannot be told apart, so any change counts."""
        deadline = time.monotonic() + timeout
        baseline = self._seen_version if self._seen_version is not None else self._data_version()
        while True:
            version = self._data_version()
            if version != baseline:
                self._seen_version = version
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                self._seen_version = version
                return False
            time.sleep(min(POLL_S, left))
