"""`speedrift worktrees gc` beyond landed work: superseded attempts are collected, work nothing
superseded is kept, and a secret-bearing quarantine is scrubbed once its retention is over."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import layout, records
from speedrift.repo import worktree_gc, worktrees
from speedrift.repo.worktrees import Manifest, ManifestState
from speedrift.times import format_time, now_utc
from tests.cli.support import Cli, seed, task_node
from tests.gitrepo import make_repo, sh_git

FAKE_KEY = "AKIA" + "Z7QW3E9R2T5Y8U1I"  # shaped like an AWS access key id; not a real one


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def _attempt(repo: Path, task_id: str, number: int, *, state: ManifestState, dirty: bool = False) -> Manifest:
    """An attempt's worktree with one commit of its own, finished in ``state``."""
    manifest = worktrees.create(repo, task_id, number, "main")
    path = Path(manifest.path)
    (path / f"work-{number}.txt").write_text("work\n")
    sh_git(path, "add", "-A")
    sh_git(path, "commit", "-q", "-m", f"attempt {number}")
    if dirty:
        (path / "leaked.env").write_text(f"KEY={FAKE_KEY}\n")
    manifest.state = state
    manifest.pid = 999_999_999  # not a live process: the attempt is over
    worktrees.write_manifest(repo, manifest)
    return manifest


def _landed(repo: Path, task_id: str, number: int) -> None:
    """The run record of an attempt that landed (as fleet/merging.py writes it)."""
    run_dir = layout.attempt_dir(repo, task_id, number)
    run_dir.mkdir(parents=True)
    records.update_attempt(run_dir, {"state": "done", "landed_commit": sh_git(repo, "rev-parse", "main")})


