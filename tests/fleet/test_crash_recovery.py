"""Crash-safe landing: kill -9 at every step of a landing, then recovery — work lands exactly once,
nothing stays claimed, no git lock is left, and a dead attempt's worktree is watched again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from speedrift import layout
from speedrift.fleet import crash_recovery
from speedrift.fleet.pipeline import RunOptions
from speedrift.graph import ops
from speedrift.repo import boundary, gitlocks, landing, landings, worktrees
from tests.fleet.conftest import Workshop
from tests.gitrepo import commit_file, make_repo, sh_git

NO_GATES = (
    '[gates]\nskip = ["syntax", "secrets", "scope", "contract", "lint", "types", "tests", "sast", "sca"]\n'
)
APPEND = "echo $SPEEDRIFT_TASK_ID >> out.txt"


@pytest.fixture
def shop(tmp_path: Path) -> Workshop:
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", "speedrift.toml": NO_GATES})
    return Workshop(repo)


def run_cli(shop: Workshop, task_id: str, kill_at: str | None = None) -> subprocess.Popen[bytes]:
    """`speedrift run TASK` in its own process, as a person or the hub starts it."""
    env = {**os.environ, **({landing.KILL_AT_ENV: kill_at} if kill_at else {})}
    argv = [sys.executable, "-m", "speedrift", "--dir", str(shop.store.directory), "run", task_id, "--quiet"]
    return subprocess.Popen(
        argv, cwd=shop.repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def settle(shop: Workshop, task_id: str) -> list[str]:
    """What a restarted service does: recover, then run the task if it is open again. A git step
    the killed process had started runs on in its own session; recovery leaves its marker until it
    is over — also one killed before it could record its git's pid, whose git then still holds a
    lock open — so this recovers again until the markers are gone, as a service does on its later
    ticks."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(not m.over() for m in gitlocks.markers(shop.repo)):
        time.sleep(0.02)
    notes = crash_recovery.recover(shop.repo, shop.store)
    while gitlocks.markers(shop.repo) and time.monotonic() < deadline:
        time.sleep(0.05)
        notes += crash_recovery.recover(shop.repo, shop.store)
    if shop.task(task_id)["status"] == "open":
        result = shop.pipeline().run(task_id, RunOptions())
        assert result.status == "done", result.reason
    return notes


def assert_landed_once(shop: Workshop, task_id: str) -> None:
    assert shop.task(task_id)["status"] == "done"
    assert sh_git(shop.repo, "show", "main:out.txt").splitlines() == [task_id]
    trailers = sh_git(shop.repo, "log", "main", "--format=%(trailers:key=Speedrift-Task,valueonly)")
    assert [line for line in trailers.splitlines() if line.strip() == task_id] == [task_id]
    locks = [p for p in (shop.repo / ".git").rglob("*.lock") if p.name != "speedrift-worktrees.lock"]
    assert locks == []
    assert gitlocks.markers(shop.repo) == []
    assert crash_recovery.recover(shop.repo, shop.store) == []  # settled: nothing left to do


@pytest.mark.parametrize("step", landing.STEPS)
def test_a_kill_at_any_landing_step_lands_the_work_exactly_once(shop: Workshop, step: str) -> None:
    started = shop.repo.parent / "started"
    if step == "rebased":  # the queue rebases only when the target moved (through a landing)
        shop.add("first", "echo first > first.txt")
        shop.add("t", f"touch {started}; while [ ! -e {started}.go ]; do sleep 0.05; done; {APPEND}")
    else:
        shop.add("t", APPEND)
    child = run_cli(shop, "t", kill_at=step)
    if step == "rebased":
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shop.pipeline().run("first", RunOptions()).status == "done"
        Path(f"{started}.go").touch()
    assert child.wait(timeout=120) == -signal.SIGKILL
    notes = settle(shop, "t")
    if step in ("moved", "logged", "landed"):  # the target had moved, the graph did not say done
        assert any("marked done" in note for note in notes), notes
    assert_landed_once(shop, "t")


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.08])
def test_a_kill_right_after_the_target_moved_is_recorded_done_not_run_again(
    shop: Workshop, delay: float
) -> None:
    """The report: a service killed 0-80 ms after the fast-forward landed its task again on restart."""
    shop.add("t", APPEND)
    ref = shop.repo / ".git" / "refs" / "heads" / "main"
    before = ref.read_text()
    child = run_cli(shop, "t")
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if ref.read_text() != before:
            time.sleep(delay)
            child.kill()  # right after the target moved
            break
        time.sleep(0.001)
    child.wait(timeout=60)
    settle(shop, "t")
    assert_landed_once(shop, "t")


