from __future__ import annotations

import json
from pathlib import Path

import pytest

from speedrift.lanes.builtin.redrift import LANE
from tests.gitrepo import commit_file, make_repo
from tests.lanes.diffsupport import fenced, graph_of, kinds, only, run, task

ARTIFACTS = ["analyze/inventory.md", "respec/spec.md", "design/design.md", "build/migration-plan.md"]


def _repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo", {"src/legacy.py": "def old():\n    return 1\n", "README.md": "# app\n"}
    )


def _artifacts(
    repo: Path, task_id: str = "t1", root: str = ".workgraph/.redrift", names: list[str] = ARTIFACTS
) -> None:
    for name in names:
        target = repo / root / task_id / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# {name}\n")


def _task(body: str = "schema = 1", task_id: str = "t1") -> dict[str, object]:
    return task(task_id, fenced("redrift", body))


TASK_COMMANDS = {"allow_task_commands": True}


def test_without_a_task_or_a_redrift_block_nothing_is_judged(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert "no task" in run(LANE, repo).summary
    out = run(LANE, repo, task=task("t1", "plain task"))
    assert out.findings == [] and out.summary == "no redrift fence"


def test_a_rewrite_task_with_its_artifacts_and_passing_checks_is_clean(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _artifacts(repo)
    body = 'verify_required = true\nverify_commands = ["test -f README.md"]\n'
    graph = graph_of([_task(body), {"id": "redrift-t1-build", "status": "done"}])
    allowed = {"verify_commands": ["test -f README.md"]}
    assert run(LANE, repo, task=_task(body), graph=graph, policy=allowed).findings == []


def test_missing_phase_artifacts_are_missing_redrift_artifacts(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _artifacts(repo, names=ARTIFACTS[:2])
    out = run(LANE, repo, task=_task())
    assert kinds(out) == ["missing_redrift_artifacts"]
    assert (
        "design/design.md" in out.findings[0].evidence[0] and "inventory" not in out.findings[0].evidence[0]
    )
    assert out.findings[0].subject == "t1"


def test_committed_artifacts_count_and_the_root_and_list_are_settings(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    commit_file(repo, "docs/rewrite/t1/plan.md", "# plan\n")
    body = 'artifact_root = "docs/rewrite"\nrequired_artifacts = ["plan.md"]'
    assert run(LANE, repo, task=_task(body)).findings == []
    assert kinds(run(LANE, repo, task=_task('required_artifacts = ["plan.md"]'))) == [
        "missing_redrift_artifacts"
    ]


def test_required_verification_without_anything_to_verify_is_verification_missing(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _artifacts(repo)
    out = run(LANE, repo, task=_task("verify_required = true"))
    assert kinds(out) == ["verification_missing"] and out.findings[0].severity == "error"
    assert run(LANE, repo, task=_task("verify_required = false")).findings == []
    record = repo / ".workgraph/.redrift/verify/t1.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"score": "green"}))
    assert run(LANE, repo, task=_task("verify_required = true")).findings == []
    record.write_text(json.dumps({"score": "red"}))
    assert kinds(run(LANE, repo, task=_task("verify_required = true"))) == ["verification_failed"]


def test_a_failing_verify_command_is_verification_failed(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _artifacts(repo)
    body = 'verify_commands = ["test -f src/legacy.py", "echo tests broke >&2; touch made-here; exit 3"]'
    out = run(LANE, repo, task=_task(body), policy=TASK_COMMANDS)
    assert kinds(out) == ["verification_failed"]
    finding = out.findings[0]
    assert "exited 3" in finding.message and "tests broke" in finding.message
    assert finding.key.startswith("command:echo tests broke")
    assert not (repo / "made-here").exists()  # commands run in a private checkout


def test_a_command_past_its_timeout_is_verification_failed(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _artifacts(repo)
    out = run(
        LANE, repo, task=_task('verify_commands = ["sleep 30"]\nverify_timeout_s = 0.5'), policy=TASK_COMMANDS
    )
    assert kinds(out) == ["verification_failed"] and "verify_timeout_s" in out.findings[0].message


def test_failing_assertions_are_verification_failed(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _artifacts(repo)
    failing = (
        'verify_assertions = [{kind = "max_lines", path = "src/legacy.py", max = 1},'
        ' {kind = "forbid_pattern", pattern = "def old", include = ["src/**"]}]'
    )
    out = run(LANE, repo, task=_task(failing))
    assert [f.kind for f in out.findings] == ["verification_failed", "verification_failed"]
    messages = " ".join(f.message for f in out.findings)
    assert "src/legacy.py has 2 lines" in messages and "src/legacy.py:1" in messages
    passing = (
        'verify_assertions = [{kind = "max_lines", glob = "src/*.py", value = 2},'
        ' {kind = "forbid_pattern", pattern = "TODO", glob = "src/**"}]'
    )
    assert run(LANE, repo, task=_task(passing)).findings == []


def test_open_redrift_followups_are_unresolved_redrift_followups(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _artifacts(repo)
    graph = graph_of(
        [
            _task(),
            {"id": "redrift-t1-design", "status": "open"},
            {"id": "redrift-t1-build", "status": "done"},
            {"id": "redrift-t10-design", "status": "open"},
        ]
    )
    out = run(LANE, repo, task=_task(), graph=graph)
    assert kinds(out) == ["unresolved_redrift_followups"]
    assert only(out, "unresolved_redrift_followups")[0].evidence == ("open: redrift-t1-design",)


def test_a_block_or_assertion_that_cannot_be_read_is_invalid_redrift_config(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    for body in (
        "verify_required = ",
        "verify_required = 1",
        'verify_assertions = [{kind = "max_chars", path = "a"}]',
        'verify_assertions = [{kind = "forbid_pattern", pattern = "("}]',
        'artifact_root = "../elsewhere"',
    ):
        out = run(LANE, repo, task=_task(body))
        assert kinds(out) == ["invalid_redrift_config"], body
    assert kinds(run(LANE, repo, task=_task("schema = 2"))) == ["unsupported_schema"]


def test_a_command_only_the_tasks_block_names_runs_only_when_the_policy_allows_it(tmp_path: Path) -> None:
    """A task description may be written by an agent: a command it names is not run on the host
    unless the committed policy lists it or sets allow_task_commands."""
    repo = _repo(tmp_path)
    _artifacts(repo)
    body = 'verify_commands = ["touch ran-it; exit 1"]'
    refused = run(LANE, repo, task=_task(body))
    assert kinds(refused) == ["invalid_redrift_config"]
    assert "allow_task_commands" in refused.findings[0].message
    listed = run(LANE, repo, task=_task(body), policy={"verify_commands": ["touch ran-it; exit 1"]})
    assert kinds(listed) == ["verification_failed"]
    sneaky = run(LANE, repo, task=_task(body + "\nallow_task_commands = true"))
    assert kinds(sneaky) == ["invalid_redrift_config"]  # only the policy may allow it


def test_verify_commands_get_no_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_" + "x" * 36)
    monkeypatch.setenv("BUILD_FLAVOR", "debug")
    repo = _repo(tmp_path)
    _artifacts(repo)
    check_env = 'test -z "$GITHUB_TOKEN" && test "$BUILD_FLAVOR" = debug'
    out = run(LANE, repo, task=_task(f"verify_commands = ['{check_env}']"), policy=TASK_COMMANDS)
    assert out.findings == []
