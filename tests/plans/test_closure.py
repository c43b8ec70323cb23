"""Closure adjudication (plans/closure.py): a gap is never a pass, and no later stage erases an
earlier stage's open gap."""

from __future__ import annotations

from typing import Any

from speedrift.plans import closure
from speedrift.plans.closure import CommandResult, GapKind, Phase, StageRecord, TaskState
from speedrift.plans.spec import ClosureStage, WaveSpec, parse

COMMIT = "c0ffee" * 6


def _spec(validation: tuple[str, ...] = ("pytest -q",)) -> WaveSpec:
    task = {"title": "t", "role": "implementation", "owned": ["src/**"], "prompt": "p"}
    return parse(
        {
            "schema": "speedrift.wave/1",
            "wave": 3,
            "title": "w",
            "mode": "dark-factory",
            "validation": list(validation),
            "tasks": [{**task, "id": "api"}, {**task, "id": "cli", "validation": ["make lint"]}],
        }
    )


def _tasks(status: str = "done", verified: bool = True) -> list[TaskState]:
    return [TaskState("w3-api", "api", status, verified), TaskState("w3-cli", "cli", "done", True)]


def _ran(*codes: int) -> list[CommandResult]:
    return [
        CommandResult(cmd, COMMIT, code) for cmd, code in zip(("pytest -q", "make lint"), codes, strict=False)
    ]


def _integration(record: str = "wave-3-1", **over: Any) -> StageRecord:
    output: dict[str, Any] = {
        "recommendation": "ready",
        "open_claims": [],
        "conflicting_claims": [],
        "unresolved_blockers": [],
        "changed_interfaces": [],
        "cross_component_impacts": [],
        "proof_gaps": [],
        "doc_gaps": [{"summary": "README lacks the new flag", "docs": ["README.md"]}],
        "deploy_risks": [],
        "detail": "fits",
    }
    return StageRecord(ClosureStage.INTEGRATION, record, {**output, **over})


def _docs(record: str = "wave-3-2", **over: Any) -> StageRecord:
    output: dict[str, Any] = {
        "status": "complete",
        "summary": "done",
        "docs_to_change": [{"path": "README.md", "reason": "new flag", "done": True}],
        "gaps_found": [],
        "gaps_closed": [{"location": "README.md:10", "summary": "flag documented", "closed_by": "steward"}],
        "files_written": ["README.md"],
        "proposed": [],
    }
    return StageRecord(ClosureStage.DOCUMENTATION, record, {**output, **over})


def _eval(record: str = "wave-3-3", **over: Any) -> StageRecord:
    output: dict[str, Any] = {
        "overall": "pass",
        "summary": "ok",
        "verdicts": [
            {
                "target": "c1",
                "kind": "acceptance_criterion",
                "task": "w3-api",
                "verdict": "pass",
                "evidence": ["t"],
            },
            {
                "target": "c2",
                "kind": "acceptance_criterion",
                "task": "cli",
                "verdict": "pass",
                "evidence": ["t"],
            },
        ],
        "gaps": [],
    }
    return StageRecord(ClosureStage.EVALUATION, record, {**output, **over})


def test_a_wave_with_every_stage_passed_and_no_gap_is_closed() -> None:
    result = closure.adjudicate(
        _spec(), _tasks(), _ran(0, 0), [_integration(), _docs(), _eval()], commit=COMMIT
    )
    assert result.phase is Phase.CLOSED and result.closed
    assert [gap.kind for gap in result.closed_gaps] == [GapKind.DOC]
    assert result.records == {
        "integration": "wave-3-1",
        "documentation": "wave-3-2",
        "evaluation": "wave-3-3",
    }


def test_an_unfinished_task_keeps_the_wave_in_implementation() -> None:
    result = closure.adjudicate(_spec(), _tasks(status="in-progress"), [], [], commit=COMMIT)
    assert result.phase is Phase.IMPLEMENTATION
    assert "w3-api is in-progress" in result.reasons


def test_validation_not_run_by_speedrift_on_this_commit_does_not_count() -> None:
    stale = [CommandResult("pytest -q", "0" * 40, 0), CommandResult("make lint", COMMIT, 0)]
    result = closure.adjudicate(_spec(), _tasks(), stale, [_integration(), _docs(), _eval()], commit=COMMIT)
    assert result.phase is Phase.IMPLEMENTATION
    assert any(reason.startswith("validation not run") and "pytest -q" in reason for reason in result.reasons)


def test_a_failed_validation_is_a_gap_the_closure_stages_cannot_pass() -> None:
    result = closure.adjudicate(
        _spec(), _tasks(), _ran(0, 2), [_integration(), _docs(), _eval()], commit=COMMIT
    )
    assert result.phase is Phase.IMPLEMENTATION
    assert [gap.kind for gap in result.open_gaps] == [GapKind.VALIDATION]


