"""The attention queues, a stage of the cycle: what waits for a person, in which queue, how urgently.

Built the way the cycle builds them — snapshots scored by the scorer, candidates from the planner —
unless a test hands in its own actions. Entries are compared in their recorded (plain) form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from speedrift.control.assess.conditions import RepoConditions, judge_conditions, ranked
from speedrift.control.assess.judgement import with_prompts
from speedrift.control.assess.queues import (
    QUEUE_CAP,
    QUEUES,
    attention_queues,
    carried_since,
    carried_since_plain,
    reason_priority,
)
from speedrift.control.assess.score import score_repo
from speedrift.control.assess.weights import WEIGHTS
from speedrift.control.plan.candidates import TRIGGERS, plan_actions
from speedrift.register.actions import Action, VerifyParams
from speedrift.register.record import (
    AttemptStats,
    AttentionQueue,
    CycleRecord,
    Escalation,
    GateStats,
    GraphState,
    RepoHealth,
    RepoReport,
    RepoSnapshot,
    Skipped,
)
from speedrift.serialize import cycle_to_dict, to_plain
from tests.control.core_builders import DAY, NOW, brief, git, graph, snap, snapshots
from tests.web.support import action


def _graph(
    *, in_progress: Sequence[tuple[str, float]] = (), dead: Sequence[str] = (), **fields: Any
) -> GraphState:
    """A graph whose in-progress tasks have the given ids and ages (seconds)."""
    return replace(
        graph(**fields),
        in_progress=tuple(replace(brief(t, "in-progress"), age_seconds=age) for t, age in in_progress),
        dead_claims=tuple(dead),
    )


def _compute(
    snaps: Sequence[RepoSnapshot],
    *,
    planned: Sequence[Action] | None = None,
    skipped: Sequence[Skipped] = (),
    at: Any = NOW,
    first_seen: Any = None,
    cap: int = QUEUE_CAP,
) -> tuple[AttentionQueue, ...]:
    snapshots = {s.name: s for s in snaps}
    healths = {s.name: score_repo(s, None, at) for s in snaps}
    actions = plan_actions(snapshots, healths, [], at) if planned is None else planned
    return attention_queues(snapshots, healths, actions, skipped, at, first_seen=first_seen, cap=cap)


def _plain(queues: tuple[AttentionQueue, ...]) -> dict[str, Any]:
    return {q.key: to_plain(q) for q in queues}


def _items(queues: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = queues[key]["entries"]
    return items


def test_every_queue_is_present_in_contract_order_even_when_empty() -> None:
    queues = _plain(_compute([snap("quiet")]))
    assert list(queues) == [key for key, _label in QUEUES]
    assert all(q["total"] == 0 and q["entries"] == [] for q in queues.values())


def test_aging_gaps_list_old_and_dead_claims_with_how_long_they_waited() -> None:
    shop = snap(
        "shop",
        graph_state=_graph(
            in_progress=[("old", 5 * DAY), ("fresh", 3600), ("orphan", 600)], dead=["orphan"], stale_open=4
        ),
    )
    queues = _plain(_compute([shop]))
    aging = {i["id"]: i for i in _items(queues, "aging")}
    assert set(aging) == {"aging:shop:old", "aging:shop:orphan", "aging-open:shop"}
    assert aging["aging:shop:old"]["waited_seconds"] == 5 * DAY
    assert "5.0 d" in aging["aging:shop:old"]["why"]
    assert "gone" in aging["aging:shop:orphan"]["why"]
    assert aging["aging:shop:old"]["task"] == "old"
    assert aging["aging:shop:old"]["since"] == "2026-11-15T12:00:00Z"  # observed at NOW, 5 days old
    # the rules are the scorer's reasons; the priorities the planner's answers to them
    assert aging["aging:shop:old"]["rule"] == "aging_in_progress"
    assert aging["aging:shop:orphan"]["rule"] == "dead_claims"
    assert aging["aging:shop:old"]["priority"] == TRIGGERS["verify"].priority
    assert aging["aging-open:shop"]["priority"] == TRIGGERS["stale_open"].priority


def test_dependency_breaks_cover_missing_and_failed_blockers_and_failed_loopbacks() -> None:
    search = snap(
        "search",
        graph_state=graph(missing=[("ranking", "tokenizer")], failed_blockers=2),
        attempts=AttemptStats(repeated_failures=("indexer",)),
    )
    queues = _plain(_compute([search]))
    whats = [i["what"] for i in _items(queues, "dependency")]
    assert "ranking waits on tokenizer, which does not exist" in whats
    assert "2 open task(s) blocked by a failed task" in whats
    assert "indexer failed twice in a row" in whats


def test_findings_rank_a_secret_leak_above_everything() -> None:
    queues = _plain(
        _compute(
            [
                snap("a", gates=GateStats(high=2)),
                snap("b", gates=GateStats(secret_leaks=1)),
            ]
        )
    )
    risk = _items(queues, "risk")
    assert [i["repo"] for i in risk] == ["b", "a"]
    assert risk[0]["priority"] == 98


def test_upstream_candidates_come_from_commits_ahead_and_behind() -> None:
    queues = _plain(_compute([snap("lib", git_state=git(ahead=3, behind=7))]))
    ids = {i["id"] for i in _items(queues, "upstream")}
    assert ids == {"upstream-ahead:lib", "upstream-behind:lib"}


def test_actions_held_back_for_a_person_wait_in_their_kinds_column_approvable_not_with_the_humans() -> None:
    held = action("billing", "dispatch_ready", priority=70)
    queues = _plain(
        _compute(
            [snap("billing")],
            planned=[held],
            skipped=[Skipped(held, "mode", "observe mode permits no hub action")],
        )
    )
    assert _items(queues, "human") == []  # the hub's own held action is no question for a person
    [item] = _items(queues, "aging")
    assert item["action_id"] == "billing:dispatch_ready"
    assert item["approvable"] is True
    assert "held back (mode)" in item["why"]
    assert item["prompts"] == {
        "claude": "claude: dispatch_ready in billing",
        "codex": "codex: dispatch_ready in billing",
    }


def test_a_planned_action_joins_the_condition_it_answers_instead_of_duplicating_it() -> None:
    shop = snap("shop", graph_state=_graph(in_progress=[("old", 4 * DAY)]))
    planned = action("shop", "verify_in_progress", subject="old", priority=90)
    queues = _plain(_compute([shop], planned=[planned]))
    [item] = _items(queues, "aging")
    assert item["id"] == "aging:shop:old"
    assert item["action_id"] == "shop:verify_in_progress:old"
    assert item["priority"] == 90
    assert item["prompts"]["claude"] == "claude: verify_in_progress in shop"


def test_an_action_about_several_tasks_joins_the_first_matching_condition() -> None:
    shop = snap("shop", graph_state=_graph(in_progress=[("old", 4 * DAY)]))
    planned = replace(
        action("shop", "verify_in_progress", priority=60),
        params=VerifyParams(tasks=("old", "other"), dead=(), aging=("old",)),
    )
    queues = _plain(_compute([shop], planned=[planned]))
    [item] = _items(queues, "aging")
    assert item["action_id"] == "shop:verify_in_progress"


def test_condition_items_get_a_claude_and_a_codex_prompt_with_goal_context_and_acceptance() -> None:
    search = snap("search", graph_state=graph(missing=[("ranking", "tokenizer")]))
    queues = _compute([search], planned=[])  # a condition no action answers: its own brief
    [entry] = queues[1].entries
    assert entry.prompts == {}  # the ledger keeps none; presentation adds them
    shown = with_prompts(_record([_report(search)], queues))
    [item] = cycle_to_dict(shown)["queues"][1]["entries"]
    claude, codex = item["prompts"]["claude"], item["prompts"]["codex"]
    assert claude != codex
    assert "tokenizer" in claude and "tokenizer" in codex
    assert "You are done when" in claude
    assert "ACCEPTANCE CRITERIA" in codex and "CONSTRAINTS" in codex


def test_an_entry_answered_by_an_action_is_presented_with_the_actions_prompts() -> None:
    search = snap("search", graph_state=graph(missing=[("ranking", "tokenizer")]))
    snapshots = {"search": search}
    health = score_repo(search, None, NOW)
    planned = plan_actions(snapshots, {"search": health}, [], NOW, with_prompts=False)
    queues = attention_queues(snapshots, {"search": health}, planned, (), NOW)
    shown = with_prompts(replace(_record([_report(search)], queues), planned=tuple(planned)))
    [entry] = shown.queues[1].entries
    [repair] = shown.planned
    assert entry.action_id == repair.id and entry.prompts == repair.prompts and repair.prompts["claude"]


def test_waiting_time_of_a_repo_condition_carries_over_between_cycles() -> None:
    search = snap("search", graph_state=graph(failed_blockers=1))
    seen = carried_since(_compute([search], at=NOW))
    later = NOW + timedelta(hours=2)
    queues = _compute([search], at=later, first_seen=seen)
    [item] = _items(_plain(queues), "dependency")
    assert item["waited_seconds"] == 7200
    seen_again = carried_since(queues)
    assert seen_again == seen
    cleared = _compute([snap("search")], at=later, first_seen=seen_again)
    seen_after = carried_since(cleared)
    assert seen_after == {} and _plain(cleared)["dependency"]["total"] == 0


def test_a_recorded_cycle_hands_its_waiting_times_on_as_plain_json_too() -> None:
    search = snap("search", graph_state=graph(failed_blockers=1))
    queues = _compute([search], at=NOW)
    assert carried_since_plain({"queues": [to_plain(q) for q in queues]}) == carried_since(queues)
    assert carried_since_plain(None) == {} and carried_since_plain({"cycle_id": "old"}) == {}


def test_queues_are_capped_but_say_how_many_there_are() -> None:
    big = snap("big", graph_state=graph(missing=[(f"t{i}", f"gone{i}") for i in range(80)]))
    queues = _plain(_compute([big], cap=10))
    assert queues["dependency"]["total"] == 80
    assert len(queues["dependency"]["entries"]) == 10


def test_an_unobservable_repo_waits_on_a_human() -> None:
    queues = _plain(_compute([snap("gone", exists=False, errors=("path does not exist",))]))
    [item] = _items(queues, "human")
    assert item["what"] == "gone cannot be observed"
    assert item["why"] == "path does not exist"
    assert item["rule"] == "missing_repo" and item["priority"] == 100  # what it costs the score


def test_a_condition_no_action_answers_is_as_urgent_as_its_reason_costs() -> None:
    ci = snap("ci", gates=GateStats(last_status="fail"))  # a failed run, no finding: no gate scan planned
    [entry] = _compute([ci])[2].entries
    assert entry.rule == "gate_failed" and entry.action_id is None
    [reason] = score_repo(ci, None, NOW).reasons
    assert entry.priority == reason_priority(reason) == round(WEIGHTS["gate_failed"].first)


def test_a_free_action_joins_every_condition_it_answers_and_one_held_for_a_person_stands_alone() -> None:
    search = snap("search", graph_state=graph(missing=[("a", "x"), ("b", "y")]))
    snapshots = {"search": search}
    healths = {"search": score_repo(search, None, NOW)}
    [repair] = plan_actions(snapshots, healths, [], NOW)
    free = attention_queues(snapshots, healths, [repair], (), NOW)
    assert [e.action_id for e in free[1].entries] == [repair.id, repair.id]
    assert free[4].entries == ()
    held = attention_queues(snapshots, healths, [repair], [Skipped(repair, "plan_only", "plan only")], NOW)
    waiting, *conditions = held[1].entries
    assert [e.action_id for e in conditions] == [None, None]
    assert [e.priority for e in conditions] == [repair.priority, repair.priority]  # the plan's verdict
    assert waiting.id == f"action:{repair.id}" and waiting.approvable
    assert held[4].entries == ()  # "Waiting on a human" holds no hub action


def test_an_action_held_by_its_cooldown_keeps_to_its_condition_and_is_not_approvable() -> None:
    lib = snap("lib", git_state=git(behind=3))
    snapshots = {"lib": lib}
    healths = {"lib": score_repo(lib, None, NOW)}
    [sync] = plan_actions(snapshots, healths, [], NOW)
    queues = attention_queues(snapshots, healths, [sync], [Skipped(sync, "cooldown", "ran 10 s ago")], NOW)
    [entry] = queues[3].entries
    assert entry.id == "upstream-behind:lib" and entry.action_id == sync.id and not entry.approvable
    assert queues[4].entries == ()


@settings(max_examples=60, deadline=None)
@given(st.lists(snapshots(), min_size=1, max_size=3, unique_by=lambda s: s.name), st.booleans())
def test_every_priority_is_an_actions_or_a_reasons_and_every_action_is_shown(
    snaps: list[RepoSnapshot], plan_only: bool
) -> None:
    snapshots = {s.name: s for s in snaps}
    healths = {s.name: score_repo(s, None, NOW) for s in snaps}
    planned = plan_actions(snapshots, healths, [], NOW, with_prompts=False)
    skipped = [Skipped(a, "plan_only", "plan only") for a in planned] if plan_only else []
    queues = attention_queues(snapshots, healths, planned, skipped, NOW, cap=10_000)
    allowed = {a.priority for a in planned} | {
        reason_priority(r) for h in healths.values() for r in h.reasons
    }
    entries = [e for q in queues for e in q.entries]
    assert all(e.priority in allowed for e in entries)
    assert {a.id for a in planned} <= {e.action_id for e in entries}
    for queue in queues:
        keys = [(-e.priority, -e.waited_seconds, e.id) for e in queue.entries]
        assert keys == sorted(keys) and queue.total == len(queue.entries)


# ---------------------------------------------------------------- kept across cycles
# judgement.assess keeps a repo's condition drafts (conditions.py) while the repo is unchanged; the
# cycle after is built from the snapshot the observer reused, its ages moved forward to `now`.


def _observed(snapshot: RepoSnapshot, at: Any, *, fingerprint: str = "f1") -> RepoSnapshot:
    """``snapshot`` as the observer hands it on at ``at`` without reading anything (graph.refresh:
    the in-progress ages moved forward; the fingerprint unchanged)."""
    assert snapshot.graph is not None
    shift = (at - snapshot.observed_at).total_seconds()
    running = tuple(
        b if b.age_seconds is None else replace(b, age_seconds=b.age_seconds + shift)
        for b in snapshot.graph.in_progress
    )
    graph = replace(snapshot.graph, in_progress=running)
    return replace(snapshot, observed_at=at, graph=graph, fingerprint=fingerprint, reused=True)


def _judged(
    snaps: Sequence[RepoSnapshot],
    healths: dict[str, RepoHealth],
    planned: Sequence[Action],
    previous: dict[str, RepoConditions] | None = None,
) -> dict[str, RepoConditions]:
    """Each repo's drafts as judgement.assess judges them: kept from ``previous`` when they hold."""
    kept = previous or {}
    return {
        s.name: judge_conditions(
            s, healths[s.name], ranked([a for a in planned if a.repo == s.name]), kept.get(s.name)
        )
        for s in snaps
    }


