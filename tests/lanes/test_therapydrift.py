from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.lanes.builtin.therapydrift import LANE, signals_of
from tests.conftest import NOW
from tests.gitrepo import make_repo
from tests.lanes.diffsupport import fenced, graph_of, kinds, only, run, task

PLAN = "Fix it.\n\n## Recovery plan\nStop adding retries; redo the parser.\n"


def _log(*messages: str) -> list[dict[str, str]]:
    return [{"timestamp": "2026-11-20T10:00:00Z", "message": m} for m in messages]


def _drifting(
    task_id: str = "t1", description: str = "Fix it.", signals: int = 2, **fields: Any
) -> dict[str, Any]:
    messages = [f"Coredrift: scope_drift #{i}" for i in range(signals)]
    return task(task_id, description, log=_log("started", *messages), **fields)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_drift_lines_are_counted_by_lane_prefix_and_ignore_prefixes_and_its_own_lines() -> None:
    subject = task(
        "t1",
        log=_log(
            "Coredrift: scope_drift",
            "specdrift: spec_not_updated",
            "  drift: something",
            "therapydrift: repeated_drift_signals",
            "agent started",
            "Depsdrift (manual): note",
        ),
    )
    assert len(signals_of(subject, [])) == 3
    assert len(signals_of(subject, ["specdrift"])) == 2


def test_a_task_drifting_twice_without_a_plan_is_repeated_signals_and_missing_plan(repo: Path) -> None:
    out = run(LANE, repo, task=_drifting())
    assert kinds(out) == ["missing_recovery_plan", "repeated_drift_signals"]
    repeated = only(out, "repeated_drift_signals")[0]
    assert repeated.subject == "t1" and repeated.severity == "warning"
    assert repeated.evidence[-1] == "Coredrift: scope_drift #1"


def test_a_recovery_plan_in_the_description_or_a_therapy_task_satisfies_the_plan(repo: Path) -> None:
    assert kinds(run(LANE, repo, task=_drifting(description=PLAN))) == ["repeated_drift_signals"]
    inline = _drifting(description="Fix it.\nRecovery plan: split the task.")
    assert kinds(run(LANE, repo, task=inline)) == ["repeated_drift_signals"]
    graph = graph_of([_drifting(), task("drift-therapy-t1", status="done")])
    assert kinds(run(LANE, repo, task=_drifting(), graph=graph)) == ["repeated_drift_signals"]
    relaxed = run(LANE, repo, task=_drifting(), policy={"require_recovery_plan": False})
    assert kinds(relaxed) == ["repeated_drift_signals"]


def test_min_signal_count_and_ignore_prefixes_decide_what_is_repeated(repo: Path) -> None:
    assert run(LANE, repo, task=_drifting(signals=1)).findings == []
    assert run(LANE, repo, task=_drifting(), policy={"min_signal_count": 3}).findings == []
    assert run(LANE, repo, task=_drifting(), policy={"ignore_signal_prefixes": ["coredrift:"]}).findings == []


def test_open_drift_followups_of_the_task_are_unresolved_drift_followups(repo: Path) -> None:
    graph = graph_of(
        [
            _drifting(signals=0),
            task("drift-scope-t1", status="open"),
            task("coredrift-pit-x", status="in-progress", after=["t1"]),
            task("drift-harden-t1", status="done"),
            task("drift-scope-t10", status="open"),
            task("qa-review", status="open", after=["t1"]),
        ]
    )
    out = run(LANE, repo, task=_drifting(signals=0), graph=graph)
    assert kinds(out) == ["unresolved_drift_followups"]
    assert out.findings[0].evidence == ("open: coredrift-pit-x, drift-scope-t1",)
    narrow = run(LANE, repo, task=_drifting(signals=0), graph=graph, policy={"followup_prefixes": ["drift-"]})
    assert narrow.findings[0].evidence == ("open: drift-scope-t1",)


def test_a_task_without_drift_is_clean(repo: Path) -> None:
    graph = graph_of([task("t1", log=_log("started", "done")), task("drift-scope-t2", status="open")])
    assert run(LANE, repo, task=task("t1", log=_log("started")), graph=graph).findings == []


