""" "Done" means verified: the real pipeline, a shell agent, real pytest in a flat repo.

Observed before: in a flat repo (calc.py and test_calc.py at the root, no pytest configuration) a
change that broke the test landed as done. Now the test runs and blocks it; a repo without tests
lands as done (unverified), with the reason in the evidence and on the task.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.gates.suite import for_repo
from speedrift.gates.tools import GATE_PATH_ENV
from speedrift.graph import ops
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from tests.gitrepo import make_repo, sh_git

CALC = "def add(a, b):\n    return a + b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
FLAT = {"README.md": "# calc\n", "calc.py": CALC, "test_calc.py": TEST_CALC}
BREAK = "printf 'def add(a, b):\\n    return a - b\\n' > calc.py"
EXTEND = "printf '\\n\\ndef sub(a, b):\\n    return a - b\\n' >> calc.py"
FAST = {"skip": ["sast", "sca"]}  # semgrep and the audits are not what these tests are about


class Flat:
    def __init__(self, path: Path, files: dict[str, str]) -> None:
        self.repo = make_repo(path, files)
        self.store = GraphStore(self.repo / ".workgraph")

    def run(self, task_id: str, command: str, **gates: Any) -> AttemptResult:
        spec = ops.NewTask(task_id, task_id=task_id, exec_command=command)
        self.store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))
        config = RepoConfig.model_validate({"gates": {**FAST, **gates}})
        suite = for_repo(config.gates, self.store, config.target_branch)
        return Pipeline(self.repo, self.store, config, gates=suite).run(task_id, RunOptions())

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.store.load().tasks[task_id])

    def main(self) -> str:
        return sh_git(self.repo, "rev-parse", "main")


def evidence_of(result: AttemptResult) -> dict[str, Any]:
    return dict(json.loads(Path(result.run_dir or "", "evidence.json").read_text()))


def gate_result(evidence: dict[str, Any]) -> dict[str, Any]:
    return dict(next(r for r in evidence["gates"][-1]["results"] if r["gate"] == "tests"))


@pytest.fixture
def pytest_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gate tools from this interpreter's environment, where pytest is really installed."""
    monkeypatch.setenv(GATE_PATH_ENV, str(Path(sys.executable).parent))


@pytest.mark.usefixtures("pytest_here")
def test_a_flat_pytest_repo_whose_broken_test_blocks_landing(tmp_path: Path) -> None:
    flat = Flat(tmp_path / "calc", FLAT)
    before = flat.main()
    result = flat.run("break-add", BREAK)
    assert result.status == "failed" and result.failure == "regression", result.reason
    assert flat.main() == before  # nothing landed
    assert (flat.repo / "calc.py").read_text() == CALC
    task = flat.task("break-add")
    assert task["status"] == "failed" and "test_calc::test_add" in str(task["failure_reason"])
    tests = gate_result(evidence_of(result))
    assert (tests["status"], tests["failure_class"]) == ("fail", "regression")
    assert tests["reason"].startswith("1 regression(s) (1 failed, 0 passed)")


@pytest.mark.usefixtures("pytest_here")
def test_the_same_flat_repo_with_a_passing_change_lands_verified(tmp_path: Path) -> None:
    flat = Flat(tmp_path / "calc", FLAT)
    result = flat.run("add-sub", EXTEND)
    assert result.status == "done", result.reason
    assert flat.main() == result.landed_commit
    evidence = evidence_of(result)
    assert (evidence["verified"], evidence["unverified_reason"]) == (True, None)
    assert gate_result(evidence)["reason"] == "1 test(s) passed"
    data = speedrift_data(flat.task("add-sub"))
    assert data["verified"] is True and "unverified_reason" not in data


def test_a_repo_without_tests_lands_as_done_unverified_and_says_why(tmp_path: Path) -> None:
    flat = Flat(tmp_path / "notes", {"README.md": "# notes\n", "notes.py": "NOTES = []\n"})
    result = flat.run("add-note", "printf 'NOTES = [1]\\n' > notes.py")
    assert result.status == "done", result.reason
    assert flat.main() == result.landed_commit
    evidence = evidence_of(result)
    assert evidence["verified"] is False
    assert evidence["unverified_reason"] == (
        "tests skipped: no tests found (add tests, or set [gates.tests] command in speedrift.toml)"
    )
    assert result.evidence["verified"] is False  # what `run --json` prints
    task = flat.task("add-note")
    data = speedrift_data(task)
    assert task["status"] == "done" and data["verified"] is False
    assert data["unverified_reason"] == evidence["unverified_reason"]
    assert any(str(e["message"]).endswith("— unverified") for e in task["log"])  # the gates line


def test_require_tests_always_refuses_a_repo_without_tests(tmp_path: Path) -> None:
    flat = Flat(tmp_path / "notes", {"README.md": "# notes\n", "notes.py": "NOTES = []\n"})
    before = flat.main()
    result = flat.run("add-note", "printf 'NOTES = [1]\\n' > notes.py", require_tests="always")
    assert result.status == "failed" and result.failure == "implementation_error", result.reason
    assert flat.main() == before
    assert 'require_tests = "always"' in str(flat.task("add-note")["failure_reason"])


def test_tests_present_but_pytest_missing_do_not_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv(GATE_PATH_ENV, str(empty))
    flat = Flat(tmp_path / "calc", FLAT)
    before = flat.main()
    result = flat.run("add-sub", EXTEND)
    assert result.status == "failed" and result.failure == "env_bootstrap", result.reason
    assert flat.main() == before
    reason = str(flat.task("add-sub")["failure_reason"])
    assert "tests found (test_calc.py) but pytest not installed" in reason
    assert "(pip install pytest in the repo's environment)" in reason  # the hint survives every cut
    assert os.environ[GATE_PATH_ENV] == str(empty)


@pytest.mark.usefixtures("pytest_here")
def test_a_test_the_agent_wrote_runs_without_the_credentials_speedrift_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tests gate runs agent-written code outside the agent's sandbox: it must not be a way
    round the scrubbed environment. The agent's test fails if it can see the token."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_" + "k3y" * 12)
    flat = Flat(tmp_path / "calc", FLAT)
    probe = (
        "printf 'import os\\n\\n\\ndef test_env():\\n"
        '    assert "GITHUB_TOKEN" not in os.environ\\n\' > test_env.py'
    )
    result = flat.run("probe-env", probe)
    assert result.status == "done", result.reason
    assert gate_result(evidence_of(result))["reason"] == "2 test(s) passed"
