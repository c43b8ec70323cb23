"""qadrift: program-level quality of the target branch — is its test suite green on its tip, are
its modules tested, do its tests assert anything real, is work stalled — whether or not any
attempt touched it.

Finding kinds: ``tests_failing`` (the suite, as the tests gate resolves it — ``[gates.tests]
command`` in speedrift.toml or the detected one, gates/testrun.py — run in a private checkout of
head, gates/basetree.py; a red target branch is critical), ``tests_missing`` (a Python module no
test file mentions; with a diff range, only the range's modules), ``test_without_assertions``,
``mock_only_test`` (_qatests.py), ``work_stalled`` (a task in progress for longer than
``stall_hours`` by ``ctx.now``) and ``missing_integration_tests``. The lane's score is the
original's quality score, ``100 − min(95, 25·critical + 15·error + 8·warning + 3·info)``.

Caches, in the lane's state directory: the suite's outcome per head commit and test command
(``suite.json``: a rerun at the same head does not run the tests again; per test file, each test's
outcome; whether the run was full or selected, from which head outcomes were carried, which test
files ran), what the static reading found per test-file blob (``blobs.json``) and each Python
file's imports per blob (``imports.json``).

Incremental (``incremental_tests``, pytest only): at a new head whose history holds an earlier
head with a complete cached outcome, only the test files the changes since can reach run, and
the other files' outcomes are carried — or the full suite runs, saying why (_qaselect.py);
``full_suite_every`` selected runs in a row are followed by a full one. A carried failing test
stays in ``tests_failing`` until a run of its file passes.

Invariant: the suite never runs in the user's checkout and never sees a credential this process
holds (as the tests gate's runs do not); its output is redacted before it becomes evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from speedrift.gates import testrun
from speedrift.graph.model import IN_PROGRESS, is_system, status_of
from speedrift.lanes.builtin import _qaselect as select
from speedrift.lanes.builtin import _qasuite as suite
from speedrift.lanes.builtin import _qatests as qa
from speedrift.lanes.builtin._blobcache import BlobCache, source_of, version_of
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput
from speedrift.times import parse_time

NAME = "qadrift"
SUITE_FILE = suite.SUITE_FILE
BLOBS_FILE = "blobs.json"
SHOWN_TESTS = 20  # failing test ids named in the evidence


class Kind(StrEnum):
    TESTS_FAILING = "tests_failing"
    TESTS_MISSING = "tests_missing"
    TEST_WITHOUT_ASSERTIONS = "test_without_assertions"
    MOCK_ONLY_TEST = "mock_only_test"
    WORK_STALLED = "work_stalled"
    MISSING_INTEGRATION_TESTS = "missing_integration_tests"


DEFAULTS: dict[str, Any] = {
    "run_tests": True,  # run the suite on head (tests_failing); off: static checks only
    "incremental_tests": True,  # pytest: run only the test files a change since an earlier head reaches
    "full_suite_every": 10,  # after this many selected runs in a row the next is full (0: never forced)
    "test_timeout_s": 600,  # the suite's time limit; past it, tests_failing says it timed out
    "stall_hours": 72,  # a task in progress longer than this is stalled
    "max_missing_findings": 20,  # tests_missing findings per run (the rest are counted in the summary)
    "require_integration_tests": False,  # missing integration/e2e tests: warning (true) or info (false)
    "integration_min_modules": 10,  # repos with fewer source modules are not asked for integration tests
}
_QUALITY_WEIGHTS = {Severity.CRITICAL: 25, Severity.ERROR: 15, Severity.WARNING: 8, Severity.INFO: 3}


def quality_score(findings: Sequence[LaneFinding]) -> int:
    return 100 - min(95, sum(_QUALITY_WEIGHTS[f.severity] for f in findings))


def run(ctx: LaneContext) -> LaneOutput:
    settings = {**DEFAULTS, **ctx.settings}
    notes: list[str] = []
    findings: list[LaneFinding] = []
    if settings["run_tests"]:
        findings += _suite_findings(ctx, settings, notes)
    findings += _static_findings(ctx, settings, notes)
    findings += _stalled(ctx, float(settings["stall_hours"]))
    score = quality_score(findings)
    counts = ", ".join(f"{n} {k}" for k in Kind if (n := sum(f.kind == k for f in findings)))
    summary = f"quality {score}: {counts or 'clean'}" + (f"; {'; '.join(notes)}" if notes else "")
    return LaneOutput(findings=findings, summary=summary, score=score)


# --- the suite on head ----------------------------------------------------------------------------
def _suite_findings(ctx: LaneContext, settings: Mapping[str, Any], notes: list[str]) -> list[LaneFinding]:
    timeout = float(settings["test_timeout_s"])
    outcome = suite.suite_outcome(ctx, settings, notes)
    if outcome is None:
        return []
    head, label = ctx.view.head, str(outcome.get("label", "the test command"))
    code = outcome.get("returncode")
    if not outcome.get("timed_out") and (
        code == 0 or (outcome.get("pytest") and code == testrun.PYTEST_NO_TESTS)
    ):
        return []
    failing = [str(t) for t in outcome.get("failing", [])]
    messages = outcome.get("messages") or {}
    evidence = [f"commit {head}", f"command: {label}"]
    carried = _carried_tests(outcome)
    origin = str(outcome.get("carried_from") or "")[:12]
    if outcome.get("mode") == select.Mode.SELECTED:
        evidence.append(
            f"selected run: {len(outcome.get('ran_files', []))} test file(s) ran; the other files' "
            f"outcomes are carried from {origin}"
        )
    for test in failing[:SHOWN_TESTS]:
        said = messages.get(test) if isinstance(messages, dict) else None
        evidence.append(
            f"failing: {test}"
            + (f" — {said}" if said else "")
            + (f" (carried: last run at {origin})" if test in carried else "")
        )
    if len(failing) > SHOWN_TESTS:
        evidence.append(f"and {len(failing) - SHOWN_TESTS} more failing test(s)")
    if outcome.get("tail"):
        evidence.append(f"output: {outcome['tail']}")
    if outcome.get("timed_out"):
        message = f"the test suite ({label}) on {head[:12]} did not finish within {timeout:g}s"
        severity = Severity.ERROR
        fix = f"Find the hanging test on {head[:12]} (run {label} with a per-test timeout) and fix it."
    else:
        shown = ", ".join(failing[:3]) + (f" and {len(failing) - 3} more" if len(failing) > 3 else "")
        what = f"{outcome.get('counts')}: {shown}" if failing else f"exit {code}"
        message = f"the test suite ({label}) fails on the target branch at {head[:12]} ({what})"
        severity = Severity.CRITICAL
        fix = (
            f"Make the target branch green: run {label} at {head[:12]}, fix "
            + (f"the failing test(s) {shown}" if failing else "what makes the command fail")
            + ", or revert the commit that broke them."
        )
    return [
        LaneFinding(
            lane=NAME,
            kind=Kind.TESTS_FAILING,
            message=message,
            severity=severity,
            tags=("quality", "tests", "target-branch"),
            key="suite",
            evidence=tuple(evidence),
            fix=fix,
        )
    ]


def _carried_tests(outcome: Mapping[str, Any]) -> set[str]:
    """The tests of a selected outcome that did not run at its head (their files were not selected)."""
    if outcome.get("mode") != select.Mode.SELECTED:
        return set()
    ran = set(outcome.get("ran_files", []))
    tests = outcome.get("tests") or {}
    return {t for path, group in tests.items() if path not in ran for t in group}


# --- reading the tests ----------------------------------------------------------------------------
def _static_findings(ctx: LaneContext, settings: Mapping[str, Any], notes: list[str]) -> list[LaneFinding]:
    view = ctx.view
    paths = [e.path for e in view.tree() if e.mode in ("100644", "100755")]
    tests = [p for p in paths if qa.is_test_file(p)]
    sources = [p for p in paths if qa.is_source_module(p)]
    cache = BlobCache(
        ctx.state_dir / BLOBS_FILE if ctx.state_dir else None, version_of("1", source_of(qa.__file__))
    )
    facts = _facts(ctx, cache, tests, sources)
    cache.save({"files": len(tests) + len(sources), "analysed": cache.misses, "cached": cache.hits})
    findings: list[LaneFinding] = []
    mentioned: set[str] = set()
    for path in tests:
        fact = facts.get(path, {})
        mentioned.update(fact.get("ids", []))
        for name, line, asserts, mock_only in fact.get("tests", []):
            if not asserts:
                findings.append(_test_finding(Kind.TEST_WITHOUT_ASSERTIONS, path, name, line))
            elif mock_only:
                findings.append(_test_finding(Kind.MOCK_ONLY_TEST, path, name, line))
    findings += _missing(ctx, settings, sources, facts, mentioned, bool(tests), notes)
    findings += _integration(ctx, settings, paths)
    return findings


def _facts(
    ctx: LaneContext, cache: BlobCache, tests: Sequence[str], sources: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """What each Python file holds, per blob: a test file's identifiers and test functions, a
    source module's "defines a function or class"."""
    facts: dict[str, dict[str, Any]] = {}
    todo: list[str] = []
    test_set = set(tests)
    keys = {}
    for path in [*tests, *sources]:
        entry = ctx.view.entry(path)
        if entry is None:
            continue
        keys[path] = f"{entry.blob}:{'test' if path in test_set else 'source'}"
        cached = cache.get(keys[path])
        if isinstance(cached, dict):
            facts[path] = cached
        else:
            todo.append(path)
    for path, raw in ctx.view.read_many(todo).items():
        text = raw.decode("utf-8", "replace")
        if path in test_set:
            found = qa.analyse(text)
            fact: dict[str, Any] = {
                "ids": qa.identifiers(text),
                "tests": [[t.name, t.line, t.asserts, t.mock_only] for t in found],
            }
        else:
            fact = {"defines": qa.defines_something(text)}
        cache.put(keys[path], fact)
        facts[path] = fact
    return facts


