"""`speedrift gates run|list` through the real console script."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import Cli, git


def repo_with_branch(tmp_path: Path) -> tuple[Cli, Path]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    return Cli(repo), repo


def test_gates_run_exits_one_and_prints_the_bundle_when_a_gate_blocks(tmp_path: Path) -> None:
    cli, repo = repo_with_branch(tmp_path)
    (repo / "config.json").write_text('{\n  "a": \n}\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "broken json")
    data = cli.fails(1, "gates", "run", "--json").json()
    assert data["passed"] is False and data["blocking"] == ["syntax"]
    assert data["base"] == git(repo, "rev-parse", "main").strip()  # merge-base with the target branch
    assert data["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert Path(data["bundle_file"]).is_file()
    human = cli.fails(1, "gates", "run")
    assert "syntax" in human.stdout and "fail" in human.stdout
    assert "config.json:3" in human.stdout and "blocked by syntax" in human.stdout


def test_uncommitted_changes_are_checked_and_a_clean_result_exits_zero(tmp_path: Path) -> None:
    cli, repo = repo_with_branch(tmp_path)
    (repo / "data.yaml").write_text("a: [1, 2]\n")  # untracked, not committed
    data = cli.json("gates", "run", "--worktree", str(repo))
    assert data["passed"] is True
    assert data["extra"]["working_tree"] == "uncommitted changes included"
    assert "bundle_file" not in data  # a bundle is tied to a commit; this tree is not one
    syntax = next(r for r in data["results"] if r["gate"] == "syntax")
    assert syntax["status"] == "pass" and syntax["reason"] == "1 file(s) parse"


def test_a_task_brings_its_scope_and_an_unknown_task_or_base_is_an_error(tmp_path: Path) -> None:
    cli, repo = repo_with_branch(tmp_path)
    cli.ok("init")
    cli.ok("add", "Docs only", "--id", "docs", "--touch", "docs/**")
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo / name).write_text("x\n")
    data = cli.fails(1, "gates", "run", "--task", "docs", "--json").json()
    scope = next(r for r in data["results"] if r["gate"] == "scope")
    assert (scope["status"], scope["failure_class"]) == ("fail", "decomposition_error")
    assert "no task 'nope'" in cli.fails(1, "gates", "run", "--task", "nope").stderr
    assert (
        "--base 'no-such-ref' is not a commit" in cli.fails(2, "gates", "run", "--base", "no-such-ref").stderr
    )


def test_gates_list_names_every_gate_and_whether_its_tools_are_installed(tmp_path: Path) -> None:
    cli, repo = repo_with_branch(tmp_path)
    (repo / "speedrift.toml").write_text(
        '[gates]\nrequired = ["tests"]\n\n[gates.tools]\nruff = "/nowhere/ruff"\n'
    )
    rows = cli.json("gates", "list")
    assert [r["gate"] for r in rows] == [
        "syntax",
        "secrets",
        "scope",
        "contract",
        "lint",
        "types",
        "tests",
        "sast",
        "sca",
    ]
    tests = next(r for r in rows if r["gate"] == "tests")
    assert tests["required"] is True
    lint = next(r for r in rows if r["gate"] == "lint")
    ruff = next(t for t in lint["tools"] if t["tool"] == "ruff")
    assert ruff["path"] is None and "pip install ruff" in ruff["hint"]
    assert "lint" in cli.ok("gates", "list").stdout


def test_a_bad_gates_table_in_speedrift_toml_names_the_key(tmp_path: Path) -> None:
    cli, repo = repo_with_branch(tmp_path)
    (repo / "speedrift.toml").write_text('[gates]\nscope = "sometimes"\n')
    error = cli.fails(1, "gates", "run").stderr
    assert "gates.scope" in error and "speedrift.toml" in error
