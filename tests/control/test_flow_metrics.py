"""Flow metrics from hand-built records and a fixed ``now``: each metric's value, its inputs, and
"no data" as None with the zero denominator — never a made-up 0 or 100."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from speedrift.control.metrics.compute import flow_metrics, percentile, ready_time
from speedrift.control.metrics.model import (
    AttemptRun,
    EscalationRecord,
    EscalationState,
    GateStatus,
    RepoRecords,
    RunState,
    TaskTimes,
    Usage,
)

NOW = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)
WEEK = timedelta(days=7)


def at(hours_ago: float) -> datetime:
    return NOW - timedelta(hours=hours_ago)


def run(
    repo: str,
    task: str,
    number: int,
    state: RunState,
    started: float,
    ended: float | None = None,
    **fields: object,
) -> AttemptRun:
    return AttemptRun(
        repo=repo,
        task=task,
        number=number,
        state=state,
        started=at(started),
        ended=at(ended) if ended is not None else None,
        **fields,  # type: ignore[arg-type]
    )


def shop() -> RepoRecords:
    """Two tasks landed (one on its second attempt), one failed twice, one still running."""
    return RepoRecords(
        name="shop",
        attempts=(
            run("shop", "a", 1, RunState.DONE, 5.0, 4.5, landed_commit="c1", usage=Usage(0.5, 1000)),
            run(
                "shop",
                "b",
                1,
                RunState.FAILED,
                3.0,
                2.9,
                failure="regression",
                gates=(("tests", GateStatus.BLOCKED), ("secrets", GateStatus.RAN)),
                usage=Usage(0.25, 400),
            ),
            run(
                "shop",
                "b",
                2,
                RunState.DONE,
                2.0,
                1.0,
                landed_commit="c2",
                gates=(("tests", GateStatus.RAN), ("secrets", GateStatus.RAN)),
                usage=Usage(0.25, 600),
            ),
            run(
                "shop",
                "c",
                1,
                RunState.FAILED,
                30.0,
                29.0,
                failure="merge_conflict",
                gates=(("tests", GateStatus.RAN), ("sca", GateStatus.SKIPPED)),
            ),
            run("shop", "d", 1, RunState.RUNNING, 0.2),
        ),
        tasks=(
            TaskTimes("shop", "a", created=at(6.0)),
            # blocked by a, which completed 4.5 h ago; its not_before (a retry's backoff) is after
            # its first attempt started and does not count
            TaskTimes("shop", "b", created=at(10.0), time_gates=(at(2.5),), blockers_completed=(at(4.5),)),
            TaskTimes("shop", "c", created=at(31.0)),
        ),
        escalations=(
            EscalationRecord("shop", "shop-1", at(3.0), EscalationState.ANSWERED, answered=at(2.0)),
            EscalationRecord("shop", "shop-2", at(1.0), EscalationState.OPEN),
            EscalationRecord("shop", "shop-3", at(400.0), EscalationState.OPEN),  # old, still open: counted
            EscalationRecord("shop", "shop-4", at(400.0), EscalationState.ANSWERED, answered=at(399.0)),
        ),
    )


def idle() -> RepoRecords:
    return RepoRecords(name="idle")


def test_percentiles_are_nearest_rank_and_none_without_samples() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    samples = [float(n) for n in range(1, 21)]  # 1..20
    assert percentile(samples, 50) == 10.0
    assert percentile(samples, 95) == 19.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_ready_is_the_latest_of_created_blockers_and_time_gates_but_never_after_the_first_start() -> None:
    task = TaskTimes("r", "t", created=at(10), time_gates=(at(8), at(1)), blockers_completed=(at(9), None))
    assert ready_time(task, first_start=at(5)) == at(8)  # the 1 h-ago gate came after the start: a backoff
    assert ready_time(task, first_start=None) == at(1)
    late_blocker = TaskTimes("r", "t", created=at(10), blockers_completed=(at(2),))
    assert ready_time(late_blocker, first_start=at(5)) == at(5)
    assert ready_time(TaskTimes("r", "t", created=None), first_start=at(1)) is None


def test_landed_counts_tasks_once_in_hour_and_day_buckets() -> None:
    result = flow_metrics([shop()], NOW, WEEK)
    eco = result["ecosystem"]
    assert eco["landed"]["value"] == 2 and eco["landed"]["inputs"] == {"landed": 2}
    hours = eco["landed_per_hour"]["buckets"]
    assert len(hours) == 24 and hours[-1]["start"] == "2026-12-07T12:00:00+00:00"
    by_hour = {b["start"][11:13]: b["count"] for b in hours if b["count"]}
    assert by_hour == {"08": 1, "11": 1}  # 4.5 h and 1 h before 12:30
    days = eco["landed_per_day"]["buckets"]
    assert len(days) == 8 and days[-1] == {"start": "2026-12-07T00:00:00+00:00", "count": 2}
    assert sum(b["count"] for b in days) == 2


def test_lead_time_and_dispatch_latency_come_from_ready_times() -> None:
    eco = flow_metrics([shop()], NOW, WEEK)["ecosystem"]
    # a: ready 6 h ago, landed 4.5 h ago -> 1.5 h; b: ready 4.5 h ago (its blocker), landed 1 h ago -> 3.5 h
    lead = eco["lead_time"]
    assert (lead["p50"], lead["p95"], lead["count"]) == (5400.0, 12600.0, 2)
    assert lead["inputs"] == {"landed": 2, "without_ready_time": 0}
    # first attempts: a 1 h after ready, b 1.5 h, c 1 h, d (no task times) unknown
    latency = eco["dispatch_latency"]
    assert latency["count"] == 3 and latency["p50"] == 3600.0 and latency["p95"] == 5400.0
    assert latency["inputs"] == {"first_attempts": 4, "without_ready_time": 1}
    assert "nearest-rank" in latency["formula"]


def test_first_attempt_and_merge_success_carry_their_counts() -> None:
    eco = flow_metrics([shop()], NOW, WEEK)["ecosystem"]
    first = eco["first_attempt_success"]
    assert first["value"] == 33.3 and first["inputs"] == {"landed": 1, "first_attempts_ended": 3}
    merge = eco["merge_success"]
    assert merge["value"] == 66.7
    assert merge["inputs"] == {"merged": 2, "merge_conflicts": 1, "merge_pending": 0, "landing_attempts": 3}


def test_gate_failure_rates_count_only_attempts_a_gate_ran_in() -> None:
    gates = flow_metrics([shop()], NOW, WEEK)["ecosystem"]["gate_failure_rates"]
    assert gates["gates"] == [
        {"gate": "tests", "value": 33.3, "inputs": {"blocked": 1, "ran": 3}},
        {"gate": "secrets", "value": 0.0, "inputs": {"blocked": 0, "ran": 2}},
    ]  # sca was skipped: no rate at all
    assert gates["inputs"] == {"gated_attempts": 3, "attempts": 5}


def test_failure_classes_are_bucketed_per_day() -> None:
    classes = flow_metrics([shop()], NOW, WEEK)["ecosystem"]["failure_classes"]
    assert classes["totals"] == {"merge_conflict": 1, "regression": 1}
    days = {d["start"][:10]: d for d in classes["days"] if d["total"]}
    assert days["2026-12-07"]["counts"] == {"regression": 1}
    assert days["2026-12-06"]["counts"] == {"merge_conflict": 1}  # 29 h before 12:30
    assert classes["inputs"] == {"failed_attempts": 2, "days": 8}


def test_escalations_count_open_and_answered_with_answer_times() -> None:
    esc = flow_metrics([shop()], NOW, WEEK)["ecosystem"]["escalations"]
    assert (esc["open"], esc["answered"], esc["withdrawn"]) == (2, 1, 0)  # shop-4 was before the window
    assert esc["time_to_answer"] == {"unit": "s", "p50": 3600.0, "p95": 3600.0, "count": 1}


def test_cost_per_landed_sums_every_attempt_of_the_landed_tasks() -> None:
    cost = flow_metrics([shop()], NOW, WEEK)["ecosystem"]["cost_per_landed"]
    assert cost["value"] == 0.5 and cost["tokens"] == 1000.0  # (0.5 + 0.25 + 0.25) / 2, (1000+400+600) / 2
    assert cost["inputs"] == {
        "cost_usd": 1.0,
        "tokens": 2000,
        "landed": 2,
        "attempts": 3,
        "attempts_with_usage": 3,
    }


def test_no_data_is_none_with_a_zero_denominator_never_a_made_up_number() -> None:
    idle_metrics = flow_metrics([idle()], NOW, WEEK)["repos"]["idle"]
    assert idle_metrics["landed"]["value"] == 0
    assert idle_metrics["first_attempt_success"]["value"] is None
    assert idle_metrics["first_attempt_success"]["inputs"]["first_attempts_ended"] == 0
    assert idle_metrics["merge_success"]["value"] is None
    assert idle_metrics["merge_success"]["inputs"]["landing_attempts"] == 0
    assert idle_metrics["lead_time"]["p50"] is None and idle_metrics["lead_time"]["count"] == 0
    assert idle_metrics["dispatch_latency"]["p95"] is None
    assert idle_metrics["gate_failure_rates"]["gates"] == []
    assert idle_metrics["escalations"]["time_to_answer"]["p50"] is None
    assert idle_metrics["cost_per_landed"]["value"] is None
    assert idle_metrics["cost_per_landed"]["inputs"]["landed"] == 0
    # landed attempts without any recorded usage: the cost is unknown, not $0
    free = RepoRecords(
        name="free", attempts=(run("free", "x", 1, RunState.DONE, 2.0, 1.0, landed_commit="c"),)
    )
    cost = flow_metrics([free], NOW, WEEK)["repos"]["free"]["cost_per_landed"]
    assert cost["value"] is None and cost["tokens"] is None and cost["inputs"]["attempts_with_usage"] == 0


def test_the_ecosystem_pools_every_repos_records_and_each_repo_has_its_own() -> None:
    other = RepoRecords(
        name="other",
        attempts=(run("other", "a", 1, RunState.DONE, 2.0, 1.5, landed_commit="z"),),
        tasks=(TaskTimes("other", "a", created=at(3.0)),),
    )
    result = flow_metrics([shop(), other, idle()], NOW, WEEK)
    assert result["repos"]["shop"]["landed"]["value"] == 2
    # the same task id in another repo is another task
    assert result["repos"]["other"]["landed"]["value"] == 1
    assert result["ecosystem"]["landed"]["value"] == 3
    assert result["ecosystem"]["first_attempt_success"]["inputs"] == {"landed": 2, "first_attempts_ended": 4}
    assert result["repos"]["other"]["first_attempt_success"]["value"] == 100.0
    assert set(result["repos"]) == {"shop", "other", "idle"}
    assert result["window"] == {
        "start": "2026-11-30T12:30:00+00:00",
        "end": "2026-12-07T12:30:00+00:00",
        "seconds": WEEK.total_seconds(),
    }
    assert set(result["formulas"]) >= {"lead_time", "merge_success", "cost_per_landed"}


def test_a_shorter_window_leaves_out_what_ended_before_it() -> None:
    eco = flow_metrics([shop()], NOW, timedelta(hours=2))["ecosystem"]
    assert eco["landed"]["value"] == 1  # b, 1 h ago; a landed 4.5 h ago
    assert len(eco["landed_per_hour"]["buckets"]) == 3  # 10:00, 11:00, 12:00
    assert eco["failure_classes"]["totals"] == {}
    assert eco["merge_success"]["inputs"]["landing_attempts"] == 1


def test_a_window_longer_than_the_calendar_covers_everything() -> None:
    eco = flow_metrics([shop()], NOW, timedelta(days=999_999))["ecosystem"]
    assert eco["landed"]["value"] == 2
    assert len(eco["landed_per_day"]["buckets"]) == 366  # the newest days only
