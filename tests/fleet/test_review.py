"""The Reviewer wired into landing, end to end: a real pipeline over a real repository, the fake
claude CLI (tests/agents/fakes) playing the developer and the Reviewer run by run (a scenario with
per-role runs, counted in the fake's counter file; unsandboxed, so the fake can count)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from speedrift import layout
from speedrift.cli import parser
from speedrift.failure_class import FailureClass
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.pipeline import RunOptions
from speedrift.fleet.roles.names import ReviewMode
from speedrift.graph import ops
from speedrift.repo import worktrees
from tests.cli.support import Cli, graph_tasks
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git
from tests.waiting import wait_for

Steps = list[dict[str, Any]]
FAKE_ENV = {"allow": ["FAKE_AGENT_SCENARIO"]}
UNSANDBOXED = {"mode": "off"}
FINISH = {"do": "finish", "text": "Done."}

FINDING = {
    "severity": "major",
    "file": "app.py",
    "line": 1,
    "message": "It prints v2; the task asks for v3.",
    "suggestion": "print('v3')",
}
APPROVE = {"verdict": "approve", "summary": "Prints v3 as the task asks.", "findings": []}
CHANGES = {"verdict": "request_changes", "summary": "Prints the wrong version.", "findings": [FINDING]}
REJECT = {"verdict": "reject", "summary": "Deletes the app instead of changing it.", "findings": [FINDING]}


def plays(file: Path, developer: list[Steps], reviewer: list[Steps] | None = None) -> None:
    roles: dict[str, list[Steps]] = {"developer": developer}
    if reviewer is not None:
        roles["reviewer"] = reviewer
    file.write_text(json.dumps({"roles": roles}))


def writes(content: str) -> Steps:
    return [{"do": "start"}, {"do": "edit", "path": "app.py", "content": content}, FINISH]


def says(output: dict[str, Any]) -> Steps:
    return [{"do": "start"}, {"do": "result_file", "report": output}, FINISH]


def runs_of(file: Path) -> dict[str, int]:
    """How many runs of each role the fake made."""
    counter = Path(f"{file}.count.json")
    counts: dict[str, int] = json.loads(counter.read_text()) if counter.exists() else {}
    return counts


def run(workshop: Workshop, task_id: str = "bump", mode: str = "blocking", **review: Any) -> AttemptResult:
    if task_id not in workshop.store.load().tasks:
        workshop.add(task_id)
    pipeline = workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED, review={"mode": mode, **review})
    return pipeline.run(task_id, RunOptions())


def on_main(workshop: Workshop) -> str:
    """app.py on main (its last line, without the newline)."""
    return sh_git(workshop.repo, "show", "main:app.py")


def log_of(workshop: Workshop, task_id: str) -> list[str]:
    log = workshop.task(task_id).get("log")
    assert isinstance(log, list)
    return [str(entry["message"]) for entry in log]


def set_review(workshop: Workshop, task_id: str, mode: str) -> None:
    workshop.store.mutate(
        lambda g, now: ops.set_fields(g, task_id, speedrift={"review": mode}, now=now, actor="test")
    )


# --- blocking ---------------------------------------------------------------------------------------------
def test_a_review_that_requests_changes_then_approves_lands_the_revised_work(
    workshop: Workshop, scenario: Path
) -> None:
    plays(scenario, [writes("print('v2')\n"), writes("print('v3')\n")], [says(CHANGES), says(APPROVE)])
    result = run(workshop)
    assert result.status == "done", result.reason
    assert on_main(workshop) == "print('v3')"  # the revision, not the first try
    review = result.evidence["review"]
    assert [r["verdict"] for r in review["rounds"]] == ["request_changes", "approve"]
    assert review["final"] == "approve" and review["mode"] == "blocking"
    assert review["rounds"][0]["findings"][0]["file"] == "app.py"
    assert all(Path(r["record_dir"], "role.json").is_file() for r in review["rounds"])
    run_dir = Path(str(result.run_dir))
    revised = (run_dir / "prompt-revision-1.md").read_text()
    assert "## Review findings to address now" in revised
    assert "- [major] app.py:1 — It prints v2; the task asks for v3. (suggestion: print('v3'))" in revised
    assert "Review findings" not in (run_dir / "prompt-initial.md").read_text()
    # both runs' events stay in the one log, the revision's marked where it begins
    events = [json.loads(line) for line in layout.events_path(run_dir).read_text().splitlines()]
    marks = [e for e in events if e.get("data", {}).get("revision") == 1]
    assert len(marks) == 1 and 0 < events.index(marks[0]) < len(events) - 1
    assert sum(1 for e in events if e["kind"] == "finished") == 2
    assert runs_of(scenario) == {"developer": 2, "reviewer": 2}
    # the second review saw the first one's findings
    second = Path(review["rounds"][1]["record_dir"], "round-1", "prompt.md").read_text()
    assert "- [major] app.py:1" in second.split("## Findings of the previous round")[1]
    assert any("Review round 1 (blocking): request_changes" in line for line in log_of(workshop, "bump"))
    assert any("Review round 2 (blocking): approve" in line for line in log_of(workshop, "bump"))


def test_a_rejected_review_fails_the_attempt_keeping_its_work_for_a_human(
    workshop: Workshop, scenario: Path
) -> None:
    plays(scenario, [writes("print('v2')\n")], [says(REJECT)])
    result = run(workshop)
    assert result.status == "failed" and result.failure is FailureClass.REVIEW_REJECTED
    assert "rejected" in result.reason and "Deletes the app" in result.reason
    assert on_main(workshop) == "print('v1')"  # nothing landed
    assert result.recovery is not None and result.recovery["recovery"] == "escalate_human"
    (manifest,) = [m for m in worktrees.read_manifests(workshop.repo) if m.task_id == "bump"]
    assert (Path(manifest.path) / "app.py").read_text() == "print('v2')\n"  # the work is kept
    assert result.evidence["classification"]["rule"] == "review-rejected"
    assert result.evidence["review"]["final"] == "reject"
    assert "app.py:1 major" in "\n".join(result.evidence["classification"]["evidence"])
    task = workshop.task("bump")
    assert task["status"] == "failed"
    assert runs_of(scenario) == {"developer": 1, "reviewer": 1}  # a reject is never revised


def test_changes_still_requested_when_the_rounds_run_out_fail_as_review_rejected(
    workshop: Workshop, scenario: Path
) -> None:
    plays(scenario, [writes("print('v2')\n"), writes("print('v2.5')\n")], [says(CHANGES)])
    result = run(workshop, max_rounds=1)
    assert result.status == "failed" and result.failure is FailureClass.REVIEW_REJECTED
    assert "changes still requested after 2 review rounds" in result.reason
    assert runs_of(scenario) == {"developer": 2, "reviewer": 2}
    assert on_main(workshop) == "print('v1')"
    (manifest,) = [m for m in worktrees.read_manifests(workshop.repo) if m.task_id == "bump"]
    assert (Path(manifest.path) / "app.py").read_text() == "print('v2.5')\n"
    assert [r["verdict"] for r in result.evidence["review"]["rounds"]] == ["request_changes"] * 2


def test_an_invalid_reviewer_output_twice_in_blocking_mode_fails_as_invalid_output(
    workshop: Workshop, scenario: Path
) -> None:
    printed = [{"do": "start"}, {"do": "finish", "text": json.dumps(APPROVE)}]  # printed, never reported
    plays(scenario, [writes("print('v2')\n")], [printed])
    result = run(workshop)
    assert result.status == "failed" and result.failure is FailureClass.INVALID_OUTPUT
    assert on_main(workshop) == "print('v1')"
    assert runs_of(scenario) == {"developer": 1, "reviewer": 2}  # one corrected round, no third
    assert result.evidence["review"]["final"] == "invalid_output"
    assert result.recovery is not None and result.recovery["recovery"] == "escalate_human"


def test_a_failed_reviewer_run_in_blocking_mode_is_that_failure_and_nothing_lands(
    workshop: Workshop, scenario: Path
) -> None:
    plays(scenario, [writes("print('v2')\n")], [[{"do": "start"}, {"do": "usage_limit", "reset_in_s": 5400}]])
    result = run(workshop)
    assert result.status == "failed" and result.failure is FailureClass.USAGE_LIMIT
    assert result.reason.startswith("the review run failed")
    assert result.reset_at is not None  # retried once the limit resets
    assert on_main(workshop) == "print('v1')"
    assert result.evidence["review"]["rounds"][0]["failure"] == "usage_limit"


def test_changes_requested_of_a_shell_task_fail_at_once_its_command_reads_no_findings(
    workshop: Workshop, scenario: Path
) -> None:
    plays(scenario, [[FINISH]], [says(CHANGES)])
    workshop.add("shell-bump", "echo \"print('v2')\" > app.py")
    result = run(workshop, "shell-bump")
    assert result.failure is FailureClass.REVIEW_REJECTED
    assert "a shell task's command reads no findings" in result.reason
    assert runs_of(scenario) == {"reviewer": 1}  # no revision round, no second review
    assert on_main(workshop) == "print('v1')"


# --- advisory, off, and the task's own mode -------------------------------------------------------------
def test_an_advisory_reject_is_recorded_and_the_work_lands(workshop: Workshop, scenario: Path) -> None:
    plays(scenario, [writes("print('v2')\n")], [says(REJECT)])
    result = run(workshop, mode="advisory")
    assert result.status == "done", result.reason
    assert on_main(workshop) == "print('v2')"
    review = result.evidence["review"]
    assert review["mode"] == "advisory" and review["final"] == "reject" and review["cleared"] is True
    assert review["rounds"][0]["summary"] == REJECT["summary"]
    assert any(
        "Review round 1 (advisory): reject" in line and "the landing goes on" in line
        for line in log_of(workshop, "bump")
    )


def test_a_cancelled_review_never_lets_the_attempt_land_even_advisory(
    workshop: Workshop, scenario: Path, tmp_path: Path
) -> None:
    started = tmp_path / "reviewer-started"
    waits: Steps = [{"do": "start"}, {"do": "record", "path": str(started)}, {"do": "sleep", "s": 120}]
    plays(scenario, [writes("print('v2')\n")], [waits])
    workshop.add("bump")
    cancel = threading.Event()

    def cancel_once_the_reviewer_runs() -> None:
        wait_for(started.exists, "the reviewer's run")
        cancel.set()

    helper = threading.Thread(target=cancel_once_the_reviewer_runs)
    helper.start()
    pipeline = workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED, review={"mode": "advisory"})
    result = pipeline.run("bump", RunOptions(cancel=cancel))
    helper.join()
    assert result.status == "failed" and result.reason == "cancelled"
    assert on_main(workshop) == "print('v1')"
    assert result.evidence["review"]["rounds"][0]["failure"] == "crashed"
    assert result.evidence["review"]["cleared"] is False


def test_mode_off_never_starts_the_reviewer(workshop: Workshop, scenario: Path) -> None:
    plays(scenario, [writes("print('v2')\n")], [says(REJECT)])
    result = run(workshop, mode="off")
    assert result.status == "done" and on_main(workshop) == "print('v2')"
    assert runs_of(scenario) == {"developer": 1}
    assert "review" not in result.evidence
    assert not (Path(str(result.run_dir)) / "roles").exists()


def test_the_tasks_own_review_mode_overrides_the_repos(workshop: Workshop, scenario: Path) -> None:
    plays(scenario, [writes("print('v2')\n")], [says(REJECT)])
    workshop.add("strict")
    set_review(workshop, "strict", "blocking")
    workshop.add("relaxed")
    set_review(workshop, "relaxed", "off")
    strict = run(workshop, "strict", mode="off")
    assert strict.failure is FailureClass.REVIEW_REJECTED
    assert strict.evidence["review"]["mode_from"] == "task"
    relaxed = run(workshop, "relaxed", mode="blocking")
    assert relaxed.status == "done", relaxed.reason
    assert runs_of(scenario) == {"developer": 2, "reviewer": 1}  # only the strict task was reviewed


def test_the_reviewer_reads_the_task_its_scope_spec_and_criteria_before_a_clipped_diff(
    workshop: Workshop, scenario: Path
) -> None:
    plays(scenario, [[FINISH]], [says(APPROVE)])
    workshop.add("count", "seq 1 5000 > numbers.txt", touch=["numbers.txt"], deliverables=["numbers.txt"])
    spec = {"source": "specs/counting.md §2", "text": "The file MUST hold the numbers 1 to 5000."}
    criteria = ["numbers.txt has 5000 lines", {"criterion": "it ends at 5000", "verify_by": "test"}]
    workshop.store.mutate(
        lambda g, now: ops.set_fields(
            g, "count", speedrift={"spec": spec, "acceptance_criteria": criteria}, now=now, actor="test"
        )
    )
    result = run(workshop, "count")
    assert result.status == "done", result.reason
    prompt = Path(result.evidence["review"]["rounds"][0]["record_dir"], "round-1", "prompt.md").read_text()
    task = prompt.split("## The task")[1].split("## Declared scope")[0]
    assert "- numbers.txt has 5000 lines" in task and "- it ends at 5000 (verified by: test)" in task
    assert "Deliverables (files that must exist):\n- numbers.txt" in task
    assert "## Declared scope\n- numbers.txt" in prompt
    assert "From specs/counting.md §2:\nThe file MUST hold the numbers 1 to 5000." in prompt
    assert "no gates configured" in prompt.split("## Quality gates (already passed)")[1]
    diff = prompt.split("```diff")[1].split("```")[0]
    assert "#  numbers.txt | 5000 +" in diff  # every file named, even when the diff is cut
    assert "+1\n+2\n" in diff and "+5000" not in diff
    assert "the diff is cut here: 2000 of 5006 lines shown" in diff


# --- a resumed landing ------------------------------------------------------------------------------------
def test_a_resumed_landing_does_not_review_an_approved_attempt_again(
    workshop: Workshop, scenario: Path
) -> None:
    plays(scenario, [writes("print('v2')\n")], [says(APPROVE)])
    (workshop.repo / "app.py").write_text("print('the user is editing')\n")  # in the way of the merge
    pending = run(workshop)
    assert pending.status == "merge-pending", pending.reason
    (workshop.repo / "app.py").write_text("print('v1')\n")
    pipeline = workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED, review={"mode": "blocking"})
    landed = pipeline.resume_landing("bump")
    assert landed.status == "done", landed.reason
    assert on_main(workshop) == "print('v2')"
    assert runs_of(scenario) == {"developer": 1, "reviewer": 1}
    assert landed.evidence["review"]["final"] == "approve"


# --- the CLI ------------------------------------------------------------------------------------------------
def test_add_and_edit_review_set_the_tasks_own_mode_inside_its_speedrift_object(workshop: Workshop) -> None:
    cli = Cli(workshop.repo)
    cli.ok("add", "Bump the version", "--id", "bump", "--review", "blocking")
    assert graph_tasks(workshop.repo)["bump"]["speedrift"] == {"review": "blocking"}
    assert "review" not in graph_tasks(workshop.repo)["bump"]  # nothing of speedrift's at wg's level
    cli.ok("edit", "bump", "--review", "advisory", "--title", "Bump it")
    task = graph_tasks(workshop.repo)["bump"]
    assert task["speedrift"]["review"] == "advisory" and task["title"] == "Bump it"
    cli.ok("edit", "bump", "--review", "repo")
    assert "review" not in graph_tasks(workshop.repo)["bump"].get("speedrift", {})
    refused = cli.fails(2, "add", "Other", "--review", "sometimes")
    assert "invalid choice" in refused.stderr


def test_the_clis_review_modes_are_the_pipelines() -> None:
    assert tuple(ReviewMode) == parser.REVIEW_MODES
