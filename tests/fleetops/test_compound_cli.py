"""``speedrift review compound`` as a person runs it: the summary, the flags, the tasks and the pull
request printed; ``--json`` the report's JSON; repos of an ecosystem by name, with its
``[compound_review]``; a bad ``--since`` named plainly."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import Cli
from tests.fleetops.test_compound_scan import a_repo, plant
from tests.gitrepo import commit_file, sh_git


def test_review_compound_prints_the_flags_the_tasks_and_the_dry_run_pull_request(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    cli = Cli(repo)
    cli.ok("review", "compound")  # the baseline
    shas = plant(repo)
    out = cli.ok("review", "compound").stdout
    assert "Compound review of repo (" in out and "7 commit(s), 10 flag(s)" in out
    assert "Summary: none — [compound_review] summarize = false" in out
    assert f"{shas['ci'][:7]} ci_config (human) .github/workflows/ci.yml" in out
    assert f"created: review-{shas['hook'][:7]}-hooks Review the git hook change" in out
    assert "Pull request (dry run): Compound review" in out and "create_prs is not set" in out
    listed = cli.json("list", "--tag", "compound-review")
    assert len(listed) == 5


def test_review_compound_json_is_the_report_and_since_rereads_a_range(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    start = sh_git(repo, "rev-parse", "HEAD")
    sha = commit_file(repo, ".githooks/pre-push", "#!/bin/sh\n", "a hook")
    cli = Cli(repo)
    first = cli.json("review", "compound")
    report = Path(first["report"])
    assert report.is_file() and first["stem"] == report.stem
    assert first["kind"] == "compound_review" and first["tip"] == sha
    again = cli.json("review", "compound", "--since", start)
    assert [c["sha"] for c in again["commits"]] == [sha]
    assert [t["state"] for t in again["tasks"]] == ["existing"]  # made by the first review


def test_repos_are_named_from_the_ecosystem_and_take_its_settings(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    ecosystem = tmp_path / "ecosystem.toml"
    ecosystem.write_text(f'[repos.demo]\npath = "{repo}"\n\n[compound_review]\nlarge_diff_lines = 2\n')
    cli = Cli(tmp_path)
    cli.ok("review", "compound", "demo", "--ecosystem", str(ecosystem))
    commit_file(repo, "three.txt", "1\n2\n3\n", "three lines")
    data = cli.json("review", "compound", "demo", "--ecosystem", str(ecosystem))
    assert data["repo"] == "demo" and {f["reason"] for f in data["flags"]} == {"large_diff", "ungated"}
    listed = cli.json("review", "compound", "--ecosystem", str(ecosystem))  # every repo in it
    assert listed["repo"] == "demo" and listed["commits"] == []


def test_a_since_that_names_no_commit_is_refused_plainly(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    result = Cli(repo).fails(1, "review", "compound", "--since", "no-such-rev")
    assert "--since 'no-such-rev' names no commit" in result.stderr


def test_review_needs_an_action(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    assert "compound" in Cli(repo).fails(2, "review").stderr


def test_dir_names_the_repo_by_its_graph(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    data = Cli(tmp_path).json("review", "compound", "--dir", str(repo / ".workgraph"))
    assert data["path"] == str(repo) and Path(data["report"]).parent == repo / ".speedrift" / "reviews"
