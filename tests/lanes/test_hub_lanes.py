"""The hub runs the drift lanes end to end in execute mode: a red `main` and a key committed long
ago become one corrective task each, through the lane guard, recorded in the ledger; a later cycle
on the same tip runs nothing; fixing the test on `main` resolves its follow-up. Real repos, real
hub cycles, the real `speedrift drift check` child process, a real pytest run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import hubdir
from speedrift.control.controlfile import write_control
from speedrift.control.cycle import Hub
from speedrift.graph.store import GraphStore
from speedrift.register.actions import ActionKind
from speedrift.register.ledger import Ledger
from speedrift.register.record import CycleRecord, Outcome
from speedrift.times import now_utc
from tests.cli.support import Cli
from tests.gitrepo import commit_file, make_repo

AWS_KEY = "AKIA" + "Q3EXAMPLE7KEY2TE"
ECOSYSTEM = """schema = 1

[policy]
plan_only = false
cooldown_seconds = { run_lanes = 0 }
max_actions_per_repo_per_hour = 100

[repos.shop]
path = "shop"
"""
CALC = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
POLICY = 'schema = 1\norder = ["secdrift", "qadrift", "depsdrift"]\n'


def outcomes(record: CycleRecord, kind: ActionKind) -> list[Outcome]:
    return [o for o in record.executed if o.kind == kind]


def drift_tasks(repo: Path) -> dict[str, dict[str, Any]]:
    tasks = GraphStore(repo / ".workgraph").load().tasks
    return {tid: t for tid, t in tasks.items() if "drift" in (t.get("tags") or [])}


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, Path]:
    # the key is in the root commit: a scan of recent diffs would never see it
    repo = make_repo(tmp_path / "shop", {"settings.py": f'AWS_KEY = "{AWS_KEY}"\n', "calc.py": CALC})
    commit_file(repo, "test_calc.py", TEST, "tests")
    commit_file(repo, ".workgraph/drift-policy.toml", POLICY, "lanes")
    (tmp_path / "ecosystem.toml").write_text(ECOSYSTEM)
    write_control(
        repo,
        "autonomous",
        owner="hub-test",
        lease_ttl=timedelta(hours=1),
        actor="t",
        reason="t",
        now=now_utc(),
    )
    return tmp_path / "ecosystem.toml", repo


def test_the_hub_turns_a_red_main_and_an_old_committed_key_into_one_task_each(
    shop: tuple[Path, Path],
) -> None:
    path, repo = shop
    hub = Hub(path)
    first = hub.cycle()
    [ran] = outcomes(first, ActionKind.RUN_LANES)
    assert ran.status == "succeeded", ran
    created = {o["task_id"]: o for o in ran.evidence["guard"] if o["status"] == "created"}
    tasks = drift_tasks(repo)
    assert set(tasks) == set(created)
    lanes = {t["speedrift"]["drift"]["lane"]: t for t in tasks.values()}
    assert set(lanes) == {"secdrift", "qadrift"}
    assert lanes["secdrift"]["speedrift"]["drift"]["file"] == "settings.py"
    assert AWS_KEY not in str(tasks)  # the key is named by kind and place, never by value
    assert "test_add" in lanes["qadrift"]["description"]
    # the ledger holds the decision: the created follow-ups, by id
    ledger = [r for r in Ledger(hubdir.hub_dir(path)).read() if r.get("cycle_id") == first.cycle_id]
    recorded = [o for o in ledger[0]["executed"] if o["kind"] == "run_lanes"]
    assert {g["task_id"] for g in recorded[0]["evidence"]["guard"] if g["status"] == "created"} == set(
        created
    )

    second = hub.cycle()  # the same tip: nothing is due, nothing is created again
    assert outcomes(second, ActionKind.RUN_LANES) == []
    report = next(r for r in second.repos if r.name == "shop")
    assert {"lane_critical"} <= {r.code for r in report.reasons}
    assert drift_tasks(repo).keys() == tasks.keys()

    commit_file(repo, "calc.py", "def add(a, b):\n    return a + b\n", "fix add")
    third = hub.cycle()
    [again] = outcomes(third, ActionKind.RUN_LANES)
    assert "target_change" in again.detail
    after = drift_tasks(repo)
    assert after.keys() == tasks.keys()  # no new task; the fixed one is resolved
    qa = next(t for t in after.values() if t["speedrift"]["drift"]["lane"] == "qadrift")
    sec = next(t for t in after.values() if t["speedrift"]["drift"]["lane"] == "secdrift")
    assert qa["status"] == "abandoned" and "resolved" in str(qa.get("log"))
    assert sec["status"] == "open"


def test_in_observe_mode_the_hub_runs_no_lane_but_scores_what_a_manual_check_found(
    shop: tuple[Path, Path],
) -> None:
    path, repo = shop
    write_control(repo, "observe", owner=None, lease_ttl=None, actor="t", reason="t", now=now_utc())
    hub = Hub(path)
    record = hub.cycle()
    assert outcomes(record, ActionKind.RUN_LANES) == []
    assert not [s for s in record.skipped if s.action.kind == ActionKind.RUN_LANES]
    assert drift_tasks(repo) == {}
    Cli(repo).fails(3, "drift", "check", "--lane", "qadrift")  # a person runs the lane by hand
    report = next(r for r in hub.cycle().repos if r.name == "shop")
    assert "lane_critical" in {r.code for r in report.reasons}
    assert drift_tasks(repo) == {}  # without --create-followups nothing is written
