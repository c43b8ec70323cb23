"""Blame the agent only for what it did: a failure at a stale base is judged again on the target's
current tip, and a failure that is on the target itself is `pre_existing` — the task waits, no
failure class, no attempt burned."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from speedrift.failure_class import FailureClass
from speedrift.fleet import blame, crash_recovery, halt, recovery_graph
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.gates.verdict import GateVerdict
from speedrift.graph.model import Task
from speedrift.repo import worktrees
from tests.fleet.conftest import Workshop
from tests.gitrepo import make_repo, sh_git


@dataclass
class StatusSuite:
    """A tests gate in miniature (a fake GateRunner, real git): the suite fails while status.txt
    says broken. A failure already there at the base it is judged against is pre-existing
    (``new: false``); this repo requires its tests, so a pre-existing failure still blocks — the
    required gate's warn, which the suite classes implementation_error."""

    checked: list[tuple[str, str]] = field(default_factory=list)

    def check(self, repo: Path, worktree: Path, base: str, tip: str, task: Task) -> GateVerdict:
        self.checked.append((base, tip))
        if not broken(repo, tip):
            passed = {"gate": "tests", "status": "pass", "required": True, "findings": []}
            return GateVerdict(True, "tests pass", {"results": [passed], "blocking": []}, verified=True)
        new = not broken(repo, base)
        finding = {
            "file": "status.txt",
            "line": 1,
            "kind": "test",
            "message": "test_status fails",
            "new": new,
        }
        result = {
            "gate": "tests",
            "status": "fail" if new else "warn",
            "required": True,
            "findings": [finding],
        }
        cls = FailureClass.REGRESSION if new else FailureClass.IMPLEMENTATION_ERROR
        return GateVerdict(False, "blocked by tests", {"results": [result], "blocking": ["tests"]}, cls)


def broken(repo: Path, commit: str) -> bool:
    return sh_git(repo, "show", f"{commit}:status.txt") == "broken"


def shop_with_a_failing_test(tmp_path: Path) -> tuple[Workshop, Pipeline, StatusSuite]:
    shop = Workshop(make_repo(tmp_path / "repo", {"README.md": "# demo\n", "status.txt": "broken\n"}))
    suite = StatusSuite()
    return shop, Pipeline(shop.repo, shop.store, RepoConfig(), gates=suite), suite