def test_a_landed_attempt_whose_manifest_is_gone_is_done_from_the_landings_log(shop: Workshop) -> None:
    shop.add("t", APPEND)
    assert run_cli(shop, "t", kill_at="landed").wait(timeout=120) == -signal.SIGKILL
    for manifest in worktrees.read_manifests(shop.repo):
        worktrees.manifest_path(shop.repo, manifest.name).unlink()  # deleted (gc, a person, a bug)
    assert shop.task("t")["status"] == "in-progress"
    notes = crash_recovery.recover(shop.repo, shop.store)
    assert any("marked done" in note for note in notes), notes
    assert landings.of_attempt(shop.repo, "t", 1) is not None
    assert shop.task("t")["status"] == "done"
    assert sh_git(shop.repo, "show", "main:out.txt").splitlines() == ["t"]


def test_a_task_released_before_its_landing_was_settled_is_done_not_run_again(shop: Workshop) -> None:
    """A supervisor that released the claim of a worker killed after the ref moved (no settle first):
    recovery still finds the landing of the task's current attempt and records it done."""
    shop.add("t", APPEND)
    assert run_cli(shop, "t", kill_at="logged").wait(timeout=120) == -signal.SIGKILL
    shop.store.mutate(lambda g, now: ops.unclaim(g, "t", now=now, actor="a supervisor"))
    assert shop.task("t")["status"] == "open"
    crash_recovery.recover(shop.repo, shop.store)
    assert_landed_once(shop, "t")


def test_settle_attempt_tells_a_supervisor_whether_its_dead_worker_had_landed(shop: Workshop) -> None:
    shop.add("t", APPEND)
    assert run_cli(shop, "t", kill_at="moved").wait(timeout=120) == -signal.SIGKILL
    note = crash_recovery.settle_attempt(shop.repo, shop.store, "t", 1)
    assert note is not None and "marked done" in note
    assert shop.task("t")["status"] == "done"
    shop.add("u", APPEND)
    assert run_cli(shop, "u", kill_at="landing").wait(timeout=120) == -signal.SIGKILL
    assert (
        crash_recovery.settle_attempt(shop.repo, shop.store, "u", 1) is None
    )  # not landed: theirs to release


# --- dead attempts and interrupted rebases -------------------------------------------------------------
def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def claim_for_dead_worker(shop: Workshop, task_id: str) -> worktrees.Manifest:
    pid = dead_pid()

    def claim(graph: object, now: object) -> ops.Mutation:
        import socket

        mutation = ops.claim(graph, task_id, now=now, actor="gone")  # type: ignore[arg-type]
        ops.set_speedrift(mutation.tasks[0], attempt=1, worker={"pid": pid, "host": socket.gethostname()})
        return mutation

    shop.store.mutate(claim)
    manifest = worktrees.create(shop.repo, task_id, 1, "main")
    manifest.pid = pid  # the attempt's process is gone
    worktrees.write_manifest(shop.repo, manifest)
    return manifest


def test_a_dead_attempts_manifest_leaves_active_and_its_worktree_is_watched_again(shop: Workshop) -> None:
    shop.add("dead", "true")
    manifest = claim_for_dead_worker(shop, "dead")
    assert Path(manifest.path).resolve() not in boundary.running_worktrees(shop.repo)  # its owner is gone
    notes = crash_recovery.recover(shop.repo, shop.store)
    assert any("process is gone" in note for note in notes) and any("released" in note for note in notes)
    (written,) = worktrees.read_manifests(shop.repo)
    assert written.state is worktrees.ManifestState.FAILED
    shop.add("sneaky", f"echo oops > {manifest.path}/oops.txt; echo ok > ok.txt")
    result = shop.pipeline(sandbox={"mode": "off"}).run("sneaky", RunOptions())  # a write the sandbox forbids
    record = json.loads((Path(result.run_dir or "") / "attempt.json").read_text())
    assert any(path.endswith("oops.txt") for path in record["outside_writes"])


def conflicted_rebase(shop: Workshop, manifest: worktrees.Manifest) -> Path:
    path = Path(manifest.path)
    (path / "README.md").write_text("# agent\n")
    sh_git(path, "commit", "-qam", "agent")
    commit_file(shop.repo, "README.md", "# human\n")
    subprocess.run(["git", "rebase", "main"], cwd=path, capture_output=True, check=False)
    assert landing.rebase_in_progress(path)
    return path