def _busy(name: str, at: Any = NOW) -> RepoSnapshot:
    """A repo with one of every kind of condition entry, its in-progress tasks at given ages."""
    escalation = Escalation("rounding", "Rounding", "failed", "per line or per invoice?", "speedrift retry")
    state = replace(
        _graph(
            in_progress=[("old", 4 * DAY), ("nearly", 3 * DAY - 1800), ("orphan", 600)],
            dead=["orphan"],
            stale_open=3,
            missing=[("ranking", "tokenizer")],
            failed_blockers=1,
        ),
        needs_human=1,
        escalations=(escalation,),
    )
    return replace(
        snap(
            name,
            graph_state=state,
            git_state=git(ahead=2, behind=5),
            gates=GateStats(high=1, last_status="fail"),
            attempts=AttemptStats(repeated_failures=("indexer",)),
            observed_at=at,
        ),
        fingerprint="f1",
    )


def test_the_queues_of_a_kept_repo_equal_a_fresh_computation_cycle_after_cycle() -> None:
    first = [_busy("shop"), _busy("billing"), snap("quiet")]
    healths = {s.name: score_repo(s, None, NOW) for s in first}
    planned = plan_actions({s.name: s for s in first}, healths, [], NOW, with_prompts=False)
    kept = _judged(first, healths, planned)
    for hours, plan_only in ((1, True), (2, False), (7, True)):  # the plan's cuts change between cycles
        at = NOW + timedelta(hours=hours)
        snaps = [_observed(s, at) if s.graph is not None else s for s in first]
        skipped = [Skipped(a, "plan_only", "plan only") for a in planned] if plan_only else []
        again = _judged(snaps, healths, planned, kept)
        assert all(again[name] is kept[name] for name in ("shop", "billing"))  # nothing built again
        by_name = {s.name: s for s in snaps}
        memoized = attention_queues(by_name, healths, planned, skipped, at, conditions=again)
        assert memoized == attention_queues(by_name, healths, planned, skipped, at)
        assert sum(q.total for q in memoized) >= 20
        kept = again


