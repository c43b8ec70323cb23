"""The attention queues as the page shows them: the record's queues, shaped, with two prompts each.

What lands in which queue, and how urgently, is the control cycle's (tests/control/test_queues.py);
here: the display shape, the recorded order kept, and prompts added for a ledger record.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from speedrift.control.assess.queues import QUEUES
from speedrift.register.record import GateStats, GitState, Skipped
from speedrift.web.queues import display_queues
from tests.web.support import action, graph_state, record, report, snapshot

ITEM_KEYS = {
    "id", "repo", "what", "why", "priority", "waited_seconds", "since", "task", "action_id", "approvable",
    "prompts",
}  # fmt: skip


def _items(queues: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = queues[key]["items"]
    return items


def test_every_queue_is_present_in_contract_order_even_when_empty() -> None:
    queues = display_queues(record([report(snapshot("quiet"))]))
    assert list(queues) == [key for key, _label in QUEUES]
    assert all(q["total"] == 0 and q["items"] == [] for q in queues.values())


def test_a_record_without_queues_shows_five_empty_ones() -> None:
    old = {k: v for k, v in record([report(snapshot("quiet"))]).items() if k != "queues"}
    queues = display_queues(old)
    assert [(k, q["label"], q["total"], q["items"]) for k, q in queues.items()] == [
        (key, label, 0, []) for key, label in QUEUES
    ]


def test_items_keep_the_recorded_order_priority_and_total() -> None:
    cycle = record(
        [
            report(snapshot("a", gates=GateStats(high=2))),
            report(snapshot("b", gates=GateStats(secret_leaks=1))),
        ]
    )
    risk = display_queues(cycle)["risk"]
    recorded = next(q for q in cycle["queues"] if q["key"] == "risk")
    assert [i["id"] for i in risk["items"]] == [e["id"] for e in recorded["entries"]]
    assert [i["priority"] for i in risk["items"]] == [e["priority"] for e in recorded["entries"]]
    assert risk["total"] == recorded["total"] and risk["label"] == recorded["label"]
    assert all(set(item) == ITEM_KEYS for item in risk["items"])


def test_condition_items_from_the_ledger_get_a_claude_and_a_codex_prompt() -> None:
    cycle = record([report(snapshot("search", graph=graph_state(missing=[("ranking", "tokenizer")])))])
    [item] = _items(display_queues(cycle), "dependency")
    claude, codex = item["prompts"]["claude"], item["prompts"]["codex"]
    assert claude != codex
    assert "tokenizer" in claude and "tokenizer" in codex
    assert "/repos/search" in claude  # the repo's path, from the record's snapshot
    assert "You are done when" in claude
    assert "ACCEPTANCE CRITERIA" in codex and "CONSTRAINTS" in codex


def test_an_action_item_keeps_its_actions_prompts_and_gets_words_when_the_ledger_has_none() -> None:
    held = action("billing", "dispatch_ready", priority=70)
    cut = [Skipped(held, "mode", "observe mode permits no hub action")]
    [item] = _items(
        display_queues(record([report(snapshot("billing"))], planned=[held], skipped=cut)), "aging"
    )
    assert item["approvable"] is True and item["action_id"] == "billing:dispatch_ready"
    assert item["prompts"]["claude"] == "claude: dispatch_ready in billing"
    bare = replace(held, prompts={})  # as the ledger stores it
    [item] = _items(
        display_queues(
            record([report(snapshot("billing"))], planned=[bare], skipped=[Skipped(bare, "mode", "observe")])
        ),
        "aging",
    )
    assert item["prompts"]["claude"].startswith("dispatch ready in billing")
    assert item["prompts"]["codex"].startswith("TASK: dispatch ready in billing")


def test_waiting_time_is_shown_in_whole_seconds_with_the_recorded_since() -> None:
    git = GitState(branch="main", head="h", dirty_files=0, untracked_files=0, upstream="o/main", behind=2)
    cycle = record([report(snapshot("lib", git=git))])
    [item] = _items(display_queues(cycle), "upstream")
    assert item["waited_seconds"] == 0 and item["since"] == cycle["generated_at"]