def _gc(repo: Path, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = Cli(repo).json("worktrees", "gc", *extra)
    return result


def test_a_failed_attempt_superseded_by_a_later_landed_one_is_collected_but_its_commits_stay_on_its_branch(
    repo: Path,
) -> None:
    seed(repo, task_node("login", status="in-progress"))
    first = _attempt(repo, "login", 1, state=ManifestState.FAILED, dirty=True)
    _landed(repo, "login", 2)

    dry = _gc(repo, "--dry-run")
    assert dry["removed"] == [first.name] and Path(first.path, "leaked.env").exists()
    assert "superseded: attempt 2 of login landed" in dry["reasons"][first.name]
    assert "discards 1 uncommitted change(s)" in dry["reasons"][first.name]
    assert f"keeps branch {first.branch} (1 unlanded commit(s))" in dry["reasons"][first.name]
    tip = sh_git(repo, "rev-parse", first.branch)

    done = _gc(repo)

    assert done["removed"] == [first.name]
    assert not Path(first.path).exists()
    assert sh_git(repo, "rev-parse", first.branch) == tip  # unmerged commits are never deleted
    assert worktrees.read_manifests(repo) == []


def test_a_done_tasks_failed_attempts_are_collected(repo: Path) -> None:
    seed(repo, task_node("login", status="done"))
    first = _attempt(repo, "login", 1, state=ManifestState.FAILED)

    assert _gc(repo)["removed"] == [first.name]
    assert not Path(first.path).exists()


def test_a_failed_attempt_nothing_superseded_keeps_its_worktree_and_work(repo: Path) -> None:
    seed(repo, task_node("login"))
    first = _attempt(repo, "login", 1, state=ManifestState.FAILED, dirty=True)
    _landed(repo, "other", 2)  # another task's landing supersedes nothing here

    done = _gc(repo)

    assert done["removed"] == [] and done["kept"][0]["worktree"] == first.name
    assert Path(first.path, "work-1.txt").exists() and Path(first.path, "leaked.env").exists()


def test_an_earlier_landed_attempt_does_not_supersede_a_later_failure(repo: Path) -> None:
    seed(repo, task_node("login", status="open"))
    _landed(repo, "login", 1)
    second = _attempt(repo, "login", 2, state=ManifestState.FAILED)

    assert _gc(repo)["removed"] == []
    assert Path(second.path).exists()


def test_a_quarantine_that_holds_no_blocked_secret_is_kept_for_good(repo: Path) -> None:
    seed(repo, task_node("login", status="done"))
    manifest = _attempt(repo, "login", 1, state=ManifestState.FAILED)
    where = worktrees.quarantine(repo, manifest)

    done = _gc(repo)

    assert done["removed"] == [] and done["scrubbed"] == []
    assert done["kept"][0]["reason"].startswith("quarantined")
    assert (where / "work-1.txt").exists()


def _withdrawn(repo: Path) -> tuple[Manifest, str]:
    """An attempt whose commit the secrets gate blocked: withdrawn and quarantined."""
    seed(repo, task_node("login"))
    manifest = worktrees.create(repo, "login", 1, "main")
    path = Path(manifest.path)
    (path / "config.env").write_text(f"KEY={FAKE_KEY}\n")
    sh_git(path, "add", "-A")
    sh_git(path, "commit", "-q", "-m", "leak")
    tip = sh_git(path, "rev-parse", "HEAD")
    worktrees.withdraw(repo, manifest, "the secrets gate blocked it")
    (quarantined,) = worktrees.read_manifests(repo)
    return quarantined, tip


def _age(repo: Path, manifest: Manifest, days: int) -> None:
    manifest.quarantined_at = format_time(now_utc() - timedelta(days=days))
    worktrees.write_manifest(repo, manifest)


def test_a_secret_bearing_quarantine_is_kept_until_its_retention_is_over(repo: Path) -> None:
    manifest, _tip = _withdrawn(repo)
    _age(repo, manifest, 13)

    done = _gc(repo)

    assert done["scrubbed"] == []
    assert "scrubbed from" in done["kept"][0]["reason"] and "14d" in done["kept"][0]["reason"]
    assert Path(manifest.path, "config.env").exists()


def test_a_secret_bearing_quarantine_past_retention_is_scrubbed_and_its_record_kept(repo: Path) -> None:
    manifest, tip = _withdrawn(repo)
    _age(repo, manifest, 15)

    assert _gc(repo, "--dry-run")["scrubbed"] == [manifest.name]
    assert Path(manifest.path, "config.env").exists()
    text = Cli(repo).ok("worktrees", "gc").stdout
    again = _gc(repo)

    assert "Scrubbed 1 quarantined secret leak(s)" in text and "git gc --prune=now" in text
    assert not Path(manifest.path).exists()
    reachable = sh_git(repo, "rev-list", "--all", "--reflog").split()
    assert tip not in reachable  # no branch, worktree HEAD or reflog holds the blocked commit
    (record,) = worktrees.read_manifests(repo)
    assert record.state is ManifestState.QUARANTINED and record.scrubbed_at is not None
    assert again["scrubbed"] == [] and "scrubbed at" in again["kept"][0]["reason"]


def test_the_retention_is_a_setting_and_judged_against_the_given_time(repo: Path) -> None:
    manifest, _tip = _withdrawn(repo)
    status = worktrees.inspect(repo, manifest, "open")
    since = worktree_gc.quarantined_since(repo, manifest)
    assert since is not None

    before = worktree_gc.judge(repo, status, "open", {}, since + timedelta(hours=47), timedelta(days=2), "2d")
    after = worktree_gc.judge(repo, status, "open", {}, since + timedelta(hours=49), timedelta(days=2), "2d")

    assert before.verdict == "keep" and after.verdict == worktree_gc.SCRUB


def test_a_bad_quarantine_retention_is_an_error_naming_the_key(repo: Path) -> None:
    (repo / "speedrift.toml").write_text('[worktrees]\nquarantine_retention = "two weeks"\n')

    result = Cli(repo)("worktrees", "gc")

    assert result.returncode == 1
    assert "worktrees.quarantine_retention" in result.stderr and "1d or 1w" in result.stderr
