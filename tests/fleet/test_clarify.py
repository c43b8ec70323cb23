"""Clarification triage and a person's answers, end to end with the fake Claude Code CLI (run
unsandboxed: the fake counts its runs per role): the developer posts a clarification_request with
`speedrift signal` and reports itself blocked; the triage role answers it from the repository's
guidance (a guidance record, the task reopened, the next prompt holding the answer) or cannot
(a human_escalation, the task waiting with the `speedrift answer` command); a person's answer
resolves both records and reaches the next attempt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speedrift.coord.records import Actor, Kind, Record, Status
from speedrift.coord.store import CoordStore
from speedrift.errors import NotFound, Refused
from speedrift.failure_class import FailureClass
from speedrift.fleet import answers, clarify
from speedrift.fleet.attempt import AttemptResult
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import Pipeline, RunOptions
from speedrift.graph import ops
from speedrift.graph.model import speedrift_data
from tests.fleet.conftest import Workshop
from tests.gitrepo import commit_file

FAKE_ENV = {"allow": ["FAKE_AGENT_SCENARIO"]}
RULE = "Money is rounded per invoice line (half up, 2 decimals); totals are sums of rounded lines."
AGENTS_MD = f"# Working here\n\n## Money\n\n{RULE}\n"
QUESTION = {"summary": "Should totals be rounded per line or per invoice?", "detail": "app.py sums prices."}
BLOCKED = {"status": "blocked", "summary": "Blocked: rounding of totals is not specified"}
DONE = {"status": "done", "summary": "app.py rounds per line", "files_touched": ["app.py"]}
ANSWER = "Round per invoice line, half up, to 2 decimals; the total is the sum of rounded lines."
ANSWERED = {
    "answerable": True,
    "answer": ANSWER,
    "sources": [{"kind": "guidance_file", "ref": "AGENTS.md", "quote": RULE}],
    "confidence": "high",
}
UNANSWERABLE = {
    "answerable": False,
    "confidence": "low",
    "why_not": "Nothing in the repository says whether refunds may exceed the original charge.",
}
REFUNDS = {"summary": "May a refund exceed the original charge?"}


@pytest.fixture
def shop(workshop: Workshop) -> Workshop:
    commit_file(workshop.repo, "AGENTS.md", AGENTS_MD, "guidance for agents")
    workshop.add("t1", model="claude:sonnet", description="Make app.py print the invoice total.")
    return workshop


def runs(scenario: Path, developer: list[list[dict[str, Any]]], triage: list[list[dict[str, Any]]]) -> None:
    scenario.write_text(
        json.dumps({"roles": {"developer": developer, "triage": triage, "*": [[{"do": "start"}]]}})
    )


def asks(*questions: dict[str, Any]) -> list[dict[str, Any]]:
    """A developer run that asks ``questions`` and reports itself blocked."""
    posted = [{"do": "signal", "kind": "clarification_request", "payload": q} for q in questions]
    return [
        {"do": "start"},
        *posted,
        {"do": "result_file", "report": BLOCKED},
        {"do": "finish", "text": "blocked"},
    ]


FINISHES: list[dict[str, Any]] = [
    {"do": "start"},
    {"do": "edit", "path": "app.py", "content": "print(round(1.005, 2))\n"},
    {"do": "result_file", "report": DONE},
    {"do": "finish"},
]


def says(output: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"do": "start"}, {"do": "signal", "kind": "result", "payload": output}, {"do": "finish"}]


def pipeline(workshop: Workshop, **config: Any) -> Pipeline:
    return workshop.pipeline(env=FAKE_ENV, sandbox={"mode": "off"}, **config)


def coord(workshop: Workshop) -> CoordStore:
    return CoordStore.for_scope(workshop.repo, "repo")


def of_kind(workshop: Workshop, kind: Kind) -> list[Record]:
    return [r for r in coord(workshop).read().records.values() if r.kind is kind]


def task_of(workshop: Workshop) -> dict[str, Any]:
    return workshop.store.load().tasks["t1"]


def prompt_of(result: AttemptResult) -> str:
    return Path(result.run_dir or "", "prompt.md").read_text()


def test_a_question_the_guidance_answers_is_answered_by_triage_and_the_task_reopens_with_it(
    shop: Workshop, scenario: Path
) -> None:
    runs(scenario, [asks(QUESTION), FINISHES], [says(ANSWERED)])
    first = pipeline(shop).run("t1", RunOptions())
    assert first.status == "failed" and first.failure == FailureClass.SPEC_GAP
    assert "answered by triage" in first.reason
    assert first.recovery is not None and "answered by triage" in first.recovery["note"]
    [question] = of_kind(shop, Kind.CLARIFICATION_REQUEST)
    [guidance] = of_kind(shop, Kind.GUIDANCE)
    assert question.author.task == "t1" and question.author.attempt == 1
    assert question.status is Status.RESOLVED and question.data["answered_by"] == guidance.id
    assert guidance.author.actor is Actor.SPEEDRIFT and guidance.depends_on == (question.id,)
    assert guidance.targets == ("task:t1",)
    assert guidance.data["answer"] == ANSWER and guidance.data["confidence"] == "high"
    assert guidance.data["sources"] == ANSWERED["sources"]
    assert of_kind(shop, Kind.HUMAN_ESCALATION) == []
    # the triage ran as a role with the guidance file and the question, recorded under the attempt
    triage_prompt = Path(first.run_dir or "", "roles", "triage-1", "round-1", "prompt.md").read_text()
    assert RULE in triage_prompt and QUESTION["summary"] in triage_prompt
    assert json.loads(Path(first.run_dir or "", "attempt.json").read_text())["clarifications"] == [
        {"question": question.id, "guidance": guidance.id, "escalation": None, "why": None}
    ]
    task = task_of(shop)
    assert task["status"] == "open" and "needs-human" not in (task.get("tags") or [])
    assert speedrift_data(task)[clarify.TRIAGE_REOPENS] == 1

    second = pipeline(shop).run("t1", RunOptions())
    assert second.status == "done", second.reason
    prompt = prompt_of(second)
    assert ANSWER in prompt and f"You asked ({question.id})" in prompt


def test_a_question_triage_cannot_answer_goes_to_a_human_and_the_task_waits(
    shop: Workshop, scenario: Path
) -> None:
    runs(scenario, [asks(REFUNDS), FINISHES], [says(UNANSWERABLE)])
    first = pipeline(shop).run("t1", RunOptions())
    assert first.status == "failed" and first.failure == FailureClass.SPEC_GAP
    [question] = of_kind(shop, Kind.CLARIFICATION_REQUEST)
    [escalation] = of_kind(shop, Kind.HUMAN_ESCALATION)
    assert of_kind(shop, Kind.GUIDANCE) == []
    assert question.status is Status.IN_PROGRESS and question.data["escalated_to"] == escalation.id
    assert escalation.open and escalation.targets == ("human",) and escalation.depends_on == (question.id,)
    assert escalation.summary == REFUNDS["summary"]
    assert f'speedrift answer {question.id} "…"' in escalation.detail
    assert str(UNANSWERABLE["why_not"]) in escalation.detail
    command = f'`speedrift answer {escalation.id} "…"`'
    assert first.recovery is not None and command in first.recovery["question"]
    task = task_of(shop)
    assert task["status"] == "failed" and "needs-human" in task["tags"]
    assert command in speedrift_data(task)["recovery"]["question"]
    assert any(command in e["message"] for e in task["log"] if e["message"].startswith("Needs a human: "))


def test_a_persons_answer_resolves_both_records_and_reaches_the_next_attempt(
    shop: Workshop, scenario: Path
) -> None:
    runs(scenario, [asks(REFUNDS), FINISHES], [says(UNANSWERABLE)])
    pipeline(shop).run("t1", RunOptions())
    [escalation] = of_kind(shop, Kind.HUMAN_ESCALATION)
    [question] = of_kind(shop, Kind.CLARIFICATION_REQUEST)
    said = "No: a refund never exceeds the original charge."
    done = answers.answer(shop.repo, shop.store, RepoConfig(), escalation.id, said, name="alice")
    assert done.reopened and done.task == "t1"
    assert set(done.resolved) == {escalation.id, question.id}
    feedback = coord(shop).get(done.feedback.id)
    assert feedback.kind is Kind.HUMAN_FEEDBACK and feedback.author.actor is Actor.HUMAN
    assert feedback.author.name == "alice" and feedback.targets == ("task:t1",)
    assert set(feedback.depends_on) == {escalation.id, question.id}
    assert coord(shop).get(escalation.id).status is Status.RESOLVED
    assert coord(shop).get(question.id).status is Status.RESOLVED
    task = task_of(shop)
    assert task["status"] == "open" and "needs-human" not in (task.get("tags") or [])
    assert said in speedrift_data(task)["retry_context"]

    second = pipeline(shop).run("t1", RunOptions())
    assert second.status == "done", second.reason
    prompt = prompt_of(second)
    assert said in prompt and "## Guidance for this retry" in prompt


def test_answering_a_closed_or_unknown_record_is_refused_naming_why(shop: Workshop, scenario: Path) -> None:
    runs(scenario, [asks(REFUNDS)], [says(UNANSWERABLE)])
    pipeline(shop).run("t1", RunOptions())
    [escalation] = of_kind(shop, Kind.HUMAN_ESCALATION)
    answers.answer(shop.repo, shop.store, RepoConfig(), escalation.id, "No.", name="alice")
    with pytest.raises(Refused) as refused:
        answers.answer(shop.repo, shop.store, RepoConfig(), escalation.id, "Yes.", name="bob")
    assert f"{escalation.id} is already resolved by human alice" in refused.value.message
    assert len(of_kind(shop, Kind.HUMAN_FEEDBACK)) == 1  # the second answer left nothing
    with pytest.raises(NotFound) as missing:
        answers.answer(shop.repo, shop.store, RepoConfig(), "repo-99", "Yes.", name="bob")
    assert missing.value.hint is not None and "speedrift board repo" in missing.value.hint
    [question] = of_kind(shop, Kind.CLARIFICATION_REQUEST)
    feedback = of_kind(shop, Kind.HUMAN_FEEDBACK)[0]
    with pytest.raises(Refused, match="only a human_escalation or a clarification_request"):
        answers.answer(shop.repo, shop.store, RepoConfig(), feedback.id, "Yes.", name="bob")
    with pytest.raises(Refused, match=f"{question.id} is already resolved"):
        answers.answer(shop.repo, shop.store, RepoConfig(), question.id, "Yes.", name="bob")


def test_with_triage_off_every_question_goes_straight_to_a_human(shop: Workshop, scenario: Path) -> None:
    runs(scenario, [asks(QUESTION)], [says(ANSWERED)])
    first = pipeline(shop, roles={"triage": {"enabled": False}}).run("t1", RunOptions())
    [escalation] = of_kind(shop, Kind.HUMAN_ESCALATION)
    assert "triage is off" in escalation.data["why"]
    assert not Path(first.run_dir or "", "roles").exists()  # no triage ran
    assert task_of(shop)["status"] == "failed"


def test_an_answer_quoting_what_the_repository_does_not_say_goes_to_a_human(
    shop: Workshop, scenario: Path
) -> None:
    invented = {
        **ANSWERED,
        "sources": [{"kind": "guidance_file", "ref": "AGENTS.md", "quote": "Round per invoice."}],
    }
    runs(scenario, [asks(QUESTION)], [says(invented)])
    pipeline(shop).run("t1", RunOptions())
    [escalation] = of_kind(shop, Kind.HUMAN_ESCALATION)
    assert "none of its quotes was found" in escalation.data["why"]
    assert escalation.data["suggestion"] == ANSWER  # shown to the person, not taken
    assert of_kind(shop, Kind.GUIDANCE) == []


def test_a_triage_that_never_gives_a_valid_output_hands_the_question_to_a_human(
    shop: Workshop, scenario: Path
) -> None:
    bad: list[dict[str, Any]] = [
        {"do": "start"},
        {"do": "result_file", "report": {"answerable": True, "confidence": "sure"}},
        {"do": "finish"},
    ]
    runs(scenario, [asks(QUESTION)], [bad])
    first = pipeline(shop).run("t1", RunOptions())
    [escalation] = of_kind(shop, Kind.HUMAN_ESCALATION)
    assert "gave no valid output in 2 round(s)" in escalation.data["why"]
    assert Path(first.run_dir or "", "roles", "triage-1", "round-2").is_dir()


def test_triage_reopens_a_task_a_bounded_number_of_times_then_a_person_decides(
    shop: Workshop, scenario: Path
) -> None:
    shop.store.mutate(
        lambda g, now: ops.set_fields(
            g, "t1", speedrift={clarify.TRIAGE_REOPENS: clarify.MAX_TRIAGE_REOPENS}, now=now, actor="test"
        )
    )
    runs(scenario, [asks(QUESTION)], [says(ANSWERED)])
    first = pipeline(shop).run("t1", RunOptions())
    assert "not reopened" in first.reason
    assert len(of_kind(shop, Kind.GUIDANCE)) == 1  # the answer is kept for whoever retries it
    task = task_of(shop)
    assert task["status"] == "failed"
    assert any("a person decides" in e["message"] for e in task["log"])


def test_a_task_with_one_question_answered_by_triage_and_one_by_a_person_gets_both_answers(
    shop: Workshop, scenario: Path
) -> None:
    runs(scenario, [asks(QUESTION, REFUNDS), FINISHES], [says(ANSWERED), says(UNANSWERABLE)])
    first = pipeline(shop).run("t1", RunOptions())
    [guidance] = of_kind(shop, Kind.GUIDANCE)
    [escalation] = of_kind(shop, Kind.HUMAN_ESCALATION)
    assert escalation.summary == REFUNDS["summary"] and "waits for a person" in first.reason
    assert task_of(shop)["status"] == "failed"  # one question is still open
    said = "No: a refund never exceeds the original charge."
    done = answers.answer(shop.repo, shop.store, RepoConfig(), escalation.id, said, name="alice")
    assert done.reopened
    context = speedrift_data(task_of(shop))["retry_context"]
    assert ANSWER in context and said in context and guidance.id in context
    second = pipeline(shop).run("t1", RunOptions())
    assert second.status == "done", second.reason
    assert ANSWER in prompt_of(second) and said in prompt_of(second)
