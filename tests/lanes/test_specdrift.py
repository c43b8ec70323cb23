from __future__ import annotations

from pathlib import Path

from speedrift.lanes.builtin.specdrift import LANE
from tests.gitrepo import commit_file, make_repo
from tests.lanes.diffsupport import fenced, head, kinds, run, task

BLOCK = 'schema = 1\nspec = ["docs/spec/**"]\nignore = ["CHANGELOG.md"]\n'


def _repo(tmp_path: Path) -> tuple[Path, str]:
    repo = make_repo(
        tmp_path / "repo",
        {
            "src/api.py": "def get():\n    return 1\n",
            "docs/spec/api.md": "# API\n",
            "CHANGELOG.md": "# log\n",
        },
    )
    return repo, head(repo)


def _task(body: str = BLOCK) -> dict[str, object]:
    return task("t1", fenced("specdrift", body))


def test_code_changed_without_its_spec_is_spec_not_updated(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/api.py", "def get():\n    return 2\n")
    out = run(LANE, repo, base=base, tip=tip, task=_task())
    assert kinds(out) == ["spec_not_updated"]
    finding = out.findings[0]
    assert finding.subject == "t1" and finding.severity == "warning"
    assert "src/api.py" in finding.evidence[0]


def test_code_changed_with_its_spec_is_clean(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    commit_file(repo, "src/api.py", "def get():\n    return 2\n")
    tip = commit_file(repo, "docs/spec/api.md", "# API\nget returns 2\n")
    assert run(LANE, repo, base=base, tip=tip, task=_task()).findings == []


def test_ignored_files_are_not_code(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "CHANGELOG.md", "# log\n- more\n")
    assert run(LANE, repo, base=base, tip=tip, task=_task()).findings == []
    without_ignore = run(LANE, repo, base=base, tip=tip, task=_task('spec = ["docs/spec/**"]'))
    assert kinds(without_ignore) == ["spec_not_updated"]


def test_the_requirement_can_be_switched_off(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/api.py", "def get():\n    return 2\n")
    body = BLOCK + "require_spec_update_when_code_changes = false\n"
    out = run(LANE, repo, base=base, tip=tip, task=_task(body))
    assert out.findings == [] and "false" in out.summary


def test_without_a_block_or_policy_globs_specdrift_judges_nothing(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/api.py", "def get():\n    return 2\n")
    out = run(LANE, repo, base=base, tip=tip, task=task("t1", "no block"))
    assert out.findings == [] and "no spec globs" in out.summary


def test_policy_spec_globs_judge_a_range_without_a_task(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/api.py", "def get():\n    return 2\n")
    out = run(LANE, repo, base=base, tip=tip, policy={"spec": ["docs/spec/**"]})
    assert kinds(out) == ["spec_not_updated"] and out.findings[0].subject == ""


def test_a_block_that_is_not_toml_or_has_wrong_keys_is_invalid_spec_config(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/api.py", "def get():\n    return 2\n")
    for body in ('spec = ["docs/**"', 'spec = "docs/**"', 'spec = ["docs/**"]\nspecs = ["x"]', "schema = 1"):
        out = run(LANE, repo, base=base, tip=tip, task=_task(body))
        assert kinds(out) == ["invalid_spec_config"], body
        assert out.findings[0].severity == "error"


def test_a_schema_other_than_one_is_unsupported_schema(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    tip = commit_file(repo, "src/api.py", "def get():\n    return 2\n")
    out = run(LANE, repo, base=base, tip=tip, task=_task('schema = 2\nspec = ["docs/spec/**"]'))
    assert kinds(out) == ["unsupported_schema"]
