"""Where gate tools are found, and how they are run under a deadline."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from speedrift.gates.tools import GATE_PATH_ENV, GateTimeout, ToolFinder, ToolNotRunnable, run


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho found\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_the_repos_own_environment_comes_before_the_search_path(tmp_path: Path) -> None:
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    venv_ruff = executable(repo / ".venv" / "bin" / "ruff")
    executable(elsewhere / "ruff")
    node_eslint = executable(repo / "node_modules" / ".bin" / "eslint")
    finder = ToolFinder(repo, repo, env={GATE_PATH_ENV: str(elsewhere)})
    assert finder.find("ruff") == venv_ruff
    assert finder.find("eslint") == node_eslint
    assert finder.find("mypy") is None
    assert finder.missing_reason("mypy") == "mypy not installed (pip install mypy (or speedrift[gates]))"


def test_a_configured_tool_wins_and_a_wrong_one_is_reported_as_configured(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    executable(repo / ".venv" / "bin" / "ruff")
    pinned = executable(repo / "tools" / "ruff")
    finder = ToolFinder(repo, repo, {"ruff": "tools/ruff", "mypy": "/nowhere/mypy"}, env={})
    assert finder.find("ruff") == pinned
    assert finder.find("mypy") is None
    assert "mypy not found at /nowhere/mypy (set in [gates.tools]" in finder.missing_reason("mypy")


def test_without_the_override_path_and_speedrifts_own_directory_are_searched(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    tool = executable(folder / "semgrep")
    finder = ToolFinder(tmp_path, tmp_path, env={"PATH": str(folder)})
    assert finder.find("semgrep") == tool
    assert finder.search_dirs("semgrep")[-1].name == "bin"  # the interpreter's own bin directory last


def test_a_run_past_its_deadline_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    script = f"sleep 600 & echo $! > {marker}; wait"
    with pytest.raises(GateTimeout, match="test tool timed out"):
        run(["/bin/sh", "-c", script], cwd=tmp_path, env=dict(os.environ), timeout=0.5, what="test tool")
    pid = int(marker.read_text())

    def state() -> str:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
        except FileNotFoundError:
            return "gone"

    deadline = time.monotonic() + 30  # the kernel delivers SIGKILL promptly; a loaded VM may lag
    while state() not in ("gone", "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state() in ("gone", "Z", "X")


def test_a_tool_that_cannot_start_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ToolNotRunnable, match="could not start"):
        run([str(tmp_path / "missing")], cwd=tmp_path, env={}, timeout=5, what="x")
