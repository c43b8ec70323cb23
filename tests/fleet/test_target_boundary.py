"""The target branch moves only through the merge queue: a commit an agent makes directly on it is a
boundary violation — refused, named, never built upon, never claimed by the task's evidence."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path

from speedrift.fleet import recovery_graph
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import AttemptResult, RunOptions
from speedrift.fleet.service import ServiceLoop
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.repo import landings
from tests.fleet.conftest import Workshop
from tests.gitrepo import commit_file, sh_git


def test_a_commit_an_agent_makes_on_the_target_is_refused_named_and_not_claimed(workshop: Workshop) -> None:
    """The report: a shell agent ran `git -C <main checkout> commit -am …` adding a key; the queue
    rebased the attempt onto it, the task was done and its evidence listed the bypass as its own."""
    repo = workshop.repo
    bypass = (
        f"printf 'API_KEY = \"not-a-real-key\"\\n' >> {repo}/app.py && git -C {repo} commit -qam 'add key'"
    )
    workshop.add("sneaky", f"{bypass} && echo mine > mine.txt")
    before = sh_git(repo, "rev-parse", "main")
    result = workshop.pipeline().run("sneaky", RunOptions())
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
    ServiceLoop(workshop.pipeline()).retry_pending_merges()
    assert sh_git(repo, "rev-parse", "main") == own  # nothing built on it
    task = workshop.task("add-new")
    assert task["status"] == "open" and task["speedrift"]["waiting"]["foreign_commits"] == [own]  # type: ignore[index]
