"""Several hubs, one register: a repo is acted on by one hub at a time, through a lease row.

The pure rules (hub identity, lease length, which actions a lease holds back) with values; then
real hubs over real repos sharing one register — a SQLite file and a PostgreSQL server."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift import hubdir
from speedrift.control.cycle import Hub, run_once
from speedrift.control.daemon import HubOptions, run_hub
from speedrift.control.hublease import (
    HubRule,
    Leased,
    hub_identity,
    lease_ttl_for,
    lease_view,
    repos_to_lease,
    split_by_lease,
    takeable,
)
from speedrift.errors import UsageError
from speedrift.register.actions import Action, ActionKind
from speedrift.register.ledger import Ledger
from speedrift.register.record import CycleRecord
from speedrift.register.store import LeaseGrant, LeaseRow, Register
from speedrift.times import now_utc, sortable
from tests.cli.support import Cli
from tests.control.hubfleet import REPOS, corrective_tasks, ecosystem, repair_action, shared_repos

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _own_hub_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ecosystem.toml's hub directory beside it (no override), ids from host and directory."""
    for name in ("SPEEDRIFT_HUB_DIR", "SPEEDRIFT_HUB_ID", "SPEEDRIFT_REGISTER_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One register several hubs share: a SQLite file named by URL, or a PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    (tmp_path / "shared").mkdir()
    return f"sqlite:///{tmp_path}/shared/register.db"


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def _action(repo: str, kind: ActionKind = ActionKind.REPAIR_DEPENDENCIES) -> Action:
    return Action(id=f"{repo}:{kind}", repo=repo, kind=kind, priority=50, reason="because")


def _row(repo: str, hub: str, expires: datetime) -> LeaseRow:
    stamp = sortable(NOW) or ""
    return LeaseRow(repo, hub, "elsewhere", 4242, stamp, stamp, sortable(expires) or "")


# ---------------------------------------------------------------------------------------- the rules


def test_the_hub_id_is_the_host_and_hub_directory_unless_speedrift_hub_id_names_it(tmp_path: Path) -> None:
    first = hub_identity(tmp_path / "a" / ".speedrift-hub", {}, host="box")
    again = hub_identity(tmp_path / "a" / ".speedrift-hub", {}, host="box")
    other = hub_identity(tmp_path / "b" / ".speedrift-hub", {}, host="box")
    named = hub_identity(tmp_path / "a", {"SPEEDRIFT_HUB_ID": " hub-eu-1 "}, host="box")

    assert first == again == f"box:{tmp_path}/a/.speedrift-hub"
    assert other != first
    assert named == "hub-eu-1"


def test_a_hub_id_that_is_not_printable_text_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\$SPEEDRIFT_HUB_ID"):
        hub_identity(tmp_path, {"SPEEDRIFT_HUB_ID": "hub\x1b[2J"})


def test_hub_up_leases_for_three_intervals_and_at_least_a_minute() -> None:
    assert lease_ttl_for(1.0) == timedelta(seconds=60)
    assert lease_ttl_for(30.0) == timedelta(seconds=90)
    assert lease_ttl_for(600.0) == timedelta(seconds=1800)


def test_an_executing_cycle_leases_every_repo_and_a_plan_only_one_only_the_approved_actions_repos() -> None:
    approved = [_action("beta")]

    assert repos_to_lease(REPOS, approved, plan_only=False) == REPOS
    assert repos_to_lease(REPOS, approved, plan_only=True) == ("beta",)
    assert repos_to_lease(REPOS, [], plan_only=True) == ()


def test_actions_in_a_repo_another_hub_holds_are_held_back_naming_the_hub_and_when_its_lease_ends() -> None:
    grant = LeaseGrant(
        held=("alpha",), others={"beta": _row("beta", "east:/srv/hub", NOW + timedelta(minutes=4))}
    )
    leased = Leased.of(grant, ("alpha", "beta", "gamma"), NOW, timedelta(minutes=5))

    keep, cut = split_by_lease([_action("alpha"), _action("beta"), _action("gamma")], leased, NOW)

    assert [a.repo for a in keep] == ["alpha"]
    assert [(s.action.repo, s.rule) for s in cut] == [("beta", "hub_lease"), ("gamma", "hub_lease")]
    assert "east:/srv/hub" in cut[0].reason and "12:04 UTC" in cut[0].reason
    assert "could not be confirmed" in cut[1].reason  # gamma: neither ours nor anyone's this round
    assert leased.unconfirmed == frozenset({"gamma"})


def test_a_lease_that_ran_out_during_the_cycle_holds_the_next_action_back() -> None:
    leased = Leased.of(LeaseGrant(("alpha",), {}), ("alpha",), NOW, timedelta(minutes=1))

    assert leased.holds("alpha", NOW + timedelta(seconds=59))
    assert leased.due_for_renewal(NOW + timedelta(seconds=30))
    keep, cut = split_by_lease([_action("alpha")], leased, NOW + timedelta(minutes=2))
    assert keep == () and cut[0].rule == HubRule.HUB_LEASE and "ran out" in cut[0].reason


def test_another_hub_renewing_does_not_change_what_this_hub_could_take_but_a_release_or_expiry_does() -> None:
    live = [_row("alpha", "east", NOW + timedelta(minutes=5)), _row("beta", "me", NOW + timedelta(minutes=5))]
    renewed = [_row("alpha", "east", NOW + timedelta(minutes=9)), live[1]]

    assert takeable(live, "me", REPOS, NOW) == takeable(renewed, "me", REPOS, NOW) == {"gamma"}
    assert takeable([live[1]], "me", REPOS, NOW) == {"alpha", "gamma"}  # east released alpha
    assert takeable(live, "me", REPOS, NOW + timedelta(minutes=6)) == {"alpha", "gamma"}  # ran out


def test_the_status_view_marks_this_hubs_leases_and_the_ones_that_ran_out() -> None:
    rows = [_row("beta", "me", NOW + timedelta(minutes=5)), _row("alpha", "east", NOW - timedelta(seconds=1))]

    view = lease_view(rows, "me", NOW)

    assert [(v["repo"], v["hub"], v["this_hub"], v["expired"]) for v in view] == [
        ("alpha", "east", False, True),
        ("beta", "me", True, False),
    ]
    assert view[1]["expires_at"] == "2026-11-20T12:05:00Z"


# --------------------------------------------------------------------------- real hubs, one register


def _executed_by(records: dict[str, list[CycleRecord]]) -> dict[str, set[str]]:
    return {
        repo: {hub for hub, cycles in records.items() for r in cycles for o in r.executed if o.repo == repo}
        for repo in REPOS
    }


def test_two_hubs_racing_over_the_same_repos_act_in_each_repo_exactly_once_and_status_names_the_holder(
    tmp_path: Path, shared_url: str
) -> None:
    repos = shared_repos(tmp_path / "repos")
    hubs = [Hub(ecosystem(tmp_path / side, repos, shared_url)) for side in ("east", "west")]
    assert hubs[0].hub_id != hubs[1].hub_id
    start = threading.Barrier(len(hubs))
    records: dict[str, list[CycleRecord]] = {hub.hub_id: [] for hub in hubs}
    errors: list[BaseException] = []

    def race(hub: Hub) -> None:
        try:
            start.wait(timeout=120)
            for _ in range(2):
                records[hub.hub_id].append(hub.cycle())
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=race, args=(hub,)) for hub in hubs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors

    executed_by = _executed_by(records)
    assert all(len(holders) == 1 for holders in executed_by.values()), executed_by
    with Register.open(tmp_path / "x", url=shared_url) as register:
        started = [row["action_id"] for row in register.actions(limit=500)]
    assert sorted(started) == sorted(repair_action(repo) for repo in REPOS)  # one row each, one hub each
    assert all(
        corrective_tasks(repo) == ["speedrift-fix-dependencies-build-ghost"] for repo in repos.values()
    )

    status = Cli(tmp_path / "east").json("hub", "status", "--json")
    holders = {row["repo"]: row["hub"] for row in status["leases"]}
    assert holders == {repo: next(iter(hubs_)) for repo, hubs_ in executed_by.items()}
    assert status["hub_id"] == hubs[0].hub_id
    assert {row["repo"] for row in status["leases"] if row["this_hub"]} == {
        repo for repo, hubs_ in executed_by.items() if hubs[0].hub_id in hubs_
    }
    assert status["register"]["reachable"] is True and status["register"]["backend"] in shared_url


