"""`speedrift plan draft`: the fake `claude` CLI (the real stream-json format, per-role runs,
unsandboxed) runs as the Wave Architect and the Plan Verifier against a real repo; speedrift lints
each wave itself, loops back to the Architect, and writes a verified, lint-clean spec and its
Markdown — or nothing, with every finding of the last round."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from speedrift.agents import preflight
from speedrift.errors import Refused
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.decompose import RoleFailed
from speedrift.fleet.roles.model import shipped
from speedrift.fleet.roles.names import RoleName
from speedrift.plans import draft, lint, render, spec, templates
from speedrift.plans.draft import Outcome, Request
from tests.cli.support import Cli, base_env
from tests.fleet.conftest import claude_bin
from tests.gitrepo import make_repo, sh_git

REQUEST = (
    "Make app.py print v2; say so in the README.\n\n- app.py prints v2\n- README.md says the app prints v2"
)
RATIONALE = "The code first; the README describes what the code does."
CONFIG = '[env]\nallow = ["FAKE_AGENT_SCENARIO"]\n\n[sandbox]\nmode = "off"\n'


def task(
    task_id: str, owned: list[str], *, after: list[str] | None = None, role: str = "implementation"
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": task_id,
        "title": f"The {task_id} part",
        "role": role,
        "owned": owned,
        "deliverables": owned[:1],
        "exit_contract": {
            "completion": "integrated",
            "durability": "durable",
            "proof": "unit",
            "doc_impact": "owned",
        },
        "prompt": f"Do the {task_id} part: change only {', '.join(owned)}.",
    }
    if after:
        found["after"] = after
    return found


def wave(*tasks: dict[str, Any], mode: str = "oversight") -> dict[str, Any]:
    return {
        "spec": {
            "title": "Print v2",
            "mode": mode,
            "summary": "app.py prints v2 and the README says so.",
            "validation": ["python app.py"],
            "tasks": list(tasks),
        },
        "rationale": RATIONALE,
        "assumptions": [],
    }


GOOD = wave(task("code", ["app.py"]), task("docs", ["README.md"], after=["code"], role="docs"))
OVERLAPPING = wave(
    task("code", ["app.py"]), task("docs", ["README.md", "app.py"], role="docs")
)  # side by side
ONLY_CODE = wave(task("code", ["app.py"]))
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


def roles(scenario: Path, architect: list[dict[str, Any]], verifier: list[dict[str, Any]]) -> None:
    scenario.write_text(
        json.dumps({"roles": {"wave_architect": reports(*architect), "plan_verifier": reports(*verifier)}})
    )


def runs_of(scenario: Path) -> dict[str, int]:
    """How many times each role ran (the fake counts them)."""
    counter = scenario.with_name(scenario.name + ".count.json")
    return json.loads(counter.read_text()) if counter.exists() else {}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    found = make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "print('v1')\n"})
    (found / "speedrift.toml").write_text(CONFIG)
    return found


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake claude on PATH; the scenario file it reads."""
    monkeypatch.setenv("PATH", f"{claude_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    file = tmp_path / "scenario.json"
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(file))
    preflight.forget()
    return file


@pytest.fixture
def cli(repo: Path, scenario: Path) -> Cli:
    env = {**base_env(), "PATH": os.environ["PATH"], "FAKE_AGENT_SCENARIO": str(scenario)}
    return Cli(repo, env)


def run(repo: Path, text: str = REQUEST, **choices: Any) -> draft.Drafted:
    config = RepoConfig.model_validate(
        {"env": {"allow": ["FAKE_AGENT_SCENARIO"]}, "sandbox": {"mode": "off"}}
    )
    return draft.draft(repo, config, Request(text, "--task", **choices))


def record(repo: Path, number: int = 1, k: int = 1) -> Path:
    return repo / ".speedrift" / "runs" / "_plans" / f"wave-{number}" / "draft" / str(k)


def prompt(repo: Path, role_run: str, number: int = 1) -> str:
    return (record(repo, number) / role_run / "round-1" / "prompt.md").read_text()


def plans_files(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in (repo / "plans").rglob("*") if p.is_file())


