"""The observer and the questions agents asked: open human_escalation records of a repo's
coordination stores join its escalations, and a change to a store alone (a question asked or
answered, the graph untouched) is seen in the next cycle without a git process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from speedrift.control.observe.escalations import escalations
from speedrift.control.observe.observer import Observer
from speedrift.coord.records import Actor, Author, Draft, Kind, Record, Status
from speedrift.coord.store import CoordStore
from speedrift.fleet import clarify
from speedrift.register.record import RepoSnapshot
from tests.builders import task
from tests.control.test_observe import ecosystem, git_log, write_graph  # noqa: F401 - git_log: a fixture
from tests.gitrepo import make_repo

NOW = datetime.now(UTC)
HUMAN = Author(Actor.HUMAN, name="alice")


def ask(repo: Path, task_id: str, question: str) -> str:
    store = CoordStore.for_scope(repo, "repo")
    asked = store.post(
        Draft(Kind.CLARIFICATION_REQUEST, question, Author(Actor.AGENT, task=task_id, attempt=1))
    )
    escalation = clarify.escalate(store, asked, task_id, "nothing in the repository says").escalation
    assert escalation is not None
    return escalation.id


def records_of(snapshot: RepoSnapshot) -> list[str | None]:
    assert snapshot.graph is not None
    return [e.record for e in snapshot.graph.escalations]


def test_a_question_asked_and_then_answered_is_seen_next_cycle_without_git(
    tmp_path: Path,
    git_log: Callable[[], list[str]],  # noqa: F811 - the fixture
) -> None:
    repo = make_repo(tmp_path / "a")
    write_graph(repo, task("refunds"))
    # the store exists before (creating .speedrift/ is a change at the repo's top level, which git sees)
    decided = Draft(Kind.DECISION, "Keep print()", Author(Actor.AGENT, task="refunds", attempt=1))
    CoordStore.for_scope(repo, "repo").post(decided)
    observer = Observer(ecosystem(tmp_path, ["a"]))
    assert records_of(observer.observe(NOW)["a"]) == []
    first = observer.observe(NOW + timedelta(seconds=30))["a"]

    asked = ask(repo, "refunds", "May a refund exceed the charge?")
    git_log()
    second = observer.observe(NOW + timedelta(seconds=60))["a"]
    assert git_log() == []
    assert records_of(second) == [asked] and not second.reused
    assert second.fingerprint != first.fingerprint  # what the hub kept for the repo is judged again
    assert second.graph is not None and second.graph.needs_human == 1
    [escalation] = second.graph.escalations
    assert escalation.task == "refunds" and escalation.question == "May a refund exceed the charge?"
    assert escalation.answer == f'speedrift answer {asked} "…"' and escalation.status == "open"

    CoordStore.for_scope(repo, "repo").update(asked, Status.RESOLVED, author=HUMAN)
    third = observer.observe(NOW + timedelta(seconds=90))["a"]
    assert records_of(third) == [] and third.graph is not None and third.graph.needs_human == 0


def test_a_failed_task_naming_its_question_is_listed_once_carrying_the_record() -> None:
    waiting = 'The agent asked “…” (repo-1). Answer with `speedrift answer repo-2 "…"`: the task reopens.'
    recovery = {"recovery": "escalate_human", "failure_class": "spec_gap", "question": waiting}
    tasks = {"refunds": task("refunds", "failed", tags=["needs-human"], speedrift={"recovery": recovery})}
    count, found = escalations(tasks, [question("repo-2", "refunds"), question("repo-4", "refunds")])
    assert count == 2  # the task with its named question, and the other question on its own
    by_record = {e.record: e for e in found}
    assert set(by_record) == {"repo-2", "repo-4"}
    assert by_record["repo-2"].status == "failed" and by_record["repo-2"].question.startswith(
        "The agent asked"
    )
    assert by_record["repo-2"].answer == 'speedrift answer repo-2 "…"'
    assert by_record["repo-4"].question == "question repo-4"
    assert by_record["repo-4"].answer == 'speedrift answer repo-4 "…"'
    closed = replace(question("repo-4", "refunds"), status=Status.RESOLVED)
    assert escalations(tasks, [question("repo-2", "refunds"), closed])[0] == 1


def question(ident: str, task_id: str) -> Record:
    """An open human_escalation record as fleet/clarify.py posts it."""
    return Record(
        seq=int(ident.split("-")[1]),
        id=ident,
        kind=Kind.HUMAN_ESCALATION,
        status=Status.OPEN,
        author=Author(Actor.SPEEDRIFT, name="triage"),
        summary=f"question {ident}",
        at=NOW,
        created_at=NOW,
        targets=("human",),
        data={"task": task_id},
    )
