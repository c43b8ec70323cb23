"""The hub's git runs nothing a repository's git config or hooks name, and its fetch writes
remote-tracking refs only: a remote whose refspec maps into refs/heads/* cannot move a branch."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from speedrift import gitcmd
from speedrift.control.authority import FETCH_REMOTE_ENV, GUARD_MARK, AuthorityRefused, HubGit, fetch_guard
from speedrift.control.handlers.dispatch import execute
from speedrift.control.observe.git import git_dirs, read_git_state
from speedrift.register.record import RepoEntry
from tests.control.test_authority import repo_state
from tests.control.test_handlers import action, context, grant
from tests.gitrepo import commit_file, make_repo, sh_git

HOOKS = ("pre-commit", "post-commit", "post-checkout", "post-merge", "reference-transaction", "pre-auto-gc")


def plant(repo: Path, markers: Path) -> None:
    """What an agent could leave in the repository's git dir: hooks, a core.fsmonitor program and
    an upload-pack program for the remote — each writes a marker when it runs (and fails)."""
    markers.mkdir(exist_ok=True)
    for name in HOOKS:
        path = repo / ".git" / "hooks" / name
        path.write_text(f"#!/bin/sh\ntouch {markers / name}\nexit 1\n")
        path.chmod(0o755)
    monitor = markers.parent / "fsmonitor.sh"
    monitor.write_text(f"#!/bin/sh\ntouch {markers / 'fsmonitor'}\nexit 1\n")
    monitor.chmod(0o755)
    sh_git(repo, "config", "core.fsmonitor", str(monitor))


def ran(markers: Path) -> list[str]:
    return sorted(p.name for p in markers.iterdir())


@pytest.fixture
def upstreamed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(repo, its origin, another clone of origin that pushes upstream work)."""
    origin = tmp_path / "origin.git"
    origin.mkdir()
    sh_git(origin, "init", "-q", "--bare", "-b", "main")
    repo = make_repo(tmp_path / "shop", {"README.md": "# shop\n"})
    sh_git(repo, "remote", "add", "origin", str(origin))
    sh_git(repo, "push", "-q", "-u", "origin", "main")
    other = tmp_path / "other"
    sh_git(tmp_path, "clone", "-q", str(origin), str(other))
    sh_git(other, "config", "user.name", "Upstream")
    sh_git(other, "config", "user.email", "upstream@example.invalid")
    return repo, origin, other


def test_the_hubs_observe_only_status_runs_no_fsmonitor_or_hook_planted_in_the_repo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", {"README.md": "# shop\n"})
    markers = tmp_path / "ran"
    plant(repo, markers)
    (repo / "README.md").write_text("# shop, edited\n")
    dirs = git_dirs(repo)
    assert dirs is not None
    state, problems = read_git_state(repo, dirs, RepoEntry(name="shop", path=repo), time.monotonic() + 30)
    assert state.dirty_files == 1 and problems == []
    assert ran(markers) == []


def test_the_hubs_fetch_runs_no_hook_fsmonitor_or_upload_pack_the_repo_configures(
    upstreamed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, _origin, other = upstreamed
    upstream_tip = commit_file(other, "new.txt", "upstream\n", "upstream work")
    sh_git(other, "push", "-q", "origin", "main")
    markers = tmp_path / "ran"
    plant(repo, markers)
    pack = tmp_path / "upload-pack.sh"
    pack.write_text(f'#!/bin/sh\ntouch {markers / "upload-pack"}\nexec git-upload-pack "$@"\n')
    pack.chmod(0o755)
    sh_git(repo, "config", "remote.origin.uploadpack", str(pack))
    grant(repo, mode="supervise")
    outcome = execute(action("sync_upstream"), context(repo, tmp_path))
    assert outcome.status == "succeeded", outcome.detail
    assert outcome.evidence["updated"] == ["refs/remotes/origin/main"]
    assert sh_git(repo, "rev-parse", "origin/main") == upstream_tip
    assert ran(markers) == []
    assert not (repo / ".git" / "FETCH_HEAD").exists()  # the user's FETCH_HEAD is theirs


def test_a_remote_refspec_into_local_branches_cannot_move_a_branch_through_the_hub(
    upstreamed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The attack: `remote.origin.fetch = +refs/heads/*:refs/heads/*` (legal, not git's default);
    the hub's `git fetch origin` force-moved main and dropped an unpushed commit, and pruned a
    branch the remote lacks, while the ledger said "1 remote-tracking ref updated"."""
    repo, _origin, other = upstreamed
    unpushed = commit_file(repo, "mine.txt", "not pushed yet\n", "unpushed work")
    sh_git(repo, "branch", "work")  # a local branch the remote does not have
    sh_git(repo, "config", "--replace-all", "remote.origin.fetch", "+refs/heads/*:refs/heads/*")
    sh_git(repo, "config", "fetch.prune", "true")
    sh_git(repo, "config", "remote.origin.tagOpt", "--tags")
    upstream_tip = commit_file(other, "new.txt", "upstream\n", "upstream work")
    sh_git(other, "tag", "v9")
    sh_git(other, "push", "-q", "origin", "main", "v9")
    grant(repo, mode="supervise")
    branches = sh_git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/", "refs/tags/")
    outcome = execute(action("sync_upstream"), context(repo, tmp_path))
    assert outcome.status == "succeeded", outcome.detail
    assert sh_git(repo, "rev-parse", "main") == unpushed  # the unpushed commit survives
    assert (
        sh_git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/", "refs/tags/")
        == branches
    )
    assert sh_git(repo, "rev-parse", "refs/remotes/origin/main") == upstream_tip
    # the refusal is recorded in the outcome (the ledger's record of the action)
    assert outcome.evidence["refused_refspecs"] == ["+refs/heads/*:refs/heads/*"]
    assert "refused the repo's configured refspec +refs/heads/*:refs/heads/*" in outcome.detail
    assert outcome.evidence["refspec"] == "+refs/heads/*:refs/remotes/origin/*"
    # and a fetch with the repo's own refspec is refused before git runs
    before = repo_state(repo)
    with pytest.raises(AuthorityRefused) as refused:
        HubGit(repo).run("fetch", "origin")
    assert refused.value.rule == "fetch_refspec" and repo_state(repo) == before


def test_the_fetch_guard_makes_git_refuse_any_ref_update_outside_the_remotes_namespace(
    upstreamed: tuple[Path, Path, Path],
) -> None:
    """The second line: were git ever to write outside refs/remotes/<remote>/ during the hub's
    fetch, its reference-transaction guard makes git abort the whole update."""
    repo, _origin, other = upstreamed
    unpushed = commit_file(repo, "mine.txt", "not pushed yet\n", "unpushed work")
    sh_git(repo, "config", "--replace-all", "remote.origin.fetch", "+refs/heads/*:refs/heads/*")
    commit_file(other, "new.txt", "upstream\n", "upstream work")
    sh_git(other, "push", "-q", "origin", "main")
    refs = sh_git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    done = gitcmd.run(
        ["fetch", "--update-head-ok", "origin"],
        repo,
        check=False,
        hooks=fetch_guard(),
        env={FETCH_REMOTE_ENV: "origin"},
    )
    assert done.returncode != 0 and f"{GUARD_MARK} refs/heads/main" in done.stderr
    assert sh_git(repo, "rev-parse", "main") == unpushed
    assert sh_git(repo, "for-each-ref", "--format=%(refname) %(objectname)") == refs
