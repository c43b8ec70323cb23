"""The register's fixtures: every register test runs against SQLite and against a real PostgreSQL
server (tests/pgserver.py; a fresh database per test)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from speedrift.register.store import Register

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes a URL to a new, empty register of the test's backend each time it is called."""
    if backend == "postgresql":
        server = request.getfixturevalue("pg_server")
        make: Callable[[], str] = server.create_database
        return make
    names = itertools.count(1)
    return lambda: f"sqlite:///{tmp_path}/db-{next(names)}/register.db"


@pytest.fixture
def register_url(fresh_url: Callable[[], str]) -> str:
    return fresh_url()


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    return tmp_path / "hub"


@pytest.fixture
def register(hub: Path, register_url: str) -> Iterator[Register]:
    opened = Register.open(hub, url=register_url)
    yield opened
    opened.close()
