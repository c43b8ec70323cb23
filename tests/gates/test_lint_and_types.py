"""Lint and types, diff-aware: debt already at the base never blocks, new findings do."""

from __future__ import annotations

from pathlib import Path

from tests.gates.conftest import NewRepo, gate, without_tools

PYPROJECT = """[tool.ruff]
line-length = 100
[tool.ruff.lint]
select = ["F"]
[tool.mypy]
strict = true
"""
DEBT = "import os\nimport json\n\n\ndef total(values: list[int]) -> int:\n    return sum(values)\n"


def test_pre_existing_lint_debt_does_not_block_even_when_lines_move(new_repo: NewRepo) -> None:
    repo = new_repo({"pyproject.toml": PYPROJECT, "app.py": DEBT})
    repo.change({"app.py": '"""Docs."""\n\n' + DEBT + "\n\ndef more() -> int:\n    return 2\n"})
    result = gate(repo.gates(only=("lint",)), "lint")
    assert result.status == "pass"
    assert "(2 pre-existing)" in result.reason
    assert {(f.file, f.line, f.new) for f in result.findings} == {("app.py", 3, False), ("app.py", 4, False)}


def test_a_new_lint_finding_fails_next_to_old_debt(new_repo: NewRepo) -> None:
    repo = new_repo({"pyproject.toml": PYPROJECT, "app.py": DEBT})
    repo.change({"app.py": DEBT + "\n\ndef broken() -> int:\n    return undefined_name\n"})
    result = gate(repo.gates(only=("lint",)), "lint")
    assert (result.status, result.failure_class) == ("fail", "implementation_error")
    new = [f for f in result.findings if f.new]
    assert [(f.file, f.line, f.rule) for f in new] == [("app.py", 10, "F821")]


def test_lint_is_skipped_when_the_repo_does_not_configure_ruff_and_on_forces_it(new_repo: NewRepo) -> None:
    repo = new_repo({"app.py": "x = 1\n"})
    repo.change({"app.py": "import os\nx = 1\n"})
    skipped = gate(repo.gates(only=("lint",)), "lint")
    assert (skipped.status, skipped.reason) == ("skipped", "ruff: not configured in the repo")
    forced = gate(repo.gates({"lint": {"ruff": "on"}}, only=("lint",)), "lint")
    assert forced.status == "fail" and "F401" in {f.rule for f in forced.findings}


def test_a_missing_tool_is_skipped_with_an_install_hint_never_passed(
    new_repo: NewRepo, tmp_path: Path
) -> None:
    repo = new_repo({"pyproject.toml": PYPROJECT, "app.py": "x = 1\n"})
    repo.change({"app.py": "import os\nx: int = 'nope'\n"})
    bundle = repo.gates(only=("lint", "types", "sast"), env=without_tools(tmp_path))
    for name, tool in (("lint", "ruff"), ("types", "mypy"), ("sast", "semgrep")):
        result = gate(bundle, name)
        assert result.status == "skipped", name
        assert f"{tool} not installed (pip install {tool} (or speedrift[gates]))" in result.reason


def test_a_new_type_error_fails_while_an_old_one_does_not(new_repo: NewRepo) -> None:
    old_error = "def name() -> int:\n    return 'legacy'\n"
    repo = new_repo({"pyproject.toml": PYPROJECT, "legacy.py": old_error, "calc.py": "X = 1\n"})
    repo.change(
        {
            "legacy.py": "# touched\n" + old_error,
            "calc.py": "def add(a: int, b: int) -> int:\n    return a + b\n\n\nRESULT: str = add(1, 2)\n",
        }
    )
    result = gate(repo.gates(only=("types",)), "types")
    assert (result.status, result.failure_class) == ("fail", "implementation_error")
    assert [(f.file, f.line, f.rule, f.new) for f in result.findings] == [
        ("calc.py", 5, "assignment", True),
        ("legacy.py", 3, "return-value", False),
    ]
    cache = repo.path / ".speedrift" / "cache" / "gates" / "mypy"
    assert len(list(cache.glob("*.json"))) == 1  # the base's findings, kept for the next attempt
