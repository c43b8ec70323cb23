"""SQLite-only behaviour of the register: the WAL file in the hub directory, and the sqlite URL forms."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from speedrift.errors import UsageError
from speedrift.register.store import Register, RegisterBackend


def test_a_new_register_is_a_wal_file_in_the_hub_directory(tmp_path: Path) -> None:
    with Register.open(tmp_path / "hub") as register:
        assert register.path == tmp_path / "hub" / "register.db"
        assert register.backend is RegisterBackend.SQLITE and register.where == str(register.path)
        with sqlite3.connect(register.path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "cycles",
        "repo_health",
        "actions",
        "corrective_tasks",
        "mode_changes",
        "approvals",
        "repo_leases",
        "register_gaps",
    } <= tables


def test_a_sqlite_url_places_the_file_and_other_urls_are_refused(tmp_path: Path) -> None:
    with Register.open(tmp_path / "hub", url=f"sqlite:///{tmp_path}/elsewhere/central.db") as register:
        assert register.path == tmp_path / "elsewhere" / "central.db" and register.path.exists()
    with Register.open(tmp_path / "hub", url=f"sqlite:////{tmp_path}/elsewhere/central.db") as same:
        assert same.path == tmp_path / "elsewhere" / "central.db"
    with pytest.raises(UsageError, match="no absolute file path"):
        Register.open(tmp_path, url="sqlite://relative.db")
    with pytest.raises(UsageError, match="unsupported register URL") as raised:
        Register.open(tmp_path, url="mysql://hub:s3cret@db/x")
    assert "s3cret" not in str(raised.value)
