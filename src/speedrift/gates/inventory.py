"""What `speedrift gates list` reports: each gate, when it runs here, and its tools (found or not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speedrift.gates import lint, sca, testdetect, typecheck
from speedrift.gates.config import GATE_ORDER, GatesConfig, Switch
from speedrift.gates.tools import INSTALL_HINTS, ToolFinder

_UNVERIFIED = {
    "auto": "work lands as done (unverified)",
    "always": "nothing lands (require_tests = always)",
    "never": "work lands (require_tests = never)",
}


def _switch(value: Switch, configured: bool) -> bool:
    return value == "on" or (value == "auto" and configured)


def describe(repo: Path, worktree: Path, config: GatesConfig) -> list[dict[str, Any]]:
    finder = ToolFinder(repo, worktree, config.tools)
    mypy_configured, _whole = typecheck.mypy_config(worktree)
    has_requirements = bool(sca.requirement_files(worktree))
    has_lock = (worktree / "package-lock.json").is_file()
    tests_command = config.tests.command
    detected = [] if tests_command else testdetect.detect(worktree)
    if tests_command:
        tests_runs, tests_tools = "[gates.tests] command", [(tests_command[0], True)]
    elif detected:
        first = detected[0]
        tests_runs = f"{first.label} ({first.found} found)" + "".join(
            f"; also found {d.label} ({d.found}): not run" for d in detected[1:]
        )
        tests_tools = [(d.tool, d is first) for d in detected]
    else:
        tests_runs = f"no tests found: {_UNVERIFIED[config.require_tests]}"
        tests_tools = [("pytest", False)]
    plan: dict[str, tuple[str, list[tuple[str, bool]]]] = {
        "syntax": ("always (Python, JSON, TOML, YAML; JavaScript with node)", [("node", True)]),
        "secrets": ("always (detect-secrets library and speedrift's patterns)", []),
        "scope": (f"when the task declares a scope (mode: {config.scope})", []),
        "contract": ("when the task has deliverables, or mapped/OpenAPI documents change", []),
        "lint": (
            "ruff when configured, eslint when configured (diff-aware)",
            [
                ("ruff", _switch(config.lint.ruff, lint.ruff_configured(worktree))),
                ("eslint", _switch(config.lint.eslint, lint.eslint_configured(worktree))),
            ],
        ),
        "types": (
            "mypy when configured, tsc with tsconfig.json (diff-aware)",
            [
                ("mypy", _switch(config.types.mypy, mypy_configured)),
                ("tsc", config.types.tsc != "off" and (worktree / "tsconfig.json").is_file()),
            ],
        ),
        "tests": (f"{tests_runs} (require_tests: {config.require_tests})", tests_tools),
        "sast": (
            "semgrep (speedrift's rules) and ruff S on changed files",
            [("semgrep", config.sast.semgrep != "off"), ("ruff", config.sast.ruff_security != "off")],
        ),
        "sca": (
            "pip-audit with requirements files, npm audit with package-lock.json; offline: skipped",
            [("pip-audit", has_requirements and config.sca.pip_audit != "off"), ("npm", has_lock)],
        ),
    }
    rows: list[dict[str, Any]] = []
    for gate in GATE_ORDER:
        runs, tools = plan[gate]
        if gate in config.skip:
            runs = "skipped: disabled in speedrift.toml ([gates] skip)"
        rows.append(
            {
                "gate": gate,
                "runs": runs,
                "required": gate in config.required,
                "tools": [
                    {
                        "tool": tool,
                        "path": str(path) if (path := finder.find(tool)) else None,
                        "hint": INSTALL_HINTS.get(tool, f"install {tool}"),
                        "used": used,
                    }
                    for tool, used in tools
                ],
            }
        )
    return rows
