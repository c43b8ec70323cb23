"""The tests gate: regressions fail, failures the base already had warn, broken commands are named."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from speedrift.gates.tools import GATE_PATH_ENV
from tests.gates.conftest import NewRepo, gate

PYTEST = {"tests": {"command": [sys.executable, "-m", "pytest", "-q"]}}
CALC = "def add(a, b):\n    return a + b\n"
TESTS = (
    "from calc import add\n\n\n"
    "def test_add():\n    assert add(1, 2) == 3\n\n\n"
    "def test_known_broken():\n    assert False, 'broken since forever'\n"
)


def test_a_test_that_passed_at_the_base_and_fails_now_is_a_regression(new_repo: NewRepo) -> None:
    repo = new_repo({"calc.py": CALC, "tests/test_calc.py": TESTS})
    repo.change({"calc.py": CALC.replace("a + b", "a - b")})
    result = gate(repo.gates(PYTEST, only=("tests",)), "tests")
    assert (result.status, result.failure_class) == ("fail", "regression")
    assert [(f.kind, f.file, f.line, f.new) for f in result.findings] == [
        ("regression", "tests/test_calc.py", 4, True),
        ("pre-existing-failure", "tests/test_calc.py", 8, False),
    ]
    assert "tests.test_calc::test_add" in result.reason


def test_failures_the_base_already_had_only_warn(new_repo: NewRepo) -> None:
    repo = new_repo({"calc.py": CALC, "tests/test_calc.py": TESTS})
    repo.change({"calc.py": CALC + "\n\ndef sub(a, b):\n    return a - b\n"})
    result = gate(repo.gates(PYTEST, only=("tests",)), "tests")
    assert result.status == "warn"
    assert result.reason == "1 failure(s) already present at the base commit"
    cached = list((repo.path / ".speedrift" / "cache" / "gates" / "tests").glob("*.json"))
    assert len(cached) == 1  # the base ran once; the next attempt from this base reuses it


def test_a_new_test_that_fails_is_an_implementation_error(new_repo: NewRepo) -> None:
    repo = new_repo({"calc.py": CALC, "tests/test_calc.py": TESTS.split("\n\n\ndef test_known")[0] + "\n"})
    repo.change(
        {"tests/test_more.py": "from calc import add\n\n\ndef test_new():\n    assert add(2, 2) == 5\n"}
    )
    result = gate(repo.gates(PYTEST, only=("tests",)), "tests")
    assert (result.status, result.failure_class) == ("fail", "implementation_error")
    assert [f.kind for f in result.findings] == ["new-test-failure"]


def test_a_passing_suite_passes_and_pytest_is_found_when_the_repo_has_tests_and_config(
    new_repo: NewRepo,
) -> None:
    repo = new_repo(
        {"calc.py": CALC, "pytest.ini": "[pytest]\n", "tests/test_ok.py": "def test_ok():\n    pass\n"}
    )
    repo.change({"calc.py": CALC + "\n"})
    env = {**os.environ, GATE_PATH_ENV: str(Path(sys.executable).parent)}
    result = gate(repo.gates(only=("tests",), env=env), "tests")
    assert (result.status, result.reason) == ("pass", "1 test(s) passed")
    assert result.command[0].endswith("pytest") and "--junitxml" not in " ".join(result.command)


def test_a_wrong_test_command_fails_as_an_environment_problem(new_repo: NewRepo) -> None:
    repo = new_repo({"calc.py": CALC})
    repo.change({"calc.py": CALC + "\n"})
    missing = gate(
        repo.gates({"tests": {"command": ["no-such-test-runner", "-x"]}}, only=("tests",)), "tests"
    )
    assert (missing.status, missing.failure_class) == ("fail", "env_bootstrap")
    assert "test command not found: 'no-such-test-runner'" in missing.reason
    usage = gate(
        repo.gates(
            {"tests": {"command": [sys.executable, "-m", "pytest", "--no-such-flag"]}}, only=("tests",)
        ),
        "tests",
    )
    assert (usage.status, usage.failure_class) == ("fail", "env_bootstrap")
    assert "pytest exit 4" in usage.reason


def test_a_hanging_test_command_is_killed_at_the_timeout_and_fails(new_repo: NewRepo, tmp_path: Path) -> None:
    repo = new_repo({"calc.py": CALC})
    repo.change({"calc.py": CALC + "\n"})
    marker = tmp_path / "child.pid"
    script = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    config = {"tests": {"command": [sys.executable, "-c", script]}, "timeouts": {"tests": 1.5}}
    result = gate(repo.gates(config, only=("tests",)), "tests")
    assert (result.status, result.failure_class) == ("fail", "implementation_error")
    assert "timed out" in result.reason and "[gates.timeouts] tests" in result.reason
    pid = int(marker.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    status = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    assert status in ("Z", "X")  # only a zombie waiting to be reaped may remain


def test_a_custom_command_without_per_test_results_is_judged_as_a_whole(new_repo: NewRepo) -> None:
    repo = new_repo({"check.sh": "exit 0\n"})
    repo.change({"check.sh": "echo failing now; exit 3\n"})
    result = gate(repo.gates({"tests": {"command": ["/bin/sh", "check.sh"]}}, only=("tests",)), "tests")
    assert (result.status, result.failure_class) == ("fail", "regression")
    assert "passed at the base commit" in result.reason and "failing now" in result.reason