def test_a_hub_never_acts_in_a_repo_another_live_hub_holds_and_takes_it_over_once_that_lease_runs_out(
    tmp_path: Path, shared_url: str
) -> None:
    repos = shared_repos(tmp_path / "repos")
    start = now_utc()
    east = Hub(ecosystem(tmp_path / "east", repos, shared_url), clock=Clock(start))
    east.register.acquire_leases(east.hub_id, ["alpha"], start, timedelta(minutes=5))  # east then stops
    clock = Clock(start + timedelta(minutes=1))
    west = Hub(ecosystem(tmp_path / "west", repos, shared_url), clock=clock)

    held = west.cycle()

    assert {o.repo for o in held.executed} == {"beta", "gamma"}
    [cut] = [s for s in held.skipped if s.action.id == repair_action("alpha")]
    assert cut.rule == "hub_lease" and east.hub_id in cut.reason and "runs out" in cut.reason
    assert any("another hub holds" in hint for hint in held.hints)
    assert corrective_tasks(repos["alpha"]) == []  # nothing was written in the repo east holds
    [line] = [r for r in Ledger(west.hub).read(last=None) if r.get("cycle_id") == held.cycle_id]
    assert {s["rule"] for s in line["skipped"] if s["action"]["repo"] == "alpha"} >= {"hub_lease"}

    clock.now = start + timedelta(minutes=6)  # east's lease ran out unrenewed
    taken = west.cycle()

    assert [o.action_id for o in taken.executed] == [repair_action("alpha")]
    assert corrective_tasks(repos["alpha"]) == ["speedrift-fix-dependencies-build-ghost"]
    assert {row.repo: row.hub for row in west.register.leases()} == dict.fromkeys(REPOS, west.hub_id)