def _test_finding(kind: Kind, path: str, name: str, line: int) -> LaneFinding:
    if kind is Kind.TEST_WITHOUT_ASSERTIONS:
        message = f"{path}::{name} asserts nothing: it passes whatever the code does"
        fix = f"Give {path}::{name} an assertion on the behaviour it exercises (or delete it)."
    else:
        message = f"{path}::{name} asserts only on mocks: it checks the calls, not the behaviour"
        fix = (
            f"Make {path}::{name} assert on a real outcome (a returned value, a written file, a state "
            "change), with fakes instead of mocks where possible."
        )
    return LaneFinding(
        lane=NAME,
        kind=kind,
        message=message,
        severity=Severity.WARNING,
        file=path,
        line=line,
        tags=("quality", "tests"),
        key=f"{path}::{name}",
        evidence=(f"{path}:{line} def {name.rsplit('::', 1)[-1]}",),
        fix=fix,
    )


def _missing(
    ctx: LaneContext,
    settings: Mapping[str, Any],
    sources: Sequence[str],
    facts: Mapping[str, dict[str, Any]],
    mentioned: set[str],
    has_tests: bool,
    notes: list[str],
) -> list[LaneFinding]:
    wanted = list(sources)
    if ctx.view.base is not None:  # a diff range: only the modules it changed
        changed = {c.path for c in ctx.view.changes() if c.exists}
        wanted = [p for p in wanted if p in changed]
    untested = [p for p in wanted if facts.get(p, {}).get("defines") and qa.module_name(p) not in mentioned]
    cap = max(0, int(settings["max_missing_findings"]))
    if len(untested) > cap:
        notes.append(f"{len(untested) - cap} more module(s) without tests (max_missing_findings {cap})")
    where = "no test file exists" if not has_tests else "no test file mentions it"
    return [
        LaneFinding(
            lane=NAME,
            kind=Kind.TESTS_MISSING,
            message=f"{path} has no tests: {where} ({qa.module_name(path)!r} appears in no test)",
            severity=Severity.WARNING,
            file=path,
            tags=("quality", "tests", "coverage-gap"),
            key=path,
            evidence=(f"module {qa.module_name(path)} defines functions or classes",),
            fix=f"Add tests for {path} that import {qa.module_name(path)} and check its behaviour.",
        )
        for path in untested[:cap]
    ]


