"""Session resume through the pipeline (fleet/resume.py), with the fake claude CLI: a retry after
a transient fault continues the failed attempt's session with only the new context, a review's
revision round continues its own, a resume the CLI refuses falls back to a fresh session and says
so, and a sandboxed agent's sessions outlive its private home in the task's session store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speedrift import layout
from speedrift.agents import sandbox
from speedrift.fleet import followup, resume
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.pipeline import Pipeline, RunOptions
from tests.fleet.conftest import Workshop

Steps = list[dict[str, Any]]
BASE: dict[str, Any] = {
    "sandbox": {"mode": "off"},
    "env": {"allow": ["FAKE_AGENT_SCENARIO"]},
    "service": {"backoff_seconds": 0},
}
START = {"do": "start"}
# the fake keeps its sessions where claude does, under the HOME the agent gets (a test's own)
HOME = {"do": "session_store", "where": "home"}
FAILS: Steps = [HOME, START, {"do": "server_error"}]  # HTTP 500: transient_infra


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def lands(record: Path, *extra: dict[str, Any]) -> Steps:
    edit = {"do": "edit", "path": "hello.txt", "content": "hi\n"}
    return [HOME, *extra, {"do": "record", "path": str(record)}, START, edit, {"do": "finish"}]


def plays(scenario: Path, *runs: Steps) -> None:
    scenario.write_text(json.dumps({"roles": {"developer": list(runs)}}))


def retried(workshop: Workshop, pipeline: Pipeline, task_id: str) -> tuple[AttemptResult, AttemptResult]:
    workshop.add(task_id)
    first = pipeline.run(task_id, RunOptions())
    assert (first.status, first.failure) == ("failed", "transient_infra"), first.reason
    followup.carry_out(workshop.repo, workshop.store, pipeline.config, task_id, actor="test")
    return first, pipeline.run(task_id, RunOptions())


def events(result: AttemptResult) -> list[dict[str, Any]]:
    path = layout.events_path(Path(str(result.run_dir)))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_retry_after_a_transient_fault_continues_the_session_with_only_the_new_context(
    workshop: Workshop, scenario: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    plays(scenario, FAILS, lands(seen))
    first, second = retried(workshop, workshop.pipeline(**BASE), "flaky")
    session = first.evidence["session_id"]
    assert session and "--no-session-persistence" not in json.dumps(first.evidence)
    assert second.status == "done", second.reason
    # the failed run consumed 1600 fresh + 400 cached input tokens: not sent again from scratch
    assert second.evidence["resume"] == {
        "from_attempt": 1,
        "session_id": session,
        "tokens_saved": 2000,
        "why": "transient_infra",
    }
    assert second.evidence["session_id"] == session
    record = json.loads(seen.read_text())
    assert record["argv"][-2:] == ["--resume", session]
    assert len(record["conversation"]) == 1 and "# Task flaky" in record["conversation"][0]
    assert "# Task flaky" not in record["stdin"]  # only what is new is appended
    assert "FRESH worktree" in record["stdin"] and "attempt 1" in record["stdin"]
    assert (Path(str(second.run_dir)) / "prompt.md").read_text().startswith("# Task flaky")


def test_a_resume_the_cli_refuses_falls_back_to_a_fresh_session_and_says_so(
    workshop: Workshop, scenario: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    plays(scenario, FAILS, [{"do": "refuse_resume"}, START], lands(seen))
    first, second = retried(workshop, workshop.pipeline(**BASE), "gone")
    assert second.status == "done", second.reason
    said = second.evidence["resume"]
    assert said["session_id"] == first.evidence["session_id"] and said["tokens_saved"] == 0
    assert said["fallback"].startswith(f"could not resume session {said['session_id']} of attempt 1")
    assert said["fallback"].endswith("starting a fresh session")
    refused = [e for e in events(second) if e.get("data", {}).get("resume") == "failed"]
    assert len(refused) == 1 and refused[0]["kind"] == "error"
    record = json.loads(seen.read_text())
    assert "--resume" not in record["argv"] and record["conversation"] == []
    assert record["stdin"].startswith("# Task gone")  # the whole prompt, as for any fresh session
    assert second.evidence["session_id"] != first.evidence["session_id"]


def test_a_resumed_run_the_provider_fails_again_is_that_fault_not_a_refused_resume(
    workshop: Workshop, scenario: Path
) -> None:
    plays(scenario, FAILS, FAILS, FAILS)
    first, second = retried(workshop, workshop.pipeline(**BASE), "stormy")
    assert (second.status, second.failure) == ("failed", "transient_infra"), second.reason
    assert second.evidence["resume"]["session_id"] == first.evidence["session_id"]
    assert "fallback" not in second.evidence["resume"]  # the CLI took the session; the provider failed
    counts = json.loads(Path(f"{scenario}.count.json").read_text())
    assert counts == {"developer": 2}  # no fresh run after it


def test_a_review_revision_round_continues_the_developers_own_session(
    workshop: Workshop, scenario: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    changes = {
        "verdict": "request_changes",
        "summary": "Says hi; the task asks for hello.",
        "findings": [{"severity": "major", "file": "hello.txt", "line": 1, "message": "It says hi."}],
    }
    approve = {"verdict": "approve", "summary": "Fine.", "findings": []}

    def says(output: dict[str, Any]) -> Steps:
        return [HOME, START, {"do": "result_file", "report": output}, {"do": "finish"}]

    developer = [lands(tmp_path / "first.json"), lands(seen)]
    roles = {"developer": developer, "reviewer": [says(changes), says(approve)]}
    scenario.write_text(json.dumps({"roles": roles}))
    workshop.add("greet")
    result = workshop.pipeline(**BASE, review={"mode": "blocking"}).run("greet", RunOptions())
    assert result.status == "done", result.reason
    assert [r["verdict"] for r in result.evidence["review"]["rounds"]] == ["request_changes", "approve"]
    session = json.loads((tmp_path / "first.json").read_text())
    record = json.loads(seen.read_text())
    assert record["argv"][-2] == "--resume"
    assert record["stdin"].startswith("# A reviewer requested changes")
    assert "It says hi." in record["stdin"] and "FRESH" not in record["stdin"]  # same worktree
    assert record["conversation"] == [session["stdin"]]
    assert result.evidence["resume"]["why"] == "request_changes"
    assert result.evidence["resume"]["from_attempt"] == 1


def test_resume_off_always_starts_fresh_and_keeps_no_session(
    workshop: Workshop, scenario: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    plays(scenario, FAILS, lands(seen))
    pipeline = workshop.pipeline(**BASE, runtimes={"claude": {"resume": False}})
    _first, second = retried(workshop, pipeline, "plain")
    assert second.status == "done", second.reason
    assert "resume" not in second.evidence
    assert json.loads(seen.read_text())["argv"][-1] == "--no-session-persistence"


def test_a_failure_of_the_agents_own_making_starts_a_fresh_session(
    workshop: Workshop, scenario: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    plays(scenario, [HOME, START, {"do": "max_turns", "turns": 3}], lands(seen))  # not resumable
    workshop.add("crashy")
    pipeline = workshop.pipeline(**BASE)
    first = pipeline.run("crashy", RunOptions())
    assert first.status == "failed" and first.failure not in resume.RESUMABLE, first.failure
    followup.carry_out(workshop.repo, workshop.store, pipeline.config, "crashy", actor="test")
    second = pipeline.run("crashy", RunOptions())
    assert second.status == "done", second.reason
    assert "resume" not in second.evidence and "--resume" not in json.loads(seen.read_text())["argv"]


@pytest.mark.skipif(not sandbox.probe().usable, reason="bwrap cannot run here")
def test_a_sandboxed_agents_session_outlives_its_private_home_in_the_task_store(
    workshop: Workshop, scenario: Path, tmp_path: Path
) -> None:
    """Each attempt's private HOME is removed after its run, and its worktree has another path:
    the session kept in the task's store is found from the new worktree all the same."""
    home = HOME
    config = BASE | {"sandbox": {"mode": "required"}}
    pipeline = workshop.pipeline(**config)
    workshop.add("boxed")
    scenario.write_text(json.dumps([home, *FAILS]))  # a list: the fake counts nothing in the sandbox
    first = pipeline.run("boxed", RunOptions())
    assert (first.status, first.failure) == ("failed", "transient_infra"), first.reason
    session = first.evidence["session_id"]
    assert not layout.sandbox_dir(Path(str(first.run_dir))).exists()  # the private home is gone
    store = resume.store_dir(workshop.repo, "boxed") / "claude"
    assert [p.name for p in store.glob("*/*.jsonl")] == [f"{session}.jsonl"]
    followup.carry_out(workshop.repo, workshop.store, pipeline.config, "boxed", actor="test")
    # no record step: nothing outside the worktree is writable in the sandbox
    edit = {"do": "edit", "path": "hi.txt", "content": "hi\n"}
    scenario.write_text(json.dumps([home, START, edit, {"do": "finish"}]))
    second = pipeline.run("boxed", RunOptions())
    assert second.status == "done", second.reason
    # found from the new worktree's project folder, where it was carried: no fallback
    resumed = second.evidence["resume"]
    assert resumed["session_id"] == session and "fallback" not in resumed
    assert second.evidence["session_id"] == session
    assert not resume.store_dir(workshop.repo, "boxed").exists()  # the task is done: scrubbed
