"""The nightwatch's judgment (fleetops/nightwatch.py) over synthetic windows: terraphim's four test
vectors adapted to our three metrics, the empty and the too-small window, what is not counted, and
config weights and thresholds that really move the level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from speedrift.attemptlog import AttemptEntry
from speedrift.fleet.opsconfig import NightwatchConfig
from speedrift.fleetops import nightwatch
from speedrift.fleetops.state import AgentState, Drift, DriftLevel, FleetState, Pause
from tests.conftest import NOW

DEFAULT = NightwatchConfig()


def attempt(
    index: int,
    *,
    failed: bool = False,
    agent: str | None = "x",
    runtime: str = "claude",
    model: str | None = "sonnet",
    gates: tuple[int, int] | None = None,
    failure: str | None = None,
    status: str | None = None,
    **health: object,
) -> AttemptEntry:
    """One finished attempt; by default one gate ran, passing when it did not fail."""
    passed, gate_failed = gates if gates is not None else ((0, 1) if failed else (1, 0))
    return AttemptEntry(
        at=NOW + timedelta(seconds=index),
        repo="/repo",
        task=f"t{index}",
        attempt=1,
        status=status or ("failed" if failed else "done"),
        runtime=runtime,
        model=model,
        failure=failure or ("implementation_error" if failed else None),
        agent=agent,
        gates_passed=passed,
        gates_failed=gate_failed,
        **health,  # type: ignore[arg-type]
    )


def window(failed: int, unhealthy: int = 0, size: int = 20) -> list[AttemptEntry]:
    """``size`` attempts, ``failed`` of them failed (each failing its gate), ``unhealthy`` of them
    stalled, over budget, crashed or slow to say anything, in turn."""
    kinds: Sequence[dict[str, Any]] = (
        {"stalled": True},
        {"over_budget": True},
        {"crashed": True},
        {"first_event_s": 600.0},
    )
    return [
        replace(attempt(i, failed=i < failed), **(kinds[i % len(kinds)] if i < unhealthy else {}))
        for i in range(size)
    ]


def verdict_of(entries: list[AttemptEntry], config: NightwatchConfig = DEFAULT) -> nightwatch.Verdict:
    return nightwatch.evaluate(entries, config)["agent:x"]


@pytest.mark.parametrize(
    ("failed", "unhealthy", "score", "level"),
    [
        (3, 0, 0.105, DriftLevel.MINOR),  # terraphim: 15% errors
        (6, 0, 0.21, DriftLevel.MODERATE),  # 30% errors
        (12, 10, 0.57, DriftLevel.SEVERE),  # 60% errors, health 0.5
        (18, 16, 0.87, DriftLevel.CRITICAL),  # 90% errors, health 0.2
    ],
)
def test_terraphims_four_vectors_give_the_same_scores_and_levels_from_our_metrics(
    failed: int, unhealthy: int, score: float, level: DriftLevel
) -> None:
    verdict = verdict_of(window(failed, unhealthy))
    assert verdict.score == pytest.approx(score)
    assert verdict.level is level
    assert verdict.samples == 20
    assert verdict.metrics.error_rate == pytest.approx(failed / 20)
    assert verdict.metrics.success_rate == pytest.approx((20 - failed) / 20)
    assert verdict.metrics.health == pytest.approx((20 - unhealthy) / 20)
    assert f"{failed} of 20 failed" in verdict.why and level.value in verdict.why


def test_a_window_of_successes_is_normal_with_score_zero() -> None:
    verdict = verdict_of(window(0))
    assert verdict.level is DriftLevel.NORMAL and verdict.score == 0


def test_a_zero_sample_window_is_normal_and_says_so() -> None:
    verdicts = nightwatch.evaluate([], DEFAULT, subjects=["agent:idle"])
    verdict = verdicts["agent:idle"]
    assert verdict.level is DriftLevel.NORMAL and verdict.samples == 0 and verdict.score == 0
    assert "no counted attempt" in verdict.why


def test_fewer_than_min_samples_is_normal_with_the_count_and_the_floor() -> None:
    two_failures = [attempt(0, failed=True), attempt(1, failed=True)]
    verdict = verdict_of(two_failures)
    assert verdict.level is DriftLevel.NORMAL and verdict.samples == 2
    assert "2 samples, judged from 3" in verdict.why
    judged = verdict_of(two_failures, NightwatchConfig(min_samples=2))
    assert judged.level is DriftLevel.CRITICAL  # 0.4 + 0.3 + 0 = 0.7


def test_usage_limits_cancels_and_waiting_attempts_are_not_counted() -> None:
    entries = [attempt(i, failed=True, failure="usage_limit") for i in range(10)]
    entries += [attempt(10 + i, status="cancelled") for i in range(3)]
    entries += [attempt(20, status="waiting")]
    entries += [attempt(30 + i) for i in range(3)]
    verdict = verdict_of(entries)
    assert verdict.samples == 3 and verdict.metrics.failed == 0
    assert verdict.level is DriftLevel.NORMAL


def test_only_the_newest_window_attempts_are_judged() -> None:
    old_failures = [attempt(i, failed=True) for i in range(20)]
    new_successes = [attempt(100 + i) for i in range(20)]
    assert verdict_of(old_failures + new_successes).level is DriftLevel.NORMAL
    wide = verdict_of(old_failures + new_successes, NightwatchConfig(window=40))
    assert wide.samples == 40 and wide.metrics.error_rate == pytest.approx(0.5)
    assert wide.level is DriftLevel.MODERATE  # 0.2 + 0.15


def test_a_window_without_gate_runs_counts_success_as_one_and_says_so() -> None:
    entries = [attempt(i, failed=i < 5, gates=(0, 0)) for i in range(10)]
    verdict = verdict_of(entries)
    assert verdict.metrics.gates_run == 0 and verdict.metrics.success_rate == 1.0
    assert verdict.score == pytest.approx(0.2)  # 0.4 · 0.5 only
    assert "no gate ran (success counted as 1.0)" in verdict.why


def test_health_counts_stalls_budgets_crashes_and_a_slow_first_event_but_not_an_unknown_one() -> None:
    entries = [
        attempt(0, stalled=True),
        attempt(1, over_budget=True),
        attempt(2, crashed=True),
        attempt(3, first_event_s=121.0),
        attempt(4, first_event_s=119.0),
        attempt(5, first_event_s=None),
        attempt(6, stalled=True, crashed=True),  # one unhealthy attempt, whatever the causes
        attempt(7),
    ]
    metrics = verdict_of(entries).metrics
    assert metrics.unhealthy == 5 and metrics.health == pytest.approx(3 / 8)
    assert (metrics.stalled, metrics.over_budget, metrics.crashed, metrics.slow_first_event) == (2, 1, 2, 1)
    relaxed = verdict_of(entries, NightwatchConfig(slow_first_event_s=300)).metrics
    assert relaxed.unhealthy == 4


def test_config_thresholds_really_change_the_level() -> None:
    entries = window(6)  # score 0.21
    assert verdict_of(entries).level is DriftLevel.MODERATE
    assert verdict_of(entries, NightwatchConfig(moderate=0.25, severe=0.5)).level is DriftLevel.MINOR
    strict = NightwatchConfig(minor=0.05, moderate=0.1, severe=0.15, critical=0.2)
    assert verdict_of(entries, strict).level is DriftLevel.CRITICAL


def test_config_weights_really_change_the_score_and_the_level() -> None:
    entries = window(6, unhealthy=10)  # error 0.3, success 0.7, health 0.5
    assert verdict_of(entries).score == pytest.approx(0.12 + 0.09 + 0.15)
    assert verdict_of(entries).level is DriftLevel.MODERATE
    only_health = NightwatchConfig(error_weight=0, success_weight=0, health_weight=1)
    assert verdict_of(entries, only_health).score == pytest.approx(0.5)
    assert verdict_of(entries, only_health).level is DriftLevel.SEVERE
    light = NightwatchConfig(error_weight=0.1, success_weight=0.1, health_weight=0.05)
    assert verdict_of(entries, light).level is DriftLevel.NORMAL  # 0.03 + 0.03 + 0.025


def test_a_score_exactly_on_a_threshold_reaches_that_level() -> None:
    entries = [attempt(i, failed=i < 1, gates=(0, 0)) for i in range(4)]  # error 0.25
    config = NightwatchConfig(error_weight=0.4, success_weight=0, health_weight=0)
    verdict = verdict_of(entries, config)
    assert verdict.score == 0.1 and verdict.level is DriftLevel.MINOR


def test_every_attempt_is_judged_by_its_runtime_and_model_and_an_agents_also_by_its_agent() -> None:
    entries = [attempt(i, failed=True, agent=None, runtime="codex", model=None) for i in range(5)]
    entries += [attempt(10 + i, agent="x", runtime="claude", model="sonnet") for i in range(5)]
    verdicts = nightwatch.evaluate(entries, DEFAULT)
    assert set(verdicts) == {"model:codex:default", "model:claude:sonnet", "agent:x"}
    assert verdicts["model:codex:default"].level is DriftLevel.CRITICAL
    assert verdicts["model:codex:default"].kind is nightwatch.SubjectKind.MODEL
    assert verdicts["model:codex:default"].name == "codex:default"
    assert verdicts["agent:x"].samples == 5 and verdicts["agent:x"].level is DriftLevel.NORMAL


def test_attempts_before_a_subjects_fresh_mark_no_longer_count_for_it() -> None:
    entries = [attempt(i, failed=True) for i in range(10)] + [attempt(100 + i) for i in range(3)]
    since = {"agent:x": NOW + timedelta(seconds=50)}
    verdicts = nightwatch.evaluate(entries, DEFAULT, since=since)
    assert verdicts["agent:x"].samples == 3 and verdicts["agent:x"].level is DriftLevel.NORMAL
    assert verdicts["model:claude:sonnet"].samples == 13  # the mark is the agent's alone


def test_a_verdict_serialises_every_metric() -> None:
    data = verdict_of(window(3)).to_json()
    assert data["subject"] == "agent:x" and data["level"] == "minor" and data["samples"] == 20
    assert data["metrics"]["error_rate"] == 0.15 and data["metrics"]["gates_failed"] == 3
    assert data["why"].startswith("agent:x minor")


def test_drift_rows_list_agents_first_worst_first_with_their_pause() -> None:
    state = FleetState(
        agents={
            "calm": AgentState("calm"),
            "bad": AgentState(
                "bad",
                drift=Drift(DriftLevel.CRITICAL, 0.8, 20, NOW, NOW),
                pause=Pause(
                    since=NOW, by="nightwatch", reason="critical drift", until=NOW + timedelta(hours=1)
                ),
            ),
            "slow": AgentState("slow", drift=Drift(DriftLevel.MODERATE, 0.3, 20, NOW, NOW), concurrency=2),
        },
        models={"codex:default": Drift(DriftLevel.SEVERE, 0.5, 9, NOW, NOW)},
    )
    rows = nightwatch.drift_rows(state, NOW)
    assert [r["subject"] for r in rows] == ["agent:bad", "agent:slow", "agent:calm", "model:codex:default"]
    assert rows[0]["paused"] is True and rows[0]["pause"]["by"] == "nightwatch"
    assert rows[1]["concurrency"] == 2 and rows[1]["level"] == "moderate"
    later = nightwatch.drift_rows(state, NOW + timedelta(hours=2))
    assert later[0]["paused"] is False  # the pause's until has passed
