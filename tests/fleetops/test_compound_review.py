"""A compound review end to end on a real repo: the report files, the review tasks (made once, across
reviews; only proposed where speedrift may not write), and the summary by the Compound reviewer
role — a fake agent CLI giving a valid output, an invalid one, or none at all."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import layout, pausestore
from speedrift.agents import preflight
from speedrift.fleetops.compound_report import SummaryState, TaskState
from speedrift.graph.model import speedrift_data
from speedrift.graph.store import GraphStore
from tests.fleet.conftest import claude_bin
from tests.fleetops.test_compound_scan import a_repo, plant, review
from tests.gitrepo import commit_file

AGENT = 'default_runtime = "claude"\n[sandbox]\nmode = "off"\n[env]\nallow = ["FAKE_AGENT_SCENARIO"]\n'
SUMMARY = {
    "summary": "Seven commits; a person changed CI and the hooks directly.",
    "risk": "medium",
    "notes": [],
}


def tasks_of(repo: Path) -> dict[str, dict[str, Any]]:
    store = GraphStore.of_repo(repo)
    assert store is not None
    return {tid: dict(t) for tid, t in store.load().tasks.items()}


@pytest.fixture
def fake_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `claude` on PATH that passes the preflight and runs the shared fake agent; the scenario file."""
    monkeypatch.setenv("PATH", f"{claude_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    scenario = tmp_path / "scenario.json"
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(scenario))
    preflight.forget()
    return scenario


def answers(scenario: Path, *rounds: dict[str, Any]) -> None:
    runs = [[{"do": "start"}, {"do": "result_file", "report": out}, {"do": "finish"}] for out in rounds]
    scenario.write_text(json.dumps({"roles": {"compound_reviewer": runs, "*": runs}}))


