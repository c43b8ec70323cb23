"""`speedrift plan run`: a whole wave end to end, with fake agents speaking Claude Code's real
stream — parallel developers in worktrees, one crashed attempt classified and retried, speedrift's
own validation, the three closure roles, closure, and a trace bundle that replays clean."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from speedrift.coord.records import Actor, Author, Draft, Kind
from speedrift.coord.store import CoordStore
from speedrift.errors import Refused
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline
from speedrift.gates.suite import for_repo
from speedrift.graph import ops
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.plans import draft, replay, spec, stages
from speedrift.plans.compiler import compile_plan
from speedrift.plans.run import WaveRun
from speedrift.records import read_attempt
from tests.cli.support import Cli
from tests.gitrepo import make_repo

CONFIG = {
    "env": {"allow": ["FAKE_AGENT_SCENARIO"]},
    "sandbox": {"mode": "off"},
    "recovery": {"classes": {"transient_infra": {"backoff_seconds": 0}}},
}
TESTER = Author(Actor.HUMAN, name="tester")
CONTRACT = {"completion": "integrated", "durability": "durable", "proof": "unit", "doc_impact": "owned"}


def _wave(mode: str = "dark-factory") -> dict[str, Any]:
    def task(local: str, path: str) -> dict[str, Any]:
        return {
            "id": local,
            "title": f"The {local} part",
            "role": "implementation",
            "owned": [path],
            "deliverables": [path],
            "exit_contract": dict(CONTRACT),
            "prompt": f"Implement the {local} part in {path}.",
        }

    return {
        "schema": spec.SCHEMA_ID,
        "wave": 1,
        "title": "Greetings",
        "mode": mode,
        "validation": [f"{sys.executable} -m pytest -q"],
        "tasks": [task("api", "src/api.py"), task("cli", "src/cli.py")],
    }


INTEGRATION = {
    "recommendation": "ready",
    "open_claims": [],
    "conflicting_claims": [],
    "unresolved_blockers": [],
    "changed_interfaces": [{"interface": "greet()", "summary": "new", "files": ["src/api.py"]}],
    "cross_component_impacts": [],
    "proof_gaps": [],
    "doc_gaps": [{"summary": "README does not mention greet()", "docs": ["README.md"]}],
    "deploy_risks": [],
    "detail": "the api and the cli fit",
}
DOCS = {
    "status": "complete",
    "summary": "README covers greet()",
    "docs_to_change": [{"path": "README.md", "reason": "greet()", "done": True}],
    "gaps_found": [],
    "gaps_closed": [{"location": "README.md", "summary": "greet() documented", "closed_by": "change_set"}],
    "files_written": [],
    "proposed": [],
}
EVALUATION = {
    "overall": "pass",
    "summary": "both parts hold",
    "verdicts": [
        {
            "target": "w1-api#1",
            "kind": "acceptance_criterion",
            "task": "w1-api",
            "verdict": "pass",
            "evidence": ["t"],
        },
        {
            "target": "w1-cli#1",
            "kind": "acceptance_criterion",
            "task": "w1-cli",
            "verdict": "pass",
            "evidence": ["t"],
        },
    ],
    "gaps": [],
}


def _report(output: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [[{"do": "start"}, {"do": "result_file", "report": output}, {"do": "finish"}]]


def _develop(path: str, text: str) -> list[dict[str, Any]]:
    return [{"do": "start"}, {"do": "edit", "path": path, "content": text}, {"do": "finish"}]


def _scenario(file: Path) -> None:
    file.write_text(
        json.dumps(
            {
                "roles": {
                    "developer:w1-api": [
                        [{"do": "start"}, {"do": "kill_self"}],  # crashes: transient, retried
                        _develop("src/api.py", "def greet():\n    return 'hi'\n"),
                    ],
                    "developer:w1-cli": [_develop("src/cli.py", "from src.api import greet\n")],
                    "integration": _report(INTEGRATION),
                    "documentation": _report(DOCS),
                    "evaluator": _report(EVALUATION),
                }
            }
        )
    )


def _repo(tmp_path: Path, mode: str = "dark-factory", *, compiled: bool = True) -> tuple[Path, Pipeline]:
    repo = make_repo(
        tmp_path / "repo",
        {
            "README.md": "# greetings\n",
            "src/__init__.py": "",
            "src/api.py": "",
            "src/cli.py": "",
            "tests/test_app.py": "def test_it_imports():\n    import src.api\n",
        },
    )
    store = GraphStore(repo / ".workgraph")
    store.mutate(lambda graph, now: ops.Mutation())  # the graph exists, empty
    if compiled:
        path = spec.spec_path(repo, 1)
        path.parent.mkdir(parents=True)
        path.write_bytes(spec.canonical(_wave(mode)))
        compile_plan(repo, store, 1, author=TESTER)
    config = RepoConfig.model_validate(CONFIG)
    gates = for_repo(config.gates, store, config.target_branch, config.env.secrets)  # as the CLI does
    return repo, Pipeline(repo, store, config, gates=gates)


def test_a_dark_factory_wave_runs_from_compile_to_closed_and_its_bundle_replays_clean(
    tmp_path: Path, scenario: Path
) -> None:
    _scenario(scenario)
    repo, pipeline = _repo(tmp_path)
    report = WaveRun(pipeline, 1).run()

    assert report.closed, report.as_dict()
    graph = pipeline.store.load()
    assert {graph.tasks[t]["status"] for t in ("w1-api", "w1-cli")} == {"done"}
    for stage in ("integration", "documentation", "evaluation"):
        assert graph.tasks[f"w1.{stage}"]["status"] == "done"
    first = read_attempt(repo / ".speedrift" / "runs" / "w1-api" / "1")
    assert first is not None and first.failure == "transient_infra"
    # speedrift ran the validation itself, on the integrated commit
    records = CoordStore.for_scope(repo, "wave-1").read().records.values()
    assert any(r.kind is Kind.EVIDENCE and r.summary.startswith("validation passed") for r in records)
    # the bundle re-derives the same decision, with no repository around it
    assert report.bundle is not None
    replayed = replay.replay(report.bundle)
    assert replayed.clean, replayed.as_dict()
    assert replayed.derived["closure"]["phase"] == "closed"
    assert replayed.derived["metrics"]["relaunches_by_runtime"] == {"claude": 1}
    # the same through the CLI: status says closed, metrics read the bundle, replay finds nothing
    cli = Cli(repo)
    [status] = cli.json("plan", "status", "1")["waves"]
    assert status["stage"] == "closed"
    metrics = cli.json("plan", "metrics")
    assert metrics["waves"][0]["proof_completeness"] == 1.0 and metrics["cumulative"]["waves"] == 1
    assert "no difference (closure: closed)" in cli.ok("replay", str(report.bundle)).stdout


def test_plan_run_refuses_a_wave_that_was_never_compiled(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# x\n", "tests/test_x.py": "def test_x(): pass\n"})
    GraphStore(repo / ".workgraph").mutate(lambda g, now: ops.Mutation())
    path = spec.spec_path(repo, 1)
    path.parent.mkdir(parents=True)
    path.write_bytes(spec.canonical(_wave()))
    refused = Cli(repo).fails(1, "plan", "run", "1")
    assert "not compiled" in refused.stderr and "speedrift plan compile 1" in refused.stderr


def test_an_oversight_wave_holds_each_merge_for_a_person_and_closes_once_approved(
    tmp_path: Path, scenario: Path
) -> None:
    _scenario(scenario)
    repo, pipeline = _repo(tmp_path, mode="oversight")
    held = WaveRun(pipeline, 1).run()
    assert not held.closed
    assert any("awaiting approval to merge" in reason for reason in held.held), held.held
    # a held attempt is decided and traced too: held at implementation, and its bundle replays clean
    assert held.decision is not None and held.decision.phase.value == "implementation"
    assert held.bundle is not None and replay.replay(held.bundle).clean
    graph = pipeline.store.load()
    for task_id in ("w1-api", "w1-cli"):
        assert speedrift_data(graph.tasks[task_id]).get("state") == "merge-pending"  # gated; nothing landed
    assert Cli(repo).fails(1, "plan", "approve", "w1.integration").stderr.count("waits for no approval")
    # approved and landed at once (gated again on the tip it lands on)
    landed = Cli(repo).json("plan", "approve", "w1-api", "--as", "ana")
    assert landed["approved"] == "merge" and landed["by"] == "ana" and landed["landing"]["status"] == "done"
    assert pipeline.store.load().tasks["w1-api"]["status"] == "done"
    # approved only: the next run resumes its landing
    Cli(repo).ok("plan", "approve", "w1-cli", "--no-land")
    closed = WaveRun(pipeline, 1).run()  # the approved landings resume, then the closure
    assert closed.closed, closed.as_dict()


def test_a_stage_record_posted_by_an_agent_is_not_taken_as_a_stage(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "x\n"})
    store = CoordStore.for_scope(repo, "wave-1")
    forged = store.post(
        Draft(
            Kind.DECISION,
            "evaluation: pass",
            Author(Actor.AGENT, task="w1-api", attempt=1),
            data={"stage": "evaluation", "output": EVALUATION, "commit": "c" * 40},
        )
    )
    found, refused = stages.stage_records(list(store.read().records.values()), "c" * 40)
    assert found == []
    assert refused and refused[0].startswith(forged.id)


def test_a_wave_edited_since_its_compile_is_refused_until_compiled_again(
    tmp_path: Path, scenario: Path
) -> None:
    _scenario(scenario)
    repo, pipeline = _repo(tmp_path)
    edited = _wave()
    edited["tasks"][0]["prompt"] = "Implement it differently."
    spec.spec_path(repo, 1).write_bytes(spec.canonical(edited))
    with pytest.raises(Refused, match="plan compile 1"):
        WaveRun(pipeline, 1)


VERIFIED = {
    "status": "pass",
    "spec_requirements": [
        {"requirement": "greet() in src/api.py", "status": "covered", "mapped_to_task": "api"},
        {"requirement": "the cli calls greet()", "status": "covered", "mapped_to_task": "cli"},
    ],
    "ownership_overlaps": [],
    "untestable_criteria": [],
    "critical_failures": [],
    "recommendations": [],
}
NOT_VERIFIED = {
    **VERIFIED,
    "status": "fail",
    "critical_failures": [
        {
            "description": "Nothing proves the cli.",
            "spec_reference": "the cli calls greet()",
            "plan_gap": "say so",
        }
    ],
}


def test_a_wave_goes_from_a_spec_through_draft_compile_and_run_to_a_closed_replayable_bundle(
    tmp_path: Path, scenario: Path
) -> None:
    """The issue's whole lifecycle: the Wave Architect drafts, the Plan Verifier fails it once and
    it loops back, lint passes, compile, two developers in parallel worktrees (one crashes, is
    classified transient and retried), validation, integration, docs, an Evaluator whose first
    output is schema-invalid and is corrected, closed; the bundle replays clean, and a tampered
    copy reports the difference."""
    _scenario(scenario)
    roles = json.loads(scenario.read_text())["roles"]
    written = {key: value for key, value in _wave().items() if key not in ("schema", "wave")}
    architect = {"spec": written, "rationale": "the api first, the cli beside it", "assumptions": []}
    roles["wave_architect"] = _report(architect) * 2
    roles["plan_verifier"] = [_report(NOT_VERIFIED)[0], _report(VERIFIED)[0]]
    # the Evaluator's first output breaks its schema (a pass with a gap): it gets one corrected round
    roles["evaluator"] = [_report({**EVALUATION, "gaps": [{"summary": "x"}]})[0], _report(EVALUATION)[0]]
    scenario.write_text(json.dumps({"roles": roles}))
    repo, pipeline = _repo(tmp_path, compiled=False)

    drafted = draft.draft(
        repo,
        pipeline.config,
        draft.Request("greet() in src/api.py; the cli calls it", "--task", mode=spec.Mode.DARK_FACTORY),
    )
    assert drafted.outcome is draft.Outcome.WRITTEN and len(drafted.rounds) == 2
    first = drafted.rounds[0].verification
    assert first is not None and first["status"] == "fail"  # looped back once
    compile_plan(repo, pipeline.store, 1, author=TESTER)
    report = WaveRun(pipeline, 1).run()
    assert report.closed, report.as_dict()
    assert report.bundle is not None and replay.replay(report.bundle).clean
    evaluator_runs = json.loads(scenario.with_name(scenario.name + ".count.json").read_text())["evaluator"]
    assert evaluator_runs == 2  # the invalid output was never taken as the stage

    tampered = tmp_path / "tampered"
    shutil.copytree(report.bundle, tampered)
    tasks = json.loads((tampered / "tasks.json").read_text())
    tasks["tasks"][0]["verified"] = False  # as if the api had landed unverified
    (tampered / "tasks.json").write_text(json.dumps(tasks))
    different = Cli(tmp_path).fails(1, "replay", str(tampered))
    assert "tasks.json: changed since the bundle was written" in different.stdout
