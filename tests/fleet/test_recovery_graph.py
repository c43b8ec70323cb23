"""Recovery decisions written into a real graph store: splits, re-planning, humans, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from speedrift.errors import Refused
from speedrift.failure_class import FailureClass
from speedrift.fleet import recovery_graph
from speedrift.fleet.classify import Classification
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.recovery import Decision, decide
from speedrift.graph import ops, query
from speedrift.graph.codec import Graph
from speedrift.times import now_utc
from tests.fleet.conftest import Workshop

ACTOR = "speedrift@test"


def fail_as(
    workshop: Workshop, task_id: str, cls: str, *, files: tuple[str, ...] = (), model: str | None = "sonnet"
) -> Decision:
    """Fail a task as the pipeline does: ops.fail plus the classification and its decision."""
    found = Classification(FailureClass(cls), [f"{cls}: evidence"], "test", None, files)
    holder: list[Decision] = []

    def build(graph: Graph, now: datetime) -> ops.Mutation:
        task = graph.tasks[task_id]
        made = decide(
            found,
            task=task,
            attempt=1,
            runtime="claude",
            current_model=model,
            config=RepoConfig(),
            reason="x",
        )
        holder.append(made)
        mutation = ops.fail(graph, task_id, reason=f"{cls}: x", now=now, actor=ACTOR)
        return recovery_graph.annotate_failure(
            graph, task_id, found, made, reason="x", now=now, actor=ACTOR, within=mutation
        )

    workshop.store.mutate(build, actor=ACTOR)
    return holder[0]


def task_of(workshop: Workshop, task_id: str) -> dict[str, Any]:
    return workshop.store.load().tasks[task_id]


def speedrift_of(workshop: Workshop, task_id: str) -> dict[str, Any]:
    data = task_of(workshop, task_id).get("speedrift")
    assert isinstance(data, dict)
    return data


UNDECLARED = ("api/routes.py", "api/models.py", "web/page.tsx")


def test_a_split_writes_one_subtask_per_file_group_and_blocks_the_task_on_them(workshop: Workshop) -> None:
    workshop.add("big", description="Build the feature", touch=["core/*.py"], after=[])
    made = fail_as(workshop, "big", "decomposition_error", files=UNDECLARED)
    assert made.recovery == "split_task"
    assert (
        recovery_graph.apply(workshop.store, "big", made, actor=ACTOR) == "split into big-part-1, big-part-2"
    )
    tasks = workshop.store.load().tasks
    assert tasks["big-part-1"]["speedrift"]["touch"] == ["api/models.py", "api/routes.py"]
    assert tasks["big-part-2"]["speedrift"]["touch"] == ["web/page.tsx"]
    assert "Split from `big`" in tasks["big-part-1"]["description"]
    assert "Build the feature" in tasks["big-part-1"]["description"]
    big = tasks["big"]
    assert big["status"] == "open" and big["after"] == ["big-part-1", "big-part-2"]
    ready = [t["id"] for t in query.ready(workshop.store.load(), now_utc())]
    assert "big" not in ready and {"big-part-1", "big-part-2"} <= set(ready)


def test_applying_a_split_twice_changes_nothing_the_second_time(workshop: Workshop) -> None:
    workshop.add("big")
    made = fail_as(workshop, "big", "decomposition_error", files=UNDECLARED)
    recovery_graph.apply(workshop.store, "big", made, actor=ACTOR)
    before = workshop.store.graph_path.read_bytes()
    assert recovery_graph.apply(workshop.store, "big", made, actor=ACTOR) is None
    assert workshop.store.graph_path.read_bytes() == before


def test_a_second_split_along_the_same_files_reuses_the_existing_parts(workshop: Workshop) -> None:
    workshop.add("big")
    made = fail_as(workshop, "big", "decomposition_error", files=UNDECLARED)
    recovery_graph.apply(workshop.store, "big", made, actor=ACTOR)
    workshop.store.mutate(lambda g, now: ops.claim(g, "big", now=now, actor=ACTOR), actor=ACTOR)
    again = fail_as(workshop, "big", "decomposition_error", files=(*UNDECLARED, "docs/api.md"))
    assert recovery_graph.apply(workshop.store, "big", again, actor=ACTOR) == "split into big-part-3"
    tasks = workshop.store.load().tasks
    assert sorted(t for t in tasks if t.startswith("big-part-")) == ["big-part-1", "big-part-2", "big-part-3"]
    assert tasks["big-part-3"]["speedrift"]["touch"] == ["docs/api.md"]
    assert tasks["big"]["after"] == ["big-part-1", "big-part-2", "big-part-3"]


def test_replanning_reopens_the_task_paused_and_tagged_so_nothing_runs_it_unchanged(
    workshop: Workshop,
) -> None:
    workshop.add("owned")
    made = fail_as(workshop, "owned", "scope_violation", files=("shared.py",))
    assert recovery_graph.apply(workshop.store, "owned", made, actor=ACTOR)
    task = task_of(workshop, "owned")
    assert (task["status"], task["paused"], task["tags"]) == ("open", True, ["needs-replan"])
    assert "Needs re-planning (scope_violation)" in task["log"][-1]["message"]
    assert "owned" not in [t["id"] for t in query.ready(workshop.store.load(), now_utc())]


def test_a_human_escalation_tags_the_failed_task_and_logs_the_question(workshop: Workshop) -> None:
    workshop.add("leaky")
    made = fail_as(workshop, "leaky", "secret_leak", files=("settings.py",))
    assert recovery_graph.apply(workshop.store, "leaky", made, actor=ACTOR) is None  # nothing more to write
    task = task_of(workshop, "leaky")
    assert (task["status"], task["tags"]) == ("failed", ["needs-human"])
    assert (
        "Needs a human: The attempt wrote what looks like a secret (settings.py" in task["log"][-1]["message"]
    )
    data = speedrift_of(workshop, "leaky")
    assert data["failure_class"] == "secret_leak" and data["recovery"]["recovery"] == "escalate_human"
    assert "failure_class" not in task  # wg's field gets a wg value or nothing


def test_an_automatic_retry_escalates_the_model_and_carries_the_diagnosis(workshop: Workshop) -> None:
    workshop.add("heavy", model="claude:sonnet")
    made = fail_as(workshop, "heavy", "exceeded_capacity")
    when = datetime.now(UTC) + timedelta(minutes=5)
    workshop.store.mutate(
        lambda g, now: recovery_graph.retry_mutation(g, "heavy", made, when=when, now=now, actor=ACTOR),
        actor=ACTOR,
    )
    task = task_of(workshop, "heavy")
    data = speedrift_of(workshop, "heavy")
    assert (task["status"], task["model"], task["tried_models"]) == ("open", "claude:opus", ["claude:sonnet"])
    assert "exceeded_capacity" in data["retry_context"] and "claude:opus" not in data.get("failure_class", "")
    assert "failure_class" not in data and "recovery" not in data  # the failure is history now
    assert [f["class"] for f in data["failures"]] == ["exceeded_capacity"] and data["failures"][0][
        "retried_at"
    ]
    assert task["not_before"].startswith(when.strftime("%Y-%m-%dT%H:%M"))


def test_a_withheld_retry_is_marked_once(workshop: Workshop) -> None:
    workshop.add("flaky")
    fail_as(workshop, "flaky", "transient_infra")
    for _ in range(2):
        workshop.store.mutate(
            lambda g, now: recovery_graph.withhold_mutation(
                g, "flaky", "halted: 5 of 5", now=now, actor=ACTOR
            ),
            actor=ACTOR,
        )
    task = task_of(workshop, "flaky")
    assert speedrift_of(workshop, "flaky")["recovery"]["withheld"] == "halted: 5 of 5"
    assert sum("withheld" in e["message"] for e in task["log"]) == 1


def test_a_manual_retry_of_a_non_retryable_class_is_refused_without_context(workshop: Workshop) -> None:
    workshop.add("gap")
    fail_as(workshop, "gap", "spec_gap")

    def retry(context: str | None, force: bool) -> ops.Mutation:
        return workshop.store.mutate(
            lambda g, now: recovery_graph.manual_retry_mutation(
                g, "gap", context=context, force=force, config=RepoConfig(), now=now, actor=ACTOR
            ),
            actor=ACTOR,
        )

    with pytest.raises(Refused, match="spec_gap"):
        retry(None, False)
    assert task_of(workshop, "gap")["status"] == "failed"
    assert retry("Use ISO dates", False).tasks[0]["status"] == "open"


def test_a_manual_retry_keeps_the_diagnosis_but_never_changes_the_model(workshop: Workshop) -> None:
    workshop.add("lint", model="claude:sonnet")
    fail_as(workshop, "lint", "implementation_error")
    workshop.store.mutate(
        lambda g, now: recovery_graph.manual_retry_mutation(
            g, "lint", context="mind the imports", force=False, config=RepoConfig(), now=now, actor=ACTOR
        ),
        actor=ACTOR,
    )
    data = speedrift_of(workshop, "lint")
    assert (
        data["retry_context"].startswith("mind the imports")
        and "implementation_error" in data["retry_context"]
    )
    assert task_of(workshop, "lint")["model"] == "claude:sonnet"


def test_a_task_the_real_scope_gate_fails_for_undeclared_files_is_split_end_to_end(
    workshop: Workshop,
) -> None:
    from speedrift.fleet.pipeline import Pipeline, RunOptions
    from speedrift.gates.scope import ScopeGate
    from speedrift.gates.suite import GateSuite

    # a scripted agent (the shell runtime's configured command, reading the prompt): a task with
    # `exec` is a plain command, and a plain command is never split
    write = (
        "mkdir -p core api web; echo 1 > core/a.py; echo 2 > api/b.py; echo 3 > api/c.py; echo 4 > web/d.ts"
    )
    workshop.add("wide", touch=["core/*.py"])
    config = RepoConfig.model_validate(
        {"default_runtime": "shell", "runtimes": {"shell": {"command": ["/bin/sh", "-c", write]}}}
    )
    suite = GateSuite(store=workshop.store, gates=(ScopeGate(),), log_to_task=False)
    pipeline = Pipeline(workshop.repo, workshop.store, config, gates=suite)
    result = pipeline.run("wide", RunOptions())
    assert (result.status, result.failure) == ("failed", "decomposition_error")
    assert result.recovery is not None and result.recovery["recovery"] == "split_task"
    tasks = workshop.store.load().tasks
    assert tasks["wide-part-1"]["speedrift"]["touch"] == ["api/b.py", "api/c.py"]
    assert tasks["wide-part-2"]["speedrift"]["touch"] == ["web/d.ts"]
    wide = tasks["wide"]
    assert wide["status"] == "open" and wide["after"] == ["wide-part-1", "wide-part-2"]
    history = wide["speedrift"]["failures"]
    assert [(h["class"], h["recovery"]) for h in history] == [("decomposition_error", "split_task")]
