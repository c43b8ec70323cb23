"""verify_in_progress in a repo no service runs in: an attempt killed mid-landing is settled.

Found by the chaos suite (`speedrift selftest chaos`): where the hub dispatches `speedrift run`
workers and no service runs (the demo's autonomous repo), an attempt killed during its landing
kept its task claimed for good once no other work came — the hub's verification left it "to the
service's recovery", and there was no service. Now the hub starts the worker whose first step is
that recovery. Real processes, real git, the real kill at a named landing step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from speedrift.control.handlers.dispatch import execute
from speedrift.register.actions import VerifyParams
from speedrift.repo import landing
from tests.cli.support import base_env
from tests.control.test_handlers import action, add_task, context, grant, status_of, store
from tests.gitrepo import make_repo, sh_git
from tests.waiting import wait_for

NO_GATES = (
    '[gates]\nskip = ["syntax", "secrets", "scope", "contract", "lint", "types", "tests", "sast", "sca"]\n'
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "shop", {"README.md": "# shop\n", "speedrift.toml": NO_GATES})


def killed_at(repo: Path, step: str) -> None:
    argv = [sys.executable, "-m", "speedrift", "--dir", str(repo / ".workgraph"), "run", "t", "--quiet"]
    env = {**base_env(), landing.KILL_AT_ENV: step}
    child = subprocess.run(argv, cwd=repo, env=env, capture_output=True, timeout=300, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr


@pytest.mark.parametrize("step", ["landing", "moved"])
def test_an_attempt_killed_mid_landing_where_no_service_runs_is_settled_by_a_worker_the_hub_starts(
    repo: Path, tmp_path: Path, step: str
) -> None:
    add_task(repo, "t", "echo t >> out.txt")
    killed_at(repo, step)
    assert status_of(repo, "t") == "in-progress"
    grant(repo, mode="autonomous")

    verify = VerifyParams(tasks=("t",), dead=("t",), aging=())
    outcome = execute(action("verify_in_progress", None, verify), context(repo, tmp_path))

    assert outcome.status == "succeeded", outcome.detail
    (started,) = outcome.evidence["recovering"]
    assert started["task"] == "t" and "speedrift run" in outcome.detail
    wait_for(lambda: status_of(repo, "t") == "done", "the started worker to settle the landing", timeout=180)
    wait_for(lambda: not _alive(started["pid"]), "the started worker to exit", timeout=180)
    assert sh_git(repo, "show", "main:out.txt").splitlines() == ["t"]  # landed once
    assert store(repo).load().tasks["t"].get("status") == "done"


def test_in_supervise_mode_the_hub_starts_no_worker_and_leaves_the_landing_to_a_service(
    repo: Path, tmp_path: Path
) -> None:
    add_task(repo, "t", "echo t >> out.txt")
    killed_at(repo, "landing")
    grant(repo, mode="supervise")

    verify = VerifyParams(tasks=("t",), dead=("t",), aging=())
    outcome = execute(action("verify_in_progress", None, verify), context(repo, tmp_path))

    assert outcome.evidence["recovering"] == [] and outcome.evidence["left_for_recovery"] == ["t"]
    assert "left to the service's recovery" in outcome.detail
    assert status_of(repo, "t") == "in-progress"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False
