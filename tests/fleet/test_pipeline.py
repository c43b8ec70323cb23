"""One attempt end to end with the shell runtime: real worktrees, real processes, real merges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speedrift.errors import Refused, SpeedriftError
from speedrift.fleet.pipeline import RunOptions
from speedrift.repo import worktrees
from tests.fleet.conftest import Workshop
from tests.gitrepo import commit_file, make_repo, sh_git


def test_a_shell_task_lands_its_change_and_is_done_with_evidence(workshop: Workshop) -> None:
    workshop.add("write-hello", "echo hello > hello.txt")
    result = workshop.pipeline().run("write-hello", RunOptions())
    assert result.status == "done", result.reason
    assert (workshop.repo / "hello.txt").read_text() == "hello\n"
    assert sh_git(workshop.repo, "rev-parse", "main") == result.landed_commit
    message = sh_git(workshop.repo, "log", "-1", "--format=%B")
    assert "write-hello: write hello" in message and "Speedrift-Task: write-hello" in message
    task = workshop.task("write-hello")
    assert task["status"] == "done"
    assert "Landed" in task["log"][-1]["message"]  # type: ignore[index]
    evidence = json.loads(Path(result.run_dir or "", "evidence.json").read_text())
    assert evidence["landed_commit"] == result.landed_commit
    assert evidence["diff"]["paths"] == ["hello.txt"]
    assert (Path(result.run_dir or "") / "events.jsonl").exists()
    assert worktrees.read_manifests(workshop.repo) == []  # landed: worktree cleaned up
    stray = [
        line
        for line in sh_git(workshop.repo, "status", "--porcelain").splitlines()
        if ".workgraph" not in line
    ]
    assert stray == []  # only the (committed) graph changed in the user's checkout


def test_the_agent_environment_names_the_task_attempt_result_file_and_graph(workshop: Workshop) -> None:
    fields = '"$SPEEDRIFT_TASK_ID" "$SPEEDRIFT_ATTEMPT" "$WG_DIR" "$SPEEDRIFT_PORT_BASE"'
    workshop.add("env", f'printf "%s %s %s %s" {fields} > env.txt')
    result = workshop.pipeline().run("env", RunOptions())
    assert result.status == "done", result.reason
    task_id, attempt, wg_dir, port = (workshop.repo / "env.txt").read_text().split(" ")
    assert (task_id, attempt, Path(wg_dir), int(port) >= 20000) == (
        "env",
        "1",
        workshop.store.directory,
        True,
    )


def test_secrets_in_the_callers_environment_do_not_reach_the_agent(
    workshop: Workshop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_should_not_leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    workshop.add("leak", 'printf "[%s][%s]" "$GITHUB_TOKEN" "$AWS_SECRET_ACCESS_KEY" > leak.txt')
    assert workshop.pipeline().run("leak", RunOptions()).status == "done"
    assert (workshop.repo / "leak.txt").read_text() == "[][]"


def test_a_failing_command_fails_the_task_and_keeps_the_worktree(workshop: Workshop) -> None:
    workshop.add("broken", "echo partial > partial.txt; exit 3")
    result = workshop.pipeline().run("broken", RunOptions())
    assert result.status == "failed"
    task = workshop.task("broken")
    assert task["status"] == "failed"
    assert task["speedrift"]["failure_class"]  # type: ignore[index]
    (manifest,) = worktrees.read_manifests(workshop.repo)
    assert (Path(manifest.path) / "partial.txt").read_text() == "partial\n"  # work is never deleted
    assert not (workshop.repo / "partial.txt").exists()


def test_a_task_that_is_not_ready_is_refused_unless_forced(workshop: Workshop) -> None:
    workshop.add("first", "true")
    workshop.add("second", "echo 2 > two.txt", after=["first"])
    with pytest.raises(Refused, match="not ready"):
        workshop.pipeline().run("second", RunOptions())
    assert workshop.task("second")["status"] == "open"
    assert workshop.pipeline().run("second", RunOptions(force=True)).status == "done"


def test_a_repo_without_commits_is_refused_before_anything_is_claimed(tmp_path: Path) -> None:
    from speedrift.graph.store import init_graph_dir
    from tests.fleet.conftest import Workshop as W

    repo = tmp_path / "empty"
    repo.mkdir()
    sh_git(repo, "init", "-q", "-b", "main")
    init_graph_dir(repo)
    shop = W(repo)
    shop.add("t", "true")
    with pytest.raises(SpeedriftError, match="no commit"):
        shop.pipeline().run("t", RunOptions())
    assert shop.task("t")["status"] == "open"


def test_a_dirty_user_checkout_in_the_way_leaves_the_task_merge_pending(workshop: Workshop) -> None:
    workshop.add("edit-app", "echo \"print('agent')\" > app.py")
    (workshop.repo / "app.py").write_text("print('user is editing')\n")
    before = sh_git(workshop.repo, "rev-parse", "main")
    result = workshop.pipeline().run("edit-app", RunOptions())
    assert result.status == "merge-pending"
    assert sh_git(workshop.repo, "rev-parse", "main") == before
    assert (workshop.repo / "app.py").read_text() == "print('user is editing')\n"
    task = workshop.task("edit-app")
    assert task["status"] == "in-progress" and task["speedrift"]["state"] == "merge-pending"  # type: ignore[index]


def test_a_rebase_conflict_fails_the_task_naming_the_files(workshop: Workshop) -> None:
    # The human commits to main while the agent works in its worktree, and the agent edits only
    # after that commit: a conflict at landing, in this order however slowly either side runs.
    started, committed = workshop.repo.parent / "agent-started", workshop.repo.parent / "human-committed"
    wait = f"touch {started}; while [ ! -e {committed} ]; do sleep 0.05; done"
    workshop.add("edit-app", f"{wait}; echo \"print('agent')\" > app.py")
    pipeline = workshop.pipeline()
    import threading

    def human_commits() -> None:
        import time

        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        commit_file(workshop.repo, "app.py", "print('human')\n")
        committed.touch()

    thread = threading.Thread(target=human_commits)
    thread.start()
    result = pipeline.run("edit-app", RunOptions())
    thread.join()
    assert result.status == "failed" and result.failure == "merge_conflict"
    assert workshop.task("edit-app")["speedrift"]["conflicting_files"] == ["app.py"]  # type: ignore[index]
    assert (workshop.repo / "app.py").read_text() == "print('human')\n"


def test_writes_outside_the_worktree_are_reported(workshop: Workshop) -> None:
    """Unsandboxed (bwrap missing, or [sandbox] mode = "off"): reported. A sandboxed agent cannot
    make such a write at all (tests/fleet/test_sandbox.py)."""
    workshop.add("sneaky", f"echo oops > {workshop.repo}/outside.txt; echo ok > inside.txt")
    result = workshop.pipeline(sandbox={"mode": "off"}).run("sneaky", RunOptions())
    record = json.loads(Path(result.run_dir or "", "attempt.json").read_text())
    assert any(p.endswith("outside.txt") for p in record["outside_writes"])
    assert "outside the attempt's worktree" in workshop.task("sneaky")["log"][-2]["message"]  # type: ignore[index]


def test_a_command_that_never_finishes_is_killed_at_the_wall_clock_budget(workshop: Workshop) -> None:
    workshop.add("hang", "sleep 60")
    result = workshop.pipeline(budgets={"wall_clock_minutes": 0.02, "kill_grace_seconds": 0.5}).run(
        "hang", RunOptions()
    )
    assert result.status == "failed"
    assert workshop.task("hang")["failure_class"] == "agent-hard-timeout"


def test_the_users_dirty_checkout_is_never_touched_by_an_attempt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n", "b.txt": "b\n"})
    (repo / "b.txt").write_text("user wip\n")
    shop = Workshop(repo)
    shop.add("edit-a", "echo agent > a.txt")
    assert shop.pipeline().run("edit-a", RunOptions()).status == "done"
    assert (repo / "a.txt").read_text() == "agent\n"
    assert (repo / "b.txt").read_text() == "user wip\n"


def test_a_detached_head_in_the_users_checkout_still_lands_on_the_branch(workshop: Workshop) -> None:
    sh_git(workshop.repo, "checkout", "-q", "--detach", "HEAD")
    workshop.add("detached", "echo d > d.txt")
    result = workshop.pipeline().run("detached", RunOptions())
    assert result.status == "done", result.reason
    assert sh_git(workshop.repo, "rev-parse", "main") == result.landed_commit
    assert sh_git(workshop.repo, "rev-parse", "HEAD") != result.landed_commit  # the user's HEAD stays put
    assert not (workshop.repo / "d.txt").exists()
