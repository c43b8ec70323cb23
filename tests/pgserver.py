"""A real PostgreSQL server for the tests, started by the tests themselves.

One server per test process (a pytest-xdist worker), in a fresh temp directory, on a free port on
127.0.0.1, with ``fsync=off``: ``initdb`` then ``pg_ctl start``; stopped at the end of the session.
Each test that asks for :func:`pg_url` gets a database of its own (``CREATE DATABASE``), so tests
never see each other's rows. As root, PostgreSQL refuses to run (``initdb: cannot be run as
root``): the server then runs as ``nobody`` through ``runuser``.

Where PostgreSQL is missing, the tests that need it are skipped with the fix — except under
``$CI``, which fails them (scripts/test installs the Debian ``postgresql`` package first).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FIX = "install PostgreSQL (Debian: apt-get install postgresql); scripts/test does it as root"
USER = "speedrift"


def _bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgServer:
    """A running server: its directory, port and the superuser to connect as."""

    root: Path
    port: int
    bindir: Path
    as_nobody: bool
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        with self._lock:
            name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port (a lost connection, from the clients' side)."""
        self._ctl("-m", "immediate", "-w", "stop", check=False)
        self._start()

    def stop_only(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop", check=False)

    def start(self) -> None:
        self._start()

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.as_nobody:
            argv = ["runuser", "-u", "nobody", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args], check=check)

    def _start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._ctl("-l", str(self.root / "sock" / "pg.log"), "-w", "-t", "60", "-o", options, "start")

    @classmethod
    def launch(cls) -> PgServer:
        bindir = _bindir()
        if bindir is None:
            raise FileNotFoundError(f"PostgreSQL's initdb was not found; {FIX}")
        as_nobody = os.geteuid() == 0
        root = Path(tempfile.mkdtemp(prefix="speedrift-pg-"))
        root.chmod(0o755)
        for sub in ("data", "sock"):
            (root / sub).mkdir()
            if as_nobody:
                shutil.chown(root / sub, "nobody", "nogroup")
        server = cls(root, _free_port(), bindir, as_nobody)
        initdb = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", USER, "--auth=trust", "-E", "UTF8"]
        server._run([*initdb, "--no-locale"])
        for tries in range(3):  # the free port may be taken by someone else meanwhile
            try:
                server._start()
                return server
            except subprocess.CalledProcessError:
                if tries == 2:
                    raise
                server.port = _free_port()
        return server


_server: PgServer | None = None


def _skip_or_fail(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} — CI must install it first (scripts/test does)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """This test process's PostgreSQL server (started on first use, stopped at the session's end)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _skip_or_fail("psycopg is not installed (pip install -e '.[dev]')")
    try:
        server = PgServer.launch()
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        _skip_or_fail(f"PostgreSQL could not start: {detail.strip()[-500:]}; {FIX}")
        raise
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A URL to a fresh, empty database on the test process's server."""
    return pg_server.create_database()