def test_an_interrupted_rebase_is_aborted_and_said_so(shop: Workshop) -> None:
    shop.add("t", "true")
    path = conflicted_rebase(shop, claim_for_dead_worker(shop, "t"))
    notes = crash_recovery.recover(shop.repo, shop.store)
    assert f"aborted an interrupted rebase in {path}" in notes
    assert not landing.rebase_in_progress(path) and sh_git(path, "status", "--porcelain") == ""


def test_a_rebase_that_cannot_be_aborted_is_quarantined_and_never_reported_aborted(shop: Workshop) -> None:
    shop.add("t", "true")
    path = conflicted_rebase(shop, claim_for_dead_worker(shop, "t"))
    gitlocks.checkout_locks(path)[0].write_text("")  # not speedrift's: recovery leaves it alone
    notes = crash_recovery.recover(shop.repo, shop.store)
    assert not any("aborted an interrupted rebase" in note for note in notes)
    (said,) = [note for note in notes if "could not abort" in note]
    assert "quarantined" in said and "index.lock" in said
    (written,) = worktrees.read_manifests(shop.repo)
    assert written.state is worktrees.ManifestState.QUARANTINED
    moved = Path(written.path)
    assert moved.parent == layout.quarantine_dir(shop.repo)
    assert (moved / "README.md").read_text().startswith(("<<<<<<<", "# "))  # the work is intact
    assert shop.task("t")["status"] == "open"  # its task is released all the same


def test_recovery_leaves_the_landing_of_a_live_process_alone(tmp_path: Path) -> None:
    shop = Workshop(make_repo(tmp_path / "repo", {"README.md": "# demo\n", "speedrift.toml": NO_GATES}))
    shop.add("t", APPEND)
    manifest = worktrees.create(shop.repo, "t", 1, "main")  # owned by this (live) process
    manifest.state = worktrees.ManifestState.LANDING
    worktrees.write_manifest(shop.repo, manifest)
    with landing.merge_lock(shop.repo):  # a landing holds the queue right now
        done = threading.Event()
        notes: list[str] = []

        def tick_once() -> None:
            notes.extend(crash_recovery.recover(shop.repo, shop.store, wait=False))
            done.set()

        tick = threading.Thread(target=tick_once)
        tick.start()
        assert done.wait(timeout=60)  # a tick does not wait behind the landing
        tick.join(timeout=60)
    assert notes == []
    assert crash_recovery.recover(shop.repo, shop.store) == []
    (written,) = worktrees.read_manifests(shop.repo)
    assert written.state is worktrees.ManifestState.LANDING


def test_a_worktree_add_killed_half_way_is_undone_so_the_next_attempts_can_start(shop: Workshop) -> None:
    """git writes a new worktree's admin directory file by file (``locked``, ``gitdir``, ``HEAD``,
    ``commondir``); a kill in between left every later `git worktree add` failing on it."""
    base = sh_git(shop.repo, "rev-parse", "main")
    path = layout.worktrees_dir(shop.repo) / "t-1"
    admin = shop.repo / ".git" / "worktrees" / "t-1"
    admin.mkdir(parents=True)
    (admin / "locked").write_text("initializing")
    (admin / "gitdir").write_text(f"{path}/.git\n")
    (admin / "HEAD").write_text(f"{base}\n")
    (admin / "commondir").write_text("")  # killed as it began to write this one
    path.mkdir(parents=True)
    (path / ".git").write_text(f"gitdir: {admin}\n")
    sh_git(shop.repo, "branch", "speedrift/t-a1", base)
    folder = layout.git_steps_dir(shop.repo)
    folder.mkdir(parents=True, exist_ok=True)
    detail = {"name": "t-1", "path": str(path), "branch": "speedrift/t-a1", "base": base}
    marker = {"step": worktrees.ADD_STEP, "locks": [], "owner": {"pid": 999_999_999, "started": 1}}
    (folder / "add.json").write_text(json.dumps({**marker, "git": None, "detail": detail}))
    with pytest.raises(Exception, match="commondir"):
        worktrees.create(shop.repo, "u", 1, "main")
    notes = crash_recovery.recover(shop.repo, shop.store)
    assert any(note.startswith("undid the interrupted creation of worktree t-1") for note in notes), notes
    assert not admin.exists() and not path.exists()
    assert sh_git(shop.repo, "branch", "--list", "speedrift/t-a1") == ""
    created = worktrees.create(shop.repo, "u", 2, "main")  # worktrees can be added again
    assert Path(created.path).is_dir()
