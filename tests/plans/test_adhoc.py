"""`speedrift adhoc`: one transient wave for a task — the Wave Architect and the Plan Verifier, lint,
compile, parallel developers, speedrift's validation, the three closure roles, closure — with the
fake `claude` speaking Claude Code's real stream per role, in a real repo; and never a trace of it
in the numbered roadmap (plans/waves, `plan status`, the numbered ids, scopes and traces)."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.coord.store import CoordStore
from speedrift.errors import NotFound
from speedrift.fleet.config import load_config
from speedrift.fleet.coordination import SCOPE_KEY
from speedrift.fleet.pipeline import Pipeline
from speedrift.gates.suite import for_repo
from speedrift.graph.model import plan_data, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.plans import adhoc, lint, replay, spec, status, trace
from speedrift.plans.compile_tasks import closure_id, task_id
from speedrift.plans.lint_rules import LintKind
from speedrift.plans.spec import ClosureStage, Mode
from tests.cli.support import Cli, base_env
from tests.gitrepo import make_repo

START = datetime(2026, 12, 7, 9, 30, 0, tzinfo=UTC)
TASK = "Greet people: an api that greets and a cli that prints the greeting"
CONFIG = '[env]\nallow = ["FAKE_AGENT_SCENARIO"]\n\n[sandbox]\nmode = "off"\n'
CONTRACT = {"completion": "integrated", "durability": "durable", "proof": "unit", "doc_impact": "owned"}
PARTS = {"api": ("src/api.py", "def greet():\n    return 'hi'\n"), "cli": ("src/cli.py", "print('hi')\n")}


def _wave_output(*locals_: str) -> dict[str, Any]:
    tasks = [
        {
            "id": local,
            "title": f"The {local} part",
            "role": "implementation",
            "owned": [PARTS[local][0]],
            "deliverables": [PARTS[local][0]],
            "exit_contract": dict(CONTRACT),
            "prompt": f"Implement the {local} part in {PARTS[local][0]}.",
        }
        for local in locals_
    ]
    return {
        "spec": {
            "title": "Greetings",
            "mode": "dark-factory",
            "summary": "An api that greets and a cli that prints it.",
            "validation": [f"{sys.executable} -m pytest -q"],
            "tasks": tasks,
        },
        "rationale": "Two files, two tasks side by side.",
        "assumptions": [],
    }


def _pass(*locals_: str) -> dict[str, Any]:
    return {
        "status": "pass",
        "spec_requirements": [
            {"requirement": f"the {local} part", "status": "covered", "mapped_to_task": local}
            for local in locals_
        ],
        "ownership_overlaps": [],
        "untestable_criteria": [],
        "critical_failures": [],
        "recommendations": [],
    }


INTEGRATION = {
    "recommendation": "ready",
    "open_claims": [],
    "conflicting_claims": [],
    "unresolved_blockers": [],
    "changed_interfaces": [],
    "cross_component_impacts": [],
    "proof_gaps": [],
    "doc_gaps": [],
    "deploy_risks": [],
    "detail": "the parts fit",
}
DOCS = {
    "status": "complete",
    "summary": "nothing to document",
    "docs_to_change": [],
    "gaps_found": [],
    "gaps_closed": [],
    "files_written": [],
    "proposed": [],
}


def _evaluation(ids: list[str]) -> dict[str, Any]:
    verdicts = [
        {"target": f"{i}#1", "kind": "acceptance_criterion", "task": i, "verdict": "pass", "evidence": ["t"]}
        for i in ids
    ]
    return {"overall": "pass", "summary": "it holds", "verdicts": verdicts, "gaps": []}


def _report(*outputs: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [[{"do": "start"}, {"do": "result_file", "report": o}, {"do": "finish"}] for o in outputs]


def _develop(local: str) -> list[list[dict[str, Any]]]:
    path, text = PARTS[local]
    return [[{"do": "start"}, {"do": "edit", "path": path, "content": text}, {"do": "finish"}]]


def _roles(scenario: Path, runs: list[tuple[str, list[str]]], architect: list[dict[str, Any]]) -> None:
    """The scenario for ad-hoc runs ``runs`` (run id, the locals of its wave), in order."""
    roles: dict[str, Any] = {
        "wave_architect": _report(*architect),
        "plan_verifier": _report(*(_pass(*locals_) for _run_id, locals_ in runs)),
        "integration": _report(INTEGRATION),
        "documentation": _report(DOCS),
        "evaluator": _report(
            *(_evaluation([task_id(spec.adhoc_key(r), loc) for loc in locals_]) for r, locals_ in runs)
        ),
    }
    for run_id, locals_ in runs:
        for local in locals_:
            roles[f"developer:{task_id(spec.adhoc_key(run_id), local)}"] = _develop(local)
    scenario.write_text(json.dumps({"roles": roles}))


def _repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo",
        {
            "README.md": "# greetings\n",
            "speedrift.toml": CONFIG,
            "src/__init__.py": "",
            "src/api.py": "",
            "src/cli.py": "",
            "tests/test_app.py": "def test_it_imports():\n    import src.api\n",
        },
    )


def _pipeline(repo: Path) -> Pipeline:
    store = GraphStore(repo / ".workgraph")
    config = load_config(repo)
    gates = for_repo(config.gates, store, config.target_branch, config.env.secrets)  # as the CLI does
    return Pipeline(repo, store, config, gates=gates)


def _clock() -> Any:
    """A clock that starts at START and runs as time does (run ids are named from its start)."""
    began = time.monotonic()
    return lambda: START + timedelta(seconds=time.monotonic() - began)


def _start(repo: Path) -> adhoc.AdhocRun:
    runner = adhoc.Runner(_pipeline(repo), clock=_clock())
    return runner.start(adhoc.Request(TASK, mode=Mode.DARK_FACTORY))


def _cli(repo: Path, scenario: Path) -> Cli:
    return Cli(repo, {**base_env(), "PATH": os.environ["PATH"], "FAKE_AGENT_SCENARIO": str(scenario)})


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --- the ids -----------------------------------------------------------------------------------
def test_a_numbered_wave_keeps_its_names_and_an_adhoc_run_is_named_by_its_key(tmp_path: Path) -> None:
    key = spec.adhoc_key("20261207-093000-greet")
    assert (task_id(3, "api"), closure_id(3, ClosureStage.INTEGRATION)) == ("w3-api", "w3.integration")
    assert (spec.scope_of(3), spec.spec_path(tmp_path, 3)) == (
        "wave-3",
        tmp_path / "plans/waves/specs/wave-3.json",
    )
    assert trace.bundle_dir(tmp_path, 3, 1) == tmp_path / ".speedrift/traces/wave-3/attempt-1"
    assert task_id(key, "api") == "adhoc-20261207-093000-greet-api"
    assert closure_id(key, ClosureStage.EVALUATION) == "adhoc-20261207-093000-greet.evaluation"
    assert spec.scope_of(key) == key
    assert (
        spec.spec_path(tmp_path, key) == tmp_path / ".speedrift/plans/adhoc/20261207-093000-greet/spec.json"
    )
    assert trace.bundle_dir(tmp_path, key, 2) == tmp_path / f".speedrift/traces/{key}/attempt-2"
    assert adhoc.base_id(TASK, START) == "20261207-093000-greet-people-an"


def test_an_adhoc_spec_that_runs_after_a_wave_or_is_not_wave_0_is_refused_by_lint() -> None:
    value = {**_wave_output("api")["spec"], "schema": spec.SCHEMA_ID, "wave": 0, "adhoc": "20261207-093000-x"}
    assert lint.lint(value, file="spec.json") == []
    found = lint.lint({**value, "wave": 4, "sequencing": {"after_waves": [1]}}, file="spec.json")
    assert {(f.kind, f.path): f.message for f in found}.keys() == {
        (LintKind.WAVE_MISMATCH, "$.wave"),
        (LintKind.UNKNOWN_WAVE, "$.sequencing.after_waves[0]"),
    }
    assert any("outside the numbered roadmap" in f.message for f in found)
    assert spec.parse(value).key == "adhoc-20261207-093000-x"


# --- a run end to end --------------------------------------------------------------------------
def test_an_adhoc_run_goes_from_a_task_to_closed_without_entering_the_numbered_roadmap(
    tmp_path: Path, scenario: Path
) -> None:
    repo = _repo(tmp_path)
    run_id = adhoc.base_id(TASK, START)
    key = spec.adhoc_key(run_id)
    _roles(scenario, [(run_id, ["api", "cli"])], [_wave_output("api", "cli")])
    run = _start(repo)

    assert run.state is adhoc.State.CLOSED, run.as_dict()
    assert run.id == run_id and run.decision is not None and run.decision["phase"] == "closed"
    ids = [task_id(key, "api"), task_id(key, "cli"), *(closure_id(key, s) for s in ClosureStage)]
    assert list(run.tasks) == ids
    graph = GraphStore(repo / ".workgraph").load()
    for tid in ids:
        task = graph.tasks[tid]
        assert task["status"] == "done"
        assert plan_data(task)["wave"] == key and key in task["tags"]
    assert speedrift_data(graph.tasks[ids[0]])[SCOPE_KEY] == key
    assert (repo / "src/api.py").read_text() == PARTS["api"][1]  # landed on main
    # the spec: wave 0, the run id, in the run's own (git-excluded) directory
    written = spec.read(spec.spec_path(repo, key))
    assert (written["wave"], written["adhoc"]) == (0, run_id)
    assert {"draft", "run.json", "spec.json"} <= set(_files(spec.adhoc_dir(repo, run_id)))
    # nothing of it in the numbered roadmap: no plans/, no wave-<n> state, scope or traces
    assert not (repo / "plans").exists()
    assert _files(repo / ".speedrift/plans") == ["adhoc"]  # its validation and stage runs: in its directory
    assert "validation.jsonl" in _files(spec.adhoc_dir(repo, run_id))
    assert _files(repo / ".speedrift/traces") == [key]
    assert [s for s in CoordStore.scopes(repo) if s.startswith("wave-")] == []
    assert status.statuses(repo, GraphStore(repo / ".workgraph"), None, now=START) == []
    assert _cli(repo, scenario).json("plan", "status", "--json") == {"waves": []}
    # speedrift ran the validation itself, in the run's scope; the bundle replays clean
    records = CoordStore.for_scope(repo, key).read().records.values()
    assert any(r.summary.startswith("validation passed") for r in records)
    assert run.bundle == f".speedrift/traces/{key}/attempt-1"
    replayed = replay.replay(repo / run.bundle)
    assert replayed.clean, replayed.as_dict()
    assert replayed.wave == key and replayed.derived["closure"]["phase"] == "closed"


def test_adhoc_list_and_show_report_each_run_through_the_real_cli(tmp_path: Path, scenario: Path) -> None:
    repo = _repo(tmp_path)
    run_id = adhoc.base_id(TASK, START)
    _roles(scenario, [(run_id, ["api"])], [_wave_output("api")])
    _start(repo)
    cli = _cli(repo, scenario)

    listed = cli.json("adhoc", "list", "--json")["runs"]
    assert [(r["run"], r["state"], r["title"], r["task"]) for r in listed] == [
        (run_id, "closed", "Greetings", TASK)
    ]
    assert listed[0]["counts"] == {"tasks": 1, "by_status": {"done": 1}, "stage": "closed"}
    for name in (run_id, spec.adhoc_key(run_id)):  # the run id, or its key
        shown = cli.json("adhoc", "show", name, "--json")
        assert shown["run"] == run_id and shown["state"] == "closed"
        assert shown["spec"]["tasks"] == [
            {"id": "api", "role": "implementation", "owned": ["src/api.py"], "after": []}
        ]
        rows = [(t["id"], t["status"]) for t in shown["status"]["tasks"]]
        assert rows[0] == (f"adhoc-{run_id}-api", "done") and len(rows) == 4
        assert shown["decision"]["closed"] is True
        assert shown["bundle"] == f".speedrift/traces/adhoc-{run_id}/attempt-1"
    text = cli.ok("adhoc", "list").stdout
    assert run_id in text and "1/1 done" in text
    missing = cli.fails(1, "adhoc", "show", "20990101-000000-nothing")
    assert "adhoc list" in missing.stderr


def test_two_adhoc_runs_of_the_same_task_in_the_same_second_do_not_collide(
    tmp_path: Path, scenario: Path
) -> None:
    repo = _repo(tmp_path)
    first_id = adhoc.base_id(TASK, START)
    second_id = f"{first_id}-2"
    _roles(scenario, [(first_id, ["api"]), (second_id, ["cli"])], [_wave_output("api"), _wave_output("cli")])
    first, second = _start(repo), _start(repo)

    assert (first.id, second.id) == (first_id, second_id)
    assert (first.state, second.state) == (adhoc.State.CLOSED, adhoc.State.CLOSED), second.as_dict()
    assert set(first.tasks).isdisjoint(second.tasks)
    assert second.tasks[0] == f"adhoc-{second_id}-cli"
    assert spec.read(spec.spec_path(repo, first.key))["tasks"][0]["id"] == "api"
    assert spec.read(spec.spec_path(repo, second.key))["tasks"][0]["id"] == "cli"
    scopes = CoordStore.scopes(repo)
    assert first.key in scopes and second.key in scopes
    assert first.bundle != second.bundle
    assert [r.id for r in map(lambda i: adhoc.load(repo, i), adhoc.run_ids(repo))] == [first_id, second_id]


def test_an_oversight_run_holds_each_merge_for_a_person_and_resume_closes_it_once_approved(
    tmp_path: Path, scenario: Path
) -> None:
    repo = _repo(tmp_path)
    run_id = adhoc.base_id(TASK, START)
    _roles(scenario, [(run_id, ["api"])], [_wave_output("api")])
    runner = adhoc.Runner(_pipeline(repo), clock=_clock())
    held = runner.start(adhoc.Request(TASK, mode=Mode.OVERSIGHT))
    assert held.state is adhoc.State.HELD
    assert any("awaiting approval to merge" in reason for reason in held.held), held.held
    cli = _cli(repo, scenario)
    cli.ok("plan", "approve", held.tasks[0])  # lands it now, gated again

    resumed = cli("adhoc", "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed
    assert json.loads(resumed.stdout)["state"] == "closed"
    assert adhoc.load(repo, run_id).state is adhoc.State.CLOSED
    assert "is closed" in cli.fails(1, "adhoc", "resume", run_id).stderr


# --- a run that cannot be planned --------------------------------------------------------------
def test_an_architect_that_never_writes_a_valid_wave_leaves_the_run_held_and_nothing_compiled(
    tmp_path: Path, scenario: Path
) -> None:
    repo = _repo(tmp_path)
    overlapping = _wave_output("api", "cli")
    overlapping["spec"]["tasks"][1]["owned"].append("src/api.py")  # side by side on one file
    _roles(scenario, [], [overlapping])
    cli = _cli(repo, scenario)
    before = (repo / ".workgraph/graph.jsonl").read_bytes()

    result = cli("adhoc", "run", "--task", TASK, "--mode", "oversight", "--max-rounds", "2", "--json")
    assert result.returncode == 1, result
    run = json.loads(result.stdout)
    assert run["state"] == "held" and run["tasks"] == []
    assert run["held"][0] == "not verified in 2 round(s); nothing was compiled"
    assert any("both own 'src/api.py'" in reason for reason in run["held"][1:])
    assert (repo / ".workgraph/graph.jsonl").read_bytes() == before  # nothing compiled
    assert not spec.spec_path(repo, run["key"]).exists() and not (repo / "plans").exists()
    assert [r["state"] for r in cli.json("adhoc", "list", "--json")["runs"]] == ["held"]
    refused = cli.fails(1, "adhoc", "resume", run["run"])
    assert "never compiled" in refused.stderr


def test_an_unknown_template_is_refused_before_any_run_exists(tmp_path: Path, scenario: Path) -> None:
    repo = _repo(tmp_path)
    cli = _cli(repo, scenario)
    cli.fails(1, "adhoc", "run", "--task", TASK, "--template", "no-such-pack")
    assert adhoc.run_ids(repo) == []


@pytest.mark.parametrize("given", ["wave-1", "adhoc-not-a-run"])
def test_a_key_that_is_not_an_adhoc_run_is_refused(tmp_path: Path, given: str) -> None:
    with pytest.raises(NotFound, match="no ad-hoc run"):
        adhoc.resolve(tmp_path, given)
