"""A real repo with a graph, and a pipeline over it, for worker-plane tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from tests.agents.conftest import real_cli_bin  # noqa: F401 - shared fixture
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
