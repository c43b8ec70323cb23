"""`speedrift run` prints one line per gate and says "done (unverified)"; `show` says it too."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from speedrift.gates.tools import GATE_PATH_ENV
from tests.cli.support import Cli, git, graph_tasks

CALC = "def add(a, b):\n    return a + b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
GATES = ("syntax", "secrets", "scope", "contract", "lint", "types", "tests", "sast", "sca")
BREAK = "printf 'def add(a, b):\\n    return a - b\\n' > calc.py"
EXTEND = "printf '\\n\\ndef sub(a, b):\\n    return a - b\\n' >> calc.py"
FAST = '[gates]\nskip = ["sast", "sca"]\n'  # semgrep and the audits are not what these tests are about


def commit(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")


def with_pytest() -> dict[str, str]:
    return {GATE_PATH_ENV: str(Path(sys.executable).parent)}


def gate_lines(stdout: str) -> dict[str, str]:
    lines = [line.strip() for line in stdout.splitlines() if line.startswith("  ")]
    return {line.split()[0]: line for line in lines if line.split()[0] in GATES}


@pytest.fixture
def flat(repo: Path) -> Path:
    commit(
        repo,
        {".gitignore": ".speedrift/\n", "speedrift.toml": FAST, "calc.py": CALC, "test_calc.py": TEST_CALC},
    )
    return repo


def test_run_of_a_change_that_breaks_a_flat_repos_test_fails_and_prints_every_gate(
    cli: Cli, flat: Path
) -> None:
    cli.ok("add", "Break add", "--id", "break", "--exec", BREAK)
    result = cli.fails(1, "run", "break", env=with_pytest())
    out = result.stdout
    assert "break attempt 1: failed" in out and "failure class: regression" in out
    lines = gate_lines(out)
    assert list(lines) == list(GATES)
    assert (
        lines["tests"]
        == "tests     failed   1 regression(s) (1 failed, 0 passed): test_calc::test_add (pytest)"
    )
    assert lines["sca"] == "sca       skipped  disabled in speedrift.toml ([gates] skip)"
    assert lines["syntax"].startswith("syntax    passed")
    assert graph_tasks(flat)["break"]["status"] == "failed"


def test_run_of_a_passing_change_is_done_and_verified(cli: Cli, flat: Path) -> None:
    cli.ok("add", "Add sub", "--id", "sub", "--exec", EXTEND)
    out = cli.ok("run", "sub", env=with_pytest()).stdout
    assert "sub attempt 1: done — Landed" in out and "unverified" not in out
    assert gate_lines(out)["tests"] == "tests     passed   1 test(s) passed (pytest)"


def test_a_repo_without_tests_lands_done_unverified_in_run_show_and_show_json(cli: Cli, repo: Path) -> None:
    commit(repo, {".gitignore": ".speedrift/\n", "speedrift.toml": FAST, "notes.py": "NOTES = []\n"})
    cli.ok("add", "Note", "--id", "note", "--exec", "printf 'NOTES = [1]\\n' > notes.py")
    result = cli.ok("run", "note")  # exit 0: it landed
    out = result.stdout
    assert "note attempt 1: done (unverified) — Landed" in out
    why = "no tests found (add tests, or set [gates.tests] command in speedrift.toml)"
    assert gate_lines(out)["tests"] == f"tests     skipped  {why}"
    assert f"unverified: tests skipped: {why}" in out
    shown = cli.json("show", "note")
    assert shown["status"] == "done"
    assert shown["speedrift"]["verified"] is False
    assert shown["speedrift"]["unverified_reason"] == f"tests skipped: {why}"
    human = cli.ok("show", "note").stdout
    assert "status: done (unverified)" in human and f"unverified: tests skipped: {why}" in human


def test_run_json_carries_the_verification_in_its_evidence(cli: Cli, repo: Path) -> None:
    commit(repo, {".gitignore": ".speedrift/\n", "speedrift.toml": FAST, "notes.py": "NOTES = []\n"})
    cli.ok("add", "Note", "--id", "note", "--exec", "printf 'NOTES = [1]\\n' > notes.py")
    report = cli.json("run", "note")
    assert report["status"] == "done" and report["evidence"]["verified"] is False
    assert report["evidence"]["unverified_reason"].startswith("tests skipped: no tests found")


def test_run_with_tests_but_no_pytest_does_not_land_and_names_the_tool(
    cli: Cli, flat: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-tools"
    empty.mkdir()
    cli.ok("add", "Add sub", "--id", "sub", "--exec", EXTEND)
    out = cli.fails(1, "run", "sub", env={GATE_PATH_ENV: str(empty)}).stdout
    assert "failure class: env_bootstrap" in out
    assert gate_lines(out)["tests"] == (
        "tests     failed   tests found (test_calc.py) but pytest not installed "
        "(pip install pytest in the repo's environment)"
    )
    assert "def sub" not in (flat / "calc.py").read_text()


def test_run_of_an_attempt_that_failed_before_its_gates_says_they_did_not_run(cli: Cli, repo: Path) -> None:
    commit(repo, {".gitignore": ".speedrift/\n", "README.md": "# r\n"})
    cli.ok("add", "Broken", "--id", "broken", "--exec", "exit 4")
    out = cli.fails(1, "run", "broken").stdout
    assert "gates: not run (the attempt ended before them)" in out
