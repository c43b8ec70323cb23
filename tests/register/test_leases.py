"""Repo leases, on SQLite and PostgreSQL: a repo is held by one hub at a time, even when two hub
processes race for the same repos; expired leases are taken over, renewals keep acquired_at."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from speedrift.register.store import LeaseGrant, Register

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)


def test_the_first_hub_to_ask_holds_a_repo_and_the_other_hub_sees_its_lease(
    register: Register, hub: Path, register_url: str
) -> None:
    first = register.acquire_leases("hub-a", ["r1", "r2", "r2"], NOW, TTL)
    assert first.held == ("r1", "r2") and first.others == {}
    with Register.open(hub, url=register_url) as other:
        second = other.acquire_leases("hub-b", ["r2", "r3"], NOW + timedelta(seconds=1), TTL)
    assert second.held == ("r3",)
    lease = second.others["r2"]
    assert (lease.hub, lease.expires_at, lease.acquired_at) == (
        "hub-a",
        "2026-11-20T12:05:00.000000Z",
        "2026-11-20T12:00:00.000000Z",
    )
    assert lease.pid is not None and lease.host
    assert [(row.repo, row.hub) for row in register.leases()] == [
        ("r1", "hub-a"),
        ("r2", "hub-a"),
        ("r3", "hub-b"),
    ]
    assert register.acquire_leases("hub-a", [], NOW, TTL) == LeaseGrant((), {})


def test_renewing_a_lease_keeps_acquired_at_and_moves_expires_at(register: Register) -> None:
    register.acquire_leases("hub-a", ["r1"], NOW, TTL)
    later = NOW + timedelta(minutes=3)
    assert register.acquire_leases("hub-a", ["r1"], later, TTL).held == ("r1",)
    (row,) = register.leases()
    assert (row.acquired_at, row.renewed_at, row.expires_at) == (
        "2026-11-20T12:00:00.000000Z",
        "2026-11-20T12:03:00.000000Z",
        "2026-11-20T12:08:00.000000Z",
    )


def test_an_expired_lease_is_taken_over_and_starts_afresh_but_a_live_one_is_not(register: Register) -> None:
    register.acquire_leases("hub-a", ["r1", "r2"], NOW, TTL)
    register.acquire_leases("hub-a", ["r2"], NOW + timedelta(minutes=4), TTL)  # r2 renewed, r1 not
    takeover = NOW + timedelta(minutes=6)
    grant = register.acquire_leases("hub-b", ["r1", "r2"], takeover, TTL)
    assert grant.held == ("r1",) and set(grant.others) == {"r2"}
    rows = {row.repo: row for row in register.leases()}
    assert (rows["r1"].hub, rows["r1"].acquired_at) == ("hub-b", "2026-11-20T12:06:00.000000Z")
    assert rows["r2"].hub == "hub-a"
    back = register.acquire_leases("hub-a", ["r1", "r2"], takeover, TTL)  # hub-a came back: r1 is gone
    assert back.held == ("r2",) and back.others["r1"].hub == "hub-b"


def test_releasing_frees_the_repos_for_the_other_hub(register: Register) -> None:
    register.acquire_leases("hub-a", ["r1", "r2", "r3"], NOW, TTL)
    register.acquire_leases("hub-b", ["r4"], NOW, TTL)
    assert register.release_leases("hub-a", ["r1", "r4", "nope"]) == 1  # r4 is hub-b's: untouched
    assert register.acquire_leases("hub-b", ["r1", "r2"], NOW, TTL).held == ("r1",)
    assert register.release_leases("hub-a") == 2
    assert register.acquire_leases("hub-b", ["r2", "r3"], NOW, TTL).held == ("r2", "r3")
    assert {row.hub for row in register.leases()} == {"hub-b"}
    assert register.release_leases("hub-a") == 0


RACER = """
import sys, time, json
from datetime import datetime, UTC, timedelta
from pathlib import Path
from speedrift.register.store import Register
hub_dir, url, me, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
repos = [f"repo-{i:03d}" for i in range(200)]
register = Register.open(Path(hub_dir), url=url)
register.schema_version()  # connected and migrated before the race starts
print("ready", flush=True)
sys.stdin.readline()
resting, events = {}, []
for n in range(rounds):
    asked = [r for r in repos if resting.get(r, -1) < n]
    grant = register.acquire_leases(me, asked, datetime.now(UTC), timedelta(hours=1))
    events.append({"t": time.monotonic_ns(), "held": list(grant.held)})
    assert not set(grant.held) & set(grant.others), grant
    if n % 3 == 2:  # give some up, and rest them two rounds, so the other hub can take them
        give = sorted(grant.held)[n % 5 :: 4]
        events.append({"t": time.monotonic_ns(), "released": give})
        register.release_leases(me, give)
        resting.update({r: n + 2 for r in give})
