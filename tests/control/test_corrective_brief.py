"""A corrective task carries its whole brief from the moment it is written: goal, context,
acceptance criteria and constraints with the safety line — the lines of the action's Claude and
Codex prompts — so any agent that picks it up gets them. Run through the real handlers on a real
repo, with actions as the hub's own cycle plans them: without prompts."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from speedrift.control.handlers.dispatch import execute
from speedrift.control.handlers.graph import MAX_DESCRIPTION
from speedrift.control.plan.prompts import SAFETY, action_brief, action_prompts
from speedrift.graph import ids, ops
from speedrift.graph.codec import Graph
from speedrift.register.actions import RepairParams, TaskCorrectiveParams
from tests.control.test_handlers import action, add_task, context, grant, repo, store

__all__ = ["repo"]  # the fixture


def test_an_emitted_corrective_task_carries_goal_acceptance_and_the_safety_line(
    repo: Path, tmp_path: Path
) -> None:
    grant(repo, mode="supervise")
    emit = replace(
        action(
            "emit_corrective_task",
            "speedrift-fix-failing-build",
            TaskCorrectiveParams(("build",), corrective_kind="failing", title="Find why build keeps failing"),
        ),
        prompts={},  # the hub's cycle plans without prompts (they are presentation)
    )

    outcome = execute(emit, context(repo, tmp_path))

    assert outcome.status == "succeeded", outcome.detail
    description = store(repo).load().tasks["speedrift-fix-failing-build"]["description"]
    assert (
        "## Goal\n\nResolve the stall in shop (task(s) build) that the hub cannot fix by itself."
        in description
    )
    assert "## Acceptance criteria\n\n1. the cause is understood and written in the task log" in description
    assert "speedrift-fix-failing-build is marked done" in description
    assert "## Constraints" in description and f"- {SAFETY}" in description
    assert f"Repository shop at {repo}." in description  # the context names where to work
    assert "Cycle: c-test" in description and "Reason: ready work waits" in description
    assert "## Prompt for" not in description  # one brief, not a copy of each prompt


def test_the_brief_is_the_same_text_the_prompts_are_made_of(repo: Path, tmp_path: Path) -> None:
    grant(repo, mode="supervise")
    emit = replace(
        action(
            "emit_corrective_task",
            "speedrift-fix-failing-build",
            TaskCorrectiveParams(("build",), corrective_kind="failing", title="Find why build keeps failing"),
        ),
        prompts={},
    )
    execute(emit, context(repo, tmp_path))
    description = store(repo).load().tasks["speedrift-fix-failing-build"]["description"]

    goal, _context, acceptance, constraints = action_brief(emit, None, None, path=str(repo))
    codex = action_prompts(emit, None, None)["codex"]
    for line in (goal, *acceptance, *constraints):
        assert line in description and line in codex


def test_a_delegated_dependency_repair_carries_the_brief_of_the_chain_as_it_is_now(
    repo: Path, tmp_path: Path
) -> None:
    grant(repo, mode="supervise")
    add_task(repo, "broken", after=["ghost"])
    repair = replace(
        action(
            "repair_dependencies",
            "speedrift-fix-dependencies-broken-ghost",
            RepairParams(missing=(), failed_blockers=0, corrective_kind="dependencies", title=""),
        ),
        prompts={},
    )  # planned before the chain broke: the handler describes it as it finds it

    outcome = execute(repair, context(repo, tmp_path))

    assert outcome.status == "delegated", outcome.detail
    description = store(repo).load().tasks[outcome.evidence["task"]]["description"]
    assert "## Goal\n\nRepair the dependency chain in shop's task graph." in description
    assert "- broken waits on missing ghost" in description
    assert "`speedrift blocked` lists no task waiting on a missing or failed blocker" in description
    assert f"- {SAFETY}" in description


def test_a_huge_chain_keeps_the_description_small_and_the_safety_line_whole(
    repo: Path, tmp_path: Path
) -> None:
    grant(repo, mode="supervise")
    long_ids = [f"task-{n:03d}-" + "x" * 100 for n in range(60)]
    store(repo).mutate(lambda g, now: _many(g, long_ids, now))
    prompts = {"claude": "c" * 40_000, "codex": "x" * 40_000}  # a presented action's prompts
    repair = replace(
        action(
            "repair_dependencies",
            "speedrift-fix-dependencies-many",
            RepairParams(missing=(), failed_blockers=0, corrective_kind="dependencies", title=""),
        ),
        prompts=prompts,
    )

    outcome = execute(repair, context(repo, tmp_path))

    description = store(repo).load().tasks[outcome.evidence["task"]]["description"]
    assert len(description) <= MAX_DESCRIPTION < ids.MAX_DESCRIPTION_LENGTH
    assert f"- {SAFETY}" in description and "## Acceptance criteria" in description


def _many(graph: Graph, task_ids: list[str], now: datetime) -> ops.Mutation:
    mutation = ops.Mutation()
    for task_id in task_ids:
        spec = ops.NewTask(task_id, task_id=task_id, after=[f"{task_id}-gone"])
        added = ops.add_task(graph, spec, now=now, actor="test")
        graph.tasks[task_id] = added.tasks[0]
        mutation.tasks += added.tasks
        mutation.records += added.records
    return mutation
