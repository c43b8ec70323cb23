"""Running the real ``speedrift`` console script in a subprocess, and reading what it left on disk.

Nothing is mocked: every command is ``python -m speedrift ...`` in a real git repository, and the
tests look at exit codes, stdout/stderr and the bytes in ``.workgraph/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GRAPH_DIR = ".workgraph"
GRAPH_FILE = "graph.jsonl"

# Variables that would steer speedrift or git away from the temp repo under test.
_SCRUBBED = ("WG_DIR", "WG_AGENT_ID", "WG_USER", "GIT_DIR", "GIT_WORK_TREE", "COLUMNS", "LINES")

TEST_USER = "tester"


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        GIT_AUTHOR_NAME="Speedrift Test",
        GIT_AUTHOR_EMAIL="test@speedrift.invalid",
        GIT_COMMITTER_NAME="Speedrift Test",
        GIT_COMMITTER_EMAIL="test@speedrift.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        WG_USER=TEST_USER,
        # Rich wraps human output at the terminal width (80 when piped); a wide "terminal" keeps
        # table rows and long temp paths on one line. The wrapping itself is tested on its own.
        COLUMNS="250",
        PYTHONIOENCODING="utf-8",
    )
    return env


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=base_env(), capture_output=True, text=True, check=True
    )
    return done.stdout


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        shown = " ".join(repr(a) if len(a) < 200 else f"<{len(a)} chars>" for a in self.args)
        return (
            f"speedrift {shown}\n-> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )


class Cli:
    """``speedrift`` bound to a working directory and environment."""

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.cwd = cwd
        self.env = dict(env) if env is not None else base_env()

    def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> Result:
        full_env = {**self.env, **(env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "speedrift", *args],
            cwd=cwd or self.cwd,
            env=full_env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return Result(
            tuple(args),
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )

    def ok(self, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Result:
        """Run and insist on exit 0."""
        result = self(*args, cwd=cwd, env=env)
        assert result.returncode == 0, str(result)
        return result

    def json(self, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Any:
        """Run with ``--json``, insist on exit 0, decode stdout."""
        return self.ok(*args, "--json", cwd=cwd, env=env).json()

    def fails(
        self, code: int, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> Result:
        """Run and insist on exit ``code`` (1 refused/failed, 2 usage)."""
        result = self(*args, cwd=cwd, env=env)
        assert result.returncode == code, str(result)
        return result


# --- what is on disk ----------------------------------------------------------------------------
def graph_path(repo: Path) -> Path:
    return repo / GRAPH_DIR / GRAPH_FILE


def graph_bytes(repo: Path) -> bytes:
    return graph_path(repo).read_bytes()


def graph_tasks(repo: Path) -> dict[str, dict[str, Any]]:
    """The task nodes in graph.jsonl by id (skipping lines that are not JSON objects)."""
    out: dict[str, dict[str, Any]] = {}
    for line in graph_bytes(repo).splitlines():
        try:
            node = json.loads(line)
        except ValueError:
            continue
        if isinstance(node, dict) and node.get("kind") == "task":
            out[node["id"]] = node
    return out


def append_line(repo: Path, line: bytes | dict[str, Any]) -> int:
    """Append one raw line to graph.jsonl as another tool would; returns its 1-based line number."""
    raw = line if isinstance(line, bytes) else json.dumps(line, separators=(",", ":")).encode()
    path = graph_path(repo)
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data += b"\n"
    path.write_bytes(data + raw + b"\n")
    return len(path.read_bytes().splitlines())


def task_node(task_id: str, title: str | None = None, **fields: Any) -> dict[str, Any]:
    """A task line as wg writes it: open, created just now (so no age bump) unless given."""
    node: dict[str, Any] = {
        "kind": "task",
        "id": task_id,
        "title": title if title is not None else task_id,
        "status": "open",
        "created_at": datetime.now(UTC).isoformat(),
    }
    node.update(fields)
    return node


def oplog_records(repo: Path) -> list[dict[str, Any]]:
    path = repo / GRAPH_DIR / "log" / "operations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def seed(repo: Path, *nodes: dict[str, Any]) -> None:
    """Write task lines straight into graph.jsonl (setup that is not the behaviour under test)."""
    for node in nodes:
        append_line(repo, node)
