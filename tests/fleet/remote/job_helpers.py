"""Real repositories and job specs for the worker-side job tests (fleet/remote/job.py)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import speedrift
from speedrift.agents.protocol import Budgets
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.remote.spec import KEY_PREFIX, EnvRecipe, JobSpec, RepoSource, SourceKind
from speedrift.fleet.supervisor import repo_key
from speedrift.repo.worktrees import branch_name
from tests.gitrepo import make_repo, sh_git

FAST = {"skip": ["sast", "sca", "lint", "types"]}  # the gate tools are not what these tests are about
BUDGETS = Budgets(wall_clock_s=300, stall_s=300, kill_grace_s=2, startup_s=60)


def user_repo(path: Path) -> Path:
    return make_repo(path, {"README.md": "# demo\n", "app.py": "print('v1')\n"}, graph=False)


def bundle_of(repo: Path, ref: str = "main") -> bytes:
    out = repo.parent / f"{repo.name}-{uuid.uuid4().hex[:8]}.bundle"
    subprocess.run(
        ["git", "bundle", "create", "-q", str(out), ref], cwd=repo, check=True, capture_output=True
    )
    data = out.read_bytes()
    out.unlink()
    return data


def bundle_source(repo: Path) -> RepoSource:
    return RepoSource(SourceKind.BUNDLE, bundle=bundle_of(repo), ref="refs/heads/main")


def make_spec(
    repo: Path,
    command: str,
    *,
    source: RepoSource | None = None,
    config: dict[str, Any] | None = None,
    task_id: str = "t-write",
    attempt: int = 1,
    run_gates: bool = False,
    version: str = speedrift.__version__,
) -> JobSpec:
    settings: dict[str, Any] = {"gates": FAST, "sandbox": {"mode": "off"}, **(config or {})}
    return JobSpec(
        key=f"{KEY_PREFIX}-{task_id}-{attempt}-{uuid.uuid4().hex[:8]}",
        version=version,
        repo_name=repo.name,
        repo_key=repo_key(repo),
        source=source or bundle_source(repo),
        base_commit=sh_git(repo, "rev-parse", "main"),
        branch=branch_name(task_id, attempt),
        target_branch="main",
        task={"id": task_id, "title": task_id.replace("-", " "), "exec": command, "status": "in-progress"},
        attempt=attempt,
        prompt=f"run {command}",
        runtime="shell",
        model=None,
        exec_command=command,
        options={},
        budgets=BUDGETS,
        env=EnvRecipe(),
        config=RepoConfig.model_validate(settings),
        run_gates=run_gates,
    )


def leftovers(cache: Path) -> list[str]:
    """What a finished job must not leave in the cache: worktrees, run dirs, running records."""
    found: list[str] = []
    for folder in ("work", "runs", "running"):
        if (cache / folder).is_dir():
            found += [f"{folder}/{p.name}" for p in (cache / folder).iterdir()]
    return found


def branches(cache_repo: Path) -> list[str]:
    return sh_git(cache_repo, "for-each-ref", "--format=%(refname)", "refs/heads/").split()
