"""qadrift's run of the target branch's test suite on head: the suite as the tests gate resolves it
(``[gates.tests] command`` in speedrift.toml, else the detected one: gates/testrun.py), run in a
private checkout of head kept between runs outside the repo (gates/basetree.py ``kept_tree``: a
new head rewrites only the files that changed) — in full, or only the test files the changes since
an earlier head reach with the rest carried (_qaselect.py) —, cached per head and command in
``suite.json``.

Invariant: the suite never runs in the user's checkout and never sees a credential this process
holds (as the tests gate's runs do not); its output is redacted before it is recorded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from speedrift import layout, redact, safetoml, statehome
from speedrift.agents.env import without_credentials
from speedrift.gates import basetree, testrun
from speedrift.gates.config import GatesConfig
from speedrift.gates.context import GateContext
from speedrift.gates.diffaware import Cache
from speedrift.gates.tools import GateTimeout, ToolFinder, ToolNotRunnable
from speedrift.lanes.builtin import _qaselect as select
from speedrift.lanes.context import LaneContext

CONFIG_FILE = "speedrift.toml"
SUITE_FILE = "suite.json"
PYTEST_ERRORS = frozenset({testrun.PYTEST_USAGE_ERROR, testrun.PYTEST_INTERNAL_ERROR})


def _gates_config(repo: Path) -> tuple[GatesConfig, str]:
    """The repo's ``[gates]`` table (its ``[gates.tests] command``), as the tests gate gets it; the
    second item says why the defaults are used instead ("" when they are not)."""
    path = repo / CONFIG_FILE
    if not path.is_file():
        return GatesConfig(), ""
    try:
        raw = safetoml.loads(safetoml.decode(path.read_bytes()))
        gates = raw.get("gates", {})
        return GatesConfig.model_validate(gates if isinstance(gates, dict) else {}), ""
    except (OSError, ValueError) as error:
        return GatesConfig(), f"{CONFIG_FILE} unreadable ({type(error).__name__}); the detected suite is used"


def kept_dir(repo: Path) -> Path:
    """Where the suite runs: this repo's checkout of the head, kept between runs in the state home
    (a new head rewrites only the files that changed; nothing under it climbs into the repo)."""
    digest = hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
    return statehome.kept_trees_dir() / f"{digest}-qadrift"


def _command_key(config: GatesConfig, timeout: float) -> str:
    text = orjson.dumps([config.tests.model_dump(), timeout], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()[:24]


def _suite_key(head: str, command_key: str) -> str:
    return hashlib.sha256(f"{head}\x1f{command_key}".encode()).hexdigest()[:24]


def _gate(
    ctx: LaneContext, root: Path, config: GatesConfig, env: Mapping[str, str], timeout: float
) -> GateContext:
    return GateContext(
        repo=ctx.repo,
        worktree=root,
        base=ctx.view.head,
        tip=ctx.view.head,
        task=None,
        changes=(),
        config=config,
        env=env,
        finder=ToolFinder(ctx.repo, root, config.tools, env),
        cache=Cache(layout.cache_dir(ctx.repo, "qadrift")),
        deadline=time.monotonic() + timeout,
    )


def suite_outcome(ctx: LaneContext, settings: Mapping[str, Any], notes: list[str]) -> dict[str, Any] | None:
    """The suite's outcome at head — from the cache when this head (and command) already ran; the
    selected test files only, the rest carried, when an earlier head allows it (_qaselect.py) —,
    or None when no suite can run (no tests, its tool missing: said in ``notes``)."""
    timeout = float(settings["test_timeout_s"])
    config, problem = _gates_config(ctx.repo)
    if problem:
        notes.append(problem)
    head = ctx.view.head
    cache_path = ctx.state_dir / SUITE_FILE if ctx.state_dir else None
    entries = select.load(cache_path)
    command_key = _command_key(config, timeout)
    key = _suite_key(head, command_key)
    cached = entries.get(key)
    if cached is not None and cached.get("head") == head:
        if cached.get("skipped"):
            notes.append(f"tests not run: {cached['skipped']}")
            return None
        if settings["incremental_tests"] or cached.get("mode") != select.Mode.SELECTED:
            notes.append(f"suite outcome at {head[:12]} reused")
            return dict(cached)
    selection = select.choose(ctx.view, entries, command_key, settings, ctx.state_dir)
    started = time.monotonic()
    if selection.selected and not selection.allow:  # nothing the change reaches: nothing runs
        command = [str(a) for a in selection.base.get("command", [])]
        label = str(selection.base.get("label", "pytest"))
        outcome = _merged(ctx, selection, None)
    else:
        with basetree.kept_tree(ctx.repo, head, kept_dir(ctx.repo)) as root:
            gate = _gate(ctx, root, config, without_credentials(), timeout)
            plan = testrun.resolve(gate)
            if plan.command is None:
                notes.append(f"tests not run: {plan.problem}")
                entries[key] = {"head": head, "skipped": plan.problem, "seq": select.next_seq(entries)}
                select.save(cache_path, entries)
                return None
            command, label = plan.command, plan.label or testrun.label_of(plan.command)
            if selection.selected and command != selection.base.get("command"):
                selection = select.full("the test command changed")
            try:
                outcome, selection = _execute(ctx, gate, root, command, selection)
            except GateTimeout:
                outcome = {"timed_out": True, "returncode": None, "failing": [], "complete": False}
            except ToolNotRunnable as error:
                notes.append(f"tests not run: {error}")
                return None
    outcome.update(
        head=head,
        label=label,
        pytest=testrun.is_pytest(command),
        command=command,
        command_key=command_key,
        mode=selection.mode.value,
        why=selection.why,
        carried_from=selection.base.get("head") if selection.selected else None,
        streak=int(selection.base.get("streak", 0)) + 1 if selection.selected else 0,
        seconds=round(time.monotonic() - started, 2),
        ran_at=ctx.now.isoformat(),
        seq=select.next_seq(entries),
    )
    outcome.setdefault("ran_files", [])
    notes.append(_run_note(outcome, selection))
    entries[key] = outcome
    select.save(cache_path, entries)
    return outcome


def _execute(
    ctx: LaneContext, gate: GateContext, root: Path, command: list[str], selection: select.Selection
) -> tuple[dict[str, Any], select.Selection]:
    """Run the selection (or the suite) in the checkout at ``root``. A selected run pytest could
    not carry out (a usage or internal error, e.g. a pytest too old for the plugin) is replaced by
    the full suite."""
    if selection.selected:
        with select.plugin(root, selection.allow, gate.env) as (env, args):
            run = testrun.run_suite(
                _gate(ctx, root, gate.config, env, gate.remaining()), root, [*command, *args]
            )
        if run.outcomes is not None and run.returncode not in PYTEST_ERRORS:
            return _merged(ctx, selection, run), selection
        selection = select.full(f"the selected run could not run (pytest exit {run.returncode})")
    run = testrun.run_suite(gate, root, command)
    tests = select.by_file(run) if run.outcomes is not None else {}
    failing = sorted(run.failing)
    outcome: dict[str, Any] = {
        "timed_out": False,
        "returncode": run.returncode,
        "failing": failing,
        "messages": {t: redact.redact_text(run.messages.get(t, "")) for t in failing},
        "counts": run.counts() if run.outcomes is not None else "",
        "tail": redact.redact_text(run.tail),
        "tests": tests,
        "ran_files": sorted(tests),
        "complete": (
            testrun.is_pytest(command)
            and run.outcomes is not None
            and run.returncode in select.COMPLETE_CODES
            and select.mappable(tests, ctx.view)
        ),
    }
    return outcome, selection


def _merged(ctx: LaneContext, selection: select.Selection, run: testrun.SuiteRun | None) -> dict[str, Any]:
    """A selected run's outcome: its tests' outcomes with the earlier head's carried for the rest."""
    tests, messages = select.merge(selection, run, selection.base)
    outcomes = select.flat(tests)
    failing = sorted(t for t, o in outcomes.items() if o in testrun.FAILED)
    fresh = select.by_file(run) if run is not None else {}
    interrupted = run is not None and run.returncode not in select.COMPLETE_CODES
    if run is not None and interrupted:
        code = run.returncode
    else:
        code = 1 if failing else 0 if outcomes else testrun.PYTEST_NO_TESTS
    return {
        "timed_out": False,
        "returncode": code,
        "failing": failing,
        "messages": {t: redact.redact_text(messages.get(t, "")) for t in failing},
        "counts": testrun.SuiteRun(code, outcomes, "").counts(),
        "tail": redact.redact_text(run.tail) if run is not None else "",
        "tests": tests,
        "ran_files": sorted(set(selection.tests) | set(fresh)),
        "complete": not interrupted and select.mappable(fresh, ctx.view),
    }


def _run_note(outcome: Mapping[str, Any], selection: select.Selection) -> str:
    ran = len(outcome.get("ran_files", []))
    if outcome.get("timed_out"):
        return f"tests: the {selection.mode.value} run timed out"
    if not selection.selected:
        return f"tests: full suite run, {ran} test file(s) ({selection.why})"
    total = len(set(outcome.get("tests", {})) | set(outcome.get("ran_files", [])))
    since = str(selection.base.get("head", ""))[:12]
    return (
        f"tests: {ran} of {total} test files run (selected from changes since {since}; {total - ran} carried)"
    )
