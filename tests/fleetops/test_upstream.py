"""Upstream proposals against real local git: the parent is a local bare repo (``acme/demo.git``),
the user's fork another (``me/demo.git``, the clone's origin), and the clone has the parent as its
``upstream`` remote. ``prepare`` makes the proposal branch on the parent's base in a throwaway
checkout; ``propose`` pushes only that new branch to the fork and opens a draft through a fake
``gh`` on PATH that records its argv (never the network). Refusals: no opt-in, no ``gh``, and the
forge's one authority check (no target branch, no existing branch name)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from speedrift.errors import Refused
from speedrift.fleet.config import ConfigError, load_config
from speedrift.repo import forge
from tests.cli.support import Cli
from tests.fleetops.forge_support import PR_URL, calls, fake_gh, forked
from tests.gitrepo import sh_git


def gh_on_path(tmp_path: Path) -> tuple[dict[str, str], Path]:
    log = tmp_path / "gh.jsonl"
    folder = fake_gh(tmp_path / "bin", log)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, log


def test_prepare_packages_the_commits_ahead_of_the_parent_as_a_branch_on_its_base(tmp_path: Path) -> None:
    clone, parent, fork = forked(tmp_path)
    head, status = sh_git(clone, "rev-parse", "HEAD"), sh_git(clone, "status", "--porcelain")
    made = Cli(clone).json("upstream", "prepare")
    assert made["state"] == "branch_ready" and made["id"].startswith("up-")
    branch = f"speedrift/upstream/{made['id']}"
    assert made["branch"] == branch and made["upstream_ref"] == "upstream/main"
    assert made["upstream_slug"] == "acme/demo" and made["base"] == "main"
    # three commits (the config, the fix, the docs) replayed on the parent's main
    assert sh_git(clone, "rev-parse", f"{branch}~3") == sh_git(parent, "rev-parse", "main")
    assert sh_git(clone, "log", "--format=%s", f"upstream/main..{branch}").splitlines() == [
        "docs: usage",
        "fix: the crash on empty input",
        "chore: speedrift config",
    ]
    assert sh_git(clone, "diff", "HEAD", branch) == ""  # the same tree as the fork's commits
    assert made["stats"] == {"commits": 3, "files": 3, "insertions": 5, "deletions": 0}
    assert made["evidence"]["tasks"] == ["write-usage"]
    folder = clone / ".speedrift" / "upstream" / made["id"]
    assert json.loads((folder / "proposal.json").read_text())["id"] == made["id"]
    body = (folder / "body.md").read_text()
    assert "## Evidence" in body and "3 file(s), +5 −0" in body and "Motivating tasks: write-usage" in body
    assert "Gates: no gate scan recorded" in body
    # the user's checkout is untouched, nothing was pushed, no checkout left behind
    assert sh_git(clone, "rev-parse", "HEAD") == head and sh_git(clone, "status", "--porcelain") == status
    assert sh_git(clone, "symbolic-ref", "--short", "HEAD") == "main"
    assert "checkouts" not in sh_git(clone, "worktree", "list")
    assert sh_git(fork, "branch", "--list", "speedrift/*") == ""
    # the same commits are the same proposal
    assert Cli(clone).json("upstream", "prepare")["id"] == made["id"]
    listed = Cli(clone).json("upstream", "list")
    assert [p["id"] for p in listed] == [made["id"]]
    shown = Cli(clone).ok("upstream", "show", made["id"]).stdout
    assert "fix: the crash on empty input" in shown and branch in shown


def test_propose_pushes_only_the_new_branch_to_the_fork_and_opens_a_draft_through_gh(tmp_path: Path) -> None:
    clone, parent, fork = forked(tmp_path)
    parent_main, fork_main = sh_git(parent, "rev-parse", "main"), sh_git(fork, "rev-parse", "main")
    env, log = gh_on_path(tmp_path)
    pid = Cli(clone).json("upstream", "prepare")["id"]
    branch = f"speedrift/upstream/{pid}"
    done = Cli(clone, {**Cli(clone).env, **env}).json("upstream", "propose", pid)
    assert done["ok"] and done["state"] == "proposed" and done["url"] == PR_URL, done
    seen = calls(log)
    assert seen[0]["argv"] == ["auth", "status"]
    body_file = str(clone / ".speedrift" / "upstream" / pid / "body.md")
    assert seen[1]["argv"] == [
        "pr", "create", "--draft", "--repo", "acme/demo", "--title", "bugfix: 3 commits from clone",
        "--body-file", body_file, "--head", f"me:{branch}", "--base", "main",
    ]  # fmt: skip
    assert "## Evidence" in seen[1]["body"]
    assert sh_git(fork, "rev-parse", branch) == sh_git(clone, "rev-parse", branch)
    assert (
        sh_git(fork, "rev-parse", "main") == fork_main and sh_git(parent, "rev-parse", "main") == parent_main
    )
    assert sh_git(parent, "branch", "--list", "speedrift/*") == ""  # the parent is never pushed to
    assert Cli(clone).json("upstream", "show", pid)["state"] == "proposed"


def test_propose_is_recorded_in_the_hub_ledger(tmp_path: Path) -> None:
    clone, _, _ = forked(tmp_path)
    env, _ = gh_on_path(tmp_path)
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "ecosystem.toml").write_text(
        f'schema = 1\n\n[repos.demo]\npath = "{clone}"\nupstream = "acme/demo"\n'
    )
    cli = Cli(hub, {**Cli(hub).env, **env})
    pid = cli.json("upstream", "prepare", "--repo", "demo")["id"]
    assert cli.json("upstream", "propose", pid, "--repo", "demo")["ok"]
    entries = [e for e in cli.json("ledger", "show", "--last", "5") if e.get("op") == "upstream_propose"]
    assert len(entries) == 1 and entries[0]["kind"] == "operator" and entries[0]["source"] == "cli"
    assert entries[0]["id"] == pid and "demo: upstream proposal" in entries[0]["detail"]


def test_without_the_opt_in_propose_says_what_it_would_run_and_pushes_nothing(tmp_path: Path) -> None:
    clone, _, fork = forked(tmp_path, config='[upstream]\nforge = "github"\n')
    env, log = gh_on_path(tmp_path)
    cli = Cli(clone, {**Cli(clone).env, **env})
    pid = cli.json("upstream", "prepare")["id"]
    done = cli("upstream", "propose", pid)
    assert done.returncode == 1
    assert "clone has not opted in to upstream proposals" in done.stdout
    assert "fix: set `[upstream] propose = true` in the repo's speedrift.toml" in done.stdout
    assert (
        f"git push --quiet origin refs/heads/speedrift/upstream/{pid}:refs/heads/speedrift/upstream/{pid}"
        in (done.stdout)
    )
    assert "gh pr create --draft --repo acme/demo --title" in done.stdout
    assert f"--head me:speedrift/upstream/{pid} --base main" in done.stdout
    assert sh_git(fork, "branch", "--list", "speedrift/*") == ""
    assert all(c["argv"][:2] != ["pr", "create"] for c in calls(log))


def test_without_gh_propose_says_it_is_not_installed_and_pushes_nothing(tmp_path: Path) -> None:
    clone, _, fork = forked(tmp_path)
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(str(shutil.which("git")))
    cli = Cli(clone, {**Cli(clone).env, "PATH": str(only_git)})
    pid = cli.json("upstream", "prepare")["id"]
    result = cli("upstream", "propose", pid, "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert not out["ok"] and "gh (the GitHub CLI) is not installed" in out["said"]
    assert "install gh and run `gh auth login`" in out["fix"]
    assert out["would_run"][1].startswith("gh pr create --draft --repo acme/demo")
    assert sh_git(fork, "branch", "--list", "speedrift/*") == ""


# ---------------------------------------------------------------- the forge's one authority check


def test_the_forge_refuses_a_push_to_a_target_branch_or_an_existing_branch_name(tmp_path: Path) -> None:
    clone, _, fork = forked(tmp_path)
    fork_main = sh_git(fork, "rev-parse", "main")
    with pytest.raises(Refused, match="speedrift pushes only its own new speedrift/"):
        forge.push_new_branch(clone, "origin", "main", ["main"])
    sh_git(clone, "branch", "speedrift/main", "HEAD")
    with pytest.raises(Refused, match="is a target branch"):
        forge.check_push(clone, "origin", "speedrift/main", ["speedrift/main"])
    sh_git(clone, "branch", "speedrift/taken", "HEAD~1")
    sh_git(clone, "push", "-q", "origin", "speedrift/taken")
    taken = sh_git(fork, "rev-parse", "speedrift/taken")
    sh_git(clone, "branch", "-f", "speedrift/taken", "HEAD")
    with pytest.raises(Refused, match="already has a branch speedrift/taken"):
        forge.push_new_branch(clone, "origin", "speedrift/taken", ["main"])
    with pytest.raises(Refused, match="not a remote name"):
        forge.push_new_branch(clone, "--force", "speedrift/new", ["main"])
    with pytest.raises(Refused, match="not a branch name"):
        forge.push_new_branch(clone, "origin", "+speedrift/new", ["main"])
    assert (
        sh_git(fork, "rev-parse", "speedrift/taken") == taken
        and sh_git(fork, "rev-parse", "main") == fork_main
    )
    sh_git(clone, "branch", "speedrift/fresh", "HEAD")
    pushed = forge.push_new_branch(clone, "origin", "speedrift/fresh", ["main"])
    assert pushed.ok and pushed.argv == [
        "git", "push", "--quiet", "origin", "refs/heads/speedrift/fresh:refs/heads/speedrift/fresh"
    ]  # fmt: skip
    assert sh_git(fork, "rev-parse", "speedrift/fresh") == sh_git(clone, "rev-parse", "speedrift/fresh")


def test_the_forge_is_told_from_the_remote_url_and_the_project_from_its_path() -> None:
    assert forge.detect("git@github.com:acme/demo.git") is forge.Forge.GITHUB
    assert forge.detect("https://github.com/acme/demo") is forge.Forge.GITHUB
    assert forge.detect("ssh://git@gitlab.com/group/sub/demo.git") is forge.Forge.GITLAB
    assert forge.detect("/srv/git/demo.git") is None and forge.detect(None) is None
    assert forge.slug("git@github.com:acme/demo.git") == "acme/demo"
    assert forge.slug("https://gitlab.example/group/sub/demo.git") == "group/sub/demo"
    assert forge.slug("/srv/git/me/demo.git") == "me/demo"
    assert forge.slug("acme/demo") == "acme/demo"


def test_a_gitlab_draft_is_a_glab_merge_request_and_opening_anything_but_a_draft_is_refused() -> None:
    argv = forge.draft_argv(
        forge.Forge.GITLAB, branch="speedrift/upstream/up-1", base="main", title="T",
        body_file=Path("body.md"), body="B", repo_slug="group/demo", head_owner="me/demo",
    )  # fmt: skip
    assert argv == [
        "glab", "mr", "create", "--draft", "--yes", "--no-editor", "--repo", "group/demo", "--head",
        "me/demo", "--title", "T", "--description", "B", "--source-branch", "speedrift/upstream/up-1",
        "--target-branch", "main",
    ]  # fmt: skip
    assert '--description "$(cat body.md)"' in forge.shown(argv, Path("body.md"))
    with pytest.raises(Refused, match="only a draft"):
        forge.open_draft(forge.Forge.GITHUB, ["gh", "pr", "create", "--title", "T"], Path("."))


def test_the_upstream_table_is_validated(tmp_path: Path) -> None:
    (tmp_path / "speedrift.toml").write_text('[upstream]\npropose = true\nforge = "bitbucket"\n')
    with pytest.raises(ConfigError, match=r"upstream\.forge"):
        load_config(tmp_path)
    (tmp_path / "speedrift.toml").write_text("[upstream]\npropse = true\n")
    with pytest.raises(ConfigError, match=r"upstream\.propse"):
        load_config(tmp_path)
    (tmp_path / "speedrift.toml").write_text("[upstream]\npropose = true\n")
    assert load_config(tmp_path).upstream.propose


def test_the_ecosystem_upstream_key_is_validated(tmp_path: Path) -> None:
    from speedrift.control.ecosystem.load import load_ecosystem

    path = tmp_path / "ecosystem.toml"
    path.write_text(f'schema = 1\n[repos.demo]\npath = "{tmp_path}"\nupstream = "not a project"\n')
    with pytest.raises(Exception, match=r"repos\.demo\.upstream: must be the parent project"):
        load_ecosystem(path)
    path.write_text(f'schema = 1\n[repos.demo]\npath = "{tmp_path}"\nupstream = "acme/demo"\n')
    assert load_ecosystem(path).repo_extras["demo"]["upstream"] == "acme/demo"
