"""fsutil: atomic replace, exclusive create, fsynced append and flock, as every state file relies on them."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from speedrift import fsutil


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def failing_fsync(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """os.fsync of a file fails (as a full disk would); records the directory listing at that moment."""
    seen: list[list[str]] = []

    def fsync(fd: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        seen.append(sorted(p.name for p in target.parent.iterdir()))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    yield seen


# --- write_atomic -----------------------------------------------------------------------------------
def test_write_atomic_replaces_the_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    fsutil.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_a_failure_mid_write_keeps_the_old_content_and_removes_the_temp_file(
    tmp_path: Path, failing_fsync: list[list[str]]
) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old and whole")
    with pytest.raises(OSError, match="No space left"):
        fsutil.write_atomic(target, b"new" * 1000)
    assert failing_fsync, "the write reached fsync"
    assert any(name.endswith(".tmp") for name in failing_fsync[0])  # the data went to a temp file
    assert target.read_bytes() == b"old and whole"
    assert _leftovers(tmp_path) == []


def test_an_error_in_the_writers_block_keeps_the_old_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "archive.zst"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="compressor broke"), fsutil.atomic_writer(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("compressor broke")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_an_existing_files_permission_bits_are_kept_exactly(tmp_path: Path) -> None:
    private, shared = tmp_path / "private", tmp_path / "shared"
    for path, mode in ((private, 0o600), (shared, 0o664)):
        path.write_bytes(b"old")
        path.chmod(mode)
    fsutil.write_atomic(private, b"new")
    fsutil.write_atomic(shared, b"new")  # 0o664 survives even where the umask would narrow it
    assert (_mode(private), _mode(shared)) == (0o600, 0o664)


def test_without_keep_mode_the_file_gets_the_given_mode(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"old")
    token.chmod(0o644)
    fsutil.write_atomic(token, b"secret", mode=0o600, keep_mode=False)
    assert _mode(token) == 0o600
    assert token.read_bytes() == b"secret"


def test_a_new_file_gets_0644_less_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    fsutil.write_atomic(target, b"{}")
    assert _mode(target) == 0o644 & ~_umask()


def test_a_stale_temp_file_of_a_crashed_write_never_lends_its_mode(tmp_path: Path) -> None:
    token = tmp_path / "token"
    stale = fsutil.temp_path(token)  # same pid and thread: what a crashed earlier write left
    stale.write_bytes(b"half")
    stale.chmod(0o666)
    fsutil.write_atomic(token, b"secret", mode=0o600, keep_mode=False)
    assert _mode(token) == 0o600
    assert not stale.exists()


def test_a_callers_own_temp_name_is_the_one_written_and_removed_on_failure(
    tmp_path: Path, failing_fsync: list[list[str]]
) -> None:
    graph = tmp_path / "graph.jsonl"
    with pytest.raises(OSError):
        fsutil.write_atomic(graph, b"{}", tmp=tmp_path / ".graph.tmp.123")
    assert ".graph.tmp.123" in failing_fsync[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_temp_names_differ_per_thread(tmp_path: Path) -> None:
    names: list[Path] = []
    thread = threading.Thread(target=lambda: names.append(fsutil.temp_path(tmp_path / "f")))
    thread.start()
    thread.join()
    assert names[0] != fsutil.temp_path(tmp_path / "f")
    assert names[0].parent == tmp_path and names[0].name.startswith(".f.")


def test_threads_writing_one_file_at_once_leave_one_complete_version(tmp_path: Path) -> None:
    target = tmp_path / "heartbeat.json"
    versions = [bytes([ord("a") + i]) * 200_000 for i in range(6)]
    fsutil.write_atomic(target, versions[0])
    torn: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            if target.read_bytes() not in versions:
                torn.append(1)

    def writer(data: bytes) -> None:
        for _ in range(15):
            fsutil.write_atomic(target, data)

    watcher = threading.Thread(target=reader)
    watcher.start()
    writers = [threading.Thread(target=writer, args=(v,)) for v in versions]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    watcher.join()
    assert target.read_bytes() in versions
    assert torn == []  # a reader never saw half of one version
    assert _leftovers(tmp_path) == []


# --- create_new ---------------------------------------------------------------------------------------
def test_create_new_writes_a_missing_file_and_never_touches_an_existing_one(tmp_path: Path) -> None:
    token = tmp_path / "token"
    assert fsutil.create_new(token, b"first", mode=0o600) is True
    assert fsutil.create_new(token, b"second", mode=0o600) is False
    assert token.read_bytes() == b"first"
    assert _mode(token) == 0o600
    assert _leftovers(tmp_path) == []


def test_of_concurrent_creators_exactly_one_wins(tmp_path: Path) -> None:
    target = tmp_path / "ecosystem.toml"
    results: dict[int, bool] = {}
    start = threading.Barrier(8)

    def create(number: int) -> None:
        start.wait()
        results[number] = fsutil.create_new(target, f"writer {number}\n".encode())

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, won in results.items() if won]
    assert len(winners) == 1
    assert target.read_text() == f"writer {winners[0]}\n"
    assert _leftovers(tmp_path) == []


# --- append_synced and write_all -------------------------------------------------------------------------
def test_append_synced_creates_the_file_then_appends(tmp_path: Path) -> None:
    ledger = tmp_path / "outcomes.jsonl"
    fsutil.append_synced(ledger, b"one\n")
    fsutil.append_synced(ledger, b"two\n")
    assert ledger.read_bytes() == b"one\ntwo\n"


def test_write_all_keeps_writing_after_short_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    calls: list[int] = []

    def short_write(fd: int, data: bytes | memoryview) -> int:  # as a signal or a full pipe cuts it
        calls.append(1)
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", short_write)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fsutil.write_all(fd, b"x" * 100)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"x" * 100
    assert len(calls) == 15


def test_fsync_dir_refuses_a_file(tmp_path: Path) -> None:
    fsutil.fsync_dir(tmp_path)
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        fsutil.fsync_dir(tmp_path / "f")


# --- flocked ----------------------------------------------------------------------------------------------
_TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.flock(fd, (fcntl.LOCK_SH if sys.argv[2] == "shared" else fcntl.LOCK_EX) | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""

_HOLD_LOCK = """
import sys
from pathlib import Path
from speedrift import fsutil
with fsutil.flocked(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def _try_lock(lock: Path, kind: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _TRY_LOCK, str(lock), kind],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_flocked_excludes_another_process_until_released(tmp_path: Path) -> None:
    lock = tmp_path / "merge.lock"
    with fsutil.flocked(lock):
        assert _try_lock(lock, "exclusive") == "busy"
        assert _try_lock(lock, "shared") == "busy"
    assert _try_lock(lock, "exclusive") == "free"


def test_shared_holders_coexist_but_exclude_an_exclusive_one(tmp_path: Path) -> None:
    lock = tmp_path / "worktrees.lock"
    with fsutil.flocked(lock, shared=True):
        assert _try_lock(lock, "shared") == "free"
        assert _try_lock(lock, "exclusive") == "busy"


def test_flocked_waits_for_a_lock_another_process_holds(tmp_path: Path) -> None:
    lock = tmp_path / "control.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        holder.stdin.close()  # the holder leaves its block and releases
        with fsutil.flocked(lock):
            assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_flocked_creates_missing_directories_unless_told_not_to(tmp_path: Path) -> None:
    with fsutil.flocked(tmp_path / "hub" / "ledger" / ".lock"):
        pass
    assert (tmp_path / "hub" / "ledger" / ".lock").is_file()
    gone = tmp_path / "gone" / "graph.lock"
    with pytest.raises(FileNotFoundError), fsutil.flocked(gone, create_dirs=False):
        pass
    assert not (tmp_path / "gone").exists()
