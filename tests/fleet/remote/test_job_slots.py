"""Warm checkouts on a Dask worker (fleet/remote/slots.py), through the job's Dask-free core: a job
works in the checkout an earlier job left, reset to exactly its own base — nothing of the earlier
agent's work, tracked, untracked, ignored or a nested repository, survives into it — while a slot
another job holds, one an orphaned agent still runs in, or one whose checkout was tampered with is
never used as it is."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from speedrift import fsutil
from speedrift.fleet.remote import orphans, repocache, slots
from speedrift.fleet.remote.job import develop
from speedrift.fleet.remote.spec import JobResult, JobSpec
from speedrift.procs import ProcessIdentity, identity_of
from tests.fleet.remote.job_helpers import leftovers, make_spec, user_repo
from tests.gitrepo import commit_file, sh_git

WORKER = "tcp://127.0.0.1:1"


def run(spec: JobSpec, cache: Path) -> JobResult:
    return develop(spec, cancel=threading.Event(), cache=cache, worker=WORKER, host="test-host")


def tree_of(repo: Path, answer: JobResult, tmp_path: Path) -> set[str]:
    """The files of the commit the job brought back, as the hub fetches it."""
    assert answer.bundle is not None and answer.tip is not None
    bundle = tmp_path / f"{answer.key}.bundle"
    bundle.write_bytes(answer.bundle)
    sh_git(repo, "fetch", "-q", str(bundle), f"HEAD:refs/remotes/worker/{answer.task_id}")
    return set(sh_git(repo, "ls-tree", "-r", "--name-only", answer.tip).split())


def slot_checkout(cache: Path, spec: JobSpec, number: int = 0) -> Path:
    return slots.slot_folder(cache, spec.repo_key) / str(number) / repocache.checkout_name(spec.repo_name)


def one_job_ran(tmp_path: Path, command: str = "echo a > a.txt") -> tuple[Path, Path, JobSpec, Path]:
    """A repository, a cache in which one job of it ran (``command``), its spec, and the checkout
    that job left in slot 0."""
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    spec = make_spec(repo, command)
    run(spec, cache)
    return repo, cache, spec, slot_checkout(cache, spec)


def test_the_next_job_works_in_the_kept_checkout_reset_to_its_base_with_nothing_of_the_last_left(
    tmp_path: Path,
) -> None:
    repo = user_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("build/\n")
    sh_git(repo, "add", ".gitignore")
    sh_git(repo, "commit", "-q", "-m", "ignore build/")
    cache = tmp_path / "cache"
    messy = (
        "echo changed > README.md && echo new > untracked.txt && mkdir -p build && echo x > build/out "
        "&& git init -q nested && echo n > nested/n.txt && exit 3"  # a failed run leaves it all behind
    )
    spec = make_spec(repo, messy)
    first = run(spec, cache)
    assert first.outcome["success"] is False and "worktree" in first.timings  # made afresh
    kept = slot_checkout(cache, spec)
    assert (kept / "build" / "out").is_file()  # the checkout stayed as the agent left it

    newer = commit_file(repo, "later.txt", "later\n")  # the next job starts from a newer base
    second = run(make_spec(repo, "ls -A > listing.txt", task_id="t-next"), cache)

    assert second.outcome["success"] is True and "checkout" in second.timings  # the kept one, reset
    assert second.base_commit == newer
    files = tree_of(repo, second, tmp_path)
    listing = set(sh_git(repo, "show", f"{second.tip}:listing.txt").split())
    assert {"README.md", "app.py", "later.txt"} <= listing
    assert not listing & {"untracked.txt", "build", "nested"}
    assert sh_git(repo, "show", f"{second.tip}:README.md") == "# demo"  # as the base has it
    assert files - {"listing.txt"} == set(sh_git(repo, "ls-tree", "-r", "--name-only", newer).split())
    assert leftovers(cache) == []
    # one checkout for both jobs: git records exactly one worktree besides the bare repository
    cache_repo = repocache.repo_path(cache, spec.repo_key)
    assert len(sh_git(cache_repo, "worktree", "list").splitlines()) == 2


def test_a_slot_another_job_holds_is_passed_over_for_the_next(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    spec = make_spec(repo, "echo a > a.txt")
    held = fsutil.try_flock(slots.slot_folder(cache, spec.repo_key) / "0.lock")
    assert held is not None
    try:
        answer = run(spec, cache)
    finally:
        fsutil.release_flock(held)

    assert answer.outcome["success"] is True and "a.txt" in tree_of(repo, answer, tmp_path)
    assert slot_checkout(cache, spec, 1).is_dir() and not slot_checkout(cache, spec, 0).exists()


def test_every_slot_taken_gives_a_one_off_worktree_removed_after_the_job(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    spec = make_spec(repo, "echo a > a.txt")
    folder = slots.slot_folder(cache, spec.repo_key)
    held = [fsutil.try_flock(folder / f"{n}.lock") for n in range(slots.MAX_SLOTS)]
    try:
        answer = run(spec, cache)
    finally:
        for fd in held:
            assert fd is not None
            fsutil.release_flock(fd)

    assert answer.outcome["success"] is True and "a.txt" in tree_of(repo, answer, tmp_path)
    assert not any(folder.glob("*/*")) and leftovers(cache) == []
    assert len(sh_git(repocache.repo_path(cache, spec.repo_key), "worktree", "list").splitlines()) == 1


def test_a_slot_an_orphaned_agent_still_runs_in_waits_and_the_sweep_leaves_its_checkout(
    tmp_path: Path,
) -> None:
    _repo, cache, first, kept = one_job_ran(tmp_path)
    agent = subprocess.Popen(["sh", "-c", "sleep 60"], start_new_session=True, cwd=kept)
    try:
        # the running record of a job whose worker process died while its agent ran in slot 0
        checkout = repocache.Checkout(repocache.repo_path(cache, first.repo_key), kept, kept=True)
        dead_worker = ProcessIdentity(os.getpid(), started=1)
        job_dir = repocache.run_dir(cache, "dead")
        job_dir.mkdir(parents=True)
        left = identity_of(agent.pid)
        record = orphans.Running("key-dead", "dead", dead_worker, first.repo_key, checkout, job_dir, left)
        orphans.write(cache, record)

        assert orphans.agent_left_in(cache, kept) is True
        taken = slots.take(
            cache,
            first.repo_key,
            checkout.repo,
            first.repo_name,
            busy=lambda w: orphans.agent_left_in(cache, w),
        )
        assert taken is not None and taken.number == 1  # slot 0 waits for its agent to be ended
        taken.release()

        swept = orphans.sweep(cache)  # what every job does first

        assert swept == ["key-dead"] and agent.wait(timeout=30) == -9
        assert kept.is_dir() and (kept / ".git").is_file()  # left for the next job to reset
        assert not job_dir.exists() and orphans.agent_left_in(cache, kept) is False
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_a_checkout_whose_git_link_was_changed_is_made_afresh(tmp_path: Path) -> None:
    repo, cache, _first, kept = one_job_ran(tmp_path)
    elsewhere = tmp_path / "elsewhere"  # a repository that has the base too: git alone would use it
    subprocess.run(["git", "clone", "-q", str(repo), str(elsewhere)], check=True, capture_output=True)
    before = sh_git(elsewhere, "rev-parse", "HEAD")
    (kept / ".git").write_text(f"gitdir: {elsewhere / '.git'}\n")  # what an unsandboxed agent could do
    (kept / "leftover.txt").write_text("from before\n")

    second = run(make_spec(repo, "echo b > b.txt", task_id="t-b"), cache)

    assert second.outcome["success"] is True and "worktree" in second.timings  # not reused
    files = tree_of(repo, second, tmp_path)
    assert "b.txt" in files and "leftover.txt" not in files and "a.txt" not in files
    assert sh_git(elsewhere, "rev-parse", "HEAD") == before  # nothing was done there
    assert sh_git(elsewhere, "status", "--porcelain") == ""


def test_a_checkout_git_cannot_reset_is_set_aside_and_made_afresh(tmp_path: Path) -> None:
    # an agent killed in the middle of a git command leaves the checkout's index locked
    locking = 'echo x > x.txt; touch "$(git rev-parse --git-dir)/index.lock"; exit 1'
    repo, cache, _first, kept = one_job_ran(tmp_path, locking)
    assert (kept / "x.txt").is_file()

    second = run(make_spec(repo, "echo b > b.txt", task_id="t-b"), cache)

    assert second.outcome["success"] is True, second.outcome
    assert "worktree" in second.timings and "checkout" not in second.timings  # made afresh
    base_files = set(sh_git(repo, "ls-tree", "-r", "--name-only", "main").split())
    assert tree_of(repo, second, tmp_path) - base_files == {"b.txt"}
    trash = cache / slots.TRASH_DIR
    assert not trash.exists() or not any(trash.iterdir())  # the old checkout is gone, not kept aside