def test_a_plan_only_cycle_takes_no_lease_and_hub_once_gives_its_leases_back(tmp_path: Path) -> None:
    repos = shared_repos(tmp_path / "repos")
    eco = ecosystem(tmp_path / "hub", repos)
    hub = Hub(eco)

    planned = hub.cycle(execute_actions=False)
    assert planned.executed == () and hub.register.leases() == []

    record = run_once(eco)
    assert {o["repo"] for o in record["executed"]} == set(REPOS)
    assert hub.register.leases() == []  # the command is over: another hub need not wait


def test_hub_up_leases_for_at_least_a_minute_and_gives_the_leases_back_when_it_stops(tmp_path: Path) -> None:
    repos = shared_repos(tmp_path / "repos")
    eco = ecosystem(tmp_path / "hub", repos)
    seen: list[list[LeaseRow]] = []

    def look(_record: object) -> None:
        with Register.open(hubdir.hub_dir(eco)) as register:
            seen.append(register.leases())

    run_hub(eco, HubOptions(interval=1.0, max_cycles=1), on_cycle=look)

    [during] = seen
    assert {row.repo for row in during} == set(REPOS)
    renewed, expires = during[0].renewed_at, during[0].expires_at
    assert datetime.fromisoformat(expires) - datetime.fromisoformat(renewed) == timedelta(seconds=60)
    with Register.open(hubdir.hub_dir(eco)) as register:
        assert register.leases() == []
