from __future__ import annotations

import json
from pathlib import Path

from speedrift.lanes.builtin.depsdrift import LANE
from tests.gitrepo import commit_file, make_repo
from tests.lanes.diffsupport import fenced, head, kinds, run, task

PYPROJECT = (
    '[project]\nname = "app"\nversion = "1.0.0"\ndescription = "an app"\ndependencies = ["requests>=2"]\n'
)
PACKAGE = {
    "name": "web",
    "version": "1.0.0",
    "scripts": {"test": "jest"},
    "dependencies": {"left-pad": "^1.0.0"},
}


def _repo(tmp_path: Path, files: dict[str, str]) -> tuple[Path, str]:
    repo = make_repo(tmp_path / "repo", {"README.md": "# app\n", **files})
    return repo, head(repo)


def _json(data: object) -> str:
    return json.dumps(data, indent=2) + "\n"


def test_a_dependency_added_to_pyproject_without_its_lock_is_lock_not_updated(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, {"pyproject.toml": PYPROJECT, "uv.lock": "version = 1\n"})
    tip = commit_file(repo, "pyproject.toml", PYPROJECT.replace('["requests>=2"]', '["requests>=2", "rich"]'))
    out = run(LANE, repo, base=base, tip=tip)
    assert kinds(out) == ["lock_not_updated"]
    finding = out.findings[0]
    assert (
        finding.file == "pyproject.toml" and finding.key == "pyproject.toml" and finding.severity == "warning"
    )
    assert "project.dependencies" in finding.message and "uv.lock" in finding.message


def test_a_dependency_change_with_its_lock_is_clean(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, {"pyproject.toml": PYPROJECT, "uv.lock": "version = 1\n"})
    commit_file(repo, "pyproject.toml", PYPROJECT.replace('["requests>=2"]', '["requests>=2", "rich"]'))
    tip = commit_file(repo, "uv.lock", "version = 1\n# rich\n")
    assert run(LANE, repo, base=base, tip=tip).findings == []


def test_a_change_the_lock_does_not_record_is_not_a_finding(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, {"pyproject.toml": PYPROJECT, "poetry.lock": "# lock\n"})
    described = commit_file(
        repo, "pyproject.toml", PYPROJECT.replace("an app", "the app") + "[tool.ruff]\nline-length = 99\n"
    )
    assert run(LANE, repo, base=base, tip=described).findings == []
    # poetry.lock does not record the project's version ...
    bumped = commit_file(repo, "pyproject.toml", PYPROJECT.replace("1.0.0", "1.1.0"))
    assert run(LANE, repo, base=base, tip=bumped).findings == []


def test_a_version_bump_is_a_finding_where_the_lock_records_the_version(tmp_path: Path) -> None:
    # uv.lock and Cargo.lock hold the project's own version: `uv sync --locked` and
    # `cargo build --locked` refuse a stale one
    repo, base = _repo(tmp_path, {"pyproject.toml": PYPROJECT, "uv.lock": "version = 1\n"})
    tip = commit_file(repo, "pyproject.toml", PYPROJECT.replace("1.0.0", "1.1.0"))
    out = run(LANE, repo, base=base, tip=tip)
    assert kinds(out) == ["lock_not_updated"] and "project.version" in out.findings[0].message
    dynamic = PYPROJECT.replace('version = "1.0.0"\n', 'dynamic = ["version"]\n')
    repo2 = make_repo(tmp_path / "dyn", {"pyproject.toml": dynamic, "uv.lock": "version = 1\n"})
    base2 = head(repo2)
    tip2 = commit_file(repo2, "pyproject.toml", dynamic.replace("an app", "the app"))
    assert run(LANE, repo2, base=base2, tip=tip2).findings == []


def test_a_project_that_keeps_no_lock_is_not_judged(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, {"pyproject.toml": PYPROJECT})
    tip = commit_file(repo, "pyproject.toml", PYPROJECT.replace('["requests>=2"]', '["requests>=2", "rich"]'))
    assert run(LANE, repo, base=base, tip=tip).findings == []


def test_package_json_dependencies_pair_with_the_lock_in_their_own_directory(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, {"web/package.json": _json(PACKAGE), "web/yarn.lock": "# yarn\n"})
    scripts = commit_file(
        repo, "web/package.json", _json({**PACKAGE, "version": "2.0.0", "scripts": {"test": "vitest"}})
    )
    assert run(LANE, repo, base=base, tip=scripts).findings == []
    tip = commit_file(repo, "web/package.json", _json({**PACKAGE, "devDependencies": {"jest": "^29"}}))
    out = run(LANE, repo, base=base, tip=tip)
    assert kinds(out) == ["lock_not_updated"]
    assert out.findings[0].file == "web/package.json" and "web/yarn.lock" in out.findings[0].message


def test_a_workspace_member_pairs_with_the_root_lock_and_a_stranger_does_not(tmp_path: Path) -> None:
    root = '[workspace]\nmembers = ["crates/*"]\n'
    crate = '[package]\nname = "a"\nversion = "0.1.0"\n\n[dependencies]\n'
    repo, base = _repo(
        tmp_path,
        {
            "Cargo.toml": root,
            "Cargo.lock": "version = 4\n",
            "crates/a/Cargo.toml": crate,
            "package.json": _json({"name": "root", "workspaces": ["packages/*"]}),
            "package-lock.json": "{}\n",
            "tools/site/package.json": _json(PACKAGE),
        },
    )
    commit_file(repo, "crates/a/Cargo.toml", crate + 'serde = "1"\n')
    tip = commit_file(repo, "tools/site/package.json", _json({**PACKAGE, "dependencies": {"react": "^18"}}))
    out = run(LANE, repo, base=base, tip=tip)
    assert kinds(out) == ["lock_not_updated"]
    assert out.findings[0].file == "crates/a/Cargo.toml" and "Cargo.lock" in out.findings[0].message