# --- the loop --------------------------------------------------------------------------------------
def test_a_wave_that_fails_lint_goes_back_to_the_architect_and_is_written_once_verified(
    repo: Path, scenario: Path
) -> None:
    roles(scenario, [OVERLAPPING, GOOD], [PASS])
    done = run(repo)
    assert done.outcome is Outcome.WRITTEN and [r.passed for r in done.rounds] == [False, True]
    first = done.rounds[0]
    assert [f.kind for f in first.findings] == [lint.LintKind.OWNERSHIP_OVERLAP]
    assert first.verification is None and runs_of(scenario) == {"wave_architect": 2, "plan_verifier": 1}
    # round 2 was told why, and shown its own previous wave
    again = prompt(repo, "wave_architect-2")
    assert str(first.findings[0]) in again
    previous = again.split("## Your previous wave")[1].split("\n## ")[0]
    assert '"owned": [\n        "README.md",\n        "app.py"' in previous
    assert '"schema"' not in previous and '"wave"' not in previous  # its own output, as it wrote it
    # the verifier judged the clean wave blind, against the request
    judged = prompt(repo, "plan_verifier-2")
    assert REQUEST in judged and RATIONALE not in judged and '"id": "docs"' in judged
    # written: the canonical spec, with the number, schema and mode speedrift set, and its Markdown
    path = spec.spec_path(repo, 1)
    written = spec.read(path)
    assert path.read_bytes() == spec.canonical(written)
    assert written == {**GOOD["spec"], "schema": spec.SCHEMA_ID, "wave": 1, "mode": "oversight"}
    assert lint.lint_file(repo, path) == []
    assert spec.markdown_path(repo, 1).read_text() == render.render(written)
    assert plans_files(repo) == ["plans/waves/specs/wave-1.json", "plans/waves/wave-1.md"]
    summary = json.loads((record(repo) / "draft.json").read_text())
    assert summary["outcome"] == "written" and len(summary["rounds"]) == 2
    assert summary["rounds"][0]["findings"][0]["kind"] == "ownership_overlap"


def test_a_verifier_rejection_goes_back_to_the_architect_once_then_passes(repo: Path, scenario: Path) -> None:
    roles(scenario, [ONLY_CODE, GOOD], [FAIL, PASS])
    done = run(repo)
    assert done.outcome is Outcome.WRITTEN and [r.passed for r in done.rounds] == [False, True]
    assert done.rounds[0].findings == [] and done.rounds[0].verification == FAIL
    again = prompt(repo, "wave_architect-2")
    assert "no task changes README.md to say v2" in again and "The Plan Verifier says: fail" in again
    assert [t["id"] for t in spec.read(spec.spec_path(repo, 1))["tasks"]] == ["code", "docs"]


def test_an_architect_whose_wave_never_passes_writes_nothing_and_gives_every_finding(
    cli: Cli, repo: Path, scenario: Path
) -> None:
    roles(scenario, [OVERLAPPING], [PASS])
    graph = (repo / ".workgraph" / "graph.jsonl").read_bytes()
    result = cli("plan", "draft", "--task", REQUEST, "--max-rounds", "2")
    assert result.returncode == 1, result
    assert "Wave 1 was not verified in 2 round(s); nothing was written" in result.stdout
    assert "plans/waves/specs/wave-1.json: $.tasks[1].owned[1]" in result.stdout  # file and JSON path
    assert f"record: {record(repo)}" in result.stdout
    assert not (repo / "plans").exists() and runs_of(scenario) == {"wave_architect": 2}
    assert (repo / ".workgraph" / "graph.jsonl").read_bytes() == graph  # nothing dispatched
    shown = cli("plan", "draft", "--task", REQUEST, "--max-rounds", "1", "--json")
    assert shown.returncode == 1
    assert shown.json()["outcome"] == "not_verified" and shown.json()["spec_file"] is None
    assert any("ownership" in line or "app.py" in line for line in shown.json()["findings"])


