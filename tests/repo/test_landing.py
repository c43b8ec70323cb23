"""Landing: commit the agent's leftovers, rebase onto the target, fast-forward — nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from speedrift.errors import SpeedriftError
from speedrift.repo import landing, landings, worktrees
from tests.gitrepo import commit_file, make_repo, sh_git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "print('v1')\n"})


def no_gates(_manifest: worktrees.Manifest, _tip: str) -> None:
    return None


def test_commit_all_commits_with_the_task_trailer_and_repo_identity(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "new.txt").write_text("hello")
    commit = landing.commit_all(repo, path, "t", "Add greeting")
    assert commit is not None
    message = sh_git(path, "log", "-1", "--format=%B")
    assert message.startswith("t: Add greeting") and "Speedrift-Task: t" in message
    assert sh_git(path, "log", "-1", "--format=%an") == "Test Person"


def test_commit_all_with_nothing_changed_makes_no_commit(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    assert landing.commit_all(repo, Path(manifest.path), "t", "noop") is None


def test_approved_commit_hooks_run_and_can_refuse(repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    hook = hooks / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    manifest = worktrees.create(repo, "t", 1, "main")
    (Path(manifest.path) / "x.txt").write_text("x")
    with pytest.raises(landing.CommitRejected, match="lint says no"):
        landing.commit_all(repo, Path(manifest.path), "t", "x", hooks=hooks)


def test_hooks_and_an_fsmonitor_planted_in_the_repo_do_not_run_on_landing(repo: Path, tmp_path: Path) -> None:
    """An agent's hook ran in the user's main checkout during landing (post-merge); its
    core.fsmonitor ran on later git commands. Unapproved, none of it runs: worktree creation
    (post-checkout), the commit (pre-commit, post-commit), the rebase and the fast-forward of the
    checked-out target (post-merge, reference-transaction)."""
    markers = tmp_path / "ran"
    markers.mkdir()
    for hook in ("pre-commit", "commit-msg", "post-commit", "post-checkout", "pre-rebase", "post-rewrite",
                 "post-merge", "reference-transaction"):  # fmt: skip
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\ntouch {markers / hook}\nexit 1\n")
        path.chmod(0o755)
    monitor = tmp_path / "fsmonitor.sh"
    monitor.write_text(f"#!/bin/sh\ntouch {markers / 'fsmonitor'}\nexit 1\n")
    monitor.chmod(0o755)
    sh_git(repo, "config", "core.fsmonitor", str(monitor))
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "feature.txt").write_text("feature")
    landing.commit_all(repo, path, "t", "feature")
    # work that landed meanwhile (logged), so the landing rebases; committed without the plant
    before = sh_git(repo, "rev-parse", "main")
    (repo / "other.txt").write_text("someone else's work\n")
    quiet = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
    sh_git(repo, *quiet, "add", "other.txt")
    sh_git(repo, *quiet, "commit", "-q", "-m", "other")
    other = sh_git(repo, "rev-parse", "main")
    landings.record(repo, landings.Landing("other-task", 1, "main", before, other))
    tip = landing.land(repo, manifest, no_gates)
    assert sh_git(repo, *quiet, "rev-parse", "main") == tip and (repo / "feature.txt").exists()
    assert sorted(marker.name for marker in markers.iterdir()) == []


def test_land_fast_forwards_the_checked_out_target(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "feature.txt").write_text("feature")
    landing.commit_all(repo, path, "t", "feature")
    tip = landing.land(repo, manifest, no_gates)
    assert sh_git(repo, "rev-parse", "main") == tip
    assert (repo / "feature.txt").read_text() == "feature"  # the user's checkout moved forward


def test_land_rebases_onto_work_that_landed_meanwhile(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "feature.txt").write_text("feature")
    landing.commit_all(repo, path, "t", "feature")
    before = sh_git(repo, "rev-parse", "main")
    other = commit_file(repo, "other.txt", "someone else's work")
    # it landed through the merge queue (logged): the target moved only by a landing
    landings.record(repo, landings.Landing("other-task", 1, "main", before, other))
    tip = landing.land(repo, manifest, no_gates)
    assert sh_git(repo, "merge-base", "--is-ancestor", other, tip) == ""
    assert sh_git(repo, "rev-list", "--count", "main") == "4"  # linear: initial, graph, other, feature


def test_a_conflict_is_reported_with_its_files_and_nothing_merges(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "app.py").write_text("print('agent')\n")
    landing.commit_all(repo, path, "t", "agent change")
    before = commit_file(repo, "app.py", "print('human')\n")
    with pytest.raises(landing.MergeConflict) as conflict:
        landing.land(repo, manifest, no_gates)
    assert conflict.value.files == ["app.py"]
    assert sh_git(repo, "rev-parse", "main") == before
    assert sh_git(path, "status", "--porcelain") == ""  # the rebase was aborted cleanly


def test_uncommitted_changes_in_the_target_checkout_leave_the_attempt_pending(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "app.py").write_text("print('agent')\n")
    landing.commit_all(repo, path, "t", "agent change")
    (repo / "app.py").write_text("print('user is editing')\n")
    before = sh_git(repo, "rev-parse", "main")
    with pytest.raises(landing.MergePending):
        landing.land(repo, manifest, no_gates)
    assert sh_git(repo, "rev-parse", "main") == before
    assert (repo / "app.py").read_text() == "print('user is editing')\n"  # untouched


def test_without_a_checkout_on_the_target_the_ref_moves_by_compare_and_swap(repo: Path) -> None:
    sh_git(repo, "checkout", "-q", "-b", "elsewhere")
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "f.txt").write_text("f")
    landing.commit_all(repo, path, "t", "f")
    tip = landing.land(repo, manifest, no_gates)
    assert sh_git(repo, "rev-parse", "main") == tip
    assert sh_git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "elsewhere"


def test_the_gate_seam_can_block_landing_after_the_rebase(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "f.txt").write_text("f")
    landing.commit_all(repo, path, "t", "f")
    before = sh_git(repo, "rev-parse", "main")

    def refuse(_manifest: worktrees.Manifest, _tip: str) -> None:
        raise SpeedriftError("gate failed")

    with pytest.raises(SpeedriftError, match="gate failed"):
        landing.land(repo, manifest, refuse)
    assert sh_git(repo, "rev-parse", "main") == before


def test_landing_refuses_anything_but_a_fast_forward(repo: Path) -> None:
    side = sh_git(repo, "rev-parse", "HEAD~1")
    with pytest.raises(SpeedriftError, match="fast-forward"):
        landing.fast_forward_target(repo, "main", side)


def test_an_interrupted_rebase_is_aborted_on_recovery(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    path = Path(manifest.path)
    (path / "app.py").write_text("print('agent')\n")
    landing.commit_all(repo, path, "t", "agent")
    commit_file(repo, "app.py", "print('human')\n")
    subprocess.run(["git", "rebase", "main"], cwd=path, capture_output=True, check=False)  # leaves a conflict
    assert landing.abort_rebase_if_any(path) is True
    assert sh_git(path, "status", "--porcelain") == ""
