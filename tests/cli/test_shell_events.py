"""`speedrift tail` on a running shell attempt: its stdout and stderr lines, live.

The attempt runs in a process of its own (`speedrift run`); its command prints, writes a marker
file, then blocks on a FIFO until the test opens it — so `tail` is read while the attempt
certainly runs, with no sleep deciding anything.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest

from tests.cli.support import Cli, base_env, git
from tests.waiting import release, wait_for


@pytest.fixture
def committed(repo: Path) -> Path:
    (repo / "README.md").write_text("# r\n")
    (repo / ".gitignore").write_text(".speedrift/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def test_tail_prints_a_shell_attempts_stdout_and_stderr_while_it_runs(
    cli: Cli, committed: Path, tmp_path: Path
) -> None:
    marker, fifo = tmp_path / "printed", tmp_path / "hold.fifo"
    os.mkfifo(fifo)
    (committed / "speedrift.toml").write_text('[sandbox]\nmode = "off"\n')  # it marks outside its worktree
    command = f"echo compiling; echo 'note: cache cold' >&2; : > '{marker}'; read x < '{fifo}'; echo linked"
    cli.ok("add", "Build", "--id", "build", "--exec", command)
    runner = subprocess.Popen(
        [sys.executable, "-m", "speedrift", "run", "build"], cwd=committed, env=base_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    follower: subprocess.Popen[str] | None = None
    try:
        wait_for(marker.exists, "the command to print")
        wait_for(lambda: "note: cache cold" in cli.ok("tail", "build").stdout, "tail to show stderr")
        out = cli.ok("tail", "build").stdout
        assert "compiling" in out and runner.poll() is None  # shown while the attempt runs
        events = [line for line in out.splitlines() if not line.startswith("— ")]
        assert all(line[:4].isdigit() and ("Z output " in line or "Z stderr " in line) for line in events)
        assert "Z stderr   note: cache cold" in out and out.rstrip().endswith(
            "— still running (`-f` follows it)"
        )
        follower = subprocess.Popen(
            [sys.executable, "-m", "speedrift", "tail", "build", "-f"], cwd=committed, env=base_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        assert follower.stdout is not None
        stream = follower.stdout
        threading.Thread(target=_pump, args=(stream, lines), daemon=True).start()
        seen: list[str] = []
        wait_for(lambda: _take(lines, seen) and any("cache cold" in s for s in seen), "tail -f to follow")
        release(fifo)
        wait_for(lambda: _take(lines, seen) and any("linked" in s for s in seen), "tail -f to show the end")
        assert follower.wait(timeout=60) == 0  # it ends with the attempt
        wait_for(lambda: _take(lines, seen) and seen[-1].startswith("— attempt 1 done"), "the final state")
    finally:
        release(fifo)
        runner.communicate(timeout=120)
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.wait()
    assert runner.returncode == 0


def _take(lines: queue.SimpleQueue[str], seen: list[str]) -> bool:
    while True:
        try:
            seen.append(lines.get_nowait())
        except queue.Empty:
            return True


def _pump(stream: IO[str], lines: queue.SimpleQueue[str]) -> None:
    for line in stream:
        lines.put(line)
