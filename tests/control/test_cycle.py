"""One control cycle over the demo ecosystem: the seed's cases in the seed's tiers, the policy's
cuts kept with their rule, the ledger and register written, and the loop closing in the one
repo that grants the hub authority — while the others are left exactly as they were."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from speedrift.control.assess.judgement import with_prompts
from speedrift.control.cycle import Hub
from speedrift.demo import ecosystem as demo
from speedrift.graph.store import GraphStore
from speedrift.register.ledger import Ledger
from speedrift.serialize import cycle_to_dict
from tests.gitrepo import sh_git


@pytest.fixture
def ecosystem(tmp_path: Path) -> Path:
    demo.build(tmp_path)
    return tmp_path / "ecosystem.toml"


def _plan_only(ecosystem: Path, value: bool) -> None:
    text = ecosystem.read_text()
    ecosystem.write_text(text.replace("plan_only = false", f"plan_only = {'true' if value else 'false'}"))


def _fingerprint(repo: Path) -> dict[str, str]:
    """Every file under the repo (including .git) with its content hash and mtime."""
    out: dict[str, str] = {}
    for path in sorted(repo.rglob("*")):
        if path.is_file():
            stat = path.stat()
            out[str(path.relative_to(repo))] = (
                f"{hashlib.sha256(path.read_bytes()).hexdigest()}:{stat.st_mtime_ns}"
            )
    return out


def _statuses(repo: Path) -> dict[str, str]:
    graph = GraphStore(repo / ".workgraph").load()
    return {tid: str(task.get("status")) for tid, task in graph.tasks.items()}


def test_the_seed_cases_land_in_the_seed_tiers(ecosystem: Path) -> None:
    record = cycle_to_dict(Hub(ecosystem).cycle(execute_actions=False))

    tiers = {repo["name"]: repo["tier"] for repo in record["repos"]}
    assert tiers["billing"] == "at-risk"  # service stopped while ready work exists
    assert tiers["search"] == "watch"  # dependency uncertainty: a blocker that does not exist
    assert tiers["shop-api"] == "healthy"
    billing = next(r for r in record["repos"] if r["name"] == "billing")
    assert billing["stall"] and "ready" in billing["stall"]


def test_a_cycle_record_has_the_documented_shape_and_is_in_the_ledger_and_register(ecosystem: Path) -> None:
    hub = Hub(ecosystem)
    record = cycle_to_dict(hub.cycle(execute_actions=False))

    for key in (
        "cycle_id",
        "generated_at",
        "plan_only",
        "repos",
        "metrics",
        "planned",
        "skipped",
        "executed",
    ):
        assert key in record
    for repo in record["repos"]:
        assert {"name", "score", "tier", "trend", "reasons", "stall", "snapshot"} <= set(repo)
        assert 0 <= repo["score"] <= 100
    assert set(record["metrics"]) >= {
        "reporting_coverage",
        "flow_health",
        "execution_reliability",
        "quality_security_pressure",
    }
    ledger = Ledger(hub.hub).read(last=None)
    assert [r["cycle_id"] for r in ledger if r.get("cycle_id")] == [record["cycle_id"]]
    assert hub.register.repo_history("billing", 5)


def test_the_attention_queues_are_recorded_without_prompts_and_shown_with_them(ecosystem: Path) -> None:
    hub = Hub(ecosystem)
    cycle = hub.cycle(execute_actions=False)
    record = cycle_to_dict(cycle)
    assert [q["key"] for q in record["queues"]] == ["aging", "dependency", "risk", "upstream", "human"]
    dependency = next(q for q in record["queues"] if q["key"] == "dependency")
    [missing] = [e for e in dependency["entries"] if e["id"] == "dep-missing:search:ranking:tokenizer"]
    assert missing["rule"] == "missing_dependencies" and missing["task"] == "ranking"
    [line] = [r for r in Ledger(hub.hub).read(last=None) if r.get("cycle_id")]
    assert line["queues"] == record["queues"]
    assert all(e["prompts"] == {} for q in line["queues"] for e in q["entries"])  # decisions only
    assert hub.register.cycles(1)[0]["summary"]["queues"] == {q["key"]: q["total"] for q in line["queues"]}
    shown = cycle_to_dict(with_prompts(cycle))
    assert all(
        e["prompts"]["claude"] and e["prompts"]["codex"] for q in shown["queues"] for e in q["entries"]
    )
    # a restarted hub keeps how long each entry has waited
    since = {e["id"]: e["since"] for q in line["queues"] for e in q["entries"]}
    again = cycle_to_dict(Hub(ecosystem).cycle(execute_actions=False))
    assert {e["id"]: e["since"] for q in again["queues"] for e in q["entries"] if e["id"] in since} == since


def test_plan_only_shows_the_whole_plan_and_executes_nothing(ecosystem: Path) -> None:
    _plan_only(ecosystem, True)
    root = ecosystem.parent
    before = {name: _fingerprint(root / name) for name in ("factory", "billing")}

    record = cycle_to_dict(Hub(ecosystem).cycle())

    assert record["plan_only"] is True
    assert record["executed"] == []
    assert record["planned"], "the plan is computed and shown"
    assert {s["rule"] for s in record["skipped"]} == {"plan_only"}
    assert {s["action"]["id"] for s in record["skipped"]} == {a["id"] for a in record["planned"]}
    assert {name: _fingerprint(root / name) for name in ("factory", "billing")} == before


def test_repos_without_authority_get_nothing_executed_and_every_cut_keeps_its_rule(ecosystem: Path) -> None:
    record = cycle_to_dict(Hub(ecosystem).cycle())

    executed_repos = {o["repo"] for o in record["executed"]}
    assert executed_repos <= {"factory"}
    billing_cuts = [s for s in record["skipped"] if s["action"]["repo"] == "billing"]
    assert billing_cuts and all(s["rule"] == "mode" for s in billing_cuts)
    assert all(s["reason"] for s in record["skipped"])


def _wait_for(condition: Any, timeout: float, hub: Hub) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        hub.cycle()
        time.sleep(0.5)
    raise AssertionError("condition not reached")


@pytest.mark.slow
def test_the_hub_completes_the_autonomous_repos_tasks_and_leaves_the_other_repos_untouched(
    ecosystem: Path,
) -> None:
    root = ecosystem.parent
    others = ("shop-api", "billing", "web-ui", "search")
    before = {name: _fingerprint(root / name) for name in others}
    hub = Hub(ecosystem)

    hub.cycle()
    _wait_for(lambda: set(_statuses(root / "factory").values()) == {"done"}, 180, hub)

    factory = root / "factory"
    assert sh_git(factory, "show", "main:MODULES.md").startswith("# modules")
    assert sh_git(factory, "show", "main:greeting.py")
    assert {name: _fingerprint(root / name) for name in others} == before
    outcomes = [o for r in Ledger(hub.hub).read(last=None) for o in r.get("executed", [])]
    assert any(o["kind"] == "dispatch_ready" and o["status"] == "succeeded" for o in outcomes)
