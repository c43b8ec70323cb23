"""Compound review in the hub loop: a schedule's slot fires exactly once (across a hub restart too),
a repo whose review fails is recorded without stopping the others, and where the hub may not write
the review tasks are only proposed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from speedrift import layout
from speedrift.fleet.opsconfig import CompoundReviewConfig, FleetOps
from speedrift.fleetops.compound_step import hub_step, slot_key
from speedrift.fleetops.hubctx import HubContext
from speedrift.fleetops.state import StateStore
from speedrift.graph.store import GraphStore
from speedrift.register.record import ControlState
from tests.fleetops.test_compound_scan import QUIET, a_repo, plant
from tests.gitrepo import commit_file

NIGHTLY = CompoundReviewConfig(schedule="0 2 * * *", tz="UTC")
SUPERVISED = ControlState(mode="supervise", lease_owner="hub")


def context(
    hub: Path,
    repos: dict[str, Path],
    now: datetime,
    *,
    config: CompoundReviewConfig = NIGHTLY,
    authority: dict[str, ControlState] | None = None,
) -> HubContext:
    return HubContext(
        hub=hub,
        ecosystem_path=hub / "ecosystem.toml",
        repos=repos,
        authority=authority if authority is not None else dict.fromkeys(repos, SUPERVISED),
        ops=FleetOps(compound_review=config),
        now=now,
        speedrift_argv=("speedrift",),
    )


def morning() -> datetime:
    """Today (the real day: the commits are made now) at 10:00 UTC — after today's 02:00 slot."""
    return datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)


def test_a_slot_fires_once_even_across_a_hub_restart(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    hub = tmp_path / "hub"
    hub.mkdir()
    now = morning()
    first = hub_step(context(hub, {"demo": repo}, now))
    assert [r["kind"] for r in first] == ["compound_review"]
    slot = now.replace(hour=2)
    assert first[0]["slot"] == slot and first[0]["repo"] == "demo" and "error" not in first[0]
    assert Path(first[0]["report"]).is_file()
    assert StateStore(hub).read().slots[slot_key("demo")] == slot
    # a restarted hub: a new context and a new store over the same directory, later the same day
    assert hub_step(context(hub, {"demo": repo}, now + timedelta(hours=6))) == []
    assert hub_step(context(hub, {"demo": repo}, now + timedelta(hours=6))) == []
    # the next night's slot fires, once
    commit_file(repo, "a.txt", "a\n", "a change")
    tomorrow = now + timedelta(days=1)
    second = hub_step(context(hub, {"demo": repo}, tomorrow))
    assert len(second) == 1 and second[0]["slot"] == slot + timedelta(days=1) and second[0]["commits"] == 1
    assert hub_step(context(hub, {"demo": repo}, tomorrow)) == []


def test_a_repo_whose_review_fails_is_recorded_and_the_others_are_reviewed(tmp_path: Path) -> None:
    good = a_repo(tmp_path)
    broken = tmp_path / "not-a-repo"
    broken.mkdir()
    hub = tmp_path / "hub"
    hub.mkdir()
    records = hub_step(context(hub, {"broken": broken, "good": good}, morning()))
    by_repo = {r["repo"]: r for r in records}
    assert by_repo["broken"]["error"] and by_repo["broken"]["report"] is None
    assert "error" not in by_repo["good"] and Path(by_repo["good"]["report"]).is_file()
    slots = StateStore(hub).read().slots
    assert (
        slot_key("broken") in slots and slot_key("good") in slots
    )  # a failed slot is not retried each cycle


def test_a_repo_the_hub_may_not_write_to_is_not_reviewed_until_it_is_opted_in(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    hub = tmp_path / "hub"
    hub.mkdir()
    now = morning()
    hub_step(context(hub, {"demo": repo}, now - timedelta(days=1)))  # the baseline, while supervised
    plant(repo)
    store = GraphStore.of_repo(repo)
    assert store is not None
    before = set(store.load().tasks)
    reports = sorted(layout.reviews_dir(repo).iterdir())
    observe = {"demo": ControlState()}
    assert hub_step(context(hub, {"demo": repo}, now, authority=observe)) == []
    assert set(store.load().tasks) == before and sorted(layout.reviews_dir(repo).iterdir()) == reports
    assert slot_key("demo") in StateStore(hub).read().slots  # the baseline's slot only
    opted_in = hub_step(context(hub, {"demo": repo}, now))[0]  # the same slot fires once opted in
    assert len(opted_in["tasks"]["created"]) == 5 and opted_in["flags"] == 10


def test_the_tasks_are_made_where_the_hub_has_authority(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    hub = tmp_path / "hub"
    hub.mkdir()
    now = morning()
    hub_step(context(hub, {"demo": repo}, now - timedelta(days=1)))
    plant(repo)
    record = hub_step(context(hub, {"demo": repo}, now))[0]
    assert len(record["tasks"]["created"]) == 5 and record["flags"] == 10
    assert record["pr"]["state"] == "dry_run"


def test_compound_review_switched_off_runs_nothing(tmp_path: Path) -> None:
    repo = a_repo(tmp_path)
    own = a_repo(tmp_path / "own", QUIET + "enabled = false\n")
    hub = tmp_path / "hub"
    hub.mkdir()
    off = CompoundReviewConfig(enabled=False)
    assert hub_step(context(hub, {"demo": repo}, morning(), config=off)) == []
    assert [r["repo"] for r in hub_step(context(hub, {"demo": repo, "own": own}, morning()))] == ["demo"]
    assert slot_key("own") not in StateStore(hub).read().slots


def test_a_bad_speedrift_toml_is_recorded_once_per_slot_not_every_cycle(tmp_path: Path) -> None:
    repo = a_repo(tmp_path, "[compound_review]\nlarge_diff_lines = 0\n")
    hub = tmp_path / "hub"
    hub.mkdir()
    now = morning()
    (record,) = hub_step(context(hub, {"demo": repo}, now))
    assert "its speedrift.toml cannot be read" in record["error"] and "large_diff_lines" in record["error"]
    assert hub_step(context(hub, {"demo": repo}, now + timedelta(minutes=1))) == []
