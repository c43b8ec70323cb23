"""The git directory as a boundary: what changed in a repository's git config and hooks is named
(files and keys, never a value, with how to undo it), and a landing may run only the hooks that
were there before the attempt."""

from __future__ import annotations

from pathlib import Path

import pytest

from speedrift.repo import gitboundary, worktrees
from tests.gitrepo import make_repo, sh_git

SECRET = "hunter2-not-a-real-value"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# demo\n"})


def hook(folder: Path, name: str, body: str = "exit 0", executable: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def test_config_keys_and_hooks_an_agent_adds_are_named_without_their_values(repo: Path) -> None:
    checkout = Path(worktrees.create(repo, "t", 1, "main").path)
    before = gitboundary.snapshot(repo, checkout)
    sh_git(repo, "config", "core.fsmonitor", f"/tmp/{SECRET}.sh")
    sh_git(repo, "config", "user.email", f"{SECRET}@example.invalid")  # changed
    sh_git(repo, "config", "--unset", "commit.gpgsign")  # removed
    hook(repo / ".git" / "hooks", "post-checkout", f"echo {SECRET}")
    (repo / ".git" / "info" / "attributes").write_text("* filter=evil\n")
    found = gitboundary.changes(before, gitboundary.snapshot(repo, checkout))
    assert [str(change) for change in found] == [
        ".git/config: commit.gpgsign removed",
        ".git/config: core.fsmonitor added",
        ".git/config: user.email changed",
        ".git/hooks/post-checkout added",
        ".git/info/attributes added",
    ]
    assert not any(change.routine for change in found)
    assert SECRET not in repr(found)
    undo = {str(change): change.undo for change in found}
    assert undo[".git/config: core.fsmonitor added"] == (
        f"`git config --file {repo / '.git' / 'config'} --unset-all core.fsmonitor`"
    )
    assert undo[".git/hooks/post-checkout added"] == f"`rm {repo / '.git' / 'hooks' / 'post-checkout'}`"


def test_nothing_changed_is_no_change_and_a_tracking_branch_set_by_push_u_is_routine(repo: Path) -> None:
    checkout = Path(worktrees.create(repo, "t", 1, "main").path)
    before = gitboundary.snapshot(repo, checkout)
    assert gitboundary.changes(before, gitboundary.snapshot(repo, checkout)) == []
    sh_git(repo, "config", "branch.main.remote", "origin")
    found = gitboundary.changes(before, gitboundary.snapshot(repo, checkout))
    assert [(str(change), change.routine) for change in found] == [
        (".git/config: branch.main.remote added", True)
    ]


def test_an_included_config_file_and_a_worktrees_own_config_are_watched(repo: Path, tmp_path: Path) -> None:
    included = tmp_path / "shared.gitconfig"
    included.write_text("[user]\n\tname = Someone\n")
    sh_git(repo, "config", "include.path", str(included))
    checkout = Path(worktrees.create(repo, "t", 1, "main").path)
    before = gitboundary.snapshot(repo, checkout)
    included.write_text("[user]\n\tname = Someone\n[core]\n\tpager = evil\n")
    own = Path(sh_git(checkout, "rev-parse", "--git-dir")) / "config.worktree"
    own.write_text("[core]\n\tfsmonitor = evil\n")
    found = [str(change) for change in gitboundary.changes(before, gitboundary.snapshot(repo, checkout))]
    assert f"{included}: core.pager added" in found
    assert any(name.endswith("config.worktree added") for name in found), found


def test_unchanged_hooks_are_approved_where_git_would_take_them(repo: Path, tmp_path: Path) -> None:
    hooks = repo / ".git" / "hooks"
    hook(hooks, "pre-commit")
    checkout = Path(worktrees.create(repo, "t", 1, "main").path)
    before = gitboundary.hook_set(checkout)
    assert before.directory == hooks and "pre-commit" in before.runnable
    assert "pre-commit.sample" not in before.runnable  # git's examples never run
    approval = gitboundary.approve_hooks(checkout, before, tmp_path / "scratch")
    assert approval == gitboundary.Approval(hooks, [])


def test_a_hook_added_or_changed_during_the_attempt_is_refused_and_the_others_are_copied(
    repo: Path, tmp_path: Path
) -> None:
    """core.hooksPath in the tree (a tracked .githooks): the agent's worktree holds its own copy."""
    hook(repo / ".githooks", "pre-commit", "echo pre-existing")
    hook(repo / ".githooks", "commit-msg", "echo pre-existing")
    sh_git(repo, "add", ".githooks")
    sh_git(repo, "commit", "-q", "-m", "hooks")
    sh_git(repo, "config", "core.hooksPath", ".githooks")
    checkout = Path(worktrees.create(repo, "t", 1, "main").path)
    before = gitboundary.hook_set(checkout)
    assert before.directory == checkout / ".githooks"
    hook(checkout / ".githooks", "post-commit", "echo added by the agent")
    hook(checkout / ".githooks", "commit-msg", "echo changed by the agent")
    scratch = tmp_path / "scratch"
    approval = gitboundary.approve_hooks(checkout, before, scratch)
    assert approval.directory == scratch
    assert approval.refused == [
        "commit-msg (changed during the attempt)",
        "post-commit (added during the attempt)",
    ]
    assert sorted(p.name for p in scratch.iterdir()) == ["pre-commit"]
    assert (scratch / "pre-commit").read_text() == (checkout / ".githooks" / "pre-commit").read_text()


def test_a_hook_made_executable_during_the_attempt_is_refused(repo: Path, tmp_path: Path) -> None:
    dormant = hook(repo / ".git" / "hooks", "pre-push", executable=False)
    checkout = Path(worktrees.create(repo, "t", 1, "main").path)
    before = gitboundary.hook_set(checkout)
    dormant.chmod(0o755)
    approval = gitboundary.approve_hooks(checkout, before, tmp_path / "scratch")
    assert approval.refused == ["pre-push (added during the attempt)"]


def test_a_hooks_path_moved_during_the_attempt_approves_no_hook(repo: Path, tmp_path: Path) -> None:
    checkout = Path(worktrees.create(repo, "t", 1, "main").path)
    before = gitboundary.hook_set(checkout)
    hook(tmp_path / "elsewhere", "pre-commit")
    sh_git(repo, "config", "core.hooksPath", str(tmp_path / "elsewhere"))
    approval = gitboundary.approve_hooks(checkout, before, tmp_path / "scratch")
    assert approval.directory is None and "core.hooksPath now names" in approval.refused[0]


def test_a_hook_set_survives_the_attempt_record(repo: Path) -> None:
    checkout = Path(worktrees.create(repo, "t", 1, "main").path)
    hooks = gitboundary.hook_set(checkout)
    assert gitboundary.HookSet.from_dict(hooks.to_dict()) == hooks
    assert gitboundary.HookSet.from_dict({"directory": 3}) is None
