"""The merge queue as a state machine: each state recorded, every tip logged, the target moved only
through it, and git lock files a killed git step left cleared — only ours, only once nobody holds them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speedrift import layout
from speedrift.procs import identity_of
from speedrift.repo import gitlocks, landing, landings, worktrees
from tests.gitrepo import commit_file, make_repo, sh_git

DEAD_OWNER = {"pid": 999_999_999, "started": 1}  # no such process


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "print('v1')\n"})


def no_gates(_manifest: worktrees.Manifest, _tip: str) -> None:
    return None


def attempt_with(repo: Path, task: str, files: dict[str, str]) -> worktrees.Manifest:
    manifest = worktrees.create(repo, task, 1, "main")
    for rel, text in files.items():
        (Path(manifest.path) / rel).write_text(text)
    landing.commit_all(repo, Path(manifest.path), task, task)
    return manifest


def test_a_landing_records_landing_then_landed_and_logs_the_tip_it_produced(repo: Path) -> None:
    before = sh_git(repo, "rev-parse", "main")
    manifest = attempt_with(repo, "t", {"f.txt": "f"})
    tip = landing.land(repo, manifest, no_gates)
    (written,) = worktrees.read_manifests(repo)
    assert (written.state, written.landing_from, written.candidate, written.landed_commit) == (
        worktrees.ManifestState.LANDED,
        before,
        tip,
        tip,
    )
    assert landings.read(repo) == [landings.Landing("t", 1, "main", before, tip, landings.read(repo)[0].at)]
    assert landings.of_attempt(repo, "t", 1) is not None


def test_a_commit_made_directly_on_the_target_during_the_attempt_is_refused_and_named(repo: Path) -> None:
    manifest = attempt_with(repo, "t", {"f.txt": "f"})
    own = sh_git(repo, "rev-parse", manifest.branch)
    bypass = commit_file(repo, "config.py", "KEY = 1\n", "add a key")  # not through the merge queue
    with pytest.raises(landing.TargetMoved) as refused:
        landing.land(repo, manifest, no_gates)
    assert refused.value.foreign == [bypass]
    assert bypass[:12] in refused.value.message and "add a key" in refused.value.message
    assert sh_git(repo, "rev-parse", "main") == bypass  # nothing built on it
    assert sh_git(repo, "rev-parse", manifest.branch) == own  # the attempt was not rebased onto it
    assert landings.read(repo) == []


def test_foreign_commits_between_two_landings_are_found_and_landings_are_not(repo: Path) -> None:
    base = sh_git(repo, "rev-parse", "main")
    first = commit_file(repo, "a.txt", "a", "landing a")
    landings.record(repo, landings.Landing("a", 1, "main", base, first))
    foreign = commit_file(repo, "b.txt", "b", "by hand")
    after = sh_git(repo, "rev-parse", "main")
    second = commit_file(repo, "c.txt", "c", "landing c")
    landings.record(repo, landings.Landing("c", 1, "main", after, second))
    assert landings.foreign_commits(repo, "main", base, second) == [foreign]
    assert landings.foreign_commits(repo, "main", after, second) == []


def test_a_landing_whose_log_line_a_crash_cut_off_is_logged_from_its_manifest_not_refused(
    repo: Path,
) -> None:
    later = worktrees.create(repo, "later", 1, "main")  # began before the first landed
    (Path(later.path) / "l.txt").write_text("l")
    landing.commit_all(repo, Path(later.path), "later", "later")
    first = attempt_with(repo, "first", {"f.txt": "f"})
    before = sh_git(repo, "rev-parse", "main")
    first.landing_from, first.candidate = before, sh_git(repo, "rev-parse", first.branch)
    first.state, first.pid = worktrees.ManifestState.LANDING, 999_999_999  # its process died ...
    worktrees.write_manifest(repo, first)
    sh_git(repo, "merge", "--ff-only", "-q", first.branch)  # ... right after the ref moved
    tip = landing.land(repo, later, no_gates)
    assert [entry.task for entry in landings.read(repo)] == ["first", "later"]
    assert sh_git(repo, "rev-parse", "main") == tip


def test_a_conflict_with_a_foreign_commit_is_a_conflict_naming_the_files_and_the_commit(repo: Path) -> None:
    manifest = attempt_with(repo, "t", {"app.py": "print('agent')\n"})
    human = commit_file(repo, "app.py", "print('human')\n")
    with pytest.raises(landing.MergeConflict) as conflict:
        landing.land(repo, manifest, no_gates)
    assert conflict.value.files == ["app.py"] and conflict.value.foreign == [human]


# --- git lock files -----------------------------------------------------------------------------------
HOLD_A_LOCK = """
import sys
from pathlib import Path
from speedrift.repo import gitlocks
repo, worktree = Path(sys.argv[1]), Path(sys.argv[2])
gitlocks.run_step(repo, "commit", ["commit", "-q", "-a"], worktree, gitlocks.checkout_locks(worktree),
                  env={"GIT_EDITOR": "sleep 60;:"})
