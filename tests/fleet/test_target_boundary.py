"""The target branch moves only through the merge queue: a commit an agent makes directly on it is a
boundary violation — refused, named, never built upon, never claimed by the task's evidence."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from speedrift.failure_class import FailureClass
from speedrift.fleet import recovery_graph, service
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.fleet.service import ServiceLoop
from speedrift.gates.verdict import GateVerdict
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import Task
from speedrift.repo import landings
from tests.fleet.conftest import Workshop
from tests.gitrepo import commit_file, sh_git


def test_a_commit_an_agent_makes_on_the_target_is_refused_named_and_not_claimed(workshop: Workshop) -> None:
    """The report: a shell agent ran `git -C <main checkout> commit -am …` adding a key; the queue
    rebased the attempt onto it, the task was done and its evidence listed the bypass as its own.
    Unsandboxed: a sandboxed agent cannot write the main checkout or the repository's refs at all
    (tests/fleet/test_sandbox.py); this is what the queue does when an agent could."""
    repo = workshop.repo
    bypass = (
        f"printf 'API_KEY = \"not-a-real-key\"\\n' >> {repo}/app.py && git -C {repo} commit -qam 'add key'"
    )
    workshop.add("sneaky", f"{bypass} && echo mine > mine.txt")
    before = sh_git(repo, "rev-parse", "main")
    result = workshop.pipeline(sandbox={"mode": "off"}).run("sneaky", RunOptions())
    foreign = sh_git(repo, "rev-parse", "main")
    assert foreign != before and sh_git(repo, "log", "-1", "--format=%s", "main") == "add key"
    assert result.status == "waiting" and result.failure is None
    assert foreign[:12] in result.reason and "add key" in result.reason
    assert sh_git(repo, "rev-list", "--count", f"{before}..main") == "1"  # nothing built on the bypass
    assert not (repo / "mine.txt").exists()
    task = workshop.task("sneaky")
    waiting = task["speedrift"]["waiting"]  # type: ignore[index]
    assert waiting["kind"] == recovery_graph.BOUNDARY_VIOLATION and waiting["foreign_commits"] == [foreign]
    assert task["status"] == "open" and task.get("paused") is True
    assert recovery_graph.NEEDS_HUMAN in task["tags"]  # type: ignore[operator]
    asked = task["log"][-1]["message"]  # type: ignore[index]
    assert asked.startswith("Needs a human: ") and "`speedrift retry sneaky`" in asked
    evidence = json.loads(Path(result.run_dir or "", "evidence.json").read_text())
    assert evidence["waiting"] == "boundary_violation" and evidence["foreign_commits"] == [foreign]
    assert "landed_commit" not in evidence
    assert landings.read(repo) == []  # the bypass is no landing

    # a human accepts the new base: a fresh attempt from main's tip, whose evidence is its own
    workshop.store.mutate(
        lambda g, now: recovery_graph.manual_retry_mutation(
            g, "sneaky", context=None, force=False, config=RepoConfig(), now=now, actor="me"
        )
    )
    workshop.store.mutate(lambda g, now: _edit_exec(g, now, "echo mine > mine.txt"))
    again = workshop.pipeline().run("sneaky", RunOptions())
    assert again.status == "done", again.reason
    assert again.evidence["landed_onto"] == foreign and again.evidence["base_commit"] == foreign
    assert again.evidence["diff"]["paths"] == ["mine.txt"]  # not app.py: the bypass is not its work
    assert [entry.new for entry in landings.read(repo)] == [again.landed_commit]


def test_evidence_diff_stats_count_only_the_attempts_own_commits(workshop: Workshop) -> None:
    """Another task landing between this attempt's base and its landing is not this attempt's work."""
    flag = workshop.repo.parent / "go"
    workshop.add("slow", f"touch {flag}.started; while [ ! -e {flag} ]; do sleep 0.05; done; echo s > s.txt")
    workshop.add("quick", "echo q > q.txt")
    results: list[AttemptResult] = []
    thread = threading.Thread(target=lambda: results.append(workshop.pipeline().run("slow", RunOptions())))
    thread.start()
    deadline = time.monotonic() + 60
    while not Path(f"{flag}.started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    quick = workshop.pipeline().run("quick", RunOptions())
    flag.touch()
    thread.join(timeout=120)
    (slow,) = results
    assert quick.status == slow.status == "done", (quick.reason, slow.reason)
    assert slow.evidence["diff"] == {"files": 1, "insertions": 1, "deletions": 0, "paths": ["s.txt"]}
    assert slow.evidence["landed_onto"] == quick.landed_commit


def _edit_exec(graph: Graph, now: datetime, command: str) -> ops.Mutation:
    return ops.set_fields(graph, "sneaky", {"exec": command}, now=now, actor="me")


def test_a_merge_pending_attempt_is_not_built_on_a_commit_made_while_it_waited(workshop: Workshop) -> None:
    repo = workshop.repo
    workshop.add("add-new", "echo agent > new.txt")
    (repo / "new.txt").write_text("the user's own, untracked\n")  # in the way of the fast-forward
    assert workshop.pipeline().run("add-new", RunOptions()).status == "merge-pending"
    (repo / "new.txt").unlink()
    own = commit_file(repo, "README.md", "# edited and committed by hand\n", "by hand")
    loop = ServiceLoop(workshop.pipeline())
    loop.retry_pending_merges()  # resumed in a worker process, like an attempt
    loop.wait_idle(timeout=120)
    assert sh_git(repo, "rev-parse", "main") == own  # nothing built on it
    task = workshop.task("add-new")
    assert task["status"] == "open" and task["speedrift"]["waiting"]["foreign_commits"] == [own]  # type: ignore[index]


@dataclass
class PairGate:
    """A gate in miniature (picklable: it travels to the worker process with the pipeline): the
    tree fails when it holds both new.txt and other.txt — each task alone passes, together not."""

    def check(self, repo: Path, worktree: Path, base: str, tip: str, task: Task) -> GateVerdict:
        listed = sh_git(repo, "ls-tree", "--name-only", tip).split()
        if "new.txt" in listed and "other.txt" in listed:
            failed = {"gate": "tests", "status": "fail", "required": True, "findings": []}
            evidence = {"results": [failed], "blocking": ["tests"], "tip": tip}
            return GateVerdict(False, "blocked by tests", evidence, FailureClass.REGRESSION)
        passed = {"gate": "tests", "status": "pass", "required": True, "findings": []}
        return GateVerdict(True, "tests pass", {"results": [passed], "blocking": []}, verified=True)


def test_a_resumed_landing_is_gated_again_on_the_tree_that_would_land(workshop: Workshop) -> None:
    """The report: a merge-pending tip, rebased onto what landed while it waited, landed behind a
    gate that checked nothing. Each of the two tasks passes alone; together the gate fails."""
    repo = workshop.repo
    pipeline = Pipeline(repo, workshop.store, RepoConfig(), gates=PairGate())
    workshop.add("add-new", "echo agent > new.txt")
    workshop.add("add-other", "echo other > other.txt")
    (repo / "new.txt").write_text("the user's own, untracked\n")  # in the way of the fast-forward
    assert pipeline.run("add-new", RunOptions()).status == "merge-pending"
    assert pipeline.run("add-other", RunOptions()).status == "done"  # main moves on meanwhile
    (repo / "new.txt").unlink()
    before = sh_git(repo, "rev-parse", "main")
    loop = ServiceLoop(pipeline)
    loop.retry_pending_merges()
    loop.wait_idle(timeout=120)
    assert sh_git(repo, "rev-parse", "main") == before  # the combination never landed
    task = workshop.task("add-new")
    assert task["status"] == "failed" and "blocked by tests" in str(task.get("failure_reason")), task
    assert "add-new" not in loop.merge_retry  # failed, not pending: no further resume


def test_a_landing_still_refused_is_resumed_again_only_after_a_backoff(workshop: Workshop) -> None:
    repo = workshop.repo
    workshop.add("add-new", "echo agent > new.txt")
    (repo / "new.txt").write_text("the user's own, untracked\n")
    assert workshop.pipeline().run("add-new", RunOptions()).status == "merge-pending"
    moment = [1000.0]  # the loop's clock, moved by hand
    loop = ServiceLoop(workshop.pipeline(), clock=lambda: moment[0])
    loop.retry_pending_merges()
    loop.wait_idle(timeout=120)
    due, delay = loop.merge_retry["add-new"]
    assert delay == service.MERGE_RETRY_S and due == moment[0] + delay
    loop.retry_pending_merges()  # before it is due: nothing starts
    assert loop.running == {}
    moment[0] = due  # due now (instead of sleeping through the backoff)
    loop.retry_pending_merges()
    loop.wait_idle(timeout=120)
    assert loop.merge_retry["add-new"][1] == 2 * service.MERGE_RETRY_S  # doubled
    (repo / "new.txt").unlink()
    moment[0] = loop.merge_retry["add-new"][0]
    loop.retry_pending_merges()
    loop.wait_idle(timeout=120)
    assert workshop.task("add-new")["status"] == "done" and "add-new" not in loop.merge_retry
    assert (repo / "new.txt").read_text() == "agent\n"


def test_a_pending_landing_whose_task_a_human_took_back_is_not_resumed(workshop: Workshop) -> None:
    repo = workshop.repo
    workshop.add("add-new", "echo agent > new.txt")
    (repo / "new.txt").write_text("the user's own, untracked\n")
    assert workshop.pipeline().run("add-new", RunOptions()).status == "merge-pending"
    workshop.store.mutate(lambda g, now: ops.unclaim(g, "add-new", now=now, actor="me", message="mine now"))
    (repo / "new.txt").unlink()
    loop = ServiceLoop(workshop.pipeline())
    loop.retry_pending_merges()
    assert loop.running == {} and loop.merge_retry == {}
    assert workshop.task("add-new")["status"] == "open"
    assert not (repo / "new.txt").exists()  # nothing landed behind the human's back
