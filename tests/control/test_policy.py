"""The policy envelope: every rule cuts with its own name, in the documented order, and nothing is lost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speedrift.control.plan.config import POLICY_KEY_DOCS, PolicyConfig, PolicyError, parse_policy
from speedrift.control.plan.policy import (
    MODE_PERMITS,
    RULE_ORDER,
    apply_policy,
    cut_after_hard_stop,
)
from speedrift.pausestore import RuntimePause
from speedrift.register.actions import ACTION_KINDS, Action, ActionKind, DispatchParams
from speedrift.register.record import ActionHistory, ControlMode, PastAction, Plan, RepoSnapshot
from tests.control.core_builders import NOW, action, control, git, graph, snap

DOC = Path(__file__).resolve().parents[2] / "docs" / "scoring-and-policy.md"
EXECUTE = PolicyConfig(plan_only=False)
ROOMY = PolicyConfig(plan_only=False, max_actions_per_repo=20, max_actions_per_repo_per_hour=20)
NONE = ActionHistory()


def execute(**limits: Any) -> PolicyConfig:
    return PolicyConfig(plan_only=False, **limits)


def permitted(name: str, mode: ControlMode = "autonomous", **kw: Any) -> RepoSnapshot:
    return snap(name, mode=mode, **kw)


def decide(
    actions: Sequence[Action],
    snapshots: Sequence[RepoSnapshot],
    policy: PolicyConfig = EXECUTE,
    history: ActionHistory | None = None,
    now: datetime = NOW,
    pauses: Sequence[RuntimePause] = (),
) -> Plan:
    return apply_policy(
        actions,
        policy,
        {s.name: s for s in snapshots},
        history or ActionHistory(),
        now,
        pauses=pauses,
        default_runtimes={s.name: "claude" for s in snapshots},
    )


def rules(plan: Plan) -> dict[str, str]:
    return {s.action.id: s.rule for s in plan.skipped}


def allowed(plan: Plan) -> list[str]:
    return [a.id for a in plan.allowed]


def past(a: Action, ago: timedelta, status: str = "succeeded") -> PastAction:
    return PastAction(a.id, a.repo, a.kind, NOW - ago, status)


# ---------------------------------------------------------------- plan_only


def test_plan_only_is_the_default_and_holds_everything_back() -> None:
    assert PolicyConfig().plan_only is True
    acts = [action("a", "sync_upstream"), action("a", "dispatch_ready", 90)]
    plan = decide(acts, [permitted("a")], PolicyConfig())
    assert plan.allowed == ()
    assert set(rules(plan).values()) == {"plan_only"}


def test_plan_only_keeps_the_full_plan_visible_with_what_would_happen_otherwise() -> None:
    acts = [
        action("a", "restart_service", 96),
        action("a", "sync_upstream", 74),
        action("b", "sync_upstream"),
    ]
    plan = decide(acts, [permitted("a"), permitted("b", "observe")], PolicyConfig())
    assert [s.action for s in plan.skipped] == sorted(acts, key=lambda a: (-a.priority, a.id))
    reasons = {s.action.id: s.reason for s in plan.skipped}
    assert reasons["a:restart_service"].endswith("(with it off this would run)")
    assert "would still be held by budget.repo_actions" in reasons["a:sync_upstream"]
    assert "would still be held by mode" in reasons["b:sync_upstream"]
    assert all("plan_only = true" in r for r in reasons.values())


# ---------------------------------------------------------------- mode and lease


@pytest.mark.parametrize("mode", ["observe", "manual"])
def test_observe_and_manual_modes_permit_nothing(mode: ControlMode) -> None:
    acts = [action("a", kind, subject=None) for kind in ACTION_KINDS]
    plan = decide(acts, [permitted("a", mode)], ROOMY)
    assert plan.allowed == ()
    assert set(rules(plan).values()) == {"mode"}
    assert f"control mode {mode} permits no hub action" in plan.skipped[0].reason


def test_supervise_permits_the_safe_handlers_but_not_dispatch() -> None:
    acts = [action("a", kind) for kind in ACTION_KINDS]
    plan = decide(acts, [permitted("a", "supervise")], ROOMY)
    assert rules(plan) == {"a:dispatch_ready": "mode"}
    assert len(plan.allowed) == len(ACTION_KINDS) - 1


def test_autonomous_permits_every_kind() -> None:
    assert MODE_PERMITS["autonomous"] == frozenset(ACTION_KINDS)
    acts = [action("a", kind) for kind in ACTION_KINDS]
    plan = decide(acts, [permitted("a")], ROOMY)
    assert plan.skipped == ()


def test_an_expired_lease_cuts_even_in_autonomous_mode() -> None:
    expired = snap("a", control_state=control("autonomous", expires=NOW - timedelta(seconds=1)))
    plan = decide([action("a", "restart_service", 96)], [expired])
    assert rules(plan) == {"a:restart_service": "lease"}
    assert "expired" in plan.skipped[0].reason and "speedrift mode a autonomous" in plan.skipped[0].reason


def test_a_lease_expiring_exactly_now_has_no_authority() -> None:
    edge = snap("a", control_state=control("supervise", expires=NOW))
    assert rules(decide([action("a")], [edge])) == {"a:sync_upstream": "lease"}


def test_no_lease_owner_cuts_by_lease() -> None:
    ownerless = snap("a", control_state=control("autonomous", owner=None))
    assert rules(decide([action("a")], [ownerless])) == {"a:sync_upstream": "lease"}


def test_an_action_for_a_repo_without_a_snapshot_fails_closed() -> None:
    plan = decide([action("ghost")], [permitted("a")])
    assert rules(plan) == {"ghost:sync_upstream": "mode"}
    assert "fail closed" in plan.skipped[0].reason


# ---------------------------------------------------------------- dirty checkout


def test_a_dirty_checkout_cuts_only_the_kinds_that_need_a_clean_one() -> None:
    dirty = permitted("a", git_state=git(dirty=2, ahead=3))
    acts = [action("a", kind) for kind in ACTION_KINDS]
    plan = decide(acts, [dirty], ROOMY)
    assert rules(plan) == {"a:prepare_upstream_packet": "dirty_checkout"}
    assert "a:dispatch_ready" in allowed(plan)  # workers run in worktrees
    assert "2 uncommitted changed file(s)" in plan.skipped[0].reason


def test_an_unknown_checkout_state_fails_closed_for_kinds_that_need_a_clean_one() -> None:
    unknown = replace(permitted("a"), git=None)
    plan = decide(
        [action("a", "prepare_upstream_packet"), action("a", "sync_upstream", 74)], [unknown], ROOMY
    )
    assert rules(plan) == {"a:prepare_upstream_packet": "dirty_checkout"}
    assert "unknown" in plan.skipped[0].reason


def test_dirty_checkout_blocks_can_be_switched_off() -> None:
    dirty = permitted("a", git_state=git(dirty=2))
    plan = decide(
        [action("a", "prepare_upstream_packet")],
        [dirty],
        PolicyConfig(plan_only=False, dirty_checkout_blocks=False),
    )
    assert allowed(plan) == ["a:prepare_upstream_packet"]


# ---------------------------------------------------------------- dedup and cooldown


def test_an_action_still_running_from_an_earlier_cycle_is_not_started_again() -> None:
    act = action("a", "verify_in_progress")
    plan = decide([act], [permitted("a")], history=ActionHistory((past(act, timedelta(hours=3), "started"),)))
    assert rules(plan) == {act.id: "dedup"}
    assert "has not finished" in plan.skipped[0].reason


def test_a_corrective_task_already_open_is_not_emitted_again() -> None:
    act = action("a", "emit_corrective_task", subject="speedrift-fix-failing-z")
    history = ActionHistory(open_corrective={"a": ("speedrift-fix-failing-z",)})
    plan = decide([act], [permitted("a")], history=history)
    assert rules(plan) == {act.id: "dedup"}
    other = action("a", "emit_corrective_task", subject="speedrift-fix-failing-y")
    assert allowed(decide([other], [permitted("a")], history=history)) == [other.id]


def test_the_same_id_twice_in_one_plan_runs_once() -> None:
    plan = decide(
        [action("a"), action("a")], [permitted("a")], PolicyConfig(plan_only=False, max_actions_per_repo=5)
    )
    assert allowed(plan) == ["a:sync_upstream"]
    assert [s.rule for s in plan.skipped] == ["dedup"]


@pytest.mark.parametrize(
    ("kind", "ago", "held"),
    [
        ("restart_service", 179, True),
        ("restart_service", 180, False),
        ("sync_upstream", 599, True),
        ("sync_upstream", 600, False),
    ],
)
def test_cooldown_is_per_repo_and_kind_with_restart_at_180_s_and_default_600_s(
    kind: ActionKind, ago: int, held: bool
) -> None:
    act = action("a", kind)
    history = ActionHistory((past(act, timedelta(seconds=ago)),))
    plan = decide([act, action("b", kind)], [permitted("a"), permitted("b")], history=history)
    assert rules(plan) == ({act.id: "cooldown"} if held else {})


def test_a_configured_cooldown_overrides_only_its_kind() -> None:
    policy = parse_policy({"plan_only": False, "cooldown_seconds": {"sync_upstream": 30}})
    assert policy.cooldown_for("sync_upstream") == 30
    assert policy.cooldown_for("restart_service") == 180
    assert policy.cooldown_for("verify_in_progress") == 600
    act = action("a")
    assert allowed(
        decide([act], [permitted("a")], policy, ActionHistory((past(act, timedelta(seconds=31)),)))
    ) == [act.id]


def test_refusals_consume_the_cooldown_but_skips_do_not() -> None:
    act = action("a")
    refused = ActionHistory((past(act, timedelta(seconds=10), "refused"),))
    skipped = ActionHistory((past(act, timedelta(seconds=10), "skipped"),))
    assert rules(decide([act], [permitted("a")], history=refused)) == {act.id: "cooldown"}
    assert allowed(decide([act], [permitted("a")], history=skipped)) == [act.id]


def test_the_cooldown_reason_says_when_it_ends() -> None:
    act = action("a", "restart_service")
    plan = decide([act], [permitted("a")], history=ActionHistory((past(act, timedelta(seconds=60)),)))
    assert "eligible again at 2026-11-20T12:02:00Z" in plan.skipped[0].reason


# ---------------------------------------------------------------- budgets


def test_budget_cycle_repos_keeps_the_most_urgent_repos() -> None:
    acts = [action(f"r{i}", "sync_upstream", 50 + i) for i in range(7)]
    plan = decide(acts, [permitted(f"r{i}") for i in range(7)])
    assert sorted(allowed(plan)) == [f"r{i}:sync_upstream" for i in range(2, 7)]
    assert rules(plan) == {"r0:sync_upstream": "budget.cycle_repos", "r1:sync_upstream": "budget.cycle_repos"}


def test_budget_cycle_actions_stops_at_the_cycle_maximum() -> None:
    policy = PolicyConfig(plan_only=False, max_repos_per_cycle=50, max_actions_per_cycle=12)
    acts = [action(f"r{i:02}", "sync_upstream") for i in range(14)]
    plan = decide(acts, [permitted(f"r{i:02}") for i in range(14)], policy)
    assert len(plan.allowed) == 12
    assert set(rules(plan).values()) == {"budget.cycle_actions"}
    assert allowed(plan) == [f"r{i:02}:sync_upstream" for i in range(12)]  # ties broken by id


def test_budget_repo_actions_allows_one_per_repo_by_default_highest_priority_first() -> None:
    acts = [
        action("a", "sync_upstream", 74),
        action("a", "run_gate_scan", 98),
        action("a", "verify_in_progress", 62),
    ]
    plan = decide(acts, [permitted("a")])
    assert allowed(plan) == ["a:run_gate_scan"]
    assert rules(plan) == {
        "a:sync_upstream": "budget.repo_actions",
        "a:verify_in_progress": "budget.repo_actions",
    }


def test_budget_service_starts_caps_restarts_per_cycle() -> None:
    policy = PolicyConfig(plan_only=False, max_repos_per_cycle=10)
    acts = [action(f"r{i}", "restart_service", 96) for i in range(6)]
    plan = decide(acts, [permitted(f"r{i}") for i in range(6)], policy)
    assert len(plan.allowed) == 4
    assert set(rules(plan).values()) == {"budget.service_starts"}


def test_budget_hour_counts_the_last_hours_actions_across_the_ecosystem() -> None:
    policy = PolicyConfig(plan_only=False, max_actions_per_hour=3, max_repos_per_cycle=10)
    old = action("x", "sync_upstream")
    history = ActionHistory(
        (past(old, timedelta(minutes=10)), past(old, timedelta(minutes=50)), past(old, timedelta(minutes=61)))
    )
    acts = [action("a"), action("b"), action("c")]
    plan = decide(acts, [permitted(n) for n in "abc"], policy, history)
    assert allowed(plan) == ["a:sync_upstream"]  # two in the hour + one now = 3
    assert set(rules(plan).values()) == {"budget.hour"}
    assert "max_actions_per_hour" in plan.skipped[0].reason


def test_budget_hour_per_repo() -> None:
    policy = PolicyConfig(plan_only=False, max_actions_per_repo_per_hour=2)
    done = action("a", "verify_in_progress")
    history = ActionHistory((past(done, timedelta(minutes=20)), past(done, timedelta(minutes=40))))
    plan = decide([action("a"), action("b")], [permitted("a"), permitted("b")], policy, history)
    assert rules(plan) == {"a:sync_upstream": "budget.hour"}
    assert "max_actions_per_repo_per_hour" in plan.skipped[0].reason


def test_a_cut_action_does_not_spend_budget() -> None:
    acts = [action("a", "restart_service", 99), action("b", "sync_upstream", 50)]
    plan = decide(acts, [snap("a"), permitted("b")], PolicyConfig(plan_only=False, max_actions_per_cycle=1))
    assert allowed(plan) == ["b:sync_upstream"]
    assert rules(plan) == {"a:restart_service": "mode"}


# ---------------------------------------------------------------- corrective caps


def corrective(repo: str, n: int) -> Action:
    return action(repo, "emit_corrective_task", 80, subject=f"speedrift-fix-failing-t{n}")


def test_corrective_cap_per_repo_counts_open_ones_and_this_cycles() -> None:
    policy = PolicyConfig(plan_only=False, max_actions_per_repo=5)
    history = ActionHistory(open_corrective={"a": ("speedrift-fix-stale-open-work",)})
    plan = decide([corrective("a", 1), corrective("a", 2)], [permitted("a")], policy, history)
    assert allowed(plan) == [corrective("a", 1).id]
    assert rules(plan) == {corrective("a", 2).id: "corrective_cap"}


def test_corrective_cap_total_counts_the_whole_ecosystem() -> None:
    policy = PolicyConfig(plan_only=False, max_corrective_total=3)
    history = ActionHistory(open_corrective={"x": ("c1",), "y": ("c2",)})
    plan = decide([corrective("a", 1), corrective("b", 1)], [permitted("a"), permitted("b")], policy, history)
    assert len(plan.allowed) == 1
    assert list(rules(plan).values()) == ["corrective_cap"]
    assert "max_corrective_total" in plan.skipped[0].reason


def test_repair_dependencies_counts_as_a_corrective_task() -> None:
    policy = PolicyConfig(plan_only=False, max_corrective_per_repo=1)
    history = ActionHistory(open_corrective={"a": ("speedrift-fix-failing-z",)})
    act = action("a", "repair_dependencies", 88, subject="speedrift-fix-dependencies-b-x")
    assert rules(decide([act], [permitted("a")], policy, history)) == {act.id: "corrective_cap"}


# ---------------------------------------------------------------- every rule, the order, nothing lost


def test_every_rule_in_the_documented_order_cuts_with_its_own_name() -> None:
    seen: set[str] = set()
    ab = [permitted("a"), permitted("b")]
    paused = (RuntimePause("claude", "usage_limit", "limit", NOW, NOW + timedelta(hours=1), "", "test"),)
    dispatch = replace(action("a", "dispatch_ready"), params=DispatchParams(tasks=("r1",), max=2))
    scenarios: list[tuple[Any, ...]] = [
        ([action("a")], [permitted("a")], PolicyConfig(), NONE),
        ([action("a")], [snap("a")], EXECUTE, NONE),
        ([action("a")], [snap("a", control_state=control("supervise", owner=None))], EXECUTE, NONE),
        ([dispatch], [permitted("a", graph_state=graph(ready=1))], EXECUTE, NONE, paused),
        ([action("a", "prepare_upstream_packet")], [permitted("a", git_state=git(dirty=1))], EXECUTE, NONE),
        (
            [action("a")],
            [permitted("a")],
            EXECUTE,
            ActionHistory((past(action("a"), timedelta(0), "started"),)),
        ),
        ([action("a")], [permitted("a")], EXECUTE, ActionHistory((past(action("a"), timedelta(seconds=1)),))),
        ([action("a"), action("b")], ab, execute(max_repos_per_cycle=1), NONE),
        ([action("a"), action("b")], ab, execute(max_actions_per_cycle=1), NONE),
        ([action("a"), action("a", "verify_in_progress")], [permitted("a")], EXECUTE, NONE),
        ([action("a", "restart_service")], [permitted("a")], execute(max_service_starts_per_cycle=0), NONE),
        ([action("a")], [permitted("a")], execute(max_actions_per_hour=0), NONE),
        ([corrective("a", 1)], [permitted("a")], execute(max_corrective_per_repo=0), NONE),
    ]
    order: list[str] = []
    for acts, snaps, policy, history, *pauses in scenarios:
        plan = decide(acts, snaps, policy, history, pauses=pauses[0] if pauses else ())
        assert len(plan.skipped) == 1, plan
        order.append(plan.skipped[0].rule)
        seen.add(plan.skipped[0].rule)
    assert order == list(RULE_ORDER)
    assert seen == set(RULE_ORDER)


def test_the_first_rule_in_order_wins_when_several_hold() -> None:
    expired_and_observe = snap("a", control_state=control("observe"))
    act = action("a", "prepare_upstream_packet")
    history = ActionHistory((past(act, timedelta(seconds=1)),))
    assert rules(decide([act], [expired_and_observe], EXECUTE, history)) == {act.id: "mode"}
    dirty = permitted("a", git_state=git(dirty=1))
    assert rules(decide([act], [dirty], EXECUTE, history)) == {act.id: "dirty_checkout"}


def test_hard_stop_keeps_the_remaining_actions_with_the_failed_one_named() -> None:
    failed = action("a", "run_gate_scan", 98)
    rest = [action("b", "restart_service", 96), action("c")]
    cut = cut_after_hard_stop(rest, failed)
    assert [(s.action, s.rule) for s in cut] == [(rest[0], "hard_stop"), (rest[1], "hard_stop")]
    assert "a:run_gate_scan failed" in cut[0].reason


KINDS = st.sampled_from(ACTION_KINDS)
MODES = st.sampled_from(["manual", "observe", "supervise", "autonomous"])
REPOS = st.sampled_from("abcdefg")
STATUSES = st.sampled_from(["started", "succeeded", "refused", "skipped"])


@settings(max_examples=150, deadline=None)
@given(
    picks=st.lists(st.tuples(REPOS, KINDS, st.integers(0, 100), st.booleans()), max_size=30),
    modes=st.lists(MODES, min_size=7, max_size=7),
    dirty=st.lists(st.integers(0, 2), min_size=7, max_size=7),
    ran=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 7200), STATUSES), max_size=20),
    plan_only=st.booleans(),
    budget=st.integers(0, 15),
)
def test_nothing_is_lost_allowed_plus_skipped_is_every_candidate(
    picks: list[tuple[str, ActionKind, int, bool]],
    modes: list[ControlMode],
    dirty: list[int],
    ran: list[tuple[int, int, str]],
    plan_only: bool,
    budget: int,
) -> None:
    acts = [
        action(repo, kind, prio, subject=f"speedrift-fix-t{prio}" if sub else None)
        for repo, kind, prio, sub in picks
    ]
    snaps = [permitted(r, m, git_state=git(dirty=d)) for r, m, d in zip("abcdefg", modes, dirty, strict=True)]
    history = ActionHistory(
        tuple(past(acts[i], timedelta(seconds=s), status) for i, s, status in ran if i < len(acts)),
        open_corrective={"a": ("speedrift-fix-t1",)},
    )
    policy = PolicyConfig(plan_only=plan_only, max_actions_per_cycle=budget, max_actions_per_repo=2)
    plan = decide(acts, snaps, policy, history)
    got = sorted([a.id for a in plan.allowed] + [s.action.id for s in plan.skipped])
    assert got == sorted(a.id for a in acts)
    assert all(s.rule in RULE_ORDER for s in plan.skipped)
    assert len(plan.allowed) <= budget
    if plan_only:
        assert plan.allowed == ()
    for a in plan.allowed:
        assert a.kind in MODE_PERMITS[snaps["abcdefg".index(a.repo)].control.mode]


# ---------------------------------------------------------------- the [policy] table


def test_the_defaults_are_the_public_envelope() -> None:
    p = PolicyConfig()
    assert (p.plan_only, p.max_repos_per_cycle, p.max_actions_per_cycle, p.max_actions_per_repo) == (
        True,
        5,
        12,
        1,
    )
    assert (p.max_actions_per_hour, p.max_actions_per_repo_per_hour, p.max_service_starts_per_cycle) == (
        60,
        6,
        4,
    )
    assert (p.max_corrective_per_repo, p.max_corrective_total) == (2, 50)
    assert p.cooldown_seconds == {"restart_service": 180, "dispatch_ready": 30, "default": 600}
    assert p.hard_stop_on_failed_verification and p.dirty_checkout_blocks
    assert parse_policy(None) == p


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"max_actions_per_cylce": 3}, "policy.max_actions_per_cylce", "unknown key"),
        ({"max_actions_per_cycle": "many"}, "policy.max_actions_per_cycle", "'many'"),
        ({"max_actions_per_cycle": -1}, "policy.max_actions_per_cycle", "greater than or equal to 0"),
        ({"cooldown_seconds": {"reboot": 5}}, "policy.cooldown_seconds", "unknown action kind(s) reboot"),
        ({"cooldown_seconds": {"default": -5}}, "policy.cooldown_seconds", "must be >= 0"),
        ({"plan_only": "yes please"}, "policy.plan_only", "valid boolean"),
    ],
)
def test_a_bad_policy_table_names_the_key_and_the_problem(
    table: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(table, source="/etc/eco/ecosystem.toml")
    (where, message), *_ = caught.value.problems
    assert where == key
    assert words in message
    assert str(caught.value).startswith("/etc/eco/ecosystem.toml has an invalid [policy] table")
    assert "docs/scoring-and-policy.md" in str(caught.value)


def test_the_policy_is_frozen() -> None:
    policy = PolicyConfig()
    with pytest.raises(ValueError, match="frozen"):
        setattr(policy, "plan_only", False)  # noqa: B010 - assigning is the point


def test_the_doc_explains_every_rule_and_every_policy_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    for rule in RULE_ORDER:
        assert f"`{rule}`" in text
    assert set(POLICY_KEY_DOCS) == set(PolicyConfig.model_fields)
