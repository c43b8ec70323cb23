"""Human escalations: a task the recovery tagged needs-human is read by the observer with its
question and answer command, costs the repo's score (rule needs_human), waits in the human queue,
and is gone once it is retried or finished. Tasks are escalated as the worker pipeline does it
(tests/control/escalate.py), in a real graph file."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from speedrift.control.assess.queues import attention_queues, reason_priority
from speedrift.control.assess.score import score_repo
from speedrift.control.assess.weights import WEIGHTS
from speedrift.control.observe.graph import read_graph
from speedrift.control.plan.candidates import TRIGGERS
from speedrift.control.plan.entry_prompts import entry_prompts
from speedrift.control.plan.prompts import SAFETY
from speedrift.failure_class import FailureClass
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.recovery_graph import NEEDS_HUMAN, manual_retry_mutation
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore, init_graph_dir
from speedrift.pausestore import RuntimePause
from speedrift.register.record import GraphState
from tests.control.core_builders import snap
from tests.control.escalate import ACTOR, escalate

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> GraphStore:
    (tmp_path / "billing").mkdir()
    init_graph_dir(tmp_path / "billing")
    graph_store = GraphStore(tmp_path / "billing" / ".workgraph")
    for task_id in ("rounding", "deploy-keys", "ship", "bootstrap", "quiet"):
        spec = ops.NewTask(task_id.replace("-", " ").title(), task_id=task_id)
        graph_store.mutate(partial(_add, spec=spec), now=NOW)
    return graph_store


def _add(graph: Graph, now: datetime, *, spec: ops.NewTask) -> ops.Mutation:
    return ops.add_task(graph, spec, now=now, actor=ACTOR)


def _done(graph: Graph, now: datetime, *, task_id: str) -> ops.Mutation:
    return ops.done(graph, task_id, now=now, actor=ACTOR)


def observed(store: GraphStore, at: datetime = NOW) -> GraphState:
    reading = read_graph(store.directory.parent, at)
    assert reading is not None
    return reading.state


def test_the_observer_reads_the_agents_question_and_the_retry_that_answers_it(store: GraphStore) -> None:
    escalate(store, "rounding", FailureClass.SPEC_GAP, now=NOW - timedelta(hours=2))

    state = observed(store)

    assert state.needs_human == 1
    [escalation] = state.escalations
    assert escalation.task == "rounding" and escalation.title == "Rounding"
    assert escalation.status == "failed" and escalation.failure_class == "spec_gap"
    assert "should amounts be rounded per line or per invoice?" in escalation.question
    assert escalation.answer == "speedrift retry rounding --context '<answer>'"
    assert escalation.first is None
    assert escalation.since == NOW - timedelta(hours=2)


def test_a_leaked_secret_asks_to_rotate_it_first_then_retry(store: GraphStore) -> None:
    escalate(store, "deploy-keys", FailureClass.SECRET_LEAK, files=("config/keys.py",))

    [escalation] = observed(store).escalations

    assert escalation.failure_class == "secret_leak"
    assert escalation.first is not None and escalation.first.startswith("Rotate the leaked credential")
    assert "config/keys.py" in escalation.first
    assert escalation.answer == "speedrift retry deploy-keys --context '<answer>'"


def test_a_refused_login_and_a_missing_cli_are_answered_by_a_forced_retry_after_the_fix(
    store: GraphStore,
) -> None:
    escalate(store, "ship", FailureClass.AUTH_FAILURE, now=NOW - timedelta(minutes=5))
    escalate(store, "bootstrap", FailureClass.ENV_BOOTSTRAP, now=NOW - timedelta(minutes=1))

    auth, env = observed(store).escalations  # oldest escalation first

    assert (auth.task, env.task) == ("ship", "bootstrap")
    assert auth.answer == "speedrift retry ship --force" and auth.first is not None
    assert "Log the agent's CLI in again" in auth.first
    assert env.answer == "speedrift retry bootstrap --force" and env.first is not None
    assert "command not found" in env.question


def test_a_task_tagged_by_hand_is_answered_by_removing_the_tag(store: GraphStore) -> None:
    store.mutate(lambda g, now: ops.set_fields(g, "quiet", {"tags": [NEEDS_HUMAN]}, now=now, actor=ACTOR))

    [escalation] = observed(store).escalations

    assert escalation.status == "open"
    assert escalation.answer == f"speedrift edit quiet --remove-tag {NEEDS_HUMAN}"
    assert "no question is recorded" in escalation.question


def test_a_retried_or_finished_task_asks_nothing_any_more(store: GraphStore) -> None:
    for task_id in ("rounding", "deploy-keys", "ship"):
        escalate(store, task_id, FailureClass.SPEC_GAP)
    assert observed(store).needs_human == 3

    store.mutate(
        lambda g, now: manual_retry_mutation(
            g, "rounding", context="per invoice", force=False, config=RepoConfig(), now=now, actor=ACTOR
        )
    )
    store.mutate(lambda g, now: ops.abandon(g, "deploy-keys", reason="not needed", now=now, actor=ACTOR))

    state = observed(store)
    assert [e.task for e in state.escalations] == ["ship"] and state.needs_human == 1


def test_a_task_waiting_on_a_human_lowers_the_score_by_the_needs_human_rule(store: GraphStore) -> None:
    for task_id in ("deploy-keys", "ship", "bootstrap", "quiet"):  # nothing else to charge
        store.mutate(partial(_done, task_id=task_id))
    escalate(store, "rounding", FailureClass.SPEC_GAP)
    snapshot = snap("billing", graph_state=observed(store))

    health = score_repo(snapshot, None, NOW)

    [reason] = [r for r in health.reasons if r.code == "needs_human"]
    assert reason.points == WEIGHTS["needs_human"].first
    assert reason.text == "task rounding waits on a human's answer (spec_gap)"
    assert health.score == 100 - WEIGHTS["needs_human"].first and health.tier == "watch"
    assert health.activity == "stalled" and health.stall is not None and "rounding" in health.stall


def test_each_needs_human_task_waits_in_the_human_queue_with_its_question_and_answer(
    store: GraphStore,
) -> None:
    escalate(store, "rounding", FailureClass.SPEC_GAP, now=NOW - timedelta(hours=3))
    escalate(store, "deploy-keys", FailureClass.SECRET_LEAK, files=("config/keys.py",))
    snapshot = snap("billing", graph_state=observed(store))
    health = score_repo(snapshot, None, NOW)

    queues = {q.key: q for q in attention_queues({"billing": snapshot}, {"billing": health}, [], [], NOW)}

    entries = {e.id: e for e in queues["human"].entries}
    assert set(entries) >= {"human:billing:rounding", "human:billing:deploy-keys"}
    rounding = entries["human:billing:rounding"]
    assert rounding.rule == "needs_human" and rounding.task == "rounding"
    assert "per line or per invoice" in rounding.why
    assert rounding.detail["answer"] == "speedrift retry rounding --context '<answer>'"
    assert rounding.priority == reason_priority(next(r for r in health.reasons if r.code == "needs_human"))
    assert rounding.since == NOW - timedelta(hours=3) and rounding.waited_seconds == 3 * 3600
    assert entries["human:billing:deploy-keys"].detail["first"].startswith("Rotate the leaked credential")
    assert all(
        not e.id.startswith("human:") for key, q in queues.items() if key != "human" for e in q.entries
    )


def test_the_entrys_prompts_carry_the_question_the_answer_command_and_the_safety_line(
    store: GraphStore,
) -> None:
    escalate(store, "deploy-keys", FailureClass.SECRET_LEAK, files=("config/keys.py",))
    snapshot = snap("billing", graph_state=observed(store))
    queues = attention_queues(
        {"billing": snapshot}, {"billing": score_repo(snapshot, None, NOW)}, [], [], NOW
    )
    entry = next(e for q in queues for e in q.entries if e.rule == "needs_human")

    prompts = entry_prompts(
        entry.rule, entry.repo, "/srv/billing", task=entry.task, what=entry.what, why=entry.why,
        detail=entry.detail,
    )  # fmt: skip

    for text in prompts.values():
        assert "speedrift retry deploy-keys --context '<answer>'" in text
        assert "Rotate the leaked credential" in text and "config/keys.py" in text
        assert SAFETY.removesuffix(" (no --no-verify).") in text


def test_a_runtime_pause_only_a_person_can_lift_waits_in_the_human_queue_with_its_fix() -> None:
    login = RuntimePause(
        runtime="claude",
        cause="auth_failure",
        reason="401 invalid x-api-key",
        since=NOW - timedelta(hours=1),
        until=None,
        fix="run `claude login`",
        set_by="service billing",
        needs_human=True,
        repo="billing",
        task="ship",
    )
    later = NOW + timedelta(hours=2)
    limit = replace(login, runtime="codex", cause="usage_limit", until=later, needs_human=False)
    snapshot = snap("billing")
    health = score_repo(snapshot, None, NOW)

    queues = attention_queues({"billing": snapshot}, {"billing": health}, [], [], NOW, pauses=[login, limit])

    human = {e.id: e for e in queues[-1].entries}
    assert "pause:codex" not in human  # it lifts itself at its reset
    entry = human["pause:claude"]
    assert entry.rule == "runtime_paused" and entry.repo == "billing" and entry.task == "ship"
    assert entry.detail["answer"] == "speedrift resume-runtime claude"
    assert entry.detail["first"] == "run `claude login`"
    assert "401 invalid x-api-key" in entry.why and entry.since == NOW - timedelta(hours=1)
    assert entry.priority == TRIGGERS["dispatch"].priority  # the dispatch it holds, no urgency of its own
