"""The hub across a register outage: a real PostgreSQL server stopped under a running hub (and under
a hub starting), and started again. The hub keeps observing and writing its ledger, executes
nothing, and the first cycle the register answers catches it up: every cycle of the gap reaches the
register exactly once, the gap is recorded, and the hub executes again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift.control.cycle import Hub
from speedrift.control.registergap import cycles_since
from speedrift.register.ledger import Ledger
from speedrift.register.record import CycleRecord
from tests.cli.support import Cli
from tests.control.hubfleet import REPOS, corrective_tasks, ecosystem, repair_action, shared_repos
from tests.pgserver import PgServer

# sorts before the first blocked task: the repo's one repair action now names this one
LATE = '{"kind":"task","id":"aardvark","title":"ship it","status":"open","after":["phantom"]}\n'


@pytest.fixture(autouse=True)
def _own_hub_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPEEDRIFT_HUB_DIR", "SPEEDRIFT_HUB_ID", "SPEEDRIFT_REGISTER_URL"):
        monkeypatch.delenv(name, raising=False)


def _late_repair(repo: str) -> str:
    return f"{repo}:repair_dependencies:speedrift-fix-dependencies-aardvark-phantom"


def _add_blocked_task(repo: Path) -> None:
    """New work needing repair: a second task blocked on one that does not exist."""
    graph = repo / ".workgraph" / "graph.jsonl"
    graph.write_text(graph.read_text() + LATE)


def _stop_durably(server: PgServer, url: str) -> None:
    """Stop the server as a crash would, once what it acknowledged is on disk: the test server runs
    with ``synchronous_commit=off``, so an immediate stop could otherwise forget the last commits."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CHECKPOINT")
    server.stop_only()


def _held_for_the_register(record: CycleRecord) -> set[str]:
    return {s.action.id for s in record.skipped if s.rule == "register_unavailable"}


def test_a_lost_register_stops_execution_not_the_cycle_and_its_return_backfills_each_missed_cycle_once(
    tmp_path: Path, pg_server: PgServer, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repos = shared_repos(tmp_path / "repos")
    hub = Hub(ecosystem(tmp_path / "hub", repos, pg_url))
    first = hub.cycle()
    assert {o.action_id for o in first.executed} == {repair_action(r) for r in REPOS}

    _stop_durably(pg_server, pg_url)
    try:
        for repo in repos.values():
            _add_blocked_task(repo)
        lost = [hub.cycle(), hub.cycle()]
        down = Cli(tmp_path / "hub").json("hub", "status", "--json")
    finally:
        pg_server.start()

    for record in lost:
        assert record.executed == ()
        assert _held_for_the_register(record) == {_late_repair(r) for r in REPOS}
        assert any("register cannot be reached" in hint for hint in record.hints)
    assert all(
        corrective_tasks(repo) == ["speedrift-fix-dependencies-build-ghost"] for repo in repos.values()
    )
    ledger_cycles = [r["cycle_id"] for r in Ledger(hub.hub).read(last=None) if r.get("cycle_id")]
    assert ledger_cycles == [first.cycle_id, lost[0].cycle_id, lost[1].cycle_id]
    assert down["register"]["reachable"] is False and "unreachable" in down["register"]["error"]
    assert down["register"]["gap_since"] is not None

    back = hub.cycle()

    assert {o.action_id for o in back.executed} == {_late_repair(r) for r in REPOS}
    recorded = [c["cycle_id"] for c in hub.register.cycles(limit=50)]
    assert sorted(recorded) == sorted([first.cycle_id, *(r.cycle_id for r in lost), back.cycle_id])
    [gap] = hub.register.gaps()
    assert (gap["hub"], gap["cycles_backfilled"]) == (hub.hub_id, 2)
    [entry] = [r for r in Ledger(hub.hub).read(last=None) if r.get("kind") == "register_gap"]
    assert entry["cycles_backfilled"] == 2 and entry["hub"] == hub.hub_id
    assert datetime.fromisoformat(entry["began_at"]) == lost[0].generated_at
    started = [row["action_id"] for row in hub.register.actions(limit=100)]
    assert len(started) == len(set(started)) == 2 * len(REPOS)  # nothing ran twice, nothing is missing
    err = capsys.readouterr().err
    assert err.count("register cannot be reached") == 1 and err.count("answers again") == 1
    assert not (hub.hub / "register-gap.json").exists()


def test_a_hub_started_while_the_register_is_down_runs_and_catches_up_even_across_a_restart(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    repos = shared_repos(tmp_path / "repos", ("alpha",))
    eco = ecosystem(tmp_path / "hub", repos, pg_url)
    Hub(eco).register.schema_version()  # the database exists, with its schema

    _stop_durably(pg_server, pg_url)
    try:
        first = Hub(eco).cycle()  # starts in the gap: no recovery, no lease, nothing executed
        restarted = Hub(eco)  # stopped and started again while the register is still down
        second = restarted.cycle()
    finally:
        pg_server.start()

    assert first.executed == second.executed == ()
    assert _held_for_the_register(first) == _held_for_the_register(second) == {repair_action("alpha")}

    third = restarted.cycle()

    assert [o.action_id for o in third.executed] == [repair_action("alpha")]
    [gap] = restarted.register.gaps()
    assert gap["cycles_backfilled"] == 2  # the cycle before the restart too
    recorded = [c["cycle_id"] for c in restarted.register.cycles(limit=50)]
    assert sorted(recorded) == sorted([first.cycle_id, second.cycle_id, third.cycle_id])
    assert {row.repo: row.hub for row in restarted.register.leases()} == {"alpha": restarted.hub_id}


def test_the_backfill_finds_every_cycle_since_the_gap_began_and_none_before(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for index in range(40):
        at = start + timedelta(minutes=index)
        ledger.append({"cycle_id": f"c{index}", "generated_at": at, "plan_only": False})
        ledger.append({"kind": "operator", "generated_at": at, "detail": "between the cycles"})

    found = cycles_since(ledger, start + timedelta(minutes=25), window=4)  # reads back 4, 16, 64 records

    assert [r["cycle_id"] for r in found] == [f"c{index}" for index in range(25, 40)]
    assert cycles_since(ledger, start + timedelta(hours=1)) == []
