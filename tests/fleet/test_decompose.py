"""`speedrift decompose`: the fake `claude` CLI runs as the Architect and the Plan Verifier
(per-role runs, unsandboxed) against a real repo and graph; speedrift checks the plan itself,
loops back to the Architect, writes a verified split in one change or asks a human."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from speedrift.coord.store import CoordStore
from speedrift.fleet.answers import answer
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.decompose import Outcome, decompose
from speedrift.fleet.decompose_plan import FindingKind, check_plan
from speedrift.fleet.prompt import build_prompt
from speedrift.graph import ops
from tests.fleet.conftest import Workshop

SPEC = (
    "Make app.py print v2 and document it.\n\nAcceptance criteria:\n- app.py prints v2\n"
    "- README.md says the app prints v2"
)
RATIONALE = "The code first; the README describes what the code does."


def task(
    local: str, files: list[str], *, after: list[str] | None = None, tier: str = "support"
) -> dict[str, Any]:
    return {
        "id": local,
        "title": f"The {local} part",
        "description": f"Do the {local} part of the change.",
        "acceptance_criteria": [{"criterion": f"the {local} part is done", "verify_by": "test"}],
        "files_touched": files,
        "depends_on": after or [],
        "model_tier": tier,
    }


GOOD = {
    "tasks": [task("code", ["app.py"], tier="planning"), task("docs", ["README.md"], after=["code"])],
    "rationale": RATIONALE,
    "assumptions": [],
}
OVERLAPPING = {  # two tasks that may run side by side, both touching app.py
    "tasks": [task("code", ["app.py"]), task("docs", ["README.md", "app.py"])],
    "rationale": RATIONALE,
}
PASS = {
    "status": "pass",
    "spec_requirements": [
        {"requirement": "app.py prints v2", "status": "covered", "mapped_to_task": "code"},
        {"requirement": "README.md says the app prints v2", "status": "covered", "mapped_to_task": "docs"},
    ],
    "ownership_overlaps": [],
    "untestable_criteria": [],
    "critical_failures": [],
    "recommendations": [],
}
FAIL = {
    "status": "fail",
    "spec_requirements": [
        {"requirement": "README.md says the app prints v2", "status": "missing", "mapped_to_task": None},
    ],
    "ownership_overlaps": [],
    "untestable_criteria": [],
    "critical_failures": [
        {
            "description": "Nothing documents the new output.",
            "spec_reference": "README.md says the app prints v2",
            "plan_gap": "no task changes README.md to say v2",
        }
    ],
    "recommendations": [],
}


def reports(*outputs: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [[{"do": "start"}, {"do": "result_file", "report": o}, {"do": "finish"}] for o in outputs]


def roles(path: Path, architect: list[dict[str, Any]], verifier: list[dict[str, Any]]) -> None:
    path.write_text(
        json.dumps({"roles": {"architect": reports(*architect), "plan_verifier": reports(*verifier)}})
    )


CONFIG = {"env": {"allow": ["FAKE_AGENT_SCENARIO"]}, "sandbox": {"mode": "off"}}


def run(workshop: Workshop, **options: Any) -> Any:
    config = RepoConfig.model_validate(CONFIG)
    return decompose(workshop.repo, workshop.store, config, "big", actor="test", **options)


def failed_as_decomposition_error(workshop: Workshop) -> None:
    """`big` failed because it changed files it never declared (the scope gate's verdict)."""
    workshop.add("big", description=SPEC, touch=["app.py"])
    found = {
        "class": "decomposition_error",
        "rule": "scope-undeclared",
        "evidence": ["gate scope: fail — 3 undeclared files"],
        "files": ["README.md", "docs/usage.md", "setup.cfg"],
    }
    entry = {"attempt": 1, "class": "decomposition_error", "rule": "scope-undeclared", "reason": "scope"}

    workshop.store.mutate(lambda g, now: ops.claim(g, "big", now=now, actor="test"))

    def fail(graph: Any, now: Any) -> ops.Mutation:
        failed = ops.fail(graph, "big", reason="decomposition_error: scope", now=now, actor="test")
        recorded = {"failure_class": "decomposition_error", "classification": found, "failures": [entry]}
        return ops.set_fields(graph, "big", speedrift=recorded, now=now, actor="test", within=failed)

    workshop.store.mutate(fail)
    assert workshop.task("big")["status"] == "failed"


def record_dir(workshop: Workshop) -> Path:
    return workshop.repo / ".speedrift" / "runs" / "big" / "decompose" / "1"


def prompt(workshop: Workshop, role_run: str) -> str:
    return (record_dir(workshop) / role_run / "round-1" / "prompt.md").read_text()


def test_a_failed_task_is_decomposed_into_subtasks_with_dependencies_and_scopes(
    workshop: Workshop, scenario: Path
) -> None:
    failed_as_decomposition_error(workshop)
    roles(scenario, [GOOD], [PASS])
    done = run(workshop)
    assert done.outcome is Outcome.WRITTEN and len(done.rounds) == 1
    # the Architect saw the task, the files it needed but did not declare, and the repo's files
    asked = prompt(workshop, "architect-1")
    assert "app.py prints v2" in asked and "README.md, docs/usage.md, setup.cfg" in asked
    assert "files it changed outside its declared scope" in asked and "\napp.py\n" in asked
    tasks = workshop.store.load().tasks
    code, docs, parent = tasks["big-code"], tasks["big-docs"], tasks["big"]
    assert code["speedrift"]["touch"] == ["app.py"] and docs["speedrift"]["touch"] == ["README.md"]
    assert docs["after"] == ["big-code"] and "after" not in code
    assert code["model"] == "claude:opus" and "model" not in docs  # planning tier: the strongest
    assert code["tags"] == ["decomposed"] and code["speedrift"]["parent"] == "big"
    criteria = [{"criterion": "the code part is done", "verify_by": "test"}]
    assert code["speedrift"]["acceptance_criteria"] == criteria  # where the prompt and Reviewer read them
    developer = build_prompt(
        code, repo_name="repo", target_branch="main", dependencies=[], earlier=[], handoff=None
    )
    assert (
        "## Acceptance criteria (a reviewer checks each)\n- the code part is done (verified by: test)"
        in developer
    )
    assert "Part of `big`" in code["description"]
    # the parent waits for its parts, reopened as a split_task recovery leaves it
    assert parent["status"] == "open" and parent["after"] == ["big-code", "big-docs"]
    assert "Split into big-code, big-docs" in parent["speedrift"]["retry_context"]
    assert parent["speedrift"]["decomposed_into"] == ["big-code", "big-docs"]
    assert "failure_class" not in parent["speedrift"]
    summary = json.loads((record_dir(workshop) / "decompose.json").read_text())
    assert summary["outcome"] == "written" and summary["verified"] is True


def test_a_task_held_for_re_planning_is_released_once_decomposed(workshop: Workshop, scenario: Path) -> None:
    workshop.add("big", description=SPEC, tags=["needs-replan", "backend"], paused=True)
    roles(scenario, [GOOD], [PASS])
    assert run(workshop).outcome is Outcome.WRITTEN
    parent = workshop.task("big")
    assert parent["status"] == "open" and "paused" not in parent and parent["tags"] == ["backend"]
    assert parent["after"] == ["big-code", "big-docs"]
    assert parent["speedrift"]["retry_context"].startswith("Split into big-code, big-docs")  # type: ignore[index]
    assert workshop.task("big-code")["tags"] == ["backend", "decomposed"]


def test_a_failing_verification_goes_back_to_the_architect_once_then_passes(
    workshop: Workshop, scenario: Path
) -> None:
    workshop.add("big", description=SPEC)
    only_code = {
        "tasks": [task("code", ["app.py"]), task("tests", ["tests/test_app.py"])],
        "rationale": RATIONALE,
    }
    roles(scenario, [only_code, GOOD], [FAIL, PASS])
    done = run(workshop)
    assert done.outcome is Outcome.WRITTEN and [r.passed for r in done.rounds] == [False, True]
    again = (record_dir(workshop) / "architect-2" / "round-1" / "prompt.md").read_text()
    assert "no task changes README.md to say v2" in again  # the verifier's finding
    assert '"id": "tests"' in again  # its own previous plan
    verifier = prompt(workshop, "plan_verifier-1")
    assert RATIONALE not in verifier and '"id": "code"' in verifier  # blind: the tasks, not the reasoning
    assert sorted(t for t in workshop.store.load().tasks if t.startswith("big-")) == ["big-code", "big-docs"]


def test_a_verification_failing_every_round_asks_a_human_and_leaves_the_graph(
    workshop: Workshop, scenario: Path
) -> None:
    workshop.add("big", description=SPEC)
    roles(scenario, [GOOD], [FAIL])
    before = dict(workshop.store.load().tasks)
    done = run(workshop, max_rounds=2)
    assert done.outcome is Outcome.ESCALATED and len(done.rounds) == 2 and done.escalation
    after = workshop.store.load().tasks
    assert set(after) == set(before) and after["big"].get("after") is None
    assert after["big"]["status"] == "open"
    record = CoordStore.for_scope(workshop.repo, "repo").get(done.escalation)
    assert record.kind.value == "human_escalation" and record.targets == ("human",)
    assert record.author.actor.value == "speedrift"
    assert record.data["task"] == "big" and record.data["verification"]["status"] == "fail"
    assert (
        record.data["verification"]["critical_failures"][0]["plan_gap"]
        == "no task changes README.md to say v2"
    )
    logged = after["big"]["log"][-1]["message"]
    assert done.escalation in logged and "Decomposition failed verification in 2 round(s)" in logged


def test_asking_again_supersedes_the_open_escalation_and_a_written_split_resolves_it(
    workshop: Workshop, scenario: Path
) -> None:
    workshop.add("big", description=SPEC)
    roles(scenario, [GOOD], [FAIL, FAIL, PASS])
    first = run(workshop, max_rounds=1)
    second = run(workshop, max_rounds=1)
    coord = CoordStore.for_scope(workshop.repo, "repo")
    assert coord.get(first.escalation).status.value == "superseded"
    assert coord.get(second.escalation).status.value == "open"
    assert run(workshop, max_rounds=1).outcome is Outcome.WRITTEN
    assert coord.get(second.escalation).status.value == "resolved"


def test_speedrifts_own_overlap_check_rejects_a_plan_the_verifier_passed(
    workshop: Workshop, scenario: Path
) -> None:
    workshop.add("big", description=SPEC)
    roles(scenario, [OVERLAPPING, GOOD], [PASS, PASS])
    done = run(workshop)
    first = done.rounds[0]
    assert not first.passed and first.verification["status"] == "pass"
    assert [(f.kind, f.tasks, f.file) for f in first.findings] == [
        (FindingKind.OWNERSHIP_OVERLAP, ("code", "docs"), "app.py")
    ]
    assert "may run at the same time and both touch app.py" in prompt(workshop, "plan_verifier-1")
    again = (record_dir(workshop) / "architect-2" / "round-1" / "prompt.md").read_text()
    assert "ownership_overlap" in again
    assert done.outcome is Outcome.WRITTEN and done.rounds[1].passed


def test_a_dry_run_writes_nothing(workshop: Workshop, scenario: Path) -> None:
    workshop.add("big", description=SPEC)
    roles(scenario, [GOOD], [PASS])
    graph = next(workshop.store.directory.glob("graph.jsonl")).read_bytes()
    done = run(workshop, dry_run=True)
    assert done.outcome is Outcome.VERIFIED
    assert [s.task_id for s in done.subtasks] == ["big-code", "big-docs"]
    assert next(workshop.store.directory.glob("graph.jsonl")).read_bytes() == graph
    assert not CoordStore.for_scope(workshop.repo, "repo").read().lines


def test_the_checks_speedrift_makes_itself() -> None:
    sharing = [
        task("a", ["src/**"]),
        task("b", ["src/app.py"]),  # may run beside a, and inside a's glob
        task("c", ["src/app.py"], after=["b"]),  # runs after b: shares nothing with it at once
    ]
    found = [(f.kind, f.tasks) for f in check_plan("big", sharing, set())]
    assert found == [(FindingKind.OWNERSHIP_OVERLAP, ("a", "b")), (FindingKind.OWNERSHIP_OVERLAP, ("a", "c"))]
    transitive = [task("a", ["x.py"]), task("b", ["y.py"], after=["a"]), task("c", ["x.py"], after=["b"])]
    assert check_plan("big", transitive, set()) == []
    broken = [
        task("a", ["a.py"]),
        task("a", ["../etc/passwd"]),
        task("b", ["b.py"], after=["nowhere", "b"]),
    ]
    found = [(f.kind, f.tasks) for f in check_plan("big", broken, {"big-b"})]
    assert (FindingKind.DUPLICATE_ID, ("a",)) in found
    assert (FindingKind.ID_TAKEN, ("b",)) in found
    assert (FindingKind.UNKNOWN_DEPENDENCY, ("b",)) in found
    assert (FindingKind.CYCLE, ("b",)) in found
    assert (FindingKind.BAD_PATH, ("a",)) in found
    looped = [task("x", ["x.py"], after=["y"]), task("y", ["y.py"], after=["x"])]
    assert [f.kind for f in check_plan("big", looped, set())] == [FindingKind.CYCLE]
    assert [f.kind for f in check_plan("big", [task("solo", ["a.py"])], set())] == [FindingKind.TOO_FEW]


def cli(workshop: Workshop, *args: str) -> subprocess.CompletedProcess[str]:
    (workshop.repo / "speedrift.toml").write_text(
        '[env]\nallow = ["FAKE_AGENT_SCENARIO"]\n[sandbox]\nmode = "off"\n'
    )
    return subprocess.run(
        [sys.executable, "-m", "speedrift", "decompose", "big", *args],
        cwd=workshop.repo, env=dict(os.environ), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_cli_prints_the_split_as_json(workshop: Workshop, scenario: Path) -> None:
    workshop.add("big", description=SPEC)
    roles(scenario, [GOOD], [PASS])
    done = cli(workshop, "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["outcome"] == "written" and shown["verified"] is True
    assert [s["id"] for s in shown["subtasks"]] == ["big-code", "big-docs"]
    assert shown["subtasks"][1]["after"] == ["big-code"] and shown["subtasks"][1]["touch"] == ["README.md"]
    assert "big-docs" in workshop.store.load().tasks


def test_the_cli_exits_1_naming_the_escalation(workshop: Workshop, scenario: Path) -> None:
    workshop.add("big", description=SPEC)
    roles(scenario, [GOOD], [FAIL])
    done = cli(workshop, "--json", "--max-rounds", "1")
    assert done.returncode == 1, done.stderr
    shown = json.loads(done.stdout)
    assert shown["outcome"] == "escalated" and shown["escalation"].startswith("repo-")
    said = cli(workshop, "--dry-run")
    assert (
        said.returncode == 1
        and "failed verification in 2 round(s) (--dry-run: nothing posted)" in said.stdout
    )


def test_a_persons_answer_to_the_escalation_reaches_the_next_architect(
    workshop: Workshop, scenario: Path
) -> None:
    workshop.add("big", description=SPEC)
    roles(scenario, [GOOD], [FAIL, PASS])
    first = run(workshop, max_rounds=1)
    said = "Yes: the README must say v2 as well, in its first line."
    answered = answer(workshop.repo, workshop.store, RepoConfig(), first.escalation, said, name="ana")
    assert answered.task == "big"
    assert run(workshop, max_rounds=1).outcome is Outcome.WRITTEN
    second = workshop.repo / ".speedrift" / "runs" / "big" / "decompose" / "2"
    architect = (second / "architect-1" / "round-1" / "prompt.md").read_text()
    assert said in architect and "(human ana)" in architect
