"""wait_for_change, on SQLite (PRAGMA data_version polling) and PostgreSQL (LISTEN/NOTIFY): another
process's committed write wakes a waiting register; its own writes do not."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from speedrift.register.store import Register

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

WRITE_GAP = """
import sys
from datetime import datetime, UTC
from pathlib import Path
from speedrift.register.store import Register
with Register.open(Path(sys.argv[1]), url=sys.argv[2]) as register:
    now = datetime.now(UTC)
    if sys.argv[3] == "gap":
        register.record_gap("hub-x", now, now, 0, "from another process")
    else:
        register.record_approval(action_id="a:go", repo="a", kind="dispatch_ready", actor="x", at=now)
"""


def write_from_another_process(hub: Path, url: str, what: str = "gap") -> None:
    done = subprocess.run(
        [sys.executable, "-c", WRITE_GAP, str(hub), url, what], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_a_write_committed_by_another_process_wakes_a_waiting_register(
    register: Register, hub: Path, register_url: str
) -> None:
    assert register.wait_for_change(0) is False  # starts listening
    write_from_another_process(hub, register_url)
    assert register.wait_for_change(60) is True
    assert [gap["detail"] for gap in register.gaps()] == ["from another process"]


def test_with_nothing_written_and_only_its_own_writes_a_wait_ends_false(register: Register) -> None:
    assert register.wait_for_change(0) is False
    register.record_gap("hub-1", NOW, NOW, 1, "mine")
    register.acquire_leases("hub-1", ["r1"], NOW, NOW - NOW)
    assert register.wait_for_change(0.6) is False


def test_a_wait_for_some_tables_ignores_changes_to_others(pg_url: str, tmp_path: Path) -> None:
    with Register.open(tmp_path, url=pg_url) as register:
        assert register.wait_for_change(0, tables=["approvals"]) is False
        write_from_another_process(tmp_path, pg_url, "gap")
        assert register.wait_for_change(1.0, tables=["approvals"]) is False
        write_from_another_process(tmp_path, pg_url, "approval")
        assert register.wait_for_change(60, tables=["approvals", "actions"]) is True