def _integration(ctx: LaneContext, settings: Mapping[str, Any], paths: Sequence[str]) -> list[LaneFinding]:
    modules = sum(1 for p in paths if qa.counts_as_source(p))
    minimum = int(settings["integration_min_modules"])
    if modules < minimum or any(qa.is_integration_test(p) for p in paths):
        return []
    required = bool(settings["require_integration_tests"])
    return [
        LaneFinding(
            lane=NAME,
            kind=Kind.MISSING_INTEGRATION_TESTS,
            message=f"{modules} source modules and no integration or end-to-end tests",
            severity=Severity.WARNING if required else Severity.INFO,
            tags=("quality", "tests", "missing-integration"),
            key="integration",
            evidence=(
                f"{modules} source modules (integration_min_modules {minimum})",
                "no test under an integration/ or e2e/ folder, nor named *integration* or *e2e*",
            ),
            fix=(
                "Add integration tests (under tests/integration/ or named test_*_integration.py) that run "
                "the modules together through their real entry points."
            ),
        )
    ]


# --- the graph ------------------------------------------------------------------------------------
def _stalled(ctx: LaneContext, hours: float) -> list[LaneFinding]:
    if ctx.graph is None:
        return []
    now = ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=UTC)
    findings = []
    for task_id, task in sorted(ctx.graph.tasks.items()):
        if is_system(task_id) or status_of(task) != IN_PROGRESS:
            continue
        started = parse_time(task.get("started_at"))
        if started is None:
            continue
        age = (now - started).total_seconds() / 3600
        if age <= hours:
            continue
        findings.append(
            LaneFinding(
                lane=NAME,
                kind=Kind.WORK_STALLED,
                message=f"task {task_id} has been in progress for {age:.0f} h (stall_hours {hours:g})",
                severity=Severity.WARNING,
                tags=("quality", "work-stalled"),
                subject=task_id,
                key="in-progress",
                evidence=(f"started_at {task.get('started_at')}", f"checked at {_iso(now)}"),
                fix=(
                    f"Find out why {task_id} stopped moving: finish it, split it, or release it "
                    "(mark it open or failed with the reason) so it can be picked up again."
                ),
            )
        )
    return findings


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


LANE = Lane(
    name=NAME,
    scope=LaneScope.TREE,
    summary="the target branch's suite on its tip, untested modules, hollow tests, stalled work",
    run=run,
    defaults=DEFAULTS,
    fence=None,
    volatile=True,  # work_stalled reads the graph and the clock; the suite run is cached per head itself
)
