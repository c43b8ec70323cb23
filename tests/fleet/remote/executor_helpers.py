"""Pipelines whose attempts develop on a real Dask cluster (tests/daskcluster.py), for the hub-side
executor tests (fleet/remote/executor.py, fleet/remote/ingest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline
from speedrift.fleet.remote.config import ExecutorConfig, RepoSourceMode
from speedrift.fleet.remote.executor import DaskExecutor
from speedrift.fleet.remote.spec import ExecutorKind
from speedrift.gates.verdict import GateVerdict
from speedrift.graph.model import Task
from tests.daskcluster import DaskCluster
from tests.fleet.conftest import Workshop
from tests.fleet.remote.job_helpers import FAST
from tests.gitrepo import sh_git

# the agent unsandboxed (a test reads its pid), the slow gate tools skipped, no backoff on a retry
SETTINGS: dict[str, Any] = {
    "gates": FAST,
    "sandbox": {"mode": "off"},
    "service": {"backoff_seconds": 0},
    "budgets": {"kill_grace_seconds": 2},
}


@dataclass
class CountingGates:
    """The hub's gate runner: passes, and remembers every tip it was asked to check."""

    checked: list[str] = field(default_factory=list)

    def check(self, repo: Path, worktree: Path, base: str, tip: str, task: Task) -> GateVerdict:
        self.checked.append(tip)
        return GateVerdict(True, "hub gates pass", {"gates": [], "tip": tip, "gated_by": "hub"})


def dask_executor(cluster: DaskCluster) -> DaskExecutor:
    config = ExecutorConfig(
        ExecutorKind.DASK,
        cluster.address,
        repo_source=RepoSourceMode.AUTO,
        connect_timeout_s=60,
        heartbeat_s=1,
    )
    return DaskExecutor(config)


def dask_pipeline(
    shop: Workshop,
    cluster: DaskCluster,
    gates: CountingGates | None = None,
    settings: dict[str, Any] | None = None,
) -> Pipeline:
    config = RepoConfig.model_validate(SETTINGS | (settings or {}))
    return Pipeline(
        shop.repo, shop.store, config, gates=gates or CountingGates(), executor=dask_executor(cluster)
    )


def attempt_record(run_dir: Path | str) -> dict[str, Any]:
    return dict(json.loads((Path(run_dir) / "attempt.json").read_text()))


def evidence_of(run_dir: Path | str) -> dict[str, Any]:
    return dict(json.loads((Path(run_dir) / "evidence.json").read_text()))


def commits_touching(repo: Path, path: str, branch: str = "main") -> int:
    return len(sh_git(repo, "log", "--format=%H", branch, "--", path).split())
