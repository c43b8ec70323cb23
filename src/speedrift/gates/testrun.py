"""The tests gate: the repo's test command at the tip; on failure, at the base too.

The command is ``[gates.tests] command`` in speedrift.toml, or pytest when the repo has a
``tests/`` (or ``test/``) directory and pytest configuration. A pytest command gets
``--junitxml`` so outcomes are known per test. When the tip fails, the base commit runs in a
private checkout (cached per base and command) and the failures are sorted:

* passed at the base, failing now: **regression** (fail, class ``regression``);
* not there at the base (a new test) and failing: fail, class ``implementation_error``;
* failing at the base too: pre-existing — warn.

Without per-test outcomes the whole suite is compared. A command that cannot be started, or a
pytest usage/internal error, fails with class ``env_bootstrap``.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from speedrift.failure_class import FailureClass
from speedrift.gates import basetree, diffaware
from speedrift.gates.context import GateContext, result
from speedrift.gates.lint import pyproject_has
from speedrift.gates.model import Finding, GateResult
from speedrift.gates.tools import ToolNotRunnable

FAILED = frozenset({"failed", "error"})
PYTEST_USAGE_ERROR = 4
PYTEST_INTERNAL_ERROR = 3
PYTEST_NO_TESTS = 5


@dataclass
class SuiteRun:
    returncode: int
    outcomes: dict[str, str] | None  # test id -> passed | failed | error | skipped
    tail: str
    places: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # test id -> file, line
    messages: dict[str, str] = field(default_factory=dict)

    @property
    def failing(self) -> set[str]:
        return {t for t, o in (self.outcomes or {}).items() if o in FAILED}


def pytest_configured(root: Path) -> bool:
    if (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        return True
    if pyproject_has(root, "tool.pytest"):
        return True
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        parser = configparser.ConfigParser()
        try:
            parser.read(root / name, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        if parser.has_section(section):
            return True
    return False


def is_pytest(argv: list[str]) -> bool:
    head = Path(argv[0]).name if argv else ""
    return head in ("pytest", "py.test") or (len(argv) >= 3 and argv[1:3] == ["-m", "pytest"])


def resolve_command(ctx: GateContext) -> tuple[list[str] | None, str]:
    """(argv, "") or (None, why the gate is skipped / what is wrong)."""
    configured = ctx.config.tests.command
    if configured:
        program = configured[0]
        if "/" in program:  # a path: relative ones resolve in the tree under test (tip or base)
            return list(configured), ""
        found = ctx.finder.find(program)
        if found is None:
            return None, f"test command not found: {program!r} ([gates.tests] command in speedrift.toml)"
        return [str(found), *configured[1:]], ""
    root = ctx.worktree
    if not ((root / "tests").is_dir() or (root / "test").is_dir()) or not pytest_configured(root):
        return None, "no test command: set [gates.tests] command, or add tests/ with pytest configuration"
    for venv in (ctx.worktree / ".venv", ctx.repo / ".venv"):
        python = venv / "bin" / "python"
        if python.is_file() and (venv / "bin" / "pytest").exists():
            return [str(python), "-m", "pytest"], ""
    pytest = ctx.finder.find("pytest")
    if pytest is None:
        return None, ctx.finder.missing_reason("pytest")
    return [str(pytest)], ""


def parse_junit(
    path: Path,
) -> tuple[dict[str, str], dict[str, tuple[str, int | None]], dict[str, str]] | None:
    try:
        # the report is pytest's own output; expat's built-in limits stop entity expansion
        tree = ElementTree.parse(path)  # noqa: S314
    except (OSError, ElementTree.ParseError):
        return None
    outcomes: dict[str, str] = {}
    places: dict[str, tuple[str, int | None]] = {}
    messages: dict[str, str] = {}
    for case in tree.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
                messages[name] = (
                    (child.get("message") or "").splitlines()[0][:300] if child.get("message") else ""
                )
                break
        outcomes[name] = outcome
        line = case.get("line")
        places[name] = (case.get("file") or "", int(line) + 1 if line and line.isdigit() else None)
    return outcomes, places, messages


class TestsGate:
    name = "tests"

    def run(self, ctx: GateContext) -> GateResult:
        command, why = resolve_command(ctx)
        if command is None:
            if why.startswith("test command not found"):
                return result(self.name, "fail", why, failure_class=FailureClass.ENV_BOOTSTRAP)
            return result(self.name, "skipped", why)
        try:
            tip = self._execute(ctx, ctx.worktree, command)
        except ToolNotRunnable as error:
            return result(
                self.name,
                "fail",
                f"{error} ([gates.tests] command)",
                command=command,
                failure_class=FailureClass.ENV_BOOTSTRAP,
            )
        pytest = is_pytest(command)
        if pytest and tip.returncode in (PYTEST_USAGE_ERROR, PYTEST_INTERNAL_ERROR):
            return result(
                self.name,
                "fail",
                f"the test command could not run (pytest exit {tip.returncode}): {tip.tail}",
                command=command,
                failure_class=FailureClass.ENV_BOOTSTRAP,
            )
        if tip.returncode == 0:
            count = len(tip.outcomes) if tip.outcomes is not None else None
            return result(
                self.name,
                "pass",
                f"{count} test(s) passed" if count is not None else "the test command passed",
                command=command,
            )
        if pytest and tip.returncode == PYTEST_NO_TESTS:
            return result(self.name, "warn", "no tests were collected", command=command)
        base = self._base(ctx, command)
        return self._judge(tip, base, command)

    def _judge(self, tip: SuiteRun, base: SuiteRun, command: list[str]) -> GateResult:
        if tip.outcomes is not None and base.outcomes is not None and tip.failing:
            before = base.outcomes
            regressions = sorted(t for t in tip.failing if before.get(t) == "passed")
            new = sorted(t for t in tip.failing if t not in before)
            old = sorted(tip.failing - set(regressions) - set(new))
            findings = (
                [
                    self._finding(tip, t, "regression", "passed at the base commit, fails now")
                    for t in regressions
                ]
                + [self._finding(tip, t, "new-test-failure", "a new test that fails") for t in new]
                + [
                    self._finding(tip, t, "pre-existing-failure", "also fails at the base commit", new=False)
                    for t in old
                ]
            )
            if regressions:
                return result(
                    self.name,
                    "fail",
                    f"{len(regressions)} regression(s): {', '.join(regressions[:3])}",
                    findings,
                    command=command,
                    failure_class=FailureClass.REGRESSION,
                )
            if new:
                return result(
                    self.name,
                    "fail",
                    f"{len(new)} new test(s) fail: {', '.join(new[:3])}",
                    findings,
                    command=command,
                    failure_class=FailureClass.IMPLEMENTATION_ERROR,
                )
            return result(
                self.name,
                "warn",
                f"{len(old)} failure(s) already present at the base commit",
                findings,
                command=command,
            )
        if base.returncode == 0:
            return result(
                self.name,
                "fail",
                f"the test command fails (exit {tip.returncode}) and passed at the base commit: {tip.tail}",
                command=command,
                failure_class=FailureClass.REGRESSION,
            )
        return result(
            self.name,
            "warn",
            f"the test command fails (exit {tip.returncode}), "
            f"as it did at the base commit (exit {base.returncode})",
            command=command,
        )

    def _finding(self, run: SuiteRun, test: str, kind: str, what: str, new: bool = True) -> Finding:
        file, line = run.places.get(test, ("", None))
        detail = run.messages.get(test)
        return Finding(
            file=file or test.split("::")[0].replace(".", "/") + ".py",
            line=line,
            kind=kind,
            message=f"{test}: {what}" + (f" — {detail}" if detail else ""),
            severity="high" if new else "medium",
            rule="tests",
            new=new,
        )

    def _execute(self, ctx: GateContext, root: Path, command: list[str]) -> SuiteRun:
        # the tree's own code first (as `python -m pytest` would), before any editable install
        # pointing elsewhere: the tip and the base checkout then import the same way
        paths = [str(root), *([str(root / "src")] if (root / "src").is_dir() else [])]
        inherited = ctx.env.get("PYTHONPATH", "")
        env = {
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join([*paths, *([inherited] if inherited else [])]),
        }
        with tempfile.TemporaryDirectory(prefix="speedrift-tests-") as scratch:
            argv = list(command)
            junit = Path(scratch) / "junit.xml"
            if is_pytest(command) and ctx.config.tests.junit:
                argv += [f"--junitxml={junit}", "-o", "junit_family=xunit1", "-p", "no:cacheprovider"]
            outcome = ctx.run(argv, what="the test command", cwd=root, **env)
            parsed = parse_junit(junit) if junit.exists() else None
        text = (outcome.text + "\n" + outcome.err).strip()
        tail = " | ".join(line.strip() for line in text.splitlines()[-3:] if line.strip())[:400]
        if parsed is None:
            return SuiteRun(outcome.returncode, None, tail)
        outcomes, places, messages = parsed
        return SuiteRun(outcome.returncode, outcomes, tail, places, messages)

    def _base(self, ctx: GateContext, command: list[str]) -> SuiteRun:
        digest = hashlib.sha256("\0".join(command).encode()).hexdigest()[:16]
        key = diffaware.cache_key(ctx.base, "tests", digest)
        cached = ctx.cache.get("tests", key)
        if cached is not None and isinstance(cached.get("returncode"), int):
            outcomes = cached.get("outcomes")
            return SuiteRun(int(cached["returncode"]), outcomes if isinstance(outcomes, dict) else None, "")
        with basetree.full_tree(ctx.worktree, ctx.base) as root:
            run = self._execute(ctx, root, command)
        ctx.cache.put("tests", key, {"returncode": run.returncode, "outcomes": run.outcomes})
        return run
