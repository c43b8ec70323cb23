"""The Debugger in recovery, end to end: a real pipeline runs the fake `claude` CLI (per-role runs,
unsandboxed) as developer and as Debugger, real gates-shaped verdicts fail the first attempt, and
the diagnosis reaches the retry's prompt through the recorded decision and ``followup.carry_out``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speedrift import layout
from speedrift.failure_class import FailureClass
from speedrift.fleet import followup
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.gates.verdict import GateVerdict
from speedrift.graph.model import Task
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git

ROOT_CAUSE = "app.py prints the literal 'broken' instead of the version string v2"
DIAGNOSIS = {
    "failure_classification": "test_failure",
    "root_cause": ROOT_CAUSE,
    "root_cause_location": {"file": "app.py", "line": 1, "context": "print('broken')"},
    "fix": {
        "description": "Print v2.",
        "changes": [{"file": "app.py", "line": 1, "current": "print('broken')", "should_be": "print('v2')"}],
    },
    "recommendation": "retry",
    "confidence": "high",
    "confidence_reason": "the failing test compares the output with v2",
}
BROKEN = [
    {"do": "start"},
    {"do": "edit", "path": "app.py", "content": "print('broken')\n"},
    {"do": "finish", "text": "I made app.py print broken, as I understood the task."},
]
FIXED = [{"do": "start"}, {"do": "edit", "path": "app.py", "content": "print('v2')\n"}, {"do": "finish"}]


@dataclass
class AppTests:
    """The repo's tests as a gate: they fail while app.py at the checked tip says 'broken'."""

    def check(self, repo: Path, worktree: Path, base: str, tip: str, task: Task) -> GateVerdict:
        if "broken" not in sh_git(repo, "show", f"{tip}:app.py"):
            passed = {"gate": "tests", "status": "pass", "required": True, "findings": []}
            return GateVerdict(True, "tests pass", {"results": [passed], "blocking": []}, verified=True)
        finding = {
            "file": "app.py",
            "line": 1,
            "kind": "test",
            "message": "test_app: expected 'v2', got 'broken'",
        }
        failed = {
            "gate": "tests",
            "status": "fail",
            "reason": "1 test fails",
            "required": True,
            "findings": [finding],
        }
        return GateVerdict(
            False,
            "blocked by tests",
            {"results": [failed], "blocking": ["tests"]},
            FailureClass.IMPLEMENTATION_ERROR,
        )


def roles(path: Path, **runs: list[list[dict[str, Any]]]) -> None:
    path.write_text(json.dumps({"roles": runs}))


def debugger_run(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"do": "start"}, {"do": "result_file", "report": report}, {"do": "finish"}]


def pipeline(workshop: Workshop, *, debugger: bool | None = True) -> Pipeline:
    config: dict[str, Any] = {
        "env": {"allow": ["FAKE_AGENT_SCENARIO"]},
        "sandbox": {"mode": "off"},
        "service": {"backoff_seconds": 0},
    }
    if debugger is not None:
        config["roles"] = {"debugger": {"enabled": debugger}}
    return Pipeline(workshop.repo, workshop.store, RepoConfig.model_validate(config), gates=AppTests())


def evidence_of(run_dir: str | None) -> dict[str, Any]:
    return json.loads(layout.evidence_path(Path(run_dir or "")).read_text())  # type: ignore[no-any-return]


def recovery_of(workshop: Workshop) -> dict[str, Any]:
    return workshop.task("t")["speedrift"]["recovery"]  # type: ignore[index,no-any-return]


