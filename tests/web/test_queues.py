"""The five attention queues: what, why, priority, waited-for, and two ready-to-paste prompts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from speedrift.register.record import AttemptStats, GateStats, GitState, Skipped
from speedrift.web.queues import QUEUES, build_queues
from tests.web.support import DAY, NOW, action, brief_task, graph_state, record, report, snapshot


def _items(queues: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = queues[key]["items"]
    return items


def test_every_queue_is_present_in_contract_order_even_when_empty() -> None:
    queues, _seen = build_queues(record([report(snapshot("quiet"))]))
    assert list(queues) == [key for key, _label in QUEUES]
    assert all(q["total"] == 0 and q["items"] == [] for q in queues.values())


def test_aging_gaps_list_old_and_dead_claims_with_how_long_they_waited() -> None:
    snap = snapshot(
        "shop",
        graph=graph_state(
            in_progress=[brief_task("old", 5 * DAY), brief_task("fresh", 3600), brief_task("orphan", 600)],
            dead=["orphan"],
            stale_open=4,
        ),
    )
    queues, _ = build_queues(record([report(snap)]))
    aging = {i["id"]: i for i in _items(queues, "aging")}
    assert set(aging) == {"aging:shop:old", "aging:shop:orphan", "aging-open:shop"}
    assert aging["aging:shop:old"]["waited_seconds"] == 5 * DAY
    assert "5.0 d" in aging["aging:shop:old"]["why"]
    assert "gone" in aging["aging:shop:orphan"]["why"]
    assert aging["aging:shop:old"]["task"] == "old"
    assert aging["aging:shop:old"]["since"] == "2026-11-15T12:00:00Z"  # observed at NOW, 5 days old


def test_dependency_breaks_cover_missing_and_failed_blockers_and_failed_loopbacks() -> None:
    snap = snapshot(
        "search",
        graph=graph_state(missing=[("ranking", "tokenizer")], failed_blockers=2),
        attempts=AttemptStats(repeated_failures=("indexer",)),
    )
    queues, _ = build_queues(record([report(snap)]))
    whats = [i["what"] for i in _items(queues, "dependency")]
    assert "ranking waits on tokenizer, which does not exist" in whats
    assert "2 open task(s) blocked by a failed task" in whats
    assert "indexer failed twice in a row" in whats


def test_findings_rank_a_secret_leak_above_everything() -> None:
    queues, _ = build_queues(
        record(
            [
                report(snapshot("a", gates=GateStats(high=2))),
                report(snapshot("b", gates=GateStats(secret_leaks=1))),
            ]
        )
    )
    risk = _items(queues, "risk")
    assert [i["repo"] for i in risk] == ["b", "a"]
    assert risk[0]["priority"] == 98


def test_upstream_candidates_come_from_commits_ahead_and_behind() -> None:
    git = GitState(
        branch="main", head="h", dirty_files=0, untracked_files=0, upstream="origin/main", ahead=3, behind=7
    )
    queues, _ = build_queues(record([report(snapshot("lib", git=git))]))
    ids = {i["id"] for i in _items(queues, "upstream")}
    assert ids == {"upstream-ahead:lib", "upstream-behind:lib"}


def test_actions_held_back_for_a_person_wait_in_the_human_queue_and_can_be_approved() -> None:
    held = action("billing", "dispatch_ready", priority=70)
    queues, _ = build_queues(
        record(
            [report(snapshot("billing"))],
            planned=[held],
            skipped=[Skipped(held, "mode", "observe mode permits no hub action")],
        )
    )
    [item] = _items(queues, "human")
    assert item["action_id"] == "billing:dispatch_ready"
    assert item["approvable"] is True
    assert "held back (mode)" in item["why"]
    assert item["prompts"] == {
        "claude": "claude: dispatch_ready in billing",
        "codex": "codex: dispatch_ready in billing",
    }


def test_a_planned_action_joins_the_condition_it_answers_instead_of_duplicating_it() -> None:
    snap = snapshot("shop", graph=graph_state(in_progress=[brief_task("old", 4 * DAY)]))
    planned = action("shop", "verify_in_progress", subject="old", priority=90)
    queues, _ = build_queues(record([report(snap)], planned=[planned]))
    [item] = _items(queues, "aging")
    assert item["id"] == "aging:shop:old"
    assert item["action_id"] == "shop:verify_in_progress:old"
    assert item["priority"] == 90
    assert item["prompts"]["claude"] == "claude: verify_in_progress in shop"


def test_an_action_about_several_tasks_joins_the_first_matching_condition() -> None:
    from dataclasses import replace

    snap = snapshot("shop", graph=graph_state(in_progress=[brief_task("old", 4 * DAY)]))
    planned = replace(action("shop", "verify_in_progress", priority=60), params={"tasks": ["old", "other"]})
    queues, _ = build_queues(record([report(snap)], planned=[planned]))
    [item] = _items(queues, "aging")
    assert item["action_id"] == "shop:verify_in_progress"


def test_condition_items_get_a_claude_and_a_codex_prompt_with_goal_context_and_acceptance() -> None:
    snap = snapshot("search", graph=graph_state(missing=[("ranking", "tokenizer")]))
    queues, _ = build_queues(record([report(snap)]))
    [item] = _items(queues, "dependency")
    claude, codex = item["prompts"]["claude"], item["prompts"]["codex"]
    assert claude != codex
    assert "tokenizer" in claude and "tokenizer" in codex
    assert "You are done when" in claude
    assert "ACCEPTANCE CRITERIA" in codex and "CONSTRAINTS" in codex


def test_waiting_time_of_a_repo_condition_carries_over_between_cycles() -> None:
    snap = snapshot("search", graph=graph_state(failed_blockers=1))
    _q, seen = build_queues(record([report(snap)], at=NOW))
    later = NOW + timedelta(hours=2)
    queues, seen_again = build_queues(record([report(snap)], at=later), seen)
    [item] = _items(queues, "dependency")
    assert item["waited_seconds"] == 7200
    assert seen_again == seen
    cleared, seen_after = build_queues(record([report(snapshot("search"))], at=later), seen_again)
    assert seen_after == {} and cleared["dependency"]["total"] == 0


def test_queues_are_capped_but_say_how_many_there_are() -> None:
    snap = snapshot("big", graph=graph_state(missing=[(f"t{i}", f"gone{i}") for i in range(80)]))
    queues, _ = build_queues(record([report(snap)]), cap=10)
    assert queues["dependency"]["total"] == 80
    assert len(queues["dependency"]["items"]) == 10


def test_an_unobservable_repo_waits_on_a_human() -> None:
    queues, _ = build_queues(
        record([report(snapshot("gone", exists=False, errors=("path does not exist",)))])
    )
    [item] = _items(queues, "human")
    assert item["what"] == "gone cannot be observed"
    assert item["why"] == "path does not exist"