# --- the report ------------------------------------------------------------------------------------
def test_the_report_is_written_as_markdown_and_json_with_the_same_facts(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    now = datetime.now(UTC)
    review(repo, now)
    shas = plant(repo)
    done = review(repo, now)
    text = done.markdown_path.read_text()
    data = json.loads(done.json_path.read_text())
    assert done.markdown_path.parent == layout.reviews_dir(repo) and done.markdown_path.suffix == ".md"
    assert done.stem == f"{now.date().isoformat()}-2"  # the day's second review
    assert data["stem"] == done.stem and data["counts"]["commits"] == 7 and data["counts"]["gated"] == 1
    assert {(f["commit"], f["reason"]) for f in data["flags"]} == {
        (f.commit, f.reason.value) for f in done.scan.flags
    }
    for name in ("ci", "hook", "manifest", "large", "agent", "gated", "human"):
        assert f"`{shas[name][:7]}`" in text
    assert "| ci_config | human | `.github/workflows/ci.yml` |" in text
    assert "_No summary: [compound_review] summarize = false_" in text
    assert data["summary"] == {
        "state": "skipped",
        "why": "[compound_review] summarize = false",
        "text": "",
        "risk": None,
        "notes": [],
        "role": None,
    }
    record = json.loads(layout.review_state_path(repo).read_text())
    assert record["last_commit"] == shas["human"] and record["report"] == done.stem


def test_outside_text_cannot_break_the_markdown_table(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    review(repo)
    commit_file(repo, ".github/workflows/a|b.yml", "on: push\n", "subject | with <script>pipes</script>")
    text = review(repo).markdown_path.read_text()
    assert "subject \\| with &lt;script&gt;pipes&lt;/script&gt;" in text
    assert "`.github/workflows/a\\|b.yml`" in text
    assert "<script>" not in text


# --- the review tasks ------------------------------------------------------------------------------
def test_review_tasks_are_made_once_per_flagged_item_and_never_again(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    start = review(repo).scan.tip
    shas = plant(repo)
    done = review(repo)
    made = {t.task_id: t for t in done.tasks}
    assert set(made) == {
        f"review-{shas['ci'][:7]}-ci-config",
        f"review-{shas['hook'][:7]}-hooks",
        f"review-{shas['manifest'][:7]}-manifest",
        f"review-{shas['large'][:7]}-large-diff",
        f"review-{shas['agent'][:7]}-ungated",
    }
    assert all(t.state is TaskState.CREATED for t in done.tasks)
    graph = tasks_of(repo)
    ci = graph[f"review-{shas['ci'][:7]}-ci-config"]
    assert ci["title"] == f"Review the CI change in {shas['ci'][:7]}: .github/workflows/ci.yml"
    assert set(ci["tags"]) == {"review", "compound-review"} and ci["status"] == "open"
    assert speedrift_data(ci)["compound_review"] == {
        "key": f"{shas['ci']}:ci_config",
        "commit": shas["ci"],
        "reason": "ci_config",
    }
    assert shas["ci"] in ci["description"] and done.stem in ci["description"]
    before = len(graph)
    again = review(repo, since=start)  # the same commits, reviewed once more
    assert {t.task_id for t in again.tasks} == set(made)
    assert all(t.state is TaskState.EXISTING for t in again.tasks)
    assert len(tasks_of(repo)) == before  # not one task more


def test_a_task_done_and_gone_from_the_record_is_still_not_made_twice(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    start = review(repo).scan.tip
    commit_file(repo, ".github/workflows/ci.yml", "on: push\n", "ci")
    first = review(repo)
    layout.review_state_path(repo).unlink()  # the record lost: the graph still says it was made
    again = review(repo, since=start)
    assert [t.state for t in again.tasks] == [TaskState.EXISTING]
    assert again.tasks[0].task_id == first.tasks[0].task_id


def test_where_speedrift_may_not_write_the_tasks_are_only_proposed(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    review(repo)
    plant(repo)
    before = set(tasks_of(repo))
    done = review(repo, may_write=(False, "control mode observe does not permit automation"))
    assert done.tasks and all(t.state is TaskState.PROPOSED for t in done.tasks)
    assert all("control mode observe" in t.why for t in done.tasks)
    assert set(tasks_of(repo)) == before
    assert "- proposed: `review-" in done.markdown_path.read_text()


# --- the summary -----------------------------------------------------------------------------------
def test_the_compound_reviewer_writes_the_summary_from_the_scan(tmp_path: Path, fake_agent: Path) -> None:
    repo = a_repo(tmp_path, AGENT)
    review(repo)
    shas = plant(repo)
    note = {
        "commit": shas["hook"][:7],
        "file": ".husky/pre-commit",
        "note": "The pre-commit hook now exits 0 without checking anything.",
        "severity": "high",
        "needs": "human",
    }
    info = {"commit": shas["gated"][:7], "note": "A tiny file.", "severity": "info", "needs": "none"}
    answers(fake_agent, {**SUMMARY, "notes": [note, info]})
    done = review(repo)
    assert done.summary.state is SummaryState.WRITTEN
    assert done.summary.text == SUMMARY["summary"] and done.summary.risk == "medium"
    text = done.markdown_path.read_text()
    assert SUMMARY["summary"] in text and "Risk: **medium**" in text and "exits 0 without checking" in text
    prompt = (layout.review_role_dir(repo, done.stem) / "round-1" / "prompt.md").read_text()
    assert (
        shas["ci"][:7] in prompt and "ci_config" in prompt and "through speedrift's gates (hello#1)" in prompt
    )
    noted = [t for t in done.tasks if t.reason.startswith("note-")]
    assert len(noted) == 1 and noted[0].commit == shas["hook"] and noted[0].state is TaskState.CREATED
    assert noted[0].title.startswith(f"Review {shas['hook'][:7]}: The pre-commit hook")


def test_an_invalid_summary_is_reported_and_the_review_still_stands(tmp_path: Path, fake_agent: Path) -> None:
    repo = a_repo(tmp_path, AGENT)
    review(repo)
    plant(repo)
    answers(fake_agent, {"summary": "", "risk": "dire"})
    done = review(repo)
    assert done.summary.state is SummaryState.FAILED
    assert (
        "gave no valid output in 2 round(s)" in done.summary.why
        and "'dire' is not one of" in done.summary.why
    )
    assert done.summary.role is not None and done.summary.role["failure_class"] == "invalid_output"
    assert done.tasks and all(t.state is TaskState.CREATED for t in done.tasks)  # the flags' tasks stand
    assert "_No summary: the compound_reviewer gave no valid output" in done.markdown_path.read_text()


def test_without_an_installed_runtime_the_report_says_why_there_is_no_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = a_repo(tmp_path, AGENT)
    review(repo)
    commit_file(repo, "a.txt", "a\n", "a change")
    git_dir = tmp_path / "only-git"
    git_dir.mkdir()
    (git_dir / "git").symlink_to(str(shutil.which("git")))
    monkeypatch.setenv("PATH", str(git_dir))
    preflight.forget()
    done = review(repo)
    assert done.summary.state is SummaryState.SKIPPED
    assert done.summary.why.startswith("the claude runtime is not available: claude is not installed")


def test_a_paused_runtime_leaves_the_summary_out_and_says_so(tmp_path: Path, fake_agent: Path) -> None:
    repo = a_repo(tmp_path, AGENT)
    review(repo)
    commit_file(repo, "a.txt", "a\n", "a change")
    now = datetime.now(UTC)
    pause = pausestore.RuntimePause(
        "claude", "usage_limit", "5-hour limit", now, now + timedelta(hours=1), "", "t"
    )
    pausestore.put(pause, now)
    answers(fake_agent, SUMMARY)
    done = review(repo)
    assert done.summary.state is SummaryState.SKIPPED and "not started" in done.summary.why
    assert not (layout.review_role_dir(repo, done.stem) / "round-1").exists()  # no agent ran


def test_summarize_false_in_the_ecosystem_is_overridden_by_the_repos_own_key(
    tmp_path: Path, fake_agent: Path
) -> None:
    from speedrift.fleet.opsconfig import CompoundReviewConfig

    repo = a_repo(tmp_path, AGENT + "[compound_review]\nsummarize = true\n")
    review(repo)
    commit_file(repo, "a.txt", "a\n", "a change")
    answers(fake_agent, SUMMARY)
    done = review(repo, base=CompoundReviewConfig(summarize=False, large_diff_lines=5))
    assert done.summary.state is SummaryState.WRITTEN
    skipped = a_repo(tmp_path / "other", AGENT)
    review(skipped)
    commit_file(skipped, "a.txt", "a\nb\nc\nd\ne\nf\n", "six lines")
    other = review(skipped, base=CompoundReviewConfig(summarize=False, large_diff_lines=5))
    assert other.summary.why == "[compound_review] summarize = false"
    assert "large_diff" in {f.reason.value for f in other.scan.flags}  # the ecosystem's threshold
