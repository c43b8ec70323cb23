"""The tests gate: the repo's test command at the tip; on failure, at the base too.

The command is ``[gates.tests] command`` in speedrift.toml, or the suite detected from the repo's
files (:mod:`speedrift.gates.testdetect`: pytest, ``npm test``, ``go test ./...``, ``cargo test``,
``make test``) when its tool is installed. A pytest command gets ``--junitxml`` so outcomes are
known per test. When the tip fails, the base commit runs in a private checkout (cached per base
and command) and the failures are sorted:

* passed at the base, failing now: **regression** (fail, class ``regression``);
* not there at the base (a new test) and failing: fail, class ``implementation_error``;
* failing at the base too: pre-existing — warn.

Without per-test outcomes the whole suite is compared. A command that cannot be started, or a
pytest usage/internal error, fails with class ``env_bootstrap``.

``[gates] require_tests`` says what happens when no suite runs: ``auto`` (the default) fails a
repo whose tests exist but cannot run (the tool is missing: ``env_bootstrap``, naming the tool and
how to install it) and lets a repo without tests land unverified; ``always`` fails that too;
``never`` only skips. Whether the change was verified by its tests goes to ``ctx.notes``
(``tests_verified``, ``tests_unverified``) for the suite to record in the bundle.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from speedrift.failure_class import FailureClass
from speedrift.gates import basetree, diffaware, testdetect
from speedrift.gates.context import GateContext, result
from speedrift.gates.model import Finding, GateResult
from speedrift.gates.testdetect import pytest_configured
from speedrift.gates.tools import ToolNotRunnable
from speedrift.textclip import cut_middle

FAILED = frozenset({"failed", "error"})
PYTEST_USAGE_ERROR = 4
PYTEST_INTERNAL_ERROR = 3
PYTEST_NO_TESTS = 5
TAIL_LIMIT = 400
# what is detected is listed by `speedrift gates list` and docs/gates.md; the hint stays short
ADD_TESTS = "(add tests, or set [gates.tests] command in speedrift.toml)"
NO_TESTS = f"no tests found {ADD_TESTS}"
NO_TESTS_REQUIRED = f'no tests found, and [gates] require_tests = "always" {ADD_TESTS}'
__all__ = ["NO_TESTS", "TestPlan", "TestsGate", "is_pytest", "pytest_configured", "resolve"]


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

    def counts(self) -> str:
        """ "2 failed, 5 passed" (and skipped, when some were)."""
        outcomes = list((self.outcomes or {}).values())
        skipped = outcomes.count("skipped")
        text = f"{len(self.failing)} failed, {outcomes.count('passed')} passed"
        return text + (f", {skipped} skipped" if skipped else "")


def _listed(tests: list[str], shown: int = 3) -> str:
    more = len(tests) - shown
    return ", ".join(tests[:shown]) + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class TestPlan:
    """What the tests gate will run here, or why nothing can run."""

    __test__ = False  # not a pytest test class

    command: list[str] | None  # the argv (None: nothing runs)
    label: str  # how to name it to a person: "pytest", "npm test", "[gates.tests] command"
    found: str | None = None  # what showed the suite exists ("test_calc.py", "go.mod")
    problem: str = ""  # command None: why ("no tests found (…)", "tests found (…) but … not installed")
    configured: bool = False  # from [gates.tests] command


def is_pytest(argv: list[str]) -> bool:
    head = Path(argv[0]).name if argv else ""
    return head in ("pytest", "py.test") or (len(argv) >= 3 and argv[1:3] == ["-m", "pytest"])


def label_of(command: list[str] | tuple[str, ...]) -> str:
    """A short name for a test command: "pytest", "npm test", "make test", …"""
    if not command:
        return ""
    if is_pytest(list(command)):
        return "pytest"
    head = Path(command[0]).name
    if head in ("npm", "go", "cargo", "make", "yarn", "pnpm") and len(command) > 1:
        return f"{head} {command[1]}"
    return head


def resolve(ctx: GateContext) -> TestPlan:
    """The configured command, else the detected suite with its tool, else why nothing runs."""
    configured = ctx.config.tests.command
    if configured:
        program = configured[0]
        label = label_of(configured)
        if "/" in program:  # a path: relative ones resolve in the tree under test (tip or base)
            return TestPlan(list(configured), label, configured=True)
        found = ctx.finder.find(program)
        if found is None:
            problem = f"test command not found: {program!r} ([gates.tests] command in speedrift.toml)"
            return TestPlan(None, label, problem=problem, configured=True)
        return TestPlan([str(found), *configured[1:]], label, configured=True)
    detected = testdetect.detect(ctx.worktree)
    if not detected:
        return TestPlan(None, "", problem=NO_TESTS)
    first = detected[0]
    if first.layout == "pytest":
        for venv in (ctx.worktree / ".venv", ctx.repo / ".venv"):
            python = venv / "bin" / "python"
            if python.is_file() and (venv / "bin" / "pytest").exists():
                return TestPlan([str(python), "-m", "pytest"], first.label, first.found)
    tool = ctx.finder.find(first.tool)
    if tool is None:
        problem = f"tests found ({first.found}) but {ctx.finder.missing_reason(first.tool)}"
        return TestPlan(None, first.label, first.found, problem)
    return TestPlan([str(tool), *first.args], first.label, first.found)


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
                first_line = (child.get("message") or "").splitlines()[0] if child.get("message") else ""
                messages[name] = cut_middle(first_line, 300)
                break
        outcomes[name] = outcome
        line = case.get("line")
        places[name] = (case.get("file") or "", int(line) + 1 if line and line.isdigit() else None)
    return outcomes, places, messages


class TestsGate:
    name = "tests"

    def run(self, ctx: GateContext) -> GateResult:
        plan = resolve(ctx)
        command = plan.command
        require = ctx.config.require_tests
        if command is None:
            if plan.configured:
                return result(self.name, "fail", plan.problem, failure_class=FailureClass.ENV_BOOTSTRAP)
            if plan.found is not None and require != "never":  # tests exist, their tool does not
                return result(self.name, "fail", plan.problem, failure_class=FailureClass.ENV_BOOTSTRAP)
            if plan.found is None and require == "always":
                return result(
                    self.name,
                    "fail",
                    NO_TESTS_REQUIRED,
                    failure_class=FailureClass.IMPLEMENTATION_ERROR,
                )
            return result(self.name, "skipped", plan.problem)
        hint = (
            "[gates.tests] command"
            if plan.configured
            else f"{plan.label} was detected; [gates.tests] command in speedrift.toml sets another"
        )
        try:
            tip = run_suite(ctx, ctx.worktree, command)
        except ToolNotRunnable as error:
            return result(
                self.name,
                "fail",
                f"{error} ({hint})",
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
            ctx.notes["tests_verified"] = True
            return result(
                self.name,
                "pass",
                f"{count} test(s) passed" if count is not None else "the test command passed",
                command=command,
            )
        if pytest and tip.returncode == PYTEST_NO_TESTS:
            if require == "always":
                return result(
                    self.name,
                    "fail",
                    'pytest collected no tests, and [gates] require_tests = "always" (add tests)',
                    command=command,
                    failure_class=FailureClass.IMPLEMENTATION_ERROR,
                )
            ctx.notes["tests_unverified"] = "pytest collected no tests"
            return result(self.name, "warn", "no tests were collected", command=command)
        base = self._base(ctx, command)
        judged = self._judge(tip, base, command)
        if judged.status == "warn" and judged.findings:  # the tests ran; only old failures remain
            ctx.notes["tests_verified"] = True
        elif judged.status == "warn":
            ctx.notes["tests_unverified"] = (
                f"the test command fails at the base commit too (exit {base.returncode}), "
                "so it cannot tell whether this change works"
            )
        return judged

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
            counts = tip.counts()
            if regressions:
                return result(
                    self.name,
                    "fail",
                    f"{len(regressions)} regression(s) ({counts}): {_listed(regressions)}",
                    findings,
                    command=command,
                    failure_class=FailureClass.REGRESSION,
                )
            if new:
                return result(
                    self.name,
                    "fail",
                    f"{len(new)} new test(s) fail ({counts}): {_listed(new)}",
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

    def _base(self, ctx: GateContext, command: list[str]) -> SuiteRun:
        digest = hashlib.sha256("\0".join(command).encode()).hexdigest()[:16]
        key = diffaware.cache_key(ctx.base, "tests", digest)
        cached = ctx.cache.get("tests", key)
        if cached is not None and isinstance(cached.get("returncode"), int):
            outcomes = cached.get("outcomes")
            return SuiteRun(int(cached["returncode"]), outcomes if isinstance(outcomes, dict) else None, "")
        with basetree.full_tree(ctx.worktree, ctx.base) as root:
            run = run_suite(ctx, root, command)
        ctx.cache.put("tests", key, {"returncode": run.returncode, "outcomes": run.outcomes})
        return run


def run_suite(ctx: GateContext, root: Path, command: list[str]) -> SuiteRun:
    """The test command in the tree at ``root``, its per-test outcomes when it is pytest (the gate's
    run at the tip and at the base, and qadrift's run on the target branch)."""
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
    # the end of the output is its conclusion ("1 failed, 4 passed", the error): keep it
    last = " | ".join(line.strip() for line in text.splitlines()[-3:] if line.strip())
    tail = cut_middle(last, TAIL_LIMIT)
    if parsed is None:
        return SuiteRun(outcome.returncode, None, tail)
    outcomes, places, messages = parsed
    return SuiteRun(outcome.returncode, outcomes, tail, places, messages)