def test_an_architect_that_gives_no_valid_output_ends_naming_its_record(
    cli: Cli, repo: Path, scenario: Path
) -> None:
    roles(scenario, [{"spec": {"title": "no tasks, no mode"}}], [PASS])
    result = cli("plan", "draft", "--task", REQUEST)
    assert result.returncode == 1
    assert "plan draft: the wave_architect gave no valid output in 2 round(s)" in result.stderr
    assert str(record(repo) / "wave_architect-1" / "role.json") in result.stderr
    assert "fix: read the record, then run `speedrift plan draft --task '…' --wave 1` again" in result.stderr
    assert not (repo / "plans").exists() and runs_of(scenario) == {"wave_architect": 2}


# --- what the Architect is given -------------------------------------------------------------------
def test_a_request_given_with_task_is_drafted_through_the_real_cli(
    cli: Cli, repo: Path, scenario: Path
) -> None:
    roles(scenario, [GOOD], [PASS])
    result = cli("plan", "draft", "--task", REQUEST)
    assert result.returncode == 0, result
    assert "Drafted wave 1: Print v2 (oversight; verified and lint-clean in 1 round(s))" in result.stdout
    assert "plans/waves/specs/wave-1.json" in result.stdout and "plans/waves/wave-1.md" in result.stdout
    assert "round 1: the Plan Verifier says pass" in result.stderr  # progress, on stderr
    asked = prompt(repo, "wave_architect-1")
    assert REQUEST in asked and "You are writing wave 1, in `oversight` mode." in asked
    assert "\napp.py\n" in asked and "The repository has no waves yet." in asked
    assert "- default mode: oversight (default)" in asked  # the project profile, each value's origin
    assert "## The shape of this wave (template pack: a starting point, not a requirement)\n(none)" in asked
    assert '"$ref": "#/$defs/wave_spec"' in asked  # the output section: the role's schema


def test_a_spec_file_given_with_from_is_drafted_after_the_waves_there_are(
    cli: Cli, repo: Path, scenario: Path, tmp_path: Path
) -> None:
    shutil.rmtree(repo / ".workgraph")  # a plan needs no graph: the git repository is enough
    first = {**GOOD["spec"], "schema": spec.SCHEMA_ID, "wave": 1, "title": "The first wave"}
    spec.spec_path(repo, 1).parent.mkdir(parents=True)
    spec.spec_path(repo, 1).write_bytes(spec.canonical(first))
    source = tmp_path / "SPEC.md"
    source.write_text("# v2\n\nThe app prints v2; the README says so.\n")
    roles(scenario, [GOOD], [PASS])
    result = cli("plan", "draft", "--from", str(source), "--json")
    assert result.returncode == 0, result
    shown = result.json()
    assert shown["wave"] == 2 and shown["outcome"] == "written" and shown["spec"]["wave"] == 2
    asked = prompt(repo, "wave_architect-1", number=2)
    assert f"From {source}:\n# v2\n\nThe app prints v2" in asked
    assert "You are writing wave 2" in asked and "- wave 1: The first wave" in asked
    assert "The app prints v2; the README says so." in prompt(repo, "plan_verifier-1", number=2)
    assert spec.spec_path(repo, 2).is_file() and spec.markdown_path(repo, 2).is_file()


def test_the_chosen_template_pack_and_mode_reach_the_architect_and_the_spec(
    cli: Cli, repo: Path, scenario: Path
) -> None:
    roles(scenario, [wave(*GOOD["spec"]["tasks"], mode="dark-factory")], [PASS])
    result = cli("plan", "draft", "--task", REQUEST, "--template", "qa", "--mode", "oversight", "--wave", "7")
    assert result.returncode == 0, result
    asked = prompt(repo, "wave_architect-1", number=7)
    qa = templates.load("qa")
    assert qa.shape in asked and '"id": "inventory"' in asked
    assert "You are writing wave 7, in `oversight` mode." in asked
    assert spec.read(spec.spec_path(repo, 7))["mode"] == "oversight"  # --mode wins over the Architect


