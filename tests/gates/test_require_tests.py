"""`[gates] require_tests`: a repo with tests must run them; one without lands unverified, or not at all."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from speedrift.fleet.config import ConfigError, load_config
from speedrift.gates import bundle as bundles
from speedrift.gates.tools import GATE_PATH_ENV
from tests.gates.conftest import NewRepo, gate, without_tools

CALC = "def add(a, b):\n    return a + b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
FLAT = {"calc.py": CALC, "test_calc.py": TEST_CALC}


def with_pytest() -> dict[str, str]:
    """Gate tools from this interpreter's environment (where pytest is installed)."""
    return {**os.environ, GATE_PATH_ENV: str(Path(sys.executable).parent)}


def test_a_flat_repo_without_pytest_configuration_has_its_tests_run(new_repo: NewRepo) -> None:
    repo = new_repo(FLAT)
    repo.change({"calc.py": CALC.replace("a + b", "a - b")})
    evidence = repo.gates(only=("tests",), env=with_pytest())
    result = gate(evidence, "tests")
    assert (result.status, result.failure_class) == ("fail", "regression")
    assert result.reason == "1 regression(s) (1 failed, 0 passed): test_calc::test_add"
    assert not evidence.passed and evidence.verified is False


def test_a_flat_repo_whose_tests_pass_is_verified(new_repo: NewRepo) -> None:
    repo = new_repo(FLAT)
    repo.change({"calc.py": CALC + "\n\ndef sub(a, b):\n    return a - b\n"})
    evidence = repo.gates(only=("tests",), env=with_pytest())
    assert gate(evidence, "tests").reason == "1 test(s) passed"
    assert evidence.passed and evidence.verified and evidence.unverified_reason is None
    assert bundles.to_dict(evidence)["verified"] is True
    assert not bundles.summary(evidence).endswith("unverified")


def test_a_repo_without_tests_passes_unverified_by_default(new_repo: NewRepo) -> None:
    repo = new_repo({"calc.py": CALC})
    repo.change({"calc.py": CALC + "\n"})
    evidence = repo.gates(only=("tests",))
    result = gate(evidence, "tests")
    assert result.status == "skipped"
    assert result.reason == "no tests found (add tests, or set [gates.tests] command in speedrift.toml)"
    assert evidence.passed and evidence.verified is False
    assert evidence.unverified_reason == f"tests skipped: {result.reason}"
    assert bundles.summary(evidence).endswith(" — unverified")


def test_with_require_tests_always_a_repo_without_tests_fails(new_repo: NewRepo) -> None:
    repo = new_repo({"calc.py": CALC})
    repo.change({"calc.py": CALC + "\n"})
    evidence = repo.gates({"require_tests": "always"}, only=("tests",))
    result = gate(evidence, "tests")
    assert (result.status, result.failure_class) == ("fail", "implementation_error")
    assert 'require_tests = "always"' in result.reason and result.reason.endswith("in speedrift.toml)")
    assert not evidence.passed


def test_with_require_tests_never_a_repo_without_tests_passes_as_before(new_repo: NewRepo) -> None:
    repo = new_repo({"calc.py": CALC})
    repo.change({"calc.py": CALC + "\n"})
    evidence = repo.gates({"require_tests": "never"}, only=("tests",))
    assert gate(evidence, "tests").status == "skipped" and evidence.passed and not evidence.verified


def test_tests_present_but_pytest_missing_fail_naming_pytest_and_its_install(
    new_repo: NewRepo, tmp_path: Path
) -> None:
    repo = new_repo(FLAT)
    repo.change({"calc.py": CALC + "\n"})
    evidence = repo.gates(only=("tests",), env=without_tools(tmp_path))
    result = gate(evidence, "tests")
    assert (result.status, result.failure_class) == ("fail", "env_bootstrap")
    assert result.reason == (
        "tests found (test_calc.py) but pytest not installed (pip install pytest in the repo's environment)"
    )
    assert not evidence.passed and evidence.blocking[0].gate == "tests"


def test_a_repo_with_pre_existing_failures_that_breaks_nothing_new_is_verified(new_repo: NewRepo) -> None:
    broken = TEST_CALC + "\n\ndef test_old():\n    assert False\n"
    repo = new_repo({"calc.py": CALC, "test_calc.py": broken})
    repo.change({"calc.py": CALC + "\n"})
    evidence = repo.gates(only=("tests",), env=with_pytest())
    assert gate(evidence, "tests").status == "warn"
    assert evidence.passed and evidence.verified


def test_the_tests_gate_disabled_in_skip_is_unverified_and_always_contradicts_it(
    new_repo: NewRepo, tmp_path: Path
) -> None:
    repo = new_repo(FLAT)
    repo.change({"calc.py": CALC + "\n"})
    evidence = repo.gates({"skip": ["tests"]}, only=("syntax",))
    assert evidence.passed and not evidence.verified
    assert evidence.unverified_reason == "tests skipped: disabled in speedrift.toml ([gates] skip)"
    (tmp_path / "speedrift.toml").write_text('[gates]\nrequire_tests = "always"\nskip = ["tests"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert "require_tests" in str(caught.value) and "speedrift.toml" in str(caught.value)


def test_require_tests_accepts_only_its_three_values(tmp_path: Path) -> None:
    (tmp_path / "speedrift.toml").write_text('[gates]\nrequire_tests = "always"\n')
    assert load_config(tmp_path).gates.require_tests == "always"
    assert load_config(tmp_path / "nowhere").gates.require_tests == "auto"
    (tmp_path / "speedrift.toml").write_text('[gates]\nrequire_tests = "sometimes"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert "gates.require_tests" in str(caught.value)
