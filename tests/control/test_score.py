"""The one scoring model: the seed's cases in the seed's tiers, ranked reasons, trend, activity, stall."""

from __future__ import annotations

import importlib
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings

from speedrift.control.assess.score import (
    HEALTHY_AT,
    IMPROVING_AT,
    WATCH_AT,
    WORSENING_AT,
    score_repo,
    tier_of,
    trend_of,
)
from speedrift.control.assess.weights import WEIGHTS, weight_table_markdown
from speedrift.register.record import (
    AttemptStats,
    GateStats,
    RepoHealth,
    RepoSnapshot,
    ServiceState,
)
from tests.control.core_builders import (
    NOW,
    control,
    git,
    graph,
    running,
    snap,
    snapshots,
    stopped,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "scoring-and-policy.md"


def health(snapshot: RepoSnapshot, previous: RepoHealth | None = None) -> RepoHealth:
    return score_repo(snapshot, previous, NOW)


def codes(h: RepoHealth) -> list[str]:
    return [r.code for r in h.reasons]


# ---------------------------------------------------------------- the seed's tiers

AT_RISK = {
    "service stopped, one ready task, supervise": snap(graph_state=graph(ready=1), mode="supervise"),
    "service stopped, 20 ready tasks, autonomous": snap(graph_state=graph(ready=20), mode="autonomous"),
    "service stopped, ready work, default observe mode": snap(graph_state=graph(ready=3)),
    "service stopped, ready work, manual mode": snap(graph_state=graph(ready=2), mode="manual"),
    "service the hub started is down with ready work": snap(
        graph_state=graph(ready=4, done=10), service=stopped(by_hub=True), mode="autonomous"
    ),
}

WATCH = {
    "one task in progress for 4 days, service busy": snap(
        graph_state=graph(in_progress=[4, 0.1], ready=2), service=running(agents=1)
    ),
    "five tasks aging in progress": snap(graph_state=graph(in_progress=[4, 5, 6, 7, 9])),
    "aging counted by the observer without briefs": snap(graph_state=graph(stale_in_progress=2)),
    "a claim held by a dead process": snap(graph_state=graph(in_progress=[0.2], dead=["w1"])),
    "a missing dependency": snap(graph_state=graph(missing=[("b", "x")], blocked=1), service=running()),
    "many missing dependencies": snap(graph_state=graph(missing=[(f"t{i}", f"x{i}") for i in range(9)])),
    "a blocker that failed": snap(graph_state=graph(failed_blockers=2, in_progress=[0.5]), service=running()),
    "all open work blocked, nothing ready": snap(graph_state=graph(blocked=3)),
    "a task failing twice in a row": snap(
        graph_state=graph(in_progress=[0.1]),
        attempts=AttemptStats(repeated_failures=("z",)),
        service=running(),
    ),
    "no task graph": snap(no_graph=True),
    "a high gate finding": snap(gates=GateStats(high=1, last_status="fail")),
    "a failing gate run": snap(gates=GateStats(last_status="fail")),
}

HEALTHY = {
    "fresh heartbeat, active progress, passing gates": snap(
        graph_state=graph(ready=3, in_progress=[0.2, 1.0], done=12),
        service=running(agents=2, heartbeat=4),
        gates=GateStats(last_status="pass"),
        mode="autonomous",
    ),
    "idle: everything done": snap(graph_state=graph(done=30)),
    "a little drift: dirty, behind, stale open": snap(
        graph_state=graph(stale_open=1, done=5), git_state=git(dirty=3, behind=2)
    ),
    "work in progress by a live claimant without a service": snap(graph_state=graph(in_progress=[0.5])),
}


@pytest.mark.parametrize("snapshot", AT_RISK.values(), ids=AT_RISK.keys())
def test_a_stopped_service_with_ready_work_is_at_risk(snapshot: RepoSnapshot) -> None:
    h = health(snapshot)
    assert h.tier == "at-risk", (h.score, h.reasons)
    assert h.score < 60
    assert h.activity == "stalled"


@pytest.mark.parametrize("snapshot", WATCH.values(), ids=WATCH.keys())
def test_aging_work_and_dependency_uncertainty_are_on_watch(snapshot: RepoSnapshot) -> None:
    h = health(snapshot)
    assert h.tier == "watch", (h.score, h.reasons)
    assert 60 <= h.score < 80


@pytest.mark.parametrize("snapshot", HEALTHY.values(), ids=HEALTHY.keys())
def test_fresh_heartbeat_progress_and_passing_gates_are_healthy(snapshot: RepoSnapshot) -> None:
    h = health(snapshot)
    assert h.tier == "healthy", (h.score, h.reasons)
    assert h.score >= 80


def test_a_repo_with_nothing_wrong_scores_100_with_no_reasons() -> None:
    h = health(HEALTHY["fresh heartbeat, active progress, passing gates"])
    assert (h.score, h.reasons, h.stall, h.activity) == (100, (), None, "active")


def test_a_missing_repo_scores_zero_and_says_so() -> None:
    h = health(snap(exists=False))
    assert (h.score, h.tier, h.activity) == (0, "at-risk", "missing")
    assert codes(h) == ["missing_repo"]
    assert "/srv/repos/app does not exist" in h.reasons[0].text


def test_critical_findings_and_secret_leaks_are_at_risk() -> None:
    assert health(snap(gates=GateStats(critical=1, last_status="fail"))).tier == "at-risk"
    assert health(snap(gates=GateStats(secret_leaks=1, last_status="fail"))).tier == "at-risk"


def test_snapshot_errors_cost_points_and_set_the_error_activity() -> None:
    h = health(snap(errors=["git: timed out after 15s"], no_graph=True))
    assert h.activity == "error"
    assert codes(h) == ["snapshot_errors"]  # no guess that the graph is absent
    assert "git: timed out after 15s" in h.reasons[0].text


# ---------------------------------------------------------------- reasons, stall in words


def test_reasons_are_ranked_by_points_largest_first() -> None:
    h = health(
        snap(
            graph_state=graph(ready=2, missing=[("b", "x")], stale_open=3),
            git_state=git(dirty=1, behind=1),
            mode="supervise",
        )
    )
    points = [r.points for r in h.reasons]
    assert points == sorted(points, reverse=True)
    assert codes(h)[0] == "service_down_with_ready_work"
    assert h.score == max(0, round(100 - sum(points)))


STALLS = [
    (snap(graph_state=graph(ready=3), mode="supervise"), "service down while 3 ready tasks wait"),
    (snap(graph_state=graph(ready=1), mode="autonomous"), "service down while 1 ready task waits"),
    (
        snap(graph_state=graph(missing=[("b", "x")], blocked=1)),
        "blocked on missing dependency x (needed by b)",
    ),
    (snap(graph_state=graph(in_progress=[4.2])), "task w1 in progress for 4 days with no live agent"),
    (
        snap(graph_state=graph(ready=0), attempts=AttemptStats(repeated_failures=("z",)), service=running(0)),
        None,  # nothing open: idle, not stalled
    ),
    (
        snap(
            graph_state=graph(in_progress=[0.3], dead=["w1"]), attempts=AttemptStats(repeated_failures=("z",))
        ),
        "task z failed at least twice in a row; task w1 in progress with no live agent (its claimant exited)",
    ),
    (snap(graph_state=graph(ready=2)), "observe mode prevents automatic dispatch of 2 ready tasks"),
    (
        snap(graph_state=graph(ready=2), mode="manual"),
        "manual mode prevents automatic dispatch of 2 ready tasks",
    ),
    (
        snap(graph_state=graph(ready=4), service=running(agents=0)),
        "4 ready tasks not started (service running, no agent active)",
    ),
    (
        snap(graph_state=graph(ready=1), service=running(agents=0, heartbeat=3 * 3600)),
        "service heartbeat is 3 hours old while 1 ready task waits",
    ),
    (
        snap(graph_state=graph(blocked=3)),
        "all 3 open tasks wait on unfinished dependencies; nothing is ready",
    ),
    (snap(graph_state=graph(failed_blockers=2)), "2 open tasks blocked by a failed dependency"),
]


@pytest.mark.parametrize(("snapshot", "stall"), STALLS, ids=[s or "idle" for _, s in STALLS])
def test_a_stall_is_explained_in_words(snapshot: RepoSnapshot, stall: str | None) -> None:
    assert health(snapshot).stall == stall


def test_an_aging_task_with_a_live_agent_does_not_claim_there_is_none() -> None:
    h = health(snap(graph_state=graph(in_progress=[5, 0.2]), service=running(agents=1)))
    assert h.activity == "active" and h.stall is None
    assert h.reasons[0].text == "task w1 in progress for 5 days"


def test_more_aging_tasks_are_counted_in_the_text_and_the_points() -> None:
    one = health(snap(graph_state=graph(in_progress=[4])))
    three = health(snap(graph_state=graph(in_progress=[4, 9, 6])))
    assert three.reasons[0].text == "task w2 in progress for 9 days with no live agent (and 2 more aging)"
    assert three.reasons[0].points == one.reasons[0].points + 2 * WEIGHTS["aging_in_progress"].each


def test_a_dead_claim_that_is_also_aging_is_not_charged_twice() -> None:
    h = health(snap(graph_state=graph(in_progress=[5], dead=["w1"])))
    assert codes(h) == ["aging_in_progress"]
    assert h.tier == "watch"


def test_penalties_stop_at_their_cap() -> None:
    h = health(snap(graph_state=graph(stale_open=500)))
    assert h.reasons[0].points == WEIGHTS["stale_open"].cap


def test_a_reused_snapshot_ages_its_in_progress_work_by_the_time_since_it_was_taken() -> None:
    young = snap(
        graph_state=graph(in_progress=[2.5]), service=running(1), observed_at=NOW - timedelta(days=1)
    )
    assert codes(score_repo(young, None, NOW - timedelta(days=1))) == []
    assert codes(score_repo(young, None, NOW)) == ["aging_in_progress"]


def test_the_failure_rate_needs_enough_attempts_and_counts_full_tenths() -> None:
    few = health(snap(attempts=AttemptStats(recent=2, failed=2)))
    many = health(snap(attempts=AttemptStats(recent=10, failed=5, succeeded=5)))
    assert "attempt_failure_rate" not in codes(few)
    rate = next(r for r in many.reasons if r.code == "attempt_failure_rate")
    assert rate.points == WEIGHTS["attempt_failure_rate"].points(5)
    assert rate.text == "50% of the last 10 attempts failed"


def test_a_failed_gate_run_is_not_charged_again_when_its_findings_already_are() -> None:
    h = health(snap(gates=GateStats(critical=1, last_status="fail")))
    assert codes(h) == ["gate_critical"]


# ---------------------------------------------------------------- activity


ACTIVITY = [
    (snap(exists=False), "missing"),
    (snap(errors=["boom"]), "error"),
    (snap(no_graph=True), "untracked"),
    (snap(graph_state=graph(done=4)), "idle"),
    (snap(graph_state=graph(ready=2), service=running(agents=1)), "active"),
    (snap(graph_state=graph(in_progress=[0.5])), "active"),
    (snap(graph_state=graph(in_progress=[0.5], dead=["w1"])), "stalled"),
    (snap(graph_state=graph(in_progress=[5])), "stalled"),
    (snap(graph_state=graph(ready=1)), "stalled"),
    (snap(graph_state=graph(blocked=2)), "stalled"),
]


@pytest.mark.parametrize(("snapshot", "activity"), ACTIVITY, ids=[a for _, a in ACTIVITY])
def test_activity_state_follows_what_runs(snapshot: RepoSnapshot, activity: str) -> None:
    assert health(snapshot).activity == activity


# ---------------------------------------------------------------- tiers and trends at the boundaries


@pytest.mark.parametrize(
    ("value", "tier"),
    [(100, "healthy"), (80, "healthy"), (79.9, "watch"), (60, "watch"), (59.9, "at-risk"), (0, "at-risk")],
)
def test_tier_thresholds_are_80_and_60(value: float, tier: str) -> None:
    assert tier_of(value) == tier


@pytest.mark.parametrize(
    ("delta", "trend"),
    [(None, "new"), (3, "improving"), (2, "flat"), (0, "flat"), (-1, "flat"), (-2, "worsening")],
)
def test_trend_thresholds_are_plus_3_and_minus_2(delta: int | None, trend: str) -> None:
    assert trend_of(delta) == trend


@pytest.mark.parametrize(
    ("before", "trend"), [(97, "improving"), (98, "flat"), (101, "flat"), (102, "worsening")]
)
def test_trend_compares_with_the_previous_cycles_score(before: int, trend: str) -> None:
    previous = RepoHealth("app", before, "healthy", "new", None, (), "idle", None)
    h = health(snap(graph_state=graph(done=1)), previous)
    assert (h.score, h.delta, h.trend) == (100, 100 - before, trend)


def test_without_a_previous_cycle_the_trend_is_new() -> None:
    h = health(snap())
    assert (h.trend, h.delta) == ("new", None)


# ---------------------------------------------------------------- properties and the doc


@settings(max_examples=200, deadline=None)
@given(snapshots())
def test_any_snapshot_scores_within_0_and_100_with_consistent_reasons(snapshot: RepoSnapshot) -> None:
    h = health(snapshot)
    assert 0 <= h.score <= 100
    assert h.tier == tier_of(h.score)
    assert all(r.points > 0 for r in h.reasons)
    assert h.score == max(0, min(100, int(100 - sum(r.points for r in h.reasons) + 0.5)))
    assert [r.points for r in h.reasons] == sorted((r.points for r in h.reasons), reverse=True)
    assert (h.stall is not None) == (h.activity == "stalled")
    if h.tier != "healthy":
        assert h.reasons  # cycle hints and the narrative quote the first reason


def test_every_reason_code_has_a_weight_and_service_state_defaults_are_sane() -> None:
    assert set(WEIGHTS) >= {
        "service_down_with_ready_work",
        "observe_mode_blocks_dispatch",
        "aging_in_progress",
    }
    assert ServiceState(running=False) == stopped()
    assert control("supervise").authority(NOW)[0]


GENERATED = re.compile(r"(<!-- generated: ([\w.]+) -->\n)(.*?)(\n<!-- end generated -->)", re.DOTALL)


def render_doc(text: str) -> str:
    """The doc with every generated block re-rendered from the function its marker names."""

    def render(match: re.Match[str]) -> str:
        module, function = match.group(2).rsplit(".", 1)
        table = getattr(importlib.import_module(f"speedrift.control.{module}"), function)()
        return f"{match.group(1)}{table}{match.group(4)}"

    return GENERATED.sub(render, text)


def test_the_doc_tables_are_rendered_from_the_code_constants() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(GENERATED.findall(text)) == 5
    if os.environ.get("SPEEDRIFT_REGEN_DOCS") == "1":
        DOC.write_text(render_doc(text), encoding="utf-8")
        text = DOC.read_text(encoding="utf-8")
    assert render_doc(text) == text, (
        "docs/scoring-and-policy.md is out of date; regenerate its tables with "
        "SPEEDRIFT_REGEN_DOCS=1 pytest tests/control/test_score.py -k doc"
    )
    assert weight_table_markdown() in text
    assert f"healthy ≥ {HEALTHY_AT}, watch {WATCH_AT}–{HEALTHY_AT - 1}, at-risk < {WATCH_AT}" in text
    assert f"improving when Δ ≥ +{IMPROVING_AT}" in text and f"worsening when\n  Δ ≤ {WORSENING_AT}" in text
