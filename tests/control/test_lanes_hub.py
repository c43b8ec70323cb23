"""The hub and the drift lanes: what the lanes found becomes score reasons, attention entries with
prompts and a `why` line; the planner runs the lanes when they are due — never run, the target
branch moved since they judged it, an attempt landed, or a lane's cron fired — and not otherwise."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from speedrift.cli.why_cmd import explain
from speedrift.control.assess.queues import attention_queues
from speedrift.control.assess.score import penalties, score_repo
from speedrift.control.plan.candidates import plan_actions
from speedrift.control.plan.entry_prompts import entry_prompts
from speedrift.register.actions import Action, LaneParams
from speedrift.register.record import AttemptStats, LaneBrief, LaneRun, LaneStats, RepoSnapshot
from speedrift.serialize import to_plain
from tests.control.core_builders import NOW, snap

TIP = "b" * 40
OLD = "a" * 40


def lanes(**fields: Any) -> LaneStats:
    runs = fields.pop("runs", None)
    base: dict[str, Any] = {
        "enabled": ("secdrift", "qadrift"),
        "triggers": ("target_change", "landed"),
        "target": "main",
        "target_tip": TIP,
        "head": TIP,
        "checked_at": NOW - timedelta(minutes=5),
        "runs": runs
        if runs is not None
        else (
            LaneRun("secdrift", NOW - timedelta(minutes=5), head=TIP),
            LaneRun("qadrift", NOW - timedelta(minutes=5), head=TIP),
        ),
    }
    base.update(fields)
    return LaneStats(**base)


def finding(severity: str = "critical", lane: str = "qadrift", kind: str = "tests_failing") -> LaneBrief:
    return LaneBrief(
        lane=lane,
        kind=kind,
        severity=severity,
        message="the test suite fails on main",
        file="test_calc.py",
        line=4,
        fingerprint="f" * 24,
        fix="make test_add pass again",
        followup="drift-qadrift-ffffffffffff",
    )


def with_lanes(stats: LaneStats, **fields: Any) -> RepoSnapshot:
    base = snap("app", **{"mode": "autonomous", **fields})
    return RepoSnapshot(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "lanes": stats})


def lane_actions(snapshot: RepoSnapshot, at: Any = NOW) -> list[Action]:
    health = score_repo(snapshot, None, at)
    return [a for a in plan_actions([snapshot], [health], [], at) if a.kind == "run_lanes"]


# ---------------------------------------------------------------- when the lanes run


def test_lanes_that_judged_the_current_tip_are_not_run_again() -> None:
    assert lane_actions(with_lanes(lanes())) == []


def test_lanes_never_run_are_planned_for_their_first_run_on_the_target_tip() -> None:
    stats = lanes(head=None, checked_at=None, runs=(LaneRun("secdrift", None), LaneRun("qadrift", None)))
    (action,) = lane_actions(with_lanes(stats))
    assert action.params == LaneParams(lanes=(), head=TIP, base=None, trigger="first_run")
    assert action.id == "app:run_lanes" and action.priority == 70


def test_a_moved_target_branch_runs_the_lanes_over_the_range_they_have_not_judged() -> None:
    old = NOW - timedelta(hours=1)
    stats = lanes(runs=(LaneRun("secdrift", old, head=OLD), LaneRun("qadrift", old, head=OLD)))
    (action,) = lane_actions(with_lanes(stats))
    assert action.params == LaneParams(lanes=(), head=TIP, base=OLD, trigger="target_change")
    assert "main@bbbbbbbbbbbb" in action.reason


def test_with_only_the_landed_trigger_a_moved_target_waits_for_a_landing() -> None:
    old = NOW - timedelta(hours=1)
    runs = (LaneRun("secdrift", old, head=OLD), LaneRun("qadrift", old, head=OLD))
    quiet = with_lanes(lanes(runs=runs, triggers=("landed",)), attempts=AttemptStats(last_finished_at=old))
    assert lane_actions(quiet) == []
    landed = with_lanes(lanes(runs=runs, triggers=("landed",)), attempts=AttemptStats(last_finished_at=NOW))
    (action,) = lane_actions(landed)
    assert isinstance(action.params, LaneParams) and action.params.trigger == "landed"


def test_a_lane_whose_cron_fired_runs_alone() -> None:
    stats = lanes(
        runs=(
            LaneRun("secdrift", NOW - timedelta(hours=2), cron="0 * * * *", head=TIP),
            LaneRun("qadrift", NOW - timedelta(minutes=5), head=TIP),
        )
    )
    (action,) = lane_actions(with_lanes(stats))
    assert action.params == LaneParams(lanes=("secdrift",), head=TIP, base=TIP, trigger="cron")
    not_yet = lanes(
        runs=(
            LaneRun("secdrift", NOW - timedelta(minutes=5), cron="0 0 * * *", head=TIP),
            LaneRun("qadrift", NOW - timedelta(minutes=5), head=TIP),
        )
    )
    assert lane_actions(with_lanes(not_yet)) == []


def test_an_unreadable_drift_policy_plans_no_lanes_and_costs_points() -> None:
    stats = LaneStats(policy_error=".workgraph/drift-policy.toml:3: mode: is 'loud'")
    snapshot = with_lanes(stats)
    assert lane_actions(snapshot) == []
    reasons = {r.code: r for r in penalties(snapshot, NOW)}
    assert reasons["lane_policy_invalid"].points == 10
    assert "drift-policy.toml:3" in reasons["lane_policy_invalid"].text


# ---------------------------------------------------------------- what the findings cost and show


def test_a_critical_lane_finding_takes_a_healthy_repo_to_watch_or_worse() -> None:
    clean = score_repo(with_lanes(lanes()), None, NOW)
    red = score_repo(with_lanes(lanes(critical=1, findings=(finding(),))), None, NOW)
    assert clean.score == 100
    assert red.score <= 59  # 41 points: a red main is at risk
    (reason,) = [r for r in red.reasons if r.code == "lane_critical"]
    assert reason.text == "1 critical drift finding (qadrift)"


def test_info_findings_cost_nothing_and_a_broken_lane_costs_points() -> None:
    broken = lanes(
        runs=(
            LaneRun("secdrift", NOW, head=TIP, error="TimeoutError: lane took longer than 300 s"),
            LaneRun("qadrift", NOW, head=TIP),
        )
    )
    codes = {r.code: r.points for r in penalties(with_lanes(broken), NOW)}
    assert codes == {"lane_broken": 6}


def test_each_actionable_finding_is_an_entry_in_the_findings_queue_with_its_follow_up_and_prompt() -> None:
    snapshot = with_lanes(
        lanes(
            critical=1, warning=1, findings=(finding(), finding("warning", "depsdrift", "lock_not_updated"))
        )
    )
    health = score_repo(snapshot, None, NOW)
    actions = plan_actions([snapshot], [health], [], NOW)
    queues = {
        q.key: to_plain(q) for q in attention_queues({"app": snapshot}, {"app": health}, actions, [], NOW)
    }
    entries = [e for e in queues["risk"]["entries"] if e["id"].startswith("lane:")]
    assert [e["rule"] for e in entries] == ["lane_critical", "lane_warning"]
    first = entries[0]
    assert first["task"] == "drift-qadrift-ffffffffffff"
    assert first["what"] == "qadrift tests_failing: the test suite fails on main (test_calc.py:4)"
    prompts = entry_prompts(
        first["rule"],
        "app",
        "/srv/repos/app",
        task=first["task"],
        what=first["what"],
        why=first["why"],
        detail=first["detail"],
    )
    assert "drift-qadrift-ffffffffffff" in prompts["claude"]
    assert "speedrift drift check --lane qadrift" in prompts["codex"]


def test_why_names_the_worst_drift_finding_and_its_follow_up() -> None:
    snapshot = with_lanes(lanes(critical=1, findings=(finding(),)))
    health = score_repo(snapshot, None, NOW)
    record = {
        "cycle_id": "c-1",
        "generated_at": NOW.isoformat(),
        "plan_only": True,
        "planned": [],
        "skipped": [],
        "executed": [],
        "repos": [
            {
                "name": "app",
                "tier": health.tier,
                "score": health.score,
                "stall": None,
                "reasons": to_plain(health.reasons),
                "snapshot": to_plain(snapshot),
            }
        ],
    }
    answer = explain(record, "app", None, None)
    assert (
        "drift lanes found 1 critical (worst: qadrift tests_failing → follow-up drift-qadrift-ffffffffffff)"
        in answer["answer"]
    )
    assert answer["lanes"]["findings"][0]["fix"] == "make test_add pass again"


def test_an_observed_repo_gets_no_lane_run_planned() -> None:
    never = lanes(head=None, checked_at=None, runs=(LaneRun("secdrift", None), LaneRun("qadrift", None)))
    assert lane_actions(with_lanes(never, mode="observe")) == []
    assert len(lane_actions(with_lanes(never, mode="supervise"))) == 1


def test_a_held_lane_run_waits_with_the_findings_not_in_the_human_queue() -> None:
    from speedrift.register.record import Skipped

    never = lanes(head=None, checked_at=None, runs=(LaneRun("secdrift", None), LaneRun("qadrift", None)))
    snapshot = with_lanes(never)
    health = score_repo(snapshot, None, NOW)
    actions = plan_actions([snapshot], [health], [], NOW)
    (run,) = [a for a in actions if a.kind == "run_lanes"]
    held = [Skipped(run, "plan_only", "plan_only = true: the hub executes nothing")]
    queues = {
        q.key: to_plain(q) for q in attention_queues({"app": snapshot}, {"app": health}, actions, held, NOW)
    }
    assert [e["id"] for e in queues["human"]["entries"]] == []
    (entry,) = [e for e in queues["risk"]["entries"] if e["id"] == "action:app:run_lanes"]
    assert entry["approvable"] is True
