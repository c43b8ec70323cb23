"""A real repo with a graph, and a pipeline over it, for worker-plane tests."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from speedrift.agents import preflight
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from tests.agents.conftest import FAKES, real_cli_bin  # noqa: F401 - shared fixture
from tests.agents.realcli import cli_for  # noqa: F401 - shared fixture
from tests.gitrepo import make_repo


class Workshop:
    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.store = GraphStore(repo / ".workgraph")

    def pipeline(self, **config: object) -> Pipeline:
        return Pipeline(self.repo, self.store, RepoConfig.model_validate(config))

    def add(self, task_id: str, exec_command: str | None = None, **fields: object) -> None:
        spec = ops.NewTask(task_id.replace("-", " "), task_id=task_id, exec_command=exec_command, **fields)  # type: ignore[arg-type]
        self.store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))

    def task(self, task_id: str) -> dict[str, object]:
        return self.store.load().tasks[task_id]


@pytest.fixture
def workshop(tmp_path: Path) -> Workshop:
    return Workshop(make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "print('v1')\n"}))


def claude_bin(tmp_path: Path, *, logged_in: bool = True) -> Path:
    """A `claude` on PATH that answers the preflight as Claude Code 2.1.197 does (`--version`,
    `auth status --json`) and runs the shared fake CLI (tests/agents/fakes) for an attempt."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    status = {"loggedIn": logged_in, "authMethod": "api_key" if logged_in else "none"}
    script = folder / "claude"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  --version) echo "2.1.197 (Claude Code)"; exit 0;;\n'
        f"  auth) echo '{json.dumps(status)}'; exit {0 if logged_in else 1};;\n"
        "esac\n"
        f'exec "{sys.executable}" "{FAKES / "claude"}" "$@"\n'
    )
    script.chmod(0o755)
    return folder


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake claude on PATH (answering the preflight); returns the scenario file it reads
    (tests/agents/fakes/fake_agent.py: a list of steps, or per-role runs)."""
    monkeypatch.setenv("PATH", f"{claude_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    file = tmp_path / "scenario.json"
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(file))
    preflight.forget()  # verdicts cached by an earlier test in this process
    return file