def run_after(
    pipeline: Pipeline, task_id: str, gate_file: Path
) -> tuple[threading.Thread, list[AttemptResult]]:
    """Start the attempt in a thread; its command waits for ``gate_file`` (so its worktree, and
    base, exist before whatever the test lands meanwhile)."""
    results: list[AttemptResult] = []
    thread = threading.Thread(target=lambda: results.append(pipeline.run(task_id, RunOptions())))
    thread.start()
    deadline = time.monotonic() + 60
    while not Path(f"{gate_file}.started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return thread, results


def waits_for(flag: Path, command: str) -> str:
    return f"touch {flag}.started; while [ ! -e {flag} ]; do sleep 0.05; done; {command}"


def test_a_clean_task_is_not_blamed_for_a_failure_another_task_fixed_meanwhile(tmp_path: Path) -> None:
    """The report: B's base had a failing test, A fixed it and landed first; B's gates ran against
    its stale base and failed B as implementation_error."""
    shop, pipeline, suite = shop_with_a_failing_test(tmp_path)
    flag = tmp_path / "go"
    shop.add("b", waits_for(flag, "echo b > b.txt"))
    shop.add("a", "echo fixed > status.txt")
    thread, results = run_after(pipeline, "b", flag)
    fixed = pipeline.run("a", RunOptions())
    assert fixed.status == "done", fixed.reason
    flag.touch()
    thread.join(timeout=120)
    (result,) = results
    assert result.status == "done", result.reason
    task = shop.task("b")
    assert task["status"] == "done" and "failure_class" not in task.get("speedrift", {})  # type: ignore[operator]
    assert result.evidence["diff"]["paths"] == ["b.txt"]  # its own commit only, not A's fix
    assert result.evidence["landed_onto"] == fixed.landed_commit
    assert sh_git(shop.repo, "show", "main:b.txt") == "b" and not broken(shop.repo, "main")
    assert any(base == fixed.landed_commit for base, _tip in suite.checked)  # judged again on A's tip


def test_a_failure_already_on_the_target_tip_makes_the_task_wait_without_burning_an_attempt(
    tmp_path: Path,
) -> None:
    shop, pipeline, _suite = shop_with_a_failing_test(tmp_path)
    flag = tmp_path / "go"
    shop.add("c", waits_for(flag, "echo c > c.txt"))
    shop.add("unrelated", "echo u > u.txt")  # lands meanwhile and fixes nothing
    thread, results = run_after(pipeline, "c", flag)
    other = shop.pipeline().run("unrelated", RunOptions())  # (through the queue, ungated here)
    assert other.status == "done", other.reason
    flag.touch()
    thread.join(timeout=120)
    (result,) = results
    assert result.status == "waiting" and result.failure is None
    assert "already on the target branch" in result.reason
    task = shop.task("c")
    data = task["speedrift"]
    assert task["status"] == "open" and task.get("paused") is True
    assert recovery_graph.NEEDS_HUMAN in task["tags"]  # type: ignore[operator]
    waiting = data["waiting"]  # type: ignore[index]
    assert waiting["kind"] == recovery_graph.PRE_EXISTING and waiting["checked_on"] == other.landed_commit
    assert "failure_class" not in data and "failures" not in data and "retry_count" not in task  # type: ignore[operator]
    outcomes = [o for o in halt.recent_outcomes(shop.repo) if o["task"] == "c"]
    assert [o["status"] for o in outcomes] == ["waiting"]  # nothing toward the retry halt
    (kept,) = [m for m in worktrees.read_manifests(shop.repo) if m.task_id == "c"]
    assert kept.state is worktrees.ManifestState.WAITING
    assert crash_recovery.recover(shop.repo, shop.store) == []  # the target has not moved since
    # someone fixes it on main; the wait ends by itself and the next attempt lands
    shop.add("fix", "echo fixed > status.txt")
    assert pipeline.run("fix", RunOptions()).status == "done"
    notes = crash_recovery.recover(shop.repo, shop.store)
    assert any("moved on" in note for note in notes), notes
    resumed = shop.task("c")
    assert "paused" not in resumed and recovery_graph.NEEDS_HUMAN not in resumed.get("tags", [])  # type: ignore[operator]
    again = pipeline.run("c", RunOptions())
    assert again.status == "done" and again.attempt == 2, again.reason
    assert again.evidence["diff"]["paths"] == ["c.txt"]


def test_a_human_accepts_a_waiting_task_with_retry(tmp_path: Path) -> None:
    shop, pipeline, _suite = shop_with_a_failing_test(tmp_path)
    shop.add("c", "echo c > c.txt")
    assert pipeline.run("c", RunOptions()).status == "waiting"
    shop.store.mutate(
        lambda g, now: recovery_graph.manual_retry_mutation(
            g, "c", context="fine, go", force=False, config=RepoConfig(), now=now, actor="me"
        )
    )
    task = shop.task("c")
    assert task["status"] == "open" and "paused" not in task and "waiting" not in task["speedrift"]  # type: ignore[operator]


def test_only_failures_made_entirely_of_findings_already_there_are_pre_existing() -> None:
    def verdict(*results: dict[str, object]) -> GateVerdict:
        blocking = [r["gate"] for r in results]
        return GateVerdict(False, "x", {"results": list(results), "blocking": blocking})

    old = {"file": "t.py", "line": 3, "message": "test_x fails", "new": False}
    new = {**old, "new": True}
    assert blame.pre_existing(verdict({"gate": "tests", "status": "warn", "findings": [old]})) == [
        "tests: t.py:3 test_x fails"
    ]
    assert blame.pre_existing(verdict({"gate": "tests", "status": "fail", "findings": [old, new]})) == []
    assert blame.pre_existing(verdict({"gate": "tests", "status": "fail", "findings": []})) == []  # whose?
    assert blame.pre_existing(verdict({"gate": "tests", "status": "skipped", "findings": [old]})) == []
    leaked = GateVerdict(False, "x", {}, FailureClass.SECRET_LEAK)
    assert not blame.fresh_base_may_help(leaked)  # the agent's by construction