"""


def kill_mid_commit(repo: Path, worktree: Path) -> Path:
    """A speedrift process runs `git commit -a` (which holds index.lock while its editor runs) and
    is killed with its git: what kill -9 of a service's whole process tree leaves."""
    (worktree / "app.py").write_text("print('x')\n")
    owner = subprocess.Popen([sys.executable, "-c", HOLD_A_LOCK, str(repo), str(worktree)])
    lock = gitlocks.checkout_locks(worktree)[0]
    deadline = time.monotonic() + 60
    marker: gitlocks.StepMarker | None = None
    while time.monotonic() < deadline:
        found = gitlocks.markers(repo)
        if found and found[0].git is not None and lock.exists():
            marker = found[0]
            break
        time.sleep(0.02)
    assert marker is not None and marker.git is not None, "the step never started"
    owner.kill()
    owner.wait(timeout=30)
    os.killpg(marker.git.pid, signal.SIGKILL)  # git leads its own group: the kill of the whole tree
    while time.monotonic() < deadline and marker.over() is False:
        time.sleep(0.02)
    return lock


def test_a_lock_a_killed_speedrift_git_step_left_is_cleared_and_git_works_again(repo: Path) -> None:
    manifest = worktrees.create(repo, "t", 1, "main")
    worktree = Path(manifest.path)
    lock = kill_mid_commit(repo, worktree)
    assert lock.exists()
    assert subprocess.run(["git", "commit", "-qam", "x"], cwd=worktree, capture_output=True).returncode != 0
    (cleared,) = gitlocks.clear_stale(repo)
    assert cleared.removed == (str(lock),) and cleared.marker.step == "commit"
    assert not lock.exists() and gitlocks.markers(repo) == []
    sh_git(worktree, "commit", "-qam", "x")  # git works again
    assert gitlocks.clear_stale(repo) == []  # and a second look finds nothing


def test_a_lock_whose_owner_lives_or_that_no_marker_names_is_never_touched(repo: Path) -> None:
    common = repo / ".git"
    theirs = common / "packed-refs.lock"  # a lock speedrift did not take (the user's own git)
    theirs.write_text("")
    ours = common / "refs" / "heads" / "main.lock"
    ours.write_text("")
    folder = layout.git_steps_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    live = {"step": "move-ref", "locks": [str(ours)], "owner": identity_of().to_dict(), "git": None}
    (folder / "live.json").write_text(json.dumps(live))
    assert gitlocks.clear_stale(repo) == []
    assert theirs.exists() and ours.exists()
    dead = {**live, "owner": DEAD_OWNER}
    (folder / "live.json").write_text(json.dumps(dead))
    with open(ours):  # a live process holds it open: not cleared yet
        assert gitlocks.clear_stale(repo) == []
    (cleared,) = gitlocks.clear_stale(repo)
    assert cleared.removed == (str(ours),)
    assert theirs.exists()  # named by no marker: not ours to remove


def test_an_interrupted_rebase_abort_reports_what_really_happened(repo: Path) -> None:
    manifest = attempt_with(repo, "t", {"app.py": "print('agent')\n"})
    path = Path(manifest.path)
    commit_file(repo, "app.py", "print('human')\n")
    subprocess.run(["git", "rebase", "main"], cwd=path, capture_output=True, check=False)
    stale = gitlocks.checkout_locks(path)[0]
    stale.write_text("")  # someone's index.lock: the abort cannot work
    failed = landing.abort_interrupted_rebase(repo, path)
    assert failed is not None and not failed.aborted and "index.lock" in failed.detail
    assert landing.abort_rebase_if_any(path) is False  # never "aborted" when it was not
    stale.unlink()
    done = landing.abort_interrupted_rebase(repo, path)
    assert done == landing.RebaseAbort(True)
    assert landing.abort_interrupted_rebase(repo, path) is None


