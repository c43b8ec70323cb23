"""The PostgreSQL register when the server goes away, when processes migrate a fresh database at
once, and when psycopg is missing: RegisterUnavailable (never a psycopg error), nothing half-written,
the same Register object working again once the server is back."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from speedrift.errors import UsageError
from speedrift.register.schema import SCHEMA_VERSION
from speedrift.register.store import Register, RegisterBackend, RegisterUnavailable
from tests.pgserver import PgServer
from tests.register.test_register import cycle
from tests.waiting import wait_for

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def checkpoint(url: str) -> None:
    """Make everything committed so far durable (the test server runs with synchronous_commit=off)."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CHECKPOINT")


def test_a_register_whose_server_is_down_opens_and_then_says_it_is_unreachable_without_the_password(
    tmp_path: Path,
) -> None:
    register = Register.open(tmp_path, url="postgres://hub:s3cret@127.0.0.1:1/speedrift")
    assert register.backend is RegisterBackend.POSTGRESQL and register.path is None
    assert register.where == "postgres://hub:***@127.0.0.1:1/speedrift"
    with pytest.raises(RegisterUnavailable) as raised:
        register.cycles()
    text = str(raised.value)
    assert "postgres://hub:***@127.0.0.1:1/speedrift is unreachable" in text and "s3cret" not in text
    assert "pg_isready" in text
    assert register.wait_for_change(0.2) is False  # a lost listener never raises
    register.close()


def test_a_lost_server_makes_calls_raise_register_unavailable_and_the_same_register_works_again(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    with Register.open(tmp_path, url=pg_url) as register:
        register.record_cycle(cycle("c-1"))
        assert register.wait_for_change(0) is False
        checkpoint(pg_url)
        pg_server.stop_only()
        try:
            with pytest.raises(RegisterUnavailable):
                register.cycles()
            with pytest.raises(RegisterUnavailable):
                register.record_gap("hub-1", NOW, NOW, 0, "down")
            assert register.wait_for_change(0.3) is False
        finally:
            pg_server.start()
        assert [c["cycle_id"] for c in register.cycles()] == ["c-1"]
        register.record_gap("hub-1", NOW, NOW + timedelta(minutes=1), 2, "the server restarted")
        assert [gap["cycles_backfilled"] for gap in register.gaps()] == [2]
        assert register.wait_for_change(0) is False  # listening again
        with Register.open(tmp_path, url=pg_url) as other:
            other.record_cycle(cycle("c-2"))
        # the other Register is in this process too: its notification is this process's own
        assert register.wait_for_change(0.3) is False


def test_a_write_cut_off_mid_transaction_is_rolled_back_whole(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    with Register.open(tmp_path, url=pg_url) as register:
        register.record_cycle(cycle("c-1"))
        checkpoint(pg_url)
        blocker = psycopg.connect(pg_url, autocommit=True)
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE repo_health IN ACCESS EXCLUSIVE MODE")
        failures: list[BaseException] = []

        def write() -> None:
            try:
                register.record_cycle(cycle("c-2"))  # its cycles row is written, then it waits
            except BaseException as error:  # the test inspects it
                failures.append(error)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            wait_for(
                lambda: (
                    blocker.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    ).fetchone()
                    == (1,)
                ),
                "the register's write to wait for the locked table",
            )
        finally:
            pg_server.stop_only()
            writer.join(timeout=120)
            blocker.close()
            pg_server.start()
        assert len(failures) == 1 and isinstance(failures[0], RegisterUnavailable), failures
        assert "rolled back" in str(failures[0])
        assert [c["cycle_id"] for c in register.cycles()] == ["c-1"]  # not half of c-2
        assert len(register.repo_history("a")) == 1
        register.record_cycle(cycle("c-3", NOW + timedelta(hours=1)))
        assert [c["cycle_id"] for c in register.cycles()] == ["c-3", "c-1"]


MIGRATOR = """
import sys
from pathlib import Path
from speedrift.register.store import Register
sys.stdin.readline()
with Register.open(Path(sys.argv[1]), url=sys.argv[2]) as register:
    print(register.schema_version(), flush=True)
"""


def test_processes_migrating_a_fresh_database_at_once_take_turns_and_migrate_once(
    pg_url: str, tmp_path: Path
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, str(tmp_path), pg_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == str(SCHEMA_VERSION)
    with psycopg.connect(pg_url) as db:
        versions = db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        identity = db.execute(
            "SELECT is_identity, data_type FROM information_schema.columns "
            "WHERE table_name = 'register_gaps' AND column_name = 'id'"
        ).fetchone()
    assert versions == [(1,), (2,)]
    assert identity == ("YES", "bigint")


def test_without_psycopg_a_postgresql_url_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets when it is missing
    monkeypatch.delitem(sys.modules, "speedrift.register.postgres", raising=False)
    with pytest.raises(UsageError) as raised:
        Register.open(tmp_path, url="postgresql://hub@127.0.0.1:1/speedrift")
    assert "pip install 'speedrift[scale]'" in str(raised.value)
    with Register.open(tmp_path) as sqlite:  # the default register never needs it
        assert sqlite.backend is RegisterBackend.SQLITE


def test_a_read_only_database_is_still_read_and_refuses_writes_as_sqlite_would(
    pg_url: str, tmp_path: Path
) -> None:
    with Register.open(tmp_path, url=pg_url) as register:
        register.record_cycle(cycle("c-1"))
    with psycopg.connect(pg_url, autocommit=True) as admin:  # as on a standby: every transaction read-only
        admin.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" SET default_transaction_read_only = on')
    with Register.open(tmp_path, url=pg_url) as register:
        assert [c["cycle_id"] for c in register.cycles()] == ["c-1"]
        with pytest.raises(OSError) as raised:
            register.record_gap("hub-1", NOW, NOW, 0, "x")
        assert raised.value.errno == errno.EROFS and "read-only" in str(raised.value)
        assert register.schema_version() == SCHEMA_VERSION  # the connection is still good