def test_without_a_task_every_open_or_running_task_is_judged_with_its_own_block(repo: Path) -> None:
    graph = graph_of(
        [
            _drifting("a", status="open"),
            _drifting("b", description=PLAN, status="in-progress"),
            _drifting("c", status="done"),
            _drifting("d", description=fenced("therapydrift", "min_signal_count = 5")),
            _drifting("e", description=fenced("therapydrift", "min_signal_count = ")),
            _drifting("f", description=fenced("therapydrift", "schema = 2")),
        ]
    )
    out = run(LANE, repo, graph=graph)
    found = sorted((f.subject, f.kind) for f in out.findings)
    assert found == [
        ("a", "missing_recovery_plan"),
        ("a", "repeated_drift_signals"),
        ("b", "repeated_drift_signals"),
        ("e", "invalid_therapy_config"),
        ("f", "unsupported_schema"),
    ]


def test_a_block_that_cannot_be_read_is_invalid_therapy_config(repo: Path) -> None:
    for body in ("cooldown_seconds = ", 'cooldown_seconds = "soon"', "cooldown = 5"):
        out = run(LANE, repo, task=_drifting(description=fenced("therapydrift", body)))
        assert kinds(out) == ["invalid_therapy_config"], body
        assert out.findings[0].severity == "error"


def _at(repo: Path, state: Path, seconds: float, signals: int = 2, **policy: Any) -> list[tuple[str, str]]:
    out = run(
        LANE,
        repo,
        task=_drifting(description=PLAN, signals=signals),
        policy=policy,
        state_dir=state,
        now=NOW + timedelta(seconds=seconds),
    )
    return [(f.kind, str(f.severity)) for f in out.findings]


def test_within_the_cooldown_or_without_new_signals_findings_are_held_as_info(
    repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert _at(repo, state, 0) == [("repeated_drift_signals", "warning")]
    out = run(LANE, repo, task=_drifting(description=PLAN), state_dir=state, now=NOW + timedelta(seconds=60))
    held = out.findings[0]
    assert held.severity == "info" and "cooldown" in held.evidence[-1]
    assert _at(repo, state, 2000) == [("repeated_drift_signals", "info")]  # no new signal since
    assert _at(repo, state, 2001, signals=3) == [("repeated_drift_signals", "warning")]
    budget = run(
        LANE,
        repo,
        task=_drifting(description=PLAN, signals=4),
        policy={"cooldown_seconds": 0},
        state_dir=state,
        now=NOW + timedelta(seconds=2002),
    )
    assert budget.findings[0].severity == "info" and "hourly budget" in budget.findings[0].evidence[-1]


def test_the_hourly_budget_holds_actions_until_the_hour_has_passed(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    limits = {"cooldown_seconds": 0, "max_auto_actions_per_hour": 1}
    assert _at(repo, state, 0, 2, **limits) == [("repeated_drift_signals", "warning")]
    assert _at(repo, state, 10, 3, **limits) == [("repeated_drift_signals", "info")]
    assert _at(repo, state, 3700, 4, **limits) == [("repeated_drift_signals", "warning")]


def test_after_circuit_breaker_after_actions_the_breaker_opens_until_the_task_is_clean(
    repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    limits = {
        "cooldown_seconds": 0,
        "max_auto_actions_per_hour": 100,
        "min_new_signals": 0,
        "circuit_breaker_after": 3,
    }
    for second in range(3):
        assert _at(repo, state, second, **limits) == [("repeated_drift_signals", "warning")]
    opened = run(LANE, repo, task=_drifting(description=PLAN), policy=limits, state_dir=state, now=NOW)
    assert kinds(opened) == ["circuit_breaker_open", "repeated_drift_signals"]
    breaker = only(opened, "circuit_breaker_open")[0]
    assert breaker.severity == "critical" and breaker.subject == "t1"
    assert only(opened, "repeated_drift_signals")[0].severity == "info"
    assert _at(repo, state, 10, signals=0, **limits) == []  # clean: history forgotten
    assert _at(repo, state, 11, **limits) == [("repeated_drift_signals", "warning")]
    off = tmp_path / "off"
    for second in range(8):
        assert _at(repo, off, second, **{**limits, "circuit_breaker_after": 0})[0][1] == "warning"


def test_a_held_finding_keeps_its_fingerprint(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = run(LANE, repo, task=_drifting(description=PLAN), state_dir=state, now=NOW)
    second = run(
        LANE, repo, task=_drifting(description=PLAN), state_dir=state, now=NOW + timedelta(seconds=5)
    )
    assert second.findings[0].severity == "info"
    assert first.findings[0].fingerprint == second.findings[0].fingerprint
