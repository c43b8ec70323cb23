"""Ecosystem metrics: each 0–100, higher is better, with tier, trend, formula and inputs."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from speedrift.control.assess.metrics import FORMULAS, LABELS, ecosystem_metrics
from speedrift.control.assess.score import score_repo
from speedrift.register.record import ActionHistory, AttemptStats, GateStats, Metric, PastAction, RepoSnapshot
from tests.control.core_builders import NOW, graph, running, snap

KEYS = ("reporting_coverage", "flow_health", "execution_reliability", "quality_security_pressure")


def metrics(
    snaps: list[RepoSnapshot],
    history: ActionHistory | None = None,
    previous: dict[str, Metric] | None = None,
    registered: int | None = None,
) -> dict[str, Metric]:
    healths = [score_repo(s, None, NOW) for s in snaps]
    return ecosystem_metrics(
        snaps, healths, history or ActionHistory(), previous, len(snaps) if registered is None else registered
    )


def healthy(name: str) -> RepoSnapshot:
    return snap(name, graph_state=graph(ready=1, in_progress=[0.2], done=3), service=running(agents=1))


def test_there_are_four_metrics_with_labels_formulas_and_inputs() -> None:
    out = metrics([healthy("a")])
    assert tuple(out) == KEYS
    for key, metric in out.items():
        assert metric.key == key and metric.label == LABELS[key] and metric.formula == FORMULAS[key]
        assert 0 <= metric.value <= 100
        assert metric.inputs
    assert out["quality_security_pressure"].label == "quality & security"
    assert "higher = less pressure" in out["quality_security_pressure"].formula


def test_a_quiet_healthy_ecosystem_scores_100_everywhere() -> None:
    out = metrics([healthy("a"), healthy("b")])
    assert {k: m.value for k, m in out.items()} == dict.fromkeys(KEYS, 100.0)
    assert {m.tier for m in out.values()} == {"healthy"}
    assert {m.trend for m in out.values()} == {"new"}


def test_reporting_coverage_is_repos_reporting_over_registered() -> None:
    snaps = [
        healthy("a"),
        healthy("b"),
        snap("c", no_graph=True),
        snap("d", exists=False),
        snap("e", errors=["x"]),
    ]
    m = metrics(snaps, registered=5)["reporting_coverage"]
    assert m.value == 40.0
    assert m.inputs == {"reporting": 2.0, "registered": 5.0}
    assert m.tier == "at-risk"


def test_reporting_coverage_with_nothing_registered_is_100_with_zero_inputs() -> None:
    m = metrics([], registered=0)["reporting_coverage"]
    assert (m.value, m.inputs["registered"]) == (100.0, 0.0)


def test_flow_health_combines_stall_rate_dependency_gaps_and_aging() -> None:
    snaps = [
        snap("stalled", graph_state=graph(ready=2)),  # stalled: observe mode, nothing runs
        snap("gap", graph_state=graph(missing=[("b", "x")], in_progress=[0.1]), service=running(1)),
        snap("aging", graph_state=graph(in_progress=[5, 0.1]), service=running(1)),
        healthy("fine"),
    ]
    m = metrics(snaps)["flow_health"]
    assert m.inputs["stall_rate"] == 0.25  # 1 of 4
    assert m.inputs["dependency_gap_rate"] == 0.25  # 1 of 4
    open_tasks = m.inputs["open_tasks"]
    assert m.inputs["aging_pressure"] == round(1 / open_tasks, 4)
    expected = 100 * (1 - (0.5 * 0.25 + 0.25 * 0.25 + 0.25 * (1 / open_tasks)))
    assert m.value == round(expected, 1)


def test_execution_reliability_counts_hub_actions_in_the_window_and_task_attempts() -> None:
    def done(n: int, status: str, hours: float) -> PastAction:
        return PastAction(f"a:sync_upstream:{n}", "a", "sync_upstream", NOW - timedelta(hours=hours), status)

    history = ActionHistory(
        (
            done(1, "succeeded", 1),
            done(2, "delegated", 2),
            done(3, "failed", 3),
            done(4, "interrupted", 4),
            done(5, "refused", 1),  # not an attempt
            done(6, "started", 0.1),  # not finished
            done(7, "failed", 30),  # outside the 24 h window
        )
    )
    snaps = [replace(healthy("a"), attempts=AttemptStats(recent=6, succeeded=4, failed=2))]
    m = metrics(snaps, history)["execution_reliability"]
    assert (m.inputs["hub_attempted"], m.inputs["hub_succeeded"]) == (4.0, 2.0)
    assert (m.inputs["task_attempted"], m.inputs["task_succeeded"]) == (6.0, 4.0)
    assert m.value == 60.0  # (2 + 4) / (4 + 6)


def test_execution_reliability_with_nothing_attempted_is_100_and_shows_zero_attempts() -> None:
    m = metrics([healthy("a")])["execution_reliability"]
    assert m.value == 100.0
    assert m.inputs["attempted"] == 0.0


def test_quality_and_security_falls_with_weighted_findings_and_broken_plans() -> None:
    clean = metrics([healthy("a"), healthy("b")])["quality_security_pressure"]
    leaky = metrics(
        [replace(healthy("a"), gates=GateStats(secret_leaks=1, last_status="fail")), healthy("b")]
    )["quality_security_pressure"]
    broken = metrics([snap("a", graph_state=graph(problems=2)), healthy("b")])["quality_security_pressure"]
    assert clean.value == 100.0
    assert leaky.value == 100 * (0.6 * 0.5 + 0.4 * 1.0)  # one of two repos under full pressure
    assert leaky.inputs["weighted_findings"] == 10.0
    assert broken.value == 100 * (0.6 * 1.0 + 0.4 * 0.5)  # one of two graphs has problems
    assert broken.inputs["plan_integrity"] == 0.5


def test_medium_findings_press_less_than_a_critical_one() -> None:
    medium = metrics([replace(healthy("a"), gates=GateStats(medium=1))])["quality_security_pressure"]
    critical = metrics([replace(healthy("a"), gates=GateStats(critical=1))])["quality_security_pressure"]
    assert critical.value < medium.value < 100


@pytest.mark.parametrize(
    ("before", "trend"), [(7.0, "improving"), (8.1, "flat"), (11.9, "flat"), (12.0, "worsening")]
)
def test_metric_trends_compare_with_the_previous_cycle(before: float, trend: str) -> None:
    snaps = [healthy("a"), snap("b", no_graph=True)]
    first = metrics(snaps, registered=10)
    assert first["reporting_coverage"].value == 10.0
    previous = {"reporting_coverage": replace(first["reporting_coverage"], value=before)}
    second = metrics(snaps, previous=previous, registered=10)["reporting_coverage"]
    assert second.delta == round(10.0 - before, 1)
    assert second.trend == trend
