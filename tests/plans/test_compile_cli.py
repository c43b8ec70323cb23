"""`speedrift plan compile`, `speedrift plan status` (and bare `speedrift plan`) as a user runs them
in a real repo, and `speedrift run` refusing a wave's closure task."""

from __future__ import annotations

from pathlib import Path

import pytest

from speedrift.graph.store import GraphStore
from speedrift.plans import spec
from tests.cli.support import Cli
from tests.plans.compile_support import edited, new_repo, three_tasks, write_spec


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path, _store = new_repo(tmp_path / "repo")
    write_spec(path, three_tasks())
    return path


@pytest.fixture
def cli(repo: Path) -> Cli:
    return Cli(repo)


def graph_bytes(repo: Path) -> bytes:
    return GraphStore(repo / ".workgraph").graph_path.read_bytes()


def test_plan_compile_prints_each_change_and_the_record_that_holds_them(cli: Cli, repo: Path) -> None:
    done = cli.ok("plan", "compile", "1")
    assert "Wave 1 compiled: 6 added; 0 unchanged" in done.stdout
    for task_id in ("w1-a1", "w1-a2", "w1-a3", "w1.integration", "w1.documentation", "w1.evaluation"):
        assert task_id in done.stdout
    assert "Recorded as wave-1-1 (`speedrift board wave-1`)" in done.stdout
    again = cli.ok("plan", "compile", "wave-1")
    assert "Wave 1 is compiled: nothing to change (6 tasks)" in again.stdout
    board = cli.ok("board", "wave-1", "--all")
    assert "Wave 1 compiled from its spec (6 added)" in board.stdout


def test_plan_compile_json_and_dry_run(cli: Cli, repo: Path) -> None:
    before = graph_bytes(repo)
    dry = cli.json("plan", "compile", "1", "--dry-run")
    assert dry["dry_run"] is True and dry["record"] is None and dry["compiled"] is True
    assert dry["counts"]["added"] == 6 and graph_bytes(repo) == before
    done = cli.json("plan", "compile", "1")
    assert done["tasks"] == ["w1-a1", "w1-a2", "w1-a3", "w1.integration", "w1.documentation", "w1.evaluation"]
    assert done["changes"][0] == {
        "kind": "added",
        "task": "w1-a1",
        "local": "a1",
        "reason": "new in the spec",
    }
    assert done["record"] == "wave-1-1" and done["spec_hash"] == spec.spec_hash(three_tasks())


def test_plan_compile_refuses_a_wave_with_lint_findings_listing_every_one(cli: Cli, repo: Path) -> None:
    broken = edited(three_tasks())
    broken["tasks"][2]["owned"] = ["docs/limits.md", "tests/test_limiter.py"]  # a2 and a3 may run at once
    broken["tasks"][0]["runtime"] = {"runtime": "nope"}
    write_spec(repo, broken)
    before = graph_bytes(repo)
    refused = cli.fails(1, "plan", "compile", "1")
    assert "wave 1 is not compiled: lint found 2 problem(s)" in refused.stderr
    assert "plans/waves/specs/wave-1.json: $.tasks[0].runtime.runtime:" in refused.stderr
    assert "tests/test_limiter.py" in refused.stderr and "$.tasks[" in refused.stderr
    assert "fix:" in refused.stderr
    assert graph_bytes(repo) == before
    as_json = cli.fails(1, "plan", "compile", "1", "--json").json()
    assert as_json["compiled"] is False and len(as_json["findings"]) == 2
    assert {f["path"] for f in as_json["findings"]} >= {"$.tasks[0].runtime.runtime"}
    assert graph_bytes(repo) == before


def test_plan_status_json_has_each_wave_its_stage_tasks_and_drift(cli: Cli, repo: Path) -> None:
    cli.ok("plan", "compile", "1")
    changed = edited(three_tasks())
    changed["tasks"][1]["prompt"] = "Test the burst too."
    write_spec(repo, changed)
    waves = cli.json("plan", "status")["waves"]
    assert [w["wave"] for w in waves] == [1]
    wave = waves[0]
    assert wave["compiled"] is True and wave["stage"] == "implementation" and wave["recompile"] is True
    assert wave["title"] == "Rate limiting" and wave["spec_problem"] is None
    assert [d["task"] for d in wave["drift"]] == ["w1-a2"] and wave["drift"][0]["kind"] == "updated"
    row = wave["tasks"][1]
    assert set(row) == {"id", "local", "role", "closure", "status", "assigned", "holds", "blocked_by"}
    assert row["id"] == "w1-a2" and row["local"] == "a2" and row["role"] == "qa" and row["status"] == "open"
    assert row["blocked_by"] == [{"kind": "blocker", "blocker": "w1-a1", "detail": "open"}]
    assert wave["tasks"][3]["closure"] is True and wave["tasks"][3]["role"] == "integration"
    one = cli.json("plan", "status", "1")["waves"]
    assert one == waves


def test_plan_status_text_and_bare_plan_show_the_stage_and_the_drift(cli: Cli, repo: Path) -> None:
    cli.ok("plan", "compile", "1")
    changed = edited(three_tasks())
    changed["tasks"][2]["prompt"] = "Document the burst."
    write_spec(repo, changed)
    shown = cli.ok("plan", "status", "1").stdout
    assert "Wave 1 — Rate limiting: implementation" in shown
    assert "`speedrift plan compile 1` would:" in shown and "w1-a3: updated" in shown
    assert "after w1-a1, w1-a2, w1-a3 (open)" in shown
    assert cli.ok("plan").stdout == shown


def test_speedrift_run_refuses_a_closure_task_and_claims_nothing(cli: Cli, repo: Path) -> None:
    cli.ok("plan", "compile", "1")
    for task_id in ("w1-a1", "w1-a2", "w1-a3"):
        cli.ok("done", task_id, "--force")
    before = graph_bytes(repo)
    for extra in ((), ("--force",)):
        refused = cli.fails(1, "run", "w1.integration", *extra)
        assert "is a closure stage (integration) of wave 1" in refused.stderr
        assert "speedrift plan run" in refused.stderr
    assert graph_bytes(repo) == before


def test_a_wave_that_is_not_a_number_is_a_usage_error(cli: Cli) -> None:
    assert "not a wave number" in cli.fails(2, "plan", "compile", "five").stderr


def test_speedrift_ready_says_a_ready_closure_task_is_held_for_plan_run(cli: Cli) -> None:
    cli.ok("plan", "compile", "1")
    for task_id in ("w1-a1", "w1-a2", "w1-a3"):
        cli.ok("done", task_id, "--force")
    [row] = cli.json("ready")
    assert row["id"] == "w1.integration" and "closure stage" in row["held"]
    assert "held" in cli.ok("ready").stdout
