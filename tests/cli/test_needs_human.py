"""A task that waits on a human, as a user meets it: the hub's cycle puts it in the "Waiting on a
human" queue with its question and the command that answers it, charges it to the repo's score,
`speedrift why` shows it — and running that command makes it disappear."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from speedrift.control.assess.weights import WEIGHTS
from speedrift.demo import ecosystem as demo
from speedrift.failure_class import FailureClass
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.web.queues import display_queues
from tests.cli.support import Cli
from tests.control.escalate import ACTOR, escalate

TASK = "invoice-rounding"
ENTRY = f"human:shop-api:{TASK}"
ANSWER = f"speedrift retry {TASK} --context '<answer>'"


@pytest.fixture
def eco(tmp_path: Path) -> Path:
    demo.build(tmp_path / "eco")
    text = (tmp_path / "eco" / "ecosystem.toml").read_text()
    (tmp_path / "eco" / "ecosystem.toml").write_text(text.replace("plan_only = false", "plan_only = true"))
    store = GraphStore.of_repo(tmp_path / "eco" / "shop-api")
    assert store is not None
    spec = ops.NewTask("Round invoice totals", task_id=TASK)
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor=ACTOR))
    escalate(store, TASK, FailureClass.SPEC_GAP)  # the agent asked; the recovery tagged it needs-human
    return tmp_path / "eco"


def _human_entries(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    queue = next(q for q in record["queues"] if q["key"] == "human")
    return {e["id"]: e for e in queue["entries"]}


def _report(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in record["repos"] if r["name"] == name)


def test_a_needs_human_task_waits_in_the_human_queue_with_its_question_and_answer_command(eco: Path) -> None:
    record = Cli(eco).json("hub", "once")

    entry = _human_entries(record)[ENTRY]
    assert entry["rule"] == "needs_human" and entry["task"] == TASK and entry["repo"] == "shop-api"
    assert "should amounts be rounded per line or per invoice?" in entry["why"]
    assert entry["detail"]["answer"] == ANSWER
    assert ANSWER in entry["prompts"]["claude"] and ANSWER in entry["prompts"]["codex"]
    [item] = [i for i in display_queues(record)["human"]["items"] if i["id"] == ENTRY]
    assert item["answer"] == {"command": ANSWER, "first": None}  # the page's copy button copies it


def test_it_lowers_the_repos_score_by_the_needs_human_rule(eco: Path) -> None:
    record = Cli(eco).json("hub", "once")

    shop = _report(record, "shop-api")
    [reason] = [r for r in shop["reasons"] if r["code"] == "needs_human"]
    assert reason["points"] == WEIGHTS["needs_human"].first and TASK in reason["text"]
    assert shop["score"] <= 100 - WEIGHTS["needs_human"].first and shop["tier"] != "healthy"
    assert shop["snapshot"]["graph"]["needs_human"] == 1


def test_why_shows_the_question_and_the_command_that_answers_it(eco: Path) -> None:
    cli = Cli(eco)
    cli.ok("hub", "once")

    repo = cli.json("why", "shop-api")
    task = cli.json("why", f"shop-api:{TASK}")
    text = cli.ok("why", "shop-api").stdout

    assert [e["task"] for e in repo["needs_human"]] == [TASK]
    assert "task invoice-rounding waits on a human's answer (spec_gap)" in repo["answer"]
    assert task["answer"].startswith(f"{TASK} waits on a human's answer (spec_gap): The agent is blocked")
    assert f"`{ANSWER}`" in task["answer"]
    assert task["needs_human"][0]["question"] == repo["needs_human"][0]["question"]
    assert f"needs a human: {TASK} (spec_gap) — The agent is blocked" in text
    assert f"answer: {ANSWER}" in text


def test_the_escalation_disappears_after_the_answer_is_given_with_retry(eco: Path) -> None:
    cli = Cli(eco)
    assert ENTRY in _human_entries(cli.json("hub", "once"))

    cli.ok("retry", TASK, "--context", "per invoice, half up", cwd=eco / "shop-api")
    record = cli.json("hub", "once")

    assert ENTRY not in _human_entries(record)
    assert all(r["code"] != "needs_human" for r in _report(record, "shop-api")["reasons"])
    assert cli.json("why", "shop-api")["needs_human"] == []
    task = cli.json("why", f"shop-api:{TASK}")
    assert task["needs_human"] == [] and "waits on a human" not in task["answer"]
