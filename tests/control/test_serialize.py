"""One JSON encoding for the control plane: UTC 'Z' datetimes, paths as strings, dataclasses as objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson

from speedrift.register.actions import Action, ActionKind
from speedrift.register.record import CycleRecord, Metric, Outcome, Reason, RepoReport, RepoSnapshot, Skipped
from speedrift.serialize import cycle_to_dict, dumps
from speedrift.times import iso_utc, parse_time

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_datetimes_are_written_in_utc_with_a_z_whatever_their_zone() -> None:
    berlin = datetime(2026, 11, 20, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert orjson.loads(dumps({"at": berlin})) == {"at": "2026-11-20T12:00:00Z"}
    assert orjson.loads(dumps({"at": datetime(2026, 11, 20, 12, 0)})) == {"at": "2026-11-20T12:00:00Z"}
    assert iso_utc(NOW.replace(microsecond=5)) == "2026-11-20T12:00:00.000005Z"


def test_paths_sets_and_tuples_become_json_values() -> None:
    assert orjson.loads(dumps({"p": Path("/a/b"), "s": {"b", "a"}, "t": (1, 2)})) == {
        "p": "/a/b",
        "s": ["a", "b"],
        "t": [1, 2],
    }


def test_parse_iso_reads_back_what_iso_utc_wrote() -> None:
    assert parse_time(iso_utc(NOW)) == NOW
    assert parse_time("not a time") is None
    assert parse_time(None) is None


def test_a_cycle_record_becomes_the_documented_plain_dict() -> None:
    action = Action(
        id="a:dispatch_ready", repo="a", kind=ActionKind.DISPATCH_READY, priority=92, reason="ready work"
    )
    snapshot = RepoSnapshot(name="a", path="/repos/a", observed_at=NOW, exists=True)
    record = CycleRecord(
        cycle_id="c-1",
        generated_at=NOW,
        finished_at=NOW + timedelta(seconds=1),
        plan_only=True,
        ecosystem="/eco/ecosystem.toml",
        repos=(
            RepoReport(
                name="a",
                score=55,
                tier="at-risk",
                trend="new",
                delta=None,
                reasons=(Reason("service_down", "service down", 30.0),),
                activity="stalled",
                stall="service down while 3 ready tasks wait",
                snapshot=snapshot,
            ),
        ),
        metrics={
            "flow_health": Metric("flow_health", "Flow", 80.0, "healthy", "new", None, "100 - x", {"x": 20.0})
        },
        edges=(),
        planned=(action,),
        skipped=(Skipped(action, "plan_only", "plan_only is on"),),
        executed=(Outcome("a:dispatch_ready", "a", ActionKind.DISPATCH_READY, "succeeded", "ok", NOW, None),),
        hints=("look at a",),
        inputs={"repos_total": 1},
    )
    plain = cycle_to_dict(record)
    assert plain["cycle_id"] == "c-1"
    assert plain["generated_at"] == "2026-11-20T12:00:00Z"
    assert plain["repos"][0]["reasons"] == [{"code": "service_down", "text": "service down", "points": 30.0}]
    assert plain["repos"][0]["snapshot"]["observed_at"] == "2026-11-20T12:00:00Z"
    assert plain["skipped"][0] == {
        "action": plain["planned"][0],
        "rule": "plan_only",
        "reason": "plan_only is on",
    }
    assert plain["executed"][0]["finished_at"] is None
    assert plain["planned"][0]["params"] == {} and plain["planned"][0]["kind"] == "dispatch_ready"
    assert plain["metrics"]["flow_health"]["inputs"] == {"x": 20.0}
    assert plain["schema"] == 1
    assert orjson.loads(dumps(record)) == plain