def test_an_unknown_template_or_an_existing_wave_is_refused_before_any_role_runs(
    cli: Cli, repo: Path, scenario: Path
) -> None:
    roles(scenario, [GOOD], [PASS])
    result = cli("plan", "draft", "--task", REQUEST, "--template", "hotfix")
    assert result.returncode == 1 and "no template pack named 'hotfix'" in result.stderr
    assert "implementation, infra, migration, qa, release" in result.stderr
    spec.markdown_path(repo, 3).parent.mkdir(parents=True)
    spec.markdown_path(repo, 3).write_text("# Wave 3 - authored by hand\n")
    with pytest.raises(Refused, match=r"wave 3 exists as Markdown: plans/waves/wave-3\.md"):
        run(repo, wave=3)
    assert draft.next_wave(repo) == 4
    assert runs_of(scenario) == {} and not (repo / ".speedrift" / "runs" / "_plans").exists()
    dark = cli("plan", "draft", "--task", REQUEST, "--mode", "dark-factory")  # the repo has no tests
    assert dark.returncode == 1 and "a dark-factory wave needs a tests gate that can block" in dark.stderr
    assert "--mode oversight" in dark.stderr
    assert cli("plan", "draft", "--task", REQUEST, "--wave", "-1").returncode == 2
    empty = cli("plan", "draft", "--task", "  ")
    assert empty.returncode == 2 and "--task is empty" in empty.stderr
    missing = cli("plan", "draft", "--from", "nope.md")
    assert missing.returncode == 1 and "--from nope.md: no such file" in missing.stderr


def test_a_verifier_run_that_fails_ends_the_draft_with_the_rounds_so_far_recorded(
    repo: Path, scenario: Path
) -> None:
    scenario.write_text(
        json.dumps(
            {
                "roles": {
                    "wave_architect": reports(ONLY_CODE, GOOD),
                    "plan_verifier": [reports(FAIL)[0], [{"do": "start"}, {"do": "auth_failure"}]],
                }
            }
        )
    )
    with pytest.raises(RoleFailed, match="the plan_verifier run failed"):
        run(repo)
    summary = json.loads((record(repo) / "draft.json").read_text())
    assert [r["verification"]["status"] for r in summary["rounds"]] == ["fail"]
    assert not (repo / "plans").exists()


# --- the role ----------------------------------------------------------------------------------------
def test_the_wave_architects_output_schema_is_the_wave_schema_closed() -> None:
    """The shipped role schema is derived from plans/data/wave.schema.json; regenerate it with
    SPEEDRIFT_REGEN_ROLE_SCHEMA=1 when the wave schema changes."""
    role = shipped(RoleName.WAVE_ARCHITECT)
    derived = draft.architect_schema(role.examples)
    path = Path(draft.__file__).parents[1] / "fleet" / "roles" / "data" / "wave_architect.schema.json"
    if os.environ.get("SPEEDRIFT_REGEN_ROLE_SCHEMA") == "1":
        path.write_text(json.dumps(derived, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == derived, (
        "wave_architect.schema.json is stale: regenerate it with "
        "SPEEDRIFT_REGEN_ROLE_SCHEMA=1 pytest tests/plans/test_draft.py -k schema"
    )
    wave_props = derived["$defs"]["wave_spec"]["properties"]
    assert "wave" not in wave_props and "schema" not in wave_props and "prose" not in wave_props
    assert "extra" not in derived["$defs"]["task"]["properties"]


def test_every_example_of_the_role_is_a_lint_clean_wave_once_speedrift_numbers_it() -> None:
    for example in shipped(RoleName.WAVE_ARCHITECT).examples:
        value = {**example["spec"], "schema": spec.SCHEMA_ID, "wave": 1}
        assert lint.lint(value, file="wave-1.json") == []
        assert shipped(RoleName.WAVE_ARCHITECT).problems({**example, "spec": value}) != []  # it sets neither


def test_max_rounds_bounds_the_architect_and_an_unverified_wave_changes_no_file(
    repo: Path, scenario: Path
) -> None:
    roles(scenario, [ONLY_CODE], [FAIL])
    done = run(repo, max_rounds=1)
    assert done.outcome is Outcome.NOT_VERIFIED and len(done.rounds) == 1
    assert "- critical: Nothing documents the new output." in "\n".join(
        f"- {line}" for line in draft.last_findings(done.rounds[-1])
    )
    assert runs_of(scenario) == {"wave_architect": 1, "plan_verifier": 1}
    assert sh_git(repo, "status", "--porcelain", "--untracked-files=all") == "?? speedrift.toml"