def test_a_kept_repos_aging_entries_move_with_the_clock() -> None:
    shop = _busy("shop")
    health = score_repo(shop, None, NOW)  # the score is kept too: its reasons are the ones of NOW
    healths = {"shop": health}
    kept = _judged([shop], healths, [])
    before = {
        e.id: e for e in attention_queues({"shop": shop}, healths, [], [], NOW, conditions=kept)[0].entries
    }
    later = NOW + timedelta(hours=3)
    moved = _observed(shop, later)
    assert judge_conditions(moved, health, (), kept["shop"]) is kept["shop"]
    [aging] = attention_queues({"shop": moved}, healths, [], [], later, conditions=kept)[:1]
    after = {e.id: e for e in aging.entries}
    old = "aging:shop:old"
    assert "in progress for 4.0 d" in before[old].why and "in progress for 4.1 d" in after[old].why
    assert after[old].waited_seconds == before[old].waited_seconds + 3 * 3600
    assert after[old].since == before[old].since  # the task's start, not when it was seen
    # a task crossing the aging line while nothing changed shows the moment it crosses
    assert "aging:shop:nearly" not in before and "in progress for 3.1 d" in after["aging:shop:nearly"].why
    # a dead claim is charged as a dead claim until it has aged, then as aging: the rule follows
    assert before["aging:shop:orphan"].rule == "dead_claims"
    much_later = NOW + timedelta(days=3)
    [late] = attention_queues(
        {"shop": _observed(shop, much_later)}, healths, [], [], much_later, conditions=kept
    )[:1]
    orphan = next(e for e in late.entries if e.id == "aging:shop:orphan")
    assert orphan.rule == "aging_in_progress" and orphan.waited_seconds == 600 + 3 * DAY
    # ranked by how long waited at each `now`: the order is the clock's too
    assert [e.id for e in late.entries] == [
        e.id for e in sorted(late.entries, key=lambda e: (-e.priority, -e.waited_seconds, e.id))
    ]