def test_a_fast_forward_killed_before_its_ref_moved_leaves_the_checkout_as_it_was(repo: Path) -> None:
    manifest = attempt_with(repo, "t", {"app.py": "print('agent')\n", "new.txt": "new\n"})
    old, new = sh_git(repo, "rev-parse", "main"), sh_git(repo, "rev-parse", manifest.branch)
    (repo / "README.md").write_text("# the user's own edit\n")
    # what `git merge --ff-only` had written when it was killed: the new files, its index.lock
    (repo / "app.py").write_text("print('agent')\n")
    (repo / "new.txt").write_text("new\n")
    index_lock = gitlocks.checkout_locks(repo)[0]
    index_lock.write_text("")
    folder = layout.git_steps_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    detail = {"target": "main", "from": old, "to": new, "checkout": str(repo)}
    marker = {"step": landing.FAST_FORWARD_STEP, "locks": [str(index_lock)], "owner": DEAD_OWNER}
    (folder / "ff.json").write_text(json.dumps({**marker, "git": None, "detail": detail}))
    (cleared,) = gitlocks.clear_stale(repo)
    assert cleared.removed == (str(index_lock),)
    note = landing.restore_interrupted_checkout(repo, cleared.marker.detail)
    assert note is not None and "2 file(s)" in note
    assert (repo / "app.py").read_text() == "print('v1')\n" and not (repo / "new.txt").exists()
    assert (repo / "README.md").read_text() == "# the user's own edit\n"  # a person's change stays
    assert sh_git(repo, "status", "--porcelain", "--untracked-files=no") == "M README.md"
    assert sh_git(repo, "rev-parse", "main") == old
    landing.fast_forward_target(repo, "main", new, old)  # the next landing goes through
    assert sh_git(repo, "rev-parse", "main") == new


def test_a_marker_reads_as_its_step_patched_by_each_whole_later_line(repo: Path) -> None:
    """A marker is created once and appended to (never rewritten): the git process's identity, the
    timeout's "ended", each a line; a line a kill cut off is ignored, a torn first line is no marker."""
    folder = layout.git_steps_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    lock = repo / ".git" / "index.lock"
    step = {"step": "commit", "cwd": str(repo), "locks": [str(lock)], "owner": DEAD_OWNER, "git": None}
    marker = folder / "1-1-1.json"
    marker.write_text(json.dumps(step) + "\n" + json.dumps({"git": DEAD_OWNER}) + "\n" + '{"ended": tr')
    (found,) = gitlocks.markers(repo)
    assert found.step == "commit" and found.git is not None and found.git.pid == DEAD_OWNER["pid"]
    assert found.ended is False  # the torn line did not count
    torn = folder / "2-1-1.json"
    torn.write_text('{"step": "rebase", "lo')
    assert [m.path for m in gitlocks.markers(repo)] == [marker]
    lock.write_text("")
    (cleared,) = gitlocks.clear_stale(repo)  # the owner and its git are gone: the lock goes
    assert cleared.removed == (str(lock),) and not lock.exists()
    assert not torn.exists()  # litter of a dead owner, named in its file name


def test_a_killed_step_leaves_a_marker_with_its_git_process_appended(repo: Path) -> None:
    manifest = attempt_with(repo, "t", {"app.py": "print('agent')\n"})
    path = Path(manifest.path)
    script = (
        "import sys; from pathlib import Path; from speedrift.repo import gitlocks;"
        f"gitlocks.run_step(Path({str(repo)!r}), 'sleep', ['-c', 'alias.zz=!sleep 30', 'zz'], "
        f"Path({str(path)!r}), [])"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    found: list[gitlocks.StepMarker] = []
    while time.monotonic() < deadline and not (found and found[0].git is not None):
        found = gitlocks.markers(repo)
        time.sleep(0.05)
    assert found and found[0].git is not None and found[0].owner is not None
    assert found[0].owner.pid == child.pid and not found[0].over()
    child.kill()
    child.wait()
    os.killpg(found[0].git.pid, signal.SIGKILL)  # the step's git (its own process group)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not gitlocks.markers(repo)[0].over():
        time.sleep(0.05)
    assert gitlocks.markers(repo)[0].over()
    assert gitlocks.clear_stale(repo)[0].removed == ()
    assert gitlocks.markers(repo) == []