print(json.dumps(events), flush=True)
"""


def _intervals(events: list[dict[str, object]]) -> tuple[dict[str, list[tuple[int, int]]], int]:
    """Per repo, the stretches (monotonic ns) this hub surely held it; and how often a lease it held
    vanished without being released (never expected: its own live lease is always renewed)."""
    spans: dict[str, list[tuple[int, int]]] = {}
    since: dict[str, int] = {}
    last_seen: dict[str, int] = {}
    lost = 0
    for event in events:
        t = int(event["t"])  # type: ignore[call-overload]
        if "released" in event:
            for repo in event["released"]:  # type: ignore[attr-defined]
                spans.setdefault(repo, []).append((since.pop(repo), t))
            continue
        held = set(event["held"])  # type: ignore[call-overload]
        for repo in list(since):
            if repo not in held:
                lost += 1
                spans.setdefault(repo, []).append((since.pop(repo), last_seen[repo]))
        for repo in held:
            since.setdefault(repo, t)
            last_seen[repo] = t
    for repo, start in since.items():
        spans.setdefault(repo, []).append((start, 2**63))  # still held at the end
    return spans, lost


@pytest.mark.slow
def test_two_hub_processes_racing_for_the_same_200_repos_never_both_hold_one(
    register: Register, hub: Path, register_url: str
) -> None:
    procs = {
        who: subprocess.Popen(
            [sys.executable, "-c", RACER, str(hub), register_url, who, "30"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("hub-a", "hub-b")
    }
    for proc in procs.values():
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    logs = {}
    for who, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        logs[who] = orjson.loads(out)
    spans = {}
    for who, events in logs.items():
        spans[who], lost = _intervals(events)
        assert lost == 0, f"{who} lost a live lease it kept renewing"
    every = {f"repo-{i:03d}" for i in range(200)}
    assert set(spans["hub-a"]) | set(spans["hub-b"]) == every  # every repo was held by someone
    for repo in every:
        for a_start, a_end in spans["hub-a"].get(repo, []):
            for b_start, b_end in spans["hub-b"].get(repo, []):
                assert a_end < b_start or b_end < a_start, f"{repo} was held by both hubs at once"
    handed_over = {repo for repo in every if repo in spans["hub-a"] and repo in spans["hub-b"]}
    print(f"{len(handed_over)} repos changed hands")
    final = {who: {repo for repo, held in spans[who].items() if held[-1][1] == 2**63} for who in logs}
    assert not final["hub-a"] & final["hub-b"]
    rows = register.leases()
    assert {who: {row.repo for row in rows if row.hub == who} for who in logs} == final


def test_a_lease_row_another_hubs_acquire_has_locked_is_skipped_not_waited_for(
    pg_url: str, tmp_path: Path
) -> None:
    import psycopg

    with Register.open(tmp_path, url=pg_url) as register:
        register.acquire_leases("hub-a", ["r1", "r2"], NOW, TTL)
        later = NOW + timedelta(hours=1)  # both leases have expired by then
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute("BEGIN")
            other.execute("SELECT * FROM repo_leases WHERE repo = 'r1' FOR UPDATE")  # hub-c, mid-acquire
            done: list[LeaseGrant] = []
            racer = threading.Thread(
                target=lambda: done.append(register.acquire_leases("hub-b", ["r1", "r2"], later, TTL))
            )
            racer.start()
            racer.join(timeout=120)
            assert done, "acquire_leases waited for a row another transaction had locked"
            assert done[0].held == ("r2",) and done[0].others == {}
            other.execute("ROLLBACK")
        assert register.acquire_leases("hub-b", ["r1"], later, TTL).held == ("r1",)