def test_a_changed_repos_entries_are_built_again() -> None:
    shop = _busy("shop")
    healths = {"shop": score_repo(shop, None, NOW)}
    kept = _judged([shop], healths, [])["shop"]
    later = NOW + timedelta(hours=1)
    moved = _observed(shop, later)
    assert judge_conditions(moved, healths["shop"], (), kept) is kept

    # its files changed: the observer read it again, with a new fingerprint and a new broken reference
    assert moved.graph is not None
    broken = replace(moved.graph, missing_dependencies=(("ranking", "tokenizer"), ("search", "stemmer")))
    changed = replace(moved, graph=broken, fingerprint="f2", reused=False)
    health = score_repo(changed, None, later)
    rebuilt = judge_conditions(changed, health, (), kept)
    assert rebuilt is not kept
    [dependency] = attention_queues({"shop": changed}, {"shop": health}, [], [], later)[1:2]
    assert "dep-missing:shop:search:stemmer" in {e.id for e in dependency.entries}
    assert attention_queues(
        {"shop": changed}, {"shop": health}, [], [], later, conditions={"shop": rebuilt}
    ) == attention_queues({"shop": changed}, {"shop": health}, [], [], later)
    # read again with the same fingerprint (a graph past its time horizon): judged again all the same
    assert judge_conditions(replace(moved, reused=False), healths["shop"], (), kept) is not kept
    # a claim found dead without a read, other reasons, other candidate actions: each is built again
    assert (
        judge_conditions(replace(moved, graph=replace(broken, dead_claims=())), healths["shop"], (), kept)
        is not kept
    )
    assert judge_conditions(moved, health, (), kept) is not kept
    verify = action("shop", "verify_in_progress", subject="old", priority=90)
    assert judge_conditions(moved, healths["shop"], (verify,), kept) is not kept
    # drafts handed in that were judged from other actions are not used: the queues judge it here
    [aging] = attention_queues({"shop": moved}, healths, [verify], [], later, conditions={"shop": kept})[:1]
    assert next(e for e in aging.entries if e.id == "aging:shop:old").action_id == verify.id


def _report(snapshot: RepoSnapshot) -> RepoReport:
    health = score_repo(snapshot, None, NOW)
    return RepoReport(**{f.name: getattr(health, f.name) for f in fields(health)}, snapshot=snapshot)


def _record(reports: Sequence[RepoReport], queues: tuple[AttentionQueue, ...]) -> CycleRecord:
    return CycleRecord(
        cycle_id="c-1",
        generated_at=NOW,
        finished_at=NOW,
        plan_only=True,
        ecosystem="/eco/ecosystem.toml",
        repos=tuple(reports),
        metrics={},
        edges=(),
        planned=(),
        skipped=(),
        executed=(),
        hints=(),
        inputs={},
        queues=queues,
    )
