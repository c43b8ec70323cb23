"""Compound review's pull request: a dry run by default; with ``create_prs = true`` a branch with one
commit adding the report, pushed to a local bare remote without force, and a draft opened through
a fake ``gh`` on PATH (which records its argv); ``gh`` missing or logged out is said plainly and the
branch stays unpushed. The user's checkout is never touched. No network."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from speedrift.fleetops.compound_pr import PrState
from tests.fleetops.forge_support import PR_URL, calls, fake_gh
from tests.fleetops.test_compound_scan import QUIET, a_repo, review
from tests.gitrepo import commit_file, sh_git

OPTED_IN = QUIET + "create_prs = true\n"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    sh_git(tmp_path, "init", "-q", "--bare", str(bare))
    return bare


def opted_in_repo(tmp_path: Path, remote: Path) -> Path:
    repo = a_repo(tmp_path, OPTED_IN)
    sh_git(repo, "remote", "add", "origin", str(remote))
    sh_git(repo, "push", "-q", "origin", "main")
    review(repo)
    commit_file(repo, ".github/workflows/ci.yml", "on: push\n", "ci: on push")
    return repo


def untouched(repo: Path, head: str) -> None:
    assert sh_git(repo, "rev-parse", "HEAD") == head
    assert sh_git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert sh_git(repo, "status", "--porcelain", "--", ".", ":!.workgraph") == ""  # the graph has its tasks
    assert "checkouts" not in sh_git(repo, "worktree", "list")


def test_by_default_the_pull_request_is_only_prepared_and_shown(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    review(repo)
    commit_file(repo, ".github/workflows/ci.yml", "on: push\n", "ci")
    done = review(repo)
    pr = done.pr
    assert pr is not None and pr.state is PrState.DRY_RUN
    assert pr.branch == f"speedrift/review-{done.stem}" and pr.base == "main"
    assert pr.title == f"Compound review {done.stem} of demo: 1 commits, 2 flags"
    assert "create_prs is not set" in pr.said
    assert sh_git(repo, "branch", "--list", "speedrift/*") == ""  # nothing written
    text = done.markdown_path.read_text()
    assert "**Dry run — prepared, not created.**" in text and f"`speedrift/review-{done.stem}`" in text
    assert json.loads(done.json_path.read_text())["pr"]["state"] == "dry_run"


def test_opted_in_a_draft_is_opened_through_gh_from_a_pushed_branch(
    tmp_path: Path, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = opted_in_repo(tmp_path, remote)
    head = sh_git(repo, "rev-parse", "HEAD")
    remote_main = sh_git(remote, "rev-parse", "main")
    log = tmp_path / "gh.jsonl"
    monkeypatch.setenv("PATH", f"{fake_gh(tmp_path / 'bin', log)}{os.pathsep}{os.environ['PATH']}")
    done = review(repo)
    pr = done.pr
    assert pr is not None and pr.state is PrState.CREATED, pr
    assert pr.url == PR_URL and pr.pushed and pr.remote == "origin"
    branch = f"speedrift/review-{done.stem}"
    seen = calls(log)
    assert seen[0]["argv"] == ["auth", "status"]
    assert seen[1]["argv"] == [
        "pr",
        "create",
        "--draft",
        "--title",
        pr.title,
        "--body-file",
        pr.body_file,
        "--head",
        branch,
        "--base",
        "main",
    ]
    assert seen[1]["body"].startswith(f"# Compound review of demo — {done.stem}")
    assert "## Pull request" not in seen[1]["body"]  # the body is the report, before this section
    # the remote got the branch: one commit on the tip, adding only the report
    pushed = sh_git(remote, "rev-parse", branch)
    assert sh_git(remote, "rev-parse", f"{branch}~1") == head
    assert sh_git(remote, "show", "--name-only", "--format=", pushed) == f"docs/reviews/{done.stem}.md"
    assert f"Speedrift-Review: {done.stem}" in sh_git(remote, "log", "-1", "--format=%B", pushed)
    assert sh_git(remote, "show", f"{pushed}:docs/reviews/{done.stem}.md") == seen[1]["body"].rstrip("\n")
    assert sh_git(remote, "rev-parse", "main") == remote_main  # the remote's target is not touched
    untouched(repo, head)
    assert f"Draft pull request created: {PR_URL}" in done.markdown_path.read_text()


def test_the_report_commit_of_a_merged_review_is_not_flagged_the_next_time(
    tmp_path: Path, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = opted_in_repo(tmp_path, remote)
    monkeypatch.setenv(
        "PATH", f"{fake_gh(tmp_path / 'bin', tmp_path / 'gh.jsonl')}{os.pathsep}{os.environ['PATH']}"
    )
    done = review(repo)
    sh_git(repo, "merge", "-q", "--ff-only", f"speedrift/review-{done.stem}")  # a person merged it
    again = review(repo)
    assert len(again.scan.commits) == 1 and again.scan.commits[0].review
    assert again.scan.flags == []


def test_gh_logged_out_is_said_plainly_and_the_branch_stays_unpushed(
    tmp_path: Path, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = opted_in_repo(tmp_path, remote)
    head = sh_git(repo, "rev-parse", "HEAD")
    log = tmp_path / "gh.jsonl"
    monkeypatch.setenv(
        "PATH", f"{fake_gh(tmp_path / 'bin', log, logged_in=False)}{os.pathsep}{os.environ['PATH']}"
    )
    done = review(repo)
    pr = done.pr
    assert pr is not None and pr.state is PrState.NOT_CREATED and not pr.pushed
    assert pr.said.startswith(
        "gh is not authenticated (`gh auth status`: You are not logged into any GitHub hosts"
    )
    assert "was not pushed" in pr.said
    branch = f"speedrift/review-{done.stem}"
    assert sh_git(repo, "rev-parse", f"{branch}~1") == head  # ready locally
    assert sh_git(remote, "branch", "--list", branch) == ""  # not on the remote
    assert [c["argv"][:2] for c in calls(log)] == [["auth", "status"]]  # no pr create
    assert "gh is not authenticated" in done.markdown_path.read_text()
    untouched(repo, head)


def test_gh_not_installed_is_said_plainly_and_nothing_is_pushed(
    tmp_path: Path, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = opted_in_repo(tmp_path, remote)
    head = sh_git(repo, "rev-parse", "HEAD")
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(str(shutil.which("git")))
    monkeypatch.setenv("PATH", str(only_git))
    done = review(repo)
    pr = done.pr
    assert pr is not None and pr.state is PrState.NOT_CREATED and not pr.pushed
    assert pr.said.startswith("gh (the GitHub CLI) is not installed, so no pull request was opened")
    assert sh_git(remote, "branch", "--list", f"speedrift/review-{done.stem}") == ""
    untouched(repo, head)


def test_an_existing_branch_is_never_replaced(
    tmp_path: Path, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = opted_in_repo(tmp_path, remote)
    log = tmp_path / "gh.jsonl"
    monkeypatch.setenv("PATH", f"{fake_gh(tmp_path / 'bin', log)}{os.pathsep}{os.environ['PATH']}")
    done = review(repo, may_write=(False, "observe"))  # learn the stem without a branch
    assert done.pr is not None and done.pr.state is PrState.DRY_RUN and "may not write" in done.pr.said
    stem = done.stem.rsplit("-", 1)[0] + f"-{int(done.stem.rsplit('-', 1)[1]) + 1}"
    sh_git(repo, "branch", f"speedrift/review-{stem}", "HEAD~1")  # someone's branch of that name
    taken = sh_git(repo, "rev-parse", f"speedrift/review-{stem}")
    again = review(repo, since="HEAD~1")
    assert again.stem == stem and again.pr is not None and again.pr.state is PrState.NOT_CREATED
    assert "already exists" in again.pr.said
    assert sh_git(repo, "rev-parse", f"speedrift/review-{stem}") == taken


def test_create_prs_in_the_ecosystem_opens_nothing_and_says_each_repo_opts_in_itself(tmp_path: Path) -> None:
    from speedrift.fleet.opsconfig import CompoundReviewConfig

    repo = a_repo(tmp_path)
    review(repo)
    commit_file(repo, "a.txt", "a\n", "a change")
    done = review(repo, base=CompoundReviewConfig(create_prs=True))
    assert done.pr is not None and done.pr.state is PrState.DRY_RUN
    assert "in its own speedrift.toml" in done.pr.said
    assert sh_git(repo, "branch", "--list", "speedrift/*") == ""