def test_an_unverified_task_stays_an_open_gap_through_an_integration_ready_and_an_evaluator_pass() -> None:
    result = closure.adjudicate(
        _spec(), _tasks(verified=False), _ran(0, 0), [_integration(), _docs(), _eval()], commit=COMMIT
    )
    assert result.phase is Phase.EVALUATION and not result.closed
    assert [gap.kind for gap in result.open_gaps] == [GapKind.UNVERIFIED]
    assert any("a gap is never a pass" in reason for reason in result.reasons)


def test_a_doc_gap_the_documentation_report_does_not_close_survives_its_complete_status() -> None:
    docs = _docs(gaps_closed=[], docs_to_change=[{"path": "docs/other.md", "reason": "x", "done": True}])
    result = closure.adjudicate(_spec(), _tasks(), _ran(0, 0), [_integration(), docs, _eval()], commit=COMMIT)
    assert not result.closed
    assert [(gap.kind, gap.files) for gap in result.open_gaps] == [(GapKind.DOC, ("README.md",))]


def test_a_doc_gap_naming_no_file_is_closed_only_by_the_same_summary() -> None:
    integration = _integration(doc_gaps=[{"summary": "Explain the limiter"}])
    unrelated = _docs(
        gaps_closed=[{"location": "README.md", "summary": "something else", "closed_by": "steward"}]
    )
    assert not closure.adjudicate(
        _spec(), _tasks(), _ran(0, 0), [integration, unrelated, _eval()], commit=COMMIT
    ).closed
    named = _docs(
        gaps_closed=[{"location": "README.md", "summary": "explain the limiter ", "closed_by": "steward"}]
    )
    assert closure.adjudicate(
        _spec(), _tasks(), _ran(0, 0), [integration, named, _eval()], commit=COMMIT
    ).closed


def test_an_integration_that_needs_more_work_holds_the_wave_with_its_gaps() -> None:
    integration = _integration(
        recommendation="needs_more_work",
        proof_gaps=[{"summary": "no load test", "needed": "a benchmark run", "tasks": ["w3-api"]}],
    )
    result = closure.adjudicate(_spec(), _tasks(), _ran(0, 0), [integration, _docs(), _eval()], commit=COMMIT)
    assert result.phase is Phase.INTEGRATION
    assert GapKind.PROOF in {gap.kind for gap in result.open_gaps}


def test_a_high_deploy_risk_without_mitigation_is_a_gap_the_evaluator_cannot_erase() -> None:
    integration = _integration(deploy_risks=[{"summary": "migration locks the table", "severity": "high"}])
    result = closure.adjudicate(_spec(), _tasks(), _ran(0, 0), [integration, _docs(), _eval()], commit=COMMIT)
    assert result.phase is Phase.EVALUATION
    assert [gap.kind for gap in result.open_gaps] == [GapKind.DEPLOY_RISK]
    mitigated = _integration(deploy_risks=[{"summary": "x", "severity": "high", "mitigation": "online DDL"}])
    assert closure.adjudicate(
        _spec(), _tasks(), _ran(0, 0), [mitigated, _docs(), _eval()], commit=COMMIT
    ).closed


def test_a_re_run_integration_makes_the_later_stages_records_stale() -> None:
    records = [_integration("wave-3-1"), _docs("wave-3-2"), _eval("wave-3-3"), _integration("wave-3-4")]
    result = closure.adjudicate(_spec(), _tasks(), _ran(0, 0), records, commit=COMMIT)
    assert result.phase is Phase.DOCUMENTATION
    assert result.records == {"integration": "wave-3-4"}


def test_a_task_no_verdict_covers_is_unjudged_not_passed() -> None:
    evaluation = _eval(
        verdicts=[
            {
                "target": "c1",
                "kind": "acceptance_criterion",
                "task": "w3-api",
                "verdict": "pass",
                "evidence": ["t"],
            }
        ]
    )
    result = closure.adjudicate(
        _spec(), _tasks(), _ran(0, 0), [_integration(), _docs(), evaluation], commit=COMMIT
    )
    assert [(gap.kind, gap.tasks) for gap in result.open_gaps] == [(GapKind.UNJUDGED, ("w3-cli",))]


def test_the_decision_is_the_same_for_the_same_records() -> None:
    records = [_integration(), _docs(), _eval()]
    one = closure.adjudicate(_spec(), _tasks(), _ran(0, 0), records, commit=COMMIT).as_dict()
    two = closure.adjudicate(_spec(), list(_tasks()), _ran(0, 0), list(records), commit=COMMIT).as_dict()
    assert one == two
