"""How the pipeline records a failed attempt: class, decision, outcome ledger, wg's field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speedrift.fleet import halt
from speedrift.fleet.pipeline import RunOptions
from tests.fleet.conftest import Workshop


def task_of(workshop: Workshop, task_id: str) -> dict[str, Any]:
    return workshop.store.load().tasks[task_id]


def test_a_worktree_that_cannot_be_created_is_an_env_bootstrap_failure_for_a_human(
    workshop: Workshop,
) -> None:
    (workshop.repo / ".speedrift").mkdir(exist_ok=True)
    (workshop.repo / ".speedrift" / "worktrees").write_text("not a directory")
    workshop.add("t", "true")
    with pytest.raises(FileExistsError):
        workshop.pipeline().run("t", RunOptions())
    task = task_of(workshop, "t")
    assert task["status"] == "failed" and task["failure_class"] == "wrapper-internal"
    assert task["speedrift"]["failure_class"] == "env_bootstrap"
    assert task["speedrift"]["recovery"]["recovery"] == "escalate_human"
    assert task["tags"] == ["needs-human"]
    assert [(o["task"], o["status"], o["class"]) for o in halt.recent_outcomes(workshop.repo)] == [
        ("t", "failed", "env_bootstrap")
    ]


def test_the_evidence_of_a_failed_attempt_holds_the_class_and_the_decision(workshop: Workshop) -> None:
    workshop.add("crash", "kill -9 $$")
    result = workshop.pipeline().run("crash", RunOptions())
    evidence = json.loads(Path(result.run_dir or "", "evidence.json").read_text())
    assert (evidence["failure"], evidence["failure_kind"]) == ("transient_infra", "crashed")
    assert evidence["classification"]["rule"] == "transient"
    assert evidence["recovery"]["recovery"] == "retry" and evidence["recovery"]["automatic"] is True
    assert result.recovery == evidence["recovery"]
    task = task_of(workshop, "crash")
    assert task["failure_class"] == "agent-exit-nonzero"  # the runtime's own verdict, in wg's enum


def test_a_finished_run_and_a_failed_one_are_both_counted_for_the_halt(workshop: Workshop) -> None:
    workshop.add("ok", "echo ok > ok.txt")
    workshop.add("bad", "exit 2")
    workshop.pipeline().run("ok", RunOptions())
    workshop.pipeline().run("bad", RunOptions())
    assert [(o["task"], o["status"]) for o in halt.recent_outcomes(workshop.repo)] == [
        ("ok", "done"),
        ("bad", "failed"),
    ]


def test_a_credential_in_the_agents_words_never_reaches_the_graph(workshop: Workshop) -> None:
    key = "AKIA" + "Z7Q3JX5RLP2MWY4K"
    report = json.dumps({"status": "blocked", "summary": f"the key {key} is rejected; which one to use?"})
    workshop.add("creds", f"printf '%s' '{report}' > \"$SPEEDRIFT_RESULT\"")
    workshop.pipeline().run("creds", RunOptions())
    task = task_of(workshop, "creds")
    written = {k: v for k, v in task.items() if k != "exec"}  # the test's own command holds it
    assert key not in json.dumps(written)
    assert task["speedrift"]["failure_class"] == "spec_gap"
    assert "[REDACTED:aws-access-key]" in task["speedrift"]["recovery"]["question"]
