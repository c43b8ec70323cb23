"""The cycle in a few sentences: posture, changes, the first thing to look at, what policy held back."""

from __future__ import annotations

from speedrift.control.assess.metrics import ecosystem_metrics
from speedrift.control.assess.narrative import narrate
from speedrift.control.assess.score import score_repo
from speedrift.control.plan.config import PolicyConfig
from speedrift.control.plan.policy import apply_policy
from speedrift.register.record import ActionHistory, Plan, RepoHealth, RepoSnapshot, Skipped
from tests.control.core_builders import NOW, action, graph, running, snap

STALLED = snap("billing", graph_state=graph(ready=3), mode="supervise")  # at-risk: service down
BLOCKED = snap(
    "search", graph_state=graph(missing=[("b", "x")], in_progress=[0.1]), service=running(1)
)  # watch
FINE = snap("shop", graph_state=graph(ready=1, in_progress=[0.2]), service=running(1))  # healthy
EMPTY = Plan((), ())


def healths(*snaps: RepoSnapshot) -> list[RepoHealth]:
    return [score_repo(s, None, NOW) for s in snaps]


def story(
    snaps: list[RepoSnapshot], plan: Plan = EMPTY, previous: dict[str, RepoHealth] | None = None
) -> str:
    hs = healths(*snaps)
    metrics = ecosystem_metrics(snaps, hs, ActionHistory(), None, len(snaps))
    return narrate(hs, metrics, previous or {}, plan)


def test_any_repo_at_risk_means_alert_posture() -> None:
    text = story([STALLED, BLOCKED, FINE])
    assert text.startswith("Alert posture: 1 of 3 repos at risk, 1 on watch. Flow health ")


def test_watch_without_risk_means_watch_posture() -> None:
    assert story([BLOCKED, FINE]).startswith("Watch posture: 1 of 2 repos on watch, none at risk.")


def test_all_healthy_means_stable_posture_and_nothing_to_look_at() -> None:
    text = story([FINE])
    assert text.startswith("Stable posture: all 1 repos healthy.")
    assert "Nothing needs attention." in text
    assert text.endswith("No actions planned.")


def test_the_first_cycle_says_there_is_nothing_to_compare_with() -> None:
    assert "First cycle: no earlier state to compare with." in story([FINE])


def test_tier_changes_and_new_stalls_since_the_last_cycle_are_named() -> None:
    before = {h.name: h for h in healths(FINE)}
    before["billing"] = RepoHealth("billing", 85, "healthy", "flat", 0, (), "active", None)
    before["search"] = RepoHealth("search", 40, "at-risk", "flat", 0, (), "stalled", "x")
    text = story([STALLED, BLOCKED, FINE], previous=before)
    assert "billing fell to at-risk (from healthy, score 85 → 56)" in text
    assert "search recovered to watch (from at-risk, score 40 → 78)" in text


def test_a_repo_that_newly_stalls_in_the_same_tier_is_named_with_its_stall() -> None:
    stuck = snap("shop", graph_state=graph(ready=1, done=1))  # observe mode, no service: stalled, at-risk
    previous = {"shop": RepoHealth("shop", 57, "at-risk", "flat", 0, (), "active", None)}
    assert "shop stalled: observe mode prevents automatic dispatch of 1 ready task" in story(
        [stuck], previous=previous
    )


def test_no_changes_are_reported_as_such() -> None:
    previous = {h.name: h for h in healths(FINE)}
    assert "No tier changes since the last cycle." in story([FINE], previous=previous)


def test_the_top_action_is_what_to_look_at_first() -> None:
    plan = Plan((), (Skipped(action("billing", "restart_service", 96), "plan_only", "held"),))
    text = story([STALLED, FINE], plan)
    assert "Look first at billing: restart service — test restart_service (held by plan_only)." in text


def test_an_allowed_top_action_is_named_without_a_rule() -> None:
    plan = Plan((action("billing", "restart_service", 96),), (Skipped(action("x"), "lease", "expired"),))
    assert "Look first at billing: restart service — test restart_service. " in story([STALLED, FINE], plan)


def test_without_actions_the_worst_repo_and_its_stall_come_first() -> None:
    assert "Look first at billing (56, at-risk): service down while 3 ready tasks wait." in story(
        [STALLED, FINE]
    )


def test_plan_only_holding_everything_back_is_said_plainly() -> None:
    actions = [action("billing", "restart_service", 96), action("search", "repair_dependencies", 88)]
    plan = apply_policy(actions, PolicyConfig(), {}, ActionHistory(), NOW)
    assert story([STALLED, BLOCKED], plan).endswith(
        "plan_only held back all 2 planned action(s); nothing was executed."
    )


def test_a_partly_held_plan_counts_the_rules_that_held_it() -> None:
    plan = Plan(
        (action("billing", "restart_service", 96),),
        (
            Skipped(action("search", "repair_dependencies", 88), "lease", "expired"),
            Skipped(action("shop", "sync_upstream", 74), "budget.cycle_actions", "full"),
            Skipped(action("web", "sync_upstream", 74), "lease", "expired"),
        ),
    )
    assert story([STALLED], plan).endswith(
        "1 of 4 planned action(s) allowed; held: lease 2, budget.cycle_actions 1."
    )


def test_the_narrative_is_deterministic() -> None:
    assert story([STALLED, BLOCKED, FINE]) == story([STALLED, BLOCKED, FINE])
