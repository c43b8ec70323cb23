"""The register's PostgreSQL backend (psycopg 3; the ``scale`` extra). The only module importing psycopg.

One connection per register, opened on the first call (an unreachable server never stops
``Register.open``) and guarded by a lock, so calls are serialized as on SQLite. Each new connection
first migrates the schema inside a transaction holding ``pg_advisory_xact_lock``, so processes
migrating one fresh database at once take turns. Every write is one transaction that, when it wrote
anything, sends ``NOTIFY speedrift_register`` with ``{"tables": [...], "by": "<host>:<pid>"}``
(delivered only if it commits); :meth:`PostgresBackend.wait_for_change` listens on a second,
lazily opened connection and ignores this process's own notifications.

Connection loss: a call whose connection turns out dead (the server restarted, the network broke)
reconnects once; if that fails it raises :class:`RegisterUnavailable` (never a psycopg error). A
write interrupted mid-transaction is rolled back by the server and is not retried; the next call
reconnects. An error the server reports on a live connection is not a lost connection: it rolls
the write back and propagates (a full disk or a read-only server as ``OSError``, like SQLite's).
Invariant: nothing is ever half-written.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson

from speedrift import extras
from speedrift.redact import redact_url
from speedrift.register.db import Backend, RegisterBackend, RegisterUnavailable, Row, Tx, dialect

try:
    import psycopg
    from psycopg.rows import dict_row
except ImportError:  # the UsageError naming the extra that installs it (speedrift/extras.py)
    extras.require("psycopg", "a postgresql:// register")
    raise

_T = TypeVar("_T")

CHANNEL = "speedrift_register"
MIGRATION_LOCK = 0x5370656564726966  # pg_advisory_xact_lock key: "Speedrif"
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 10,
    "application_name": "speedrift",
    # a peer that vanished without closing the socket is noticed within about a minute
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin/crash shutdown, cannot connect now
Connection = psycopg.Connection[dict[str, Any]]


def _writer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class PostgresTx(Tx):
    backend = RegisterBackend.POSTGRESQL

    def __init__(self, db: Connection) -> None:
        super().__init__()
        self._db = db

    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._db.execute(sql, params).rowcount

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(sql, rows)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Row]:
        return self._db.execute(sql, params).fetchall()

    def _insert_id(self, sql: str, params: tuple[Any, ...]) -> int:
        row = self._db.execute(sql + " RETURNING id", params).fetchone()
        assert row is not None
        return int(row["id"])


class PostgresBackend(Backend):
    """A register in a PostgreSQL database (see the module docstring)."""

    kind = RegisterBackend.POSTGRESQL

    def __init__(self, url: str, prepare: Callable[[Tx, str], None]) -> None:
        self.url = url
        self.where = redact_url(url)
        self._prepare = prepare
        self._lock = threading.RLock()
        self._db: Connection | None = None
        self._listen_lock = threading.Lock()
        self._listener: Connection | None = None

    # ------------------------------------------------------------------ connections
    def _open(self) -> Connection:
        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, **CONNECT_OPTIONS)

    def _connect(self) -> Connection:
        """A new connection, with the schema migrated (under the advisory lock)."""
        db = self._open()
        try:
            db.execute("BEGIN")
            try:
                db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                tx = PostgresTx(db)
                self._prepare(tx, self.where)
                self._notify(db, tx)
                db.execute("COMMIT")
            except BaseException:
                if not db.broken:
                    db.execute("ROLLBACK")
                raise
        except BaseException:
            db.close()
            raise
        return db

    def _connection(self, fresh: bool = False) -> Connection:
        """This register's connection (made now if there is none). Raises RegisterUnavailable."""
        if fresh:
            self._drop()
        if self._db is None or self._db.closed:
            try:
                self._db = self._connect()
            except psycopg.OperationalError as error:
                raise RegisterUnavailable(self.where, error) from error
        return self._db

    def _drop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def close(self) -> None:
        with self._lock:
            self._drop()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    # ------------------------------------------------------------------ reads and writes
    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        text = dialect(sql, self.kind)
        with self._lock:
            return self._once_more(lambda db: db.execute(text, tuple(params)).fetchall())

    def _begin(self) -> Connection:
        """A connection with a transaction open: a dead connection is replaced once."""

        def begin(db: Connection) -> Connection:
            db.execute("BEGIN")
            return db

        return self._once_more(begin)

    def _once_more(self, step: Callable[[Connection], _T]) -> _T:
        """``step`` on the connection; one that finds it dead runs once more on a fresh one, then
        the register is unavailable (the caller holds the lock)."""
        for attempt in range(2):
            db = self._connection(fresh=attempt > 0)
            try:
                return step(db)
            except psycopg.OperationalError as error:
                if not _lost(error, db):
                    raise
                self._drop()
                if attempt:
                    raise RegisterUnavailable(self.where, error) from error
        raise AssertionError("unreachable")

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with self._lock:
            db = self._begin()
            tx = PostgresTx(db)
            committing = False
            try:
                yield tx
                self._notify(db, tx)
                committing = True
                db.execute("COMMIT")
            except BaseException as error:
                if isinstance(error, psycopg.OperationalError) and _lost(error, db):
                    self._drop()  # the server rolls back a transaction whose connection is gone
                    during = (
                        " while committing (the write may or may not have been applied)"
                        if committing
                        else " during a write (rolled back: nothing of it was applied)"
                    )
                    raise RegisterUnavailable(self.where, error, during=during) from error
                try:
                    if not db.broken:
                        db.execute("ROLLBACK")
                except psycopg.OperationalError:
                    pass  # the connection died meanwhile: the server rolled the transaction back
                if db.broken:
                    self._drop()
                refused = _storage_error(error, self.where)
                if refused is None:
                    raise
                raise refused from error

    def _notify(self, db: Connection, tx: PostgresTx) -> None:
        if tx.written:
            payload = orjson.dumps({"tables": sorted(tx.written), "by": _writer()}).decode()
            db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    # ------------------------------------------------------------------ change notifications
    def _listen(self) -> Connection:
        if self._listener is None or self._listener.closed:
            listener = self._open()
            listener.execute(f"LISTEN {CHANNEL}")
            self._listener = listener
        return self._listener

    def wait_for_change(self, timeout: float, tables: Collection[str] | None) -> bool:
        deadline = time.monotonic() + timeout
        wanted = None if tables is None else {table.lower() for table in tables}
        me = _writer()
        with self._listen_lock:
            try:
                listener = self._listen()
                while (left := deadline - time.monotonic()) > 0:
                    for note in listener.notifies(timeout=left, stop_after=1):
                        if _relevant(note.payload, me, wanted):
                            return True
                return False
            except psycopg.Error:
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
        time.sleep(max(0.0, deadline - time.monotonic()))
        return False


def _storage_error(error: BaseException, where: str) -> OSError | None:
    """The server's full disk, or a read-only server (a standby), as the OSError every other write
    raises — as the SQLite backend reports them."""
    state = getattr(error, "sqlstate", None) if isinstance(error, psycopg.Error) else None
    code = {"53100": errno.ENOSPC, "25006": errno.EROFS}.get(state or "")
    if code is None:
        return None
    return OSError(code, f"{os.strerror(code)} ({str(error).strip()})", where)


def _lost(error: psycopg.OperationalError, db: Connection) -> bool:
    """Whether the error means the connection is gone (the server stopped or restarted, the network
    broke), as opposed to an error the server reported on a live connection (a full disk, say)."""
    state = error.sqlstate
    return db.broken or db.closed or state is None or state.startswith("08") or state in SHUTDOWN_STATES


def _relevant(payload: str, me: str, wanted: set[str] | None) -> bool:
    """A notification about a change by another process, to one of the wanted tables."""
    try:
        note = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(note, dict) or note.get("by") == me:
        return False
    written = note.get("tables")
    if wanted is None:
        return True
    return isinstance(written, list) and not wanted.isdisjoint(str(table) for table in written)
