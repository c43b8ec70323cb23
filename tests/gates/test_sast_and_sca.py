"""SAST (semgrep with speedrift's rules, ruff S) and SCA (offline means skipped, never passed)."""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest

from speedrift.gates.model import GateResult
from tests.gates.conftest import GateRepo, gate

VULNERABLE = """import hashlib
import sqlite3
import subprocess


def find(conn: sqlite3.Connection, name: str) -> list[tuple[str]]:
    cur = conn.cursor()
    cur.execute("SELECT * FROM users WHERE name = '%s'" % name)
    cur.execute("SELECT * FROM users WHERE name = ?", (name,))
    return cur.fetchall()


def run(command: str) -> None:
    subprocess.run(command, shell=True)


def fingerprint(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
"""
OLD_DEBT = "def legacy(expr: str) -> object:\n    return eval(expr)\n"


@pytest.fixture(scope="module")
def sast(tmp_path_factory: pytest.TempPathFactory) -> GateResult:
    """One semgrep-backed run shared by the tests below (semgrep takes ~2 s to start)."""
    repo = GateRepo(tmp_path_factory.mktemp("sast") / "repo", {"legacy.py": OLD_DEBT})
    repo.change({"legacy.py": "# touched\n" + OLD_DEBT, "db.py": VULNERABLE})
    return gate(repo.gates(only=("sast",)), "sast")


def test_semgrep_finds_the_sql_injection_and_the_gate_blocks(sast: GateResult) -> None:
    assert (sast.status, sast.failure_class) == ("fail", "sast_block")
    sql = [f for f in sast.findings if f.rule == "speedrift.python.sql-injection"]
    assert [(f.file, f.line, f.severity, f.category) for f in sql] == [
        ("db.py", 8, "critical", "A03:2021-Injection")
    ]


def test_findings_carry_severity_and_owasp_category_from_semgrep_and_ruff(sast: GateResult) -> None:
    by_line = {(f.file, f.line): f for f in sast.findings if f.new}
    assert by_line[("db.py", 14)].severity == "high"  # shell=True with a variable
    assert by_line[("db.py", 14)].category == "A03:2021-Injection"
    assert by_line[("db.py", 18)].severity == "medium"  # md5
    assert by_line[("db.py", 18)].category == "A02:2021-Cryptographic Failures"
    assert ("db.py", 9) not in by_line  # the parameterized query is fine


def test_the_eval_already_at_the_base_is_reported_as_pre_existing(sast: GateResult) -> None:
    old = [f for f in sast.findings if f.file == "legacy.py"]
    assert old and all(not f.new for f in old)
    assert "pre-existing" in sast.reason


def fake_tool(folder: Path, name: str, output: Mapping[str, object]) -> Path:
    tool = folder / name
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(output)}\nEOF\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return tool


def test_sca_without_a_reachable_advisory_source_is_skipped_offline(tmp_path: Path) -> None:
    repo = GateRepo(tmp_path / "repo", {"requirements.txt": "requests==2.19.0\n"})
    repo.change({"requirements.txt": "requests==2.19.0\nidna==2.7\n"})
    unaudited = {"dependencies": [{"name": "requests", "skip_reason": "could not be audited"}], "fixes": []}
    config = {"tools": {"pip-audit": str(fake_tool(tmp_path, "pip-audit", unaudited))}}
    result = gate(repo.gates(config, only=("sca",)), "sca")
    assert result.status == "skipped" and result.reason.startswith("offline: pip-audit:")


def test_sca_fails_on_a_vulnerable_dependency_the_attempt_added(tmp_path: Path) -> None:
    repo = GateRepo(tmp_path / "repo", {"requirements.txt": "flask==3.0.0\n"})
    repo.change({"requirements.txt": "flask==3.0.0\nrequests==2.19.0\n"})
    report = {
        "dependencies": [
            {"name": "flask", "version": "3.0.0", "vulns": []},
            {
                "name": "requests",
                "version": "2.19.0",
                "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}],
            },
        ]
    }
    config = {"tools": {"pip-audit": str(fake_tool(tmp_path, "pip-audit", report))}}
    result = gate(repo.gates(config, only=("sca",)), "sca")
    assert (result.status, result.failure_class) == ("fail", "sast_block")
    assert result.findings[0].message == "requests 2.19.0: PYSEC-2018-28 (fixed in 2.20.0)"


def test_sca_is_skipped_when_the_repo_has_no_dependency_files(tmp_path: Path) -> None:
    repo = GateRepo(tmp_path / "repo", {})
    repo.change({"a.py": "x = 1\n"})
    result = gate(repo.gates(only=("sca",)), "sca")
    assert (result.status, result.reason) == ("skipped", "no requirements or lock files in the repo")
