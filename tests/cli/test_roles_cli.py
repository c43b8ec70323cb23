"""`speedrift roles list|show|run` as a user runs them: the shipped roles anywhere, a repo's
template overrides named with their source, and a role run with a fake Claude Code whose output is
printed only when it is valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from speedrift.fleet.roles.model import shipped
from speedrift.fleet.roles.names import RoleName
from tests.agents.conftest import FAKES
from tests.cli.support import Cli, base_env, git, seed, task_node

APPROVE = {"verdict": "approve", "summary": "Does what the task asks.", "findings": []}
INPUTS = {"task": "t1: make app.py print v2", "diff": "-print('v1')\n+print('v2')"}
CLOSURE_ROLES = (RoleName.COHERENCE, RoleName.INTEGRATION, RoleName.DOCUMENTATION, RoleName.EVALUATOR)
RUN_CONFIG = '[env]\nallow = ["FAKE_AGENT_SCENARIO"]\n\n[sandbox]\nmode = "off"\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def committed(repo: Path) -> Path:
    write(repo / "app.py", "print('v1')\n")
    write(repo / ".gitignore", ".speedrift/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    return tmp_path / "scenario.json"


@pytest.fixture
def agent(committed: Path, scenario: Path) -> Cli:
    """``speedrift`` in a committed repo whose agent runtime is the fake claude."""
    write(committed / "speedrift.toml", RUN_CONFIG)
    env = {
        **base_env(),
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "FAKE_AGENT_SCENARIO": str(scenario),
    }
    return Cli(committed, env)


def runs(scenario: Path, *rounds: list[dict[str, Any]]) -> None:
    scenario.write_text(json.dumps({"roles": {"*": list(rounds)}}))


def reports(output: object) -> list[dict[str, Any]]:
    return [{"do": "start"}, {"do": "result_file", "report": output}, {"do": "finish"}]


def inputs_file(where: Path, inputs: dict[str, Any] = INPUTS) -> str:
    path = where.parent / "inputs.json"
    path.write_text(json.dumps(inputs))
    return str(path)


def role_records(repo: Path) -> list[Path]:
    return sorted((repo / ".speedrift" / "runs" / "_roles").glob("*/role.json"))


# --- list ------------------------------------------------------------------------------------------
def test_roles_without_an_action_lists_every_shipped_role_outside_any_repository(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    result = Cli(nowhere).ok("roles")
    assert "as shipped (no repository here)" in result.stdout
    for name in RoleName:
        assert name.value in result.stdout


def test_roles_list_json_gives_every_role_with_its_tier_inputs_and_actions(cli: Cli) -> None:
    rows = cli.json("roles", "list")
    assert [r["name"] for r in rows] == [r.value for r in RoleName]
    coherence = next(r for r in rows if r["name"] == "coherence")
    assert coherence["tier"] == "planning" and coherence["template_origin"] == "shipped"
    assert {"name": "diffs", "description": coherence["inputs"][0]["description"], "required": True} in (
        coherence["inputs"]
    )
    assert coherence["on_valid"] == shipped(RoleName.COHERENCE).on_valid
    assert coherence["runtime"] == "claude" and coherence["problem"] is None
    assert "template" not in coherence  # `roles show` has the whole template


# --- show ------------------------------------------------------------------------------------------
def test_roles_show_prints_the_template_inputs_schema_and_example(cli: Cli) -> None:
    result = cli.ok("roles", "show", "integration")
    out = result.stdout
    assert out.startswith("integration — Integration steward")
    assert "template: speedrift/fleet/roles/data/integration.md (shipped)" in out
    assert "coordination (required):" in out and "gates (optional):" in out
    assert "on a valid output: plan closure posts it" in out
    assert "{{coordination}}" in out  # the template itself
    assert '"proof_gaps": {' in out.split("--- output schema")[1]  # the schema
    assert '"recommendation": "needs_more_work"' in out.split("--- example output ---")[1]


def test_roles_show_json_says_the_runtime_and_model_the_repo_would_use(cli: Cli, repo: Path) -> None:
    write(repo / "speedrift.toml", '[roles.evaluator]\nruntime = "codex"\nmodel = "gpt-5.5"\n')
    shown = cli.json("roles", "show", "evaluator")
    assert shown["runtime"] == "codex" and shown["model"] == "gpt-5.5"
    assert shown["example"] == shipped(RoleName.EVALUATOR).examples[0]
    assert shown["schema"]["additionalProperties"] is False
    assert shown["template"] == shipped(RoleName.EVALUATOR).template
    assert shown["inputs"][0] == {
        "name": "targets",
        "description": shipped(RoleName.EVALUATOR).inputs[0].description,
        "required": True,
    }


def test_roles_show_accepts_a_dashed_role_name_and_refuses_an_unknown_one(cli: Cli) -> None:
    assert cli.json("roles", "show", "plan-verifier")["name"] == "plan_verifier"
    result = cli.fails(1, "roles", "show", "nope")
    assert "no role named 'nope'" in result.stderr and "plan_verifier" in result.stderr


def test_roles_show_uses_and_names_a_template_in_dot_speedrift_roles(cli: Cli, repo: Path) -> None:
    write(repo / ".speedrift" / "roles" / "reviewer.md", "House rules first.\n{{task}}\n{{diff}}\n")
    out = cli.ok("roles", "show", "reviewer").stdout
    assert "template: .speedrift/roles/reviewer.md (the repo's, replacing the shipped one)" in out
    assert "House rules first." in out
    shown = cli.json("roles", "show", "reviewer")
    assert shown["template_origin"] == "repo"
    assert shown["template_source"] == str(repo / ".speedrift" / "roles" / "reviewer.md")
    listed = {r["name"]: r for r in cli.json("roles", "list")}
    assert (
        listed["reviewer"]["template_origin"] == "repo" and listed["debugger"]["template_origin"] == "shipped"
    )


def test_roles_show_uses_and_names_the_template_speedrift_toml_names(cli: Cli, repo: Path) -> None:
    write(repo / "docs" / "review-template.md", "Review {{task}} strictly.\n{{diff}}\n")
    write(repo / "speedrift.toml", '[roles.reviewer]\ntemplate = "docs/review-template.md"\n')
    out = cli.ok("roles", "show", "reviewer").stdout
    assert "template: docs/review-template.md (the repo's, replacing the shipped one)" in out
    assert "Review {{task}} strictly." in out


def test_an_override_naming_an_unknown_input_fails_with_its_file_and_line(cli: Cli, repo: Path) -> None:
    own = write(repo / ".speedrift" / "roles" / "reviewer.md", "{{task}}\nSee {{ticket}}.\n{{diff}}\n")
    result = cli.fails(1, "roles", "show", "reviewer")
    assert f"{own}:2: the template names {{{{ticket}}}}, which is not an input of this role" in result.stderr
    assert "fix: its inputs: diff, earlier_findings, gates, scope, spec, task" in result.stderr
    listed = cli.fails(1, "roles", "list")  # every role is still listed; the broken one says why
    assert "PROBLEM (below)" in listed.stdout and "debugger" in listed.stdout
    assert f"reviewer: {own}:2: the template names" in listed.stdout


def test_a_template_path_that_does_not_exist_fails_with_the_fix(cli: Cli, repo: Path) -> None:
    write(repo / "speedrift.toml", '[roles.reviewer]\ntemplate = "docs/missing.md"\n')
    result = cli.fails(1, "roles", "show", "reviewer")
    assert "[roles.reviewer] template = 'docs/missing.md' does not exist" in result.stderr
    assert "fix: give a path relative to the repository" in result.stderr


# --- run -------------------------------------------------------------------------------------------
def test_roles_run_prints_the_validated_output_and_records_the_run(
    agent: Cli, committed: Path, scenario: Path
) -> None:
    runs(
        scenario, [{"do": "start"}, {"do": "signal", "kind": "result", "payload": APPROVE}, {"do": "finish"}]
    )
    head = git(committed, "rev-parse", "HEAD").strip()
    result = agent.ok("roles", "run", "reviewer", "--inputs", inputs_file(scenario), "--commit", "HEAD")
    assert json.loads(result.stdout) == APPROVE  # stdout is the output, nothing else
    assert f"running the Reviewer on {head[:12]} (claude," in result.stderr
    assert "reviewer: a valid output after 1 round(s)" in result.stderr
    [record] = role_records(committed)
    assert record.parent.name.startswith("reviewer-")
    assert json.loads(record.read_text())["output"] == APPROVE
    prompt = (record.parent / "round-1" / "prompt.md").read_text()
    assert "t1: make app.py print v2" in prompt
    assert "role-checkouts" not in git(committed, "worktree", "list")  # the checkout is gone


def test_roles_run_json_reports_the_result(agent: Cli, committed: Path, scenario: Path) -> None:
    runs(scenario, reports(APPROVE))
    report = agent.json("roles", "run", "reviewer", "--inputs", inputs_file(scenario))
    assert report["valid"] is True and report["output"] == APPROVE and report["rounds"] == 1
    assert report["runtime"] == "claude" and report["failure_class"] is None
    assert Path(report["record_dir"]) == role_records(committed)[0].parent


def test_roles_run_takes_the_repos_template(agent: Cli, committed: Path, scenario: Path) -> None:
    write(committed / ".speedrift" / "roles" / "reviewer.md", "HOUSE REVIEW of {{task}}\n{{diff}}\n")
    runs(scenario, reports(APPROVE))
    agent.ok("roles", "run", "reviewer", "--inputs", inputs_file(scenario))
    [record] = role_records(committed)
    assert (record.parent / "round-1" / "prompt.md").read_text().startswith("HOUSE REVIEW of t1")


def test_an_invalid_output_twice_exits_one_with_every_problem(
    agent: Cli, committed: Path, scenario: Path
) -> None:
    runs(scenario, reports({"verdict": "maybe", "summary": "", "findings": []}))
    result = agent.fails(1, "roles", "run", "reviewer", "--inputs", inputs_file(scenario))
    assert "the reviewer gave no valid output in 2 round(s)" in result.stdout
    assert "  $.verdict: 'maybe' is not one of ['approve', 'request_changes', 'reject']" in result.stdout
    assert "  $.summary: '' should be non-empty" in result.stdout
    assert "failure class: invalid_output" in result.stdout
    assert not result.stdout.lstrip().startswith("{")  # the invalid output is never printed as one
    assert "reviewer: no valid output after 2 round(s)" in result.stderr


def test_an_invalid_output_in_json_exits_one_with_the_typed_failure(
    agent: Cli, committed: Path, scenario: Path
) -> None:
    runs(scenario, [{"do": "start"}, {"do": "finish", "text": json.dumps(APPROVE)}])  # only printed
    result = agent.fails(1, "roles", "run", "reviewer", "--inputs", inputs_file(scenario), "--json")
    report = result.json()
    assert report["valid"] is False and report["output"] is None
    assert report["failure_class"] == "invalid_output" and report["rounds"] == 2
    assert report["problems"] == ["no output: nothing was written to $SPEEDRIFT_RESULT"]


def test_a_failed_run_exits_one_with_the_failure_not_as_invalid_output(
    agent: Cli, committed: Path, scenario: Path
) -> None:
    runs(scenario, [{"do": "start"}, {"do": "auth_failure"}])
    result = agent.fails(1, "roles", "run", "reviewer", "--inputs", inputs_file(scenario))
    assert "the reviewer run failed:" in result.stdout
    assert "invalid_output" not in result.stdout


@pytest.mark.parametrize("name", CLOSURE_ROLES, ids=str)
def test_each_closure_role_runs_through_the_generic_runner(
    agent: Cli, committed: Path, scenario: Path, name: RoleName
) -> None:
    role = shipped(name)
    example = role.examples[0]
    runs(scenario, reports(example))
    given = {i.name: f"the {i.name}" for i in role.inputs}
    result = agent.ok("roles", "run", name.value, "--inputs", inputs_file(scenario, given))
    assert json.loads(result.stdout) == example
    [record] = role_records(committed)
    prompt = (record.parent / "round-1" / "prompt.md").read_text()
    assert all(f"the {i.name}" in prompt for i in role.inputs)


def test_a_missing_required_input_is_refused_before_anything_runs(
    agent: Cli, committed: Path, scenario: Path
) -> None:
    result = agent.fails(1, "roles", "run", "reviewer", "--inputs", inputs_file(scenario, {"task": "t1"}))
    assert "role reviewer: required input(s) diff not given" in result.stderr
    assert not (committed / ".speedrift" / "runs" / "_roles").exists()
    assert not scenario.with_name("scenario.json.count.json").exists()  # no agent was started


def test_inputs_that_are_not_a_json_object_of_texts_are_a_usage_error(agent: Cli, scenario: Path) -> None:
    path = scenario.with_name("inputs.json")
    path.write_text("[1, 2]")
    assert "not a JSON object" in agent.fails(2, "roles", "run", "reviewer", "--inputs", str(path)).stderr
    path.write_text('{"task": "t1", "diff": 7}')
    assert (
        "input 'diff' is not text" in agent.fails(2, "roles", "run", "reviewer", "--inputs", str(path)).stderr
    )
    path.write_text("{not json")
    assert "not valid JSON" in agent.fails(2, "roles", "run", "reviewer", "--inputs", str(path)).stderr
    missing = agent.fails(1, "roles", "run", "reviewer", "--inputs", str(scenario.with_name("nope.json")))
    assert "no such file" in missing.stderr


def test_an_unknown_commit_or_task_is_refused(agent: Cli, scenario: Path) -> None:
    given = inputs_file(scenario)
    result = agent.fails(1, "roles", "run", "reviewer", "--inputs", given, "--commit", "no-such-branch")
    assert "--commit 'no-such-branch': no such commit" in result.stderr
    result = agent.fails(1, "roles", "run", "reviewer", "--inputs", given, "--task", "ghost")
    assert "no task 'ghost'" in result.stderr


def test_roles_run_about_a_task_stamps_what_the_role_posts_with_it(
    agent: Cli, committed: Path, scenario: Path
) -> None:
    seed(committed, task_node("t1", "Print v2"))
    question = {"summary": "Should v2 keep the trailing newline?"}
    runs(
        scenario,
        [
            {"do": "start"},
            {"do": "signal", "kind": "clarification_request", "payload": question},
            *reports(APPROVE)[1:],
        ],
    )
    report = agent.json("roles", "run", "reviewer", "--inputs", inputs_file(scenario), "--task", "t1")
    assert report["posted"] == ["repo-1"]
    [line] = (committed / ".speedrift" / "coord" / "repo.jsonl").read_text().splitlines()
    assert json.loads(line)["author"] == {"actor": "agent", "task": "t1", "role": "reviewer"}


def test_roles_run_reads_its_inputs_from_standard_input(agent: Cli, committed: Path, scenario: Path) -> None:
    """A real process: the in-process CLI has no standard input to give."""
    runs(scenario, reports(APPROVE))
    done = subprocess.run(
        [sys.executable, "-m", "speedrift", "roles", "run", "reviewer", "--inputs", "-"],
        cwd=committed,
        env=agent.env,
        input=json.dumps(INPUTS).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == APPROVE