def test_the_debuggers_diagnosis_reaches_the_retrys_prompt(workshop: Workshop, scenario: Path) -> None:
    roles(scenario, developer=[BROKEN, FIXED], debugger=[debugger_run(DIAGNOSIS)])
    workshop.add("t", description="Make app.py print v2.")
    runner = pipeline(workshop)
    first = runner.run("t", RunOptions())
    assert (first.status, first.failure) == ("failed", "implementation_error")
    noted = evidence_of(first.run_dir)["debugger"]
    assert (
        noted["applied"] is True
        and noted["recommendation"] == "retry"
        and noted["recovery"] == "retry_with_diagnosis"
    )
    # what the Debugger was given: the gate output, the agent's last words, the attempt's diff
    asked = (Path(first.run_dir or "") / "roles" / "debugger-1" / "round-1" / "prompt.md").read_text()
    assert "test_app: expected 'v2', got 'broken'" in asked
    assert "I made app.py print broken" in asked
    assert "+print('broken')" in asked and "-print('v1')" in asked
    recovery = recovery_of(workshop)
    assert recovery["automatic"] is True and ROOT_CAUSE in recovery["diagnosis"]
    assert "rule implementation" not in recovery["diagnosis"]  # the templated diagnosis was replaced

    carried = followup.carry_out(workshop.repo, workshop.store, runner.config, "t", actor="test")
    assert carried.outcome == "reopened"
    second = runner.run("t", RunOptions())
    assert second.status == "done", second.reason
    prompt = layout.prompt_path(Path(second.run_dir or "")).read_text()
    guidance = prompt.split("## Guidance for this retry", 1)[1].split("\n## ", 1)[0]
    assert ROOT_CAUSE in guidance and "app.py:1: `print('broken')` → `print('v2')`" in guidance


def test_an_invalid_debugger_output_keeps_the_templated_diagnosis(workshop: Workshop, scenario: Path) -> None:
    invalid = {"root_cause": "", "recommendation": "maybe"}
    roles(scenario, developer=[BROKEN], debugger=[debugger_run(invalid)])
    workshop.add("t")
    first = pipeline(workshop).run("t", RunOptions())
    noted = evidence_of(first.run_dir)["debugger"]
    assert noted["ran"] is True and noted["applied"] is False
    assert (
        "gave no valid output in 2 round(s)" in noted["why"]
        and "the templated diagnosis stays" in noted["why"]
    )
    recovery = recovery_of(workshop)
    assert recovery["recovery"] == "retry_with_diagnosis" and recovery["automatic"] is True
    assert recovery["diagnosis"].startswith("The previous attempt (1) failed as implementation_error (rule")


def test_an_escalate_recommendation_asks_a_human_with_the_root_cause(
    workshop: Workshop, scenario: Path
) -> None:
    stuck = DIAGNOSIS | {"recommendation": "escalate", "root_cause": "the task asks for v2 and v3 at once"}
    roles(scenario, developer=[BROKEN], debugger=[debugger_run(stuck)])
    workshop.add("t")
    runner = pipeline(workshop)
    runner.run("t", RunOptions())
    task = workshop.task("t")
    recovery = recovery_of(workshop)
    assert recovery["recovery"] == "escalate_human" and recovery["automatic"] is False
    assert "the task asks for v2 and v3 at once" in recovery["question"]
    assert "speedrift retry t --context" in recovery["question"]
    assert task["status"] == "failed" and "needs-human" in task["tags"]  # type: ignore[operator]
    carried = followup.carry_out(workshop.repo, workshop.store, runner.config, "t", actor="test")
    assert carried.outcome == "nothing"  # no automatic retry: a human answers first


def test_a_split_recommendation_holds_the_task_for_decompose(workshop: Workshop, scenario: Path) -> None:
    roles(scenario, developer=[BROKEN], debugger=[debugger_run(DIAGNOSIS | {"recommendation": "split"})])
    workshop.add("t")
    pipeline(workshop).run("t", RunOptions())
    task = workshop.task("t")
    assert task["status"] == "open" and task["paused"] is True and "needs-replan" in task["tags"]  # type: ignore[operator]
    logged = [str(e["message"]) for e in task["log"]]  # type: ignore[attr-defined]
    assert any("`speedrift decompose t`" in line for line in logged)


def test_the_debugger_is_off_by_default(workshop: Workshop, scenario: Path) -> None:
    roles(scenario, developer=[BROKEN], debugger=[debugger_run(DIAGNOSIS)])
    workshop.add("t")
    first = pipeline(workshop, debugger=None).run("t", RunOptions())
    assert first.failure == "implementation_error"
    assert "debugger" not in evidence_of(first.run_dir)
    assert not (Path(first.run_dir or "") / "roles").exists()
    counted = json.loads(Path(f"{scenario}.count.json").read_text())
    assert counted == {"developer": 1}  # the fake never ran as the Debugger
    assert recovery_of(workshop)["diagnosis"].startswith(
        "The previous attempt (1) failed as implementation_error"
    )
