"""The cycle in plain words: posture, changes, the first thing to look at, what policy held back
(each rule explained, with the command that changes it)."""

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
    assert text.startswith("Alert posture. 1 of 3 repos at risk. 1 on watch. Flow health is ")


def test_watch_without_risk_means_watch_posture() -> None:
    assert story([BLOCKED, FINE]).startswith("Watch posture. 1 of 2 repos on watch. None at risk.")


def test_all_healthy_means_stable_posture_and_nothing_to_look_at() -> None:
    text = story([FINE])
    assert text.startswith("Stable posture. All 1 repo healthy.")
    assert "Nothing needs attention." in text
    assert text.endswith("The hub planned no actions.")


def test_the_first_cycle_says_there_is_nothing_to_compare_with() -> None:
    assert "This is the first cycle, so there is no earlier state to compare with." in story([FINE])


def test_tier_changes_and_new_stalls_since_the_last_cycle_are_named() -> None:
    before = {h.name: h for h in healths(FINE)}
    before["billing"] = RepoHealth("billing", 85, "healthy", "flat", 0, (), "active", None)
    before["search"] = RepoHealth("search", 40, "at-risk", "flat", 0, (), "stalled", "x")
    text = story([STALLED, BLOCKED, FINE], previous=before)
    assert "\n- billing fell to at-risk (from healthy, score 85 → 56).\n" in text
    assert "\n- search recovered to watch (from at-risk, score 40 → 78)." in text
    assert "Since the last cycle:\n- " in text


def test_a_repo_that_newly_stalls_in_the_same_tier_is_named_with_its_stall() -> None:
    stuck = snap("shop", graph_state=graph(ready=1, done=1))  # observe mode, no service: stalled, at-risk
    previous = {"shop": RepoHealth("shop", 57, "at-risk", "flat", 0, (), "active", None)}
    assert "- shop stalled: observe mode prevents automatic dispatch of 1 ready task" in story(
        [stuck], previous=previous
    )


def test_no_changes_are_reported_as_such() -> None:
    previous = {h.name: h for h in healths(FINE)}
    assert "No repo changed tier since the last cycle." in story([FINE], previous=previous)


def test_the_top_action_is_what_to_look_at_first() -> None:
    plan = Plan((), (Skipped(action("billing", "restart_service", 96), "plan_only", "held"),))
    text = story([STALLED, FINE], plan)
    assert (
        "Look first at billing. The hub's most urgent action there: restart service. "
        "Why: test restart_service. It is held by plan_only: the hub only plans while `plan_only` is on"
    ) in text


def test_an_allowed_top_action_is_named_without_a_rule() -> None:
    plan = Plan((action("billing", "restart_service", 96),), (Skipped(action("x"), "lease", "expired"),))
    text = story([STALLED, FINE], plan)
    assert (
        "Look first at billing. The hub's most urgent action there: restart service. "
        "Why: test restart_service.\n\n"
    ) in text


def test_without_actions_the_worst_repo_and_its_stall_come_first() -> None:
    assert "Look first at billing (score 56, at-risk). Why: service down while 3 ready tasks wait." in story(
        [STALLED, FINE]
    )


def test_plan_only_holding_everything_back_is_said_plainly() -> None:
    actions = [action("billing", "restart_service", 96), action("search", "repair_dependencies", 88)]
    plan = apply_policy(actions, PolicyConfig(), {}, ActionHistory(), NOW)
    assert story([STALLED, BLOCKED], plan).endswith(
        "The hub planned 2 actions and took none. The hub only plans while `plan_only` is on "
        "(`plan_only = false` under [policy] in ecosystem.toml lets it act)."
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
        "The hub planned 4 actions. Its policy allowed 1. It held back 3:\n"
        "- 2 held by lease: the repo's control lease has run out or belongs to another owner "
        "(`speedrift mode REPO MODE --lease-ttl 1h` renews it).\n"
        "- 1 held by budget.cycle_actions: the cycle already takes as many actions as its budget allows."
    )


def test_the_narrative_is_deterministic() -> None:
    assert story([STALLED, BLOCKED, FINE]) == story([STALLED, BLOCKED, FINE])


def test_a_plan_held_by_mode_and_dedup_says_what_each_rule_means_and_how_to_lift_it() -> None:
    plan = Plan(
        (),
        (
            *(Skipped(action(f"r{i}", "dispatch_ready", 70), "mode", "observe") for i in range(4)),
            Skipped(action("shop", "sync_upstream", 74), "dedup", "under way"),
        ),
    )
    held = story([FINE], plan).split("\n\n")[-1]
    assert held == (
        "The hub planned 5 actions and took none. It held back 5:\n"
        "- 4 held by mode: the repo's mode does not let the hub do this "
        "(`speedrift mode REPO autonomous` grants it).\n"
        "- 1 held by dedup: a repeat of an action already planned or under way."
    )


def test_all_allowed_and_an_unknown_rule_are_both_said_plainly() -> None:
    assert story([FINE], Plan((action("shop"),), ())).endswith(
        "The hub planned 1 action. Its policy allowed all of them."
    )
    plan = Plan((), (Skipped(action("shop"), "some_new_rule", "x"),))
    assert story([FINE], plan).endswith("- 1 held by some_new_rule: a policy rule.")


def test_every_rule_the_policy_knows_is_explained() -> None:
    from speedrift.control.assess.narrative import RULE_WORDS
    from speedrift.control.plan.policy import HARD_STOP_RULE, RULE_ORDER

    assert set(RULE_ORDER) | {HARD_STOP_RULE} <= set(RULE_WORDS)