def test_requirements_in_pairs_with_the_txt_of_the_same_stem(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, {"requirements-dev.in": "pytest\n", "requirements-dev.txt": "pytest==8.0\n"})
    comment = commit_file(repo, "requirements-dev.in", "# test tools\npytest\n")
    assert run(LANE, repo, base=base, tip=comment).findings == []
    tip = commit_file(repo, "requirements-dev.in", "pytest\nhypothesis\n")
    out = run(LANE, repo, base=base, tip=tip)
    assert kinds(out) == ["lock_not_updated"] and "requirements-dev.txt" in out.findings[0].message


def test_go_mod_and_gemfile_pair_with_go_sum_and_gemfile_lock(tmp_path: Path) -> None:
    files = {
        "go.mod": "module example.com/a\n\ngo 1.22\n",
        "go.sum": "",
        "Gemfile": "source 'https://rubygems.org'\n",
        "Gemfile.lock": "GEM\n",
    }
    repo, base = _repo(tmp_path, files)
    commit_file(repo, "go.mod", "module example.com/b // renamed\n\ngo 1.22\n")
    quiet = commit_file(repo, "Gemfile", "# gems\nsource 'https://rubygems.org'\n")
    assert run(LANE, repo, base=base, tip=quiet).findings == []
    commit_file(repo, "go.mod", "module example.com/b\n\ngo 1.22\n\nrequire golang.org/x/text v0.14.0\n")
    tip = commit_file(repo, "Gemfile", "source 'https://rubygems.org'\ngem 'rails'\n")
    out = run(LANE, repo, base=base, tip=tip)
    assert sorted(f.file for f in out.findings) == ["Gemfile", "go.mod"]


def test_uncommitted_changes_are_judged_when_the_range_ends_at_the_working_tree(tmp_path: Path) -> None:
    repo, base = _repo(
        tmp_path, {"Cargo.toml": '[package]\nname = "a"\nversion = "0.1.0"\n', "Cargo.lock": "x\n"}
    )
    (repo / "Cargo.toml").write_text('[package]\nname = "a"\nversion = "0.2.0"\n')
    out = run(LANE, repo, base=base, tip=None, rev=base)
    assert kinds(out) == ["lock_not_updated"] and "package.version" in out.findings[0].message


def test_a_clean_range_has_no_findings(tmp_path: Path) -> None:
    repo, base = _repo(
        tmp_path, {"pyproject.toml": PYPROJECT, "uv.lock": "version = 1\n", "src/app.py": "x = 1\n"}
    )
    commit_file(repo, "src/app.py", "x = 2\n")
    tip = commit_file(repo, "README.md", "# app\nmore\n")
    assert run(LANE, repo, base=base, tip=tip).findings == []


def test_declared_pairs_ignore_and_the_switches(tmp_path: Path) -> None:
    repo, base = _repo(
        tmp_path,
        {"deps/app.cfg": "a\n", "deps/app.pin": "a==1\n", "pyproject.toml": PYPROJECT, "uv.lock": "v\n"},
    )
    commit_file(repo, "deps/app.cfg", "a\nb\n")
    tip = commit_file(repo, "pyproject.toml", PYPROJECT.replace('["requests>=2"]', '["requests>=2", "rich"]'))
    assert [f.file for f in run(LANE, repo, base=base, tip=tip).findings] == ["pyproject.toml"]
    block = task("t1", fenced("depsdrift", 'schema = 1\nmanifests = ["deps/*.cfg"]\nlocks = ["deps/*.pin"]'))
    declared = run(LANE, repo, base=base, tip=tip, task=block)
    assert sorted(f.file for f in declared.findings) == ["deps/app.cfg", "pyproject.toml"]
    assert all(f.subject == "t1" for f in declared.findings)
    ignored = run(LANE, repo, base=base, tip=tip, policy={"ignore": ["pyproject.toml"]})
    assert ignored.findings == []
    manual = run(LANE, repo, base=base, tip=tip, task=block, policy={"auto_detect": False})
    assert [f.file for f in manual.findings] == ["deps/app.cfg"]
    off = run(LANE, repo, base=base, tip=tip, policy={"require_lock_update_when_manifest_changes": False})
    assert off.findings == [] and "false" in off.summary


def test_a_block_that_cannot_be_read_is_invalid_deps_config(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, {"pyproject.toml": PYPROJECT})
    tip = commit_file(repo, "README.md", "# changed\n")
    for body in ('manifests = ["x"', "locks = 1", 'manifests = ["deps/*.cfg"]', "lockfiles = []"):
        out = run(LANE, repo, base=base, tip=tip, task=task("t1", fenced("depsdrift", body)))
        assert kinds(out) == ["invalid_deps_config"], body
        assert out.findings[0].severity == "error"
    schema = run(LANE, repo, base=base, tip=tip, task=task("t1", fenced("depsdrift", "schema = 0")))
    assert kinds(schema) == ["unsupported_schema"]
