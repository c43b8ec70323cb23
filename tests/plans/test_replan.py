"""`speedrift plan update --from-wave N`: forward replanning in a real repo with a real graph, the fake
`claude` CLI (Claude Code's stream, per-role runs) as the Wave Architect and the Plan Verifier.

A three-wave plan whose wave 1 is closed: the waves from 2 on are rewritten, compiled again (an
open task removed is abandoned, a new one added), one record holds the change lists, and wave 1
keeps its bytes. A task done in the graph keeps its spec entry; an oversight wave's replan waits
for `plan approve-replan`."""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from speedrift.coord.records import Actor, Author, Kind, Status
from speedrift.coord.store import CoordStore
from speedrift.errors import Refused
from speedrift.fleet.config import RepoConfig
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.plans import lint, render, replan, replan_store, spec
from speedrift.plans.compile_tasks import compiled_tasks
from speedrift.plans.compiler import compile_plan
from speedrift.plans.replan_model import architect_view, done_task_problems
from tests.cli.support import Cli, base_env
from tests.gitrepo import make_repo

TESTER = Author(Actor.HUMAN, name="tester")
CONFIG = '[env]\nallow = ["FAKE_AGENT_SCENARIO"]\n\n[sandbox]\nmode = "off"\n'
CONTRACT = {"completion": "integrated", "durability": "durable", "proof": "unit", "doc_impact": "owned"}
PASS = {
    "status": "pass",
    "spec_requirements": [{"requirement": "the wave as replanned", "status": "covered"}],
    "ownership_overlaps": [],
    "untestable_criteria": [],
    "critical_failures": [],
    "recommendations": [],
}


def item(
    local: str, path: str, *, after: list[str] | None = None, prompt: str | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": local,
        "title": f"The {local} part",
        "role": "implementation",
        "owned": [path],
        "deliverables": [path],
        "exit_contract": dict(CONTRACT),
        "prompt": prompt or f"Write {path}.",
    }
    if after:
        found["after"] = after
    return found


def wave(n: int, title: str, mode: str, *tasks: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = {
        "schema": spec.SCHEMA_ID,
        "wave": n,
        "title": title,
        "mode": mode,
        "summary": f"{title}, in one wave.",
        "validation": ["python -m pytest -q"],
        "tasks": list(tasks),
    }
    if n > 1:
        value["sequencing"] = {"after_waves": [n - 1]}
    return value


def plan(mode: str = "dark-factory") -> list[dict[str, Any]]:
    return [
        wave(1, "Storage", mode, item("store", "src/store.py")),
        wave(
            2,
            "Core",
            mode,
            item("core", "src/core.py"),
            item("extra", "src/extra.py", after=["core"]),
            item("notes", "docs/core.md"),
        ),
        wave(3, "Interface", mode, item("ui", "src/ui.py")),
    ]


def replanned_two(current: dict[str, Any]) -> dict[str, Any]:
    """Wave 2 as the Architect rewrites it: `core` (done) kept exactly, `extra` dropped, `notes`
    edited, `cache` new."""
    value = copy.deepcopy(current)
    value["tasks"] = [
        copy.deepcopy(current["tasks"][0]),
        item("notes", "docs/core.md", prompt="Document the core and its cache in docs/core.md."),
        item("cache", "src/cache.py", after=["core"]),
    ]
    return value


def replanned_three(current: dict[str, Any]) -> dict[str, Any]:
    value = copy.deepcopy(current)
    value["tasks"] = [
        item("ui", "src/ui.py", prompt="Write src/ui.py on top of the cache."),
        item("cli", "src/cli.py"),
    ]
    return value


def architect(value: dict[str, Any]) -> dict[str, Any]:
    return {"spec": architect_view(value), "rationale": "Follow the reason.", "assumptions": []}


def runs(*outputs: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [[{"do": "start"}, {"do": "result_file", "report": o}, {"do": "finish"}] for o in outputs]


def roles(scenario: Path, architects: list[dict[str, Any]], verifiers: list[dict[str, Any]]) -> None:
    scenario.write_text(
        json.dumps({"roles": {"wave_architect": runs(*architects), "plan_verifier": runs(*verifiers)}})
    )


def runs_of(scenario: Path) -> dict[str, int]:
    counter = scenario.with_name(scenario.name + ".count.json")
    return json.loads(counter.read_text()) if counter.exists() else {}


def finish(store: GraphStore, *task_ids: str) -> None:
    for task_id in task_ids:

        def done(graph: Graph, now: datetime, task_id: str = task_id) -> ops.Mutation:
            return ops.done(graph, task_id, now=now, actor="dev", force=True)

        store.mutate(done, actor="dev")


def make_plan(tmp_path: Path, mode: str = "dark-factory") -> tuple[Path, GraphStore]:
    """The three waves written and compiled; wave 1 closed; wave 2's `core` done."""
    repo = make_repo(
        tmp_path / "repo",
        {"README.md": "# demo\n", "src/__init__.py": "", "tests/test_app.py": "def test_it():\n    pass\n"},
    )
    (repo / "speedrift.toml").write_text(CONFIG)
    store = GraphStore(repo / ".workgraph")
    for value in plan(mode):
        render.write(repo, value)
        assert lint.lint_file(repo, spec.spec_path(repo, value["wave"])) == []
        compile_plan(repo, store, value["wave"], author=TESTER)
    finish(store, "w1-store", "w1.integration", "w1.documentation", "w1.evaluation", "w2-core")
    return repo, store


def config() -> RepoConfig:
    return RepoConfig.model_validate({"env": {"allow": ["FAKE_AGENT_SCENARIO"]}, "sandbox": {"mode": "off"}})


def snapshot(repo: Path) -> dict[str, bytes]:
    """Every file under plans/, the graph and the coordination store."""
    found = {str(p.relative_to(repo)): p.read_bytes() for p in (repo / "plans").rglob("*") if p.is_file()}
    found["graph"] = GraphStore(repo / ".workgraph").graph_path.read_bytes()
    coord = repo / ".speedrift" / "coord"
    for path in sorted(coord.glob("*.jsonl")) if coord.is_dir() else []:
        found[str(path.relative_to(repo))] = path.read_bytes()
    return found


def wave_one(repo: Path, store: GraphStore) -> tuple[bytes, bytes, list[bytes]]:
    tasks = [orjson.dumps(t) for t in compiled_tasks(store.load(), 1)]
    return spec.spec_path(repo, 1).read_bytes(), spec.markdown_path(repo, 1).read_bytes(), tasks


@pytest.fixture
def cli(tmp_path: Path, scenario: Path) -> Cli:
    env = {**base_env(), "PATH": os.environ["PATH"], "FAKE_AGENT_SCENARIO": str(scenario)}
    return Cli(tmp_path / "repo", env)


# --- dark-factory: applied at once -----------------------------------------------------------------
def test_a_replan_from_wave_2_rewrites_waves_2_and_3_and_leaves_closed_wave_1_byte_identical(
    tmp_path: Path, scenario: Path, cli: Cli
) -> None:
    repo, store = make_plan(tmp_path)
    before_one = wave_one(repo, store)
    two, three = spec.read(spec.spec_path(repo, 2)), spec.read(spec.spec_path(repo, 3))
    core_before = store.load().tasks["w2-core"]
    roles(scenario, [architect(replanned_two(two)), architect(replanned_three(three))], [PASS, PASS])

    result = cli("plan", "update", "--from-wave", "2", "--reason", "the core needs a cache", "--json")

    assert result.returncode == 0, result
    shown = result.json()
    summary = shown["replan"]
    assert summary["state"] == "applied" and summary["from_wave"] == 2 and summary["closed_waves"] == [1]
    assert summary["reason"] == "the core needs a cache"
    changed_two, changed_three = summary["waves"]["2"], summary["waves"]["3"]
    assert changed_two["abandoned"] == ["w2-extra"] and "w2-cache" in changed_two["added"]
    assert "w2-notes" in changed_two["updated"] and "w2-core" not in changed_two["updated"]
    assert changed_three["added"] == ["w3-cli"] and "w3-ui" in changed_three["updated"]
    assert changed_two["spec_hash_before"] == spec.spec_hash(two)
    assert changed_two["spec_hash_after"] == spec.spec_hash(replanned_two(two))
    # wave 1: spec, Markdown and graph tasks keep their bytes
    assert wave_one(repo, store) == before_one
    # waves 2 and 3 written (canonical spec and its Markdown) and compiled again
    for n, value in ((2, replanned_two(two)), (3, replanned_three(three))):
        assert spec.spec_path(repo, n).read_bytes() == spec.canonical(value)
        assert spec.markdown_path(repo, n).read_text() == render.render(value)
    graph = store.load()
    assert graph.tasks["w2-extra"]["status"] == "abandoned" and graph.tasks["w2-cache"]["status"] == "open"
    assert graph.tasks["w3-cli"]["status"] == "open"
    assert graph.tasks["w2-core"] == core_before  # done: never edited
    # the summary is one decision record in wave 2's scope, holding the change lists
    record = CoordStore.for_scope(repo, "wave-2").get(shown["record"])
    assert record.kind is Kind.DECISION and record.status is Status.RESOLVED
    assert record.data["replan"]["waves"]["2"]["abandoned"] == ["w2-extra"]
    assert record.data["replan"]["waves"]["3"]["added"] == ["w3-cli"]
    assert "the core needs a cache" in record.detail
    # what the Architect was told: the wave as it stands, the reason, progress, the closed wave
    asked = (Path(shown["record_dirs"]["2"]) / "wave_architect-1" / "round-1" / "prompt.md").read_text()
    assert "the core needs a cache" in asked and '"id": "extra"' in asked
    assert "- `core` (w2-core): done: keep its entry exactly as it is" in asked
    assert "- wave 1: Storage — Storage, in one wave." in asked
    later = (Path(shown["record_dirs"]["3"]) / "wave_architect-1" / "round-1" / "prompt.md").read_text()
    assert "- wave 2: Core" in later and "(tasks: core, notes, cache)" in later
    assert runs_of(scenario) == {"wave_architect": 2, "plan_verifier": 2}


def test_replanning_from_a_closed_wave_is_refused_naming_it_before_any_role_runs(
    tmp_path: Path, scenario: Path, cli: Cli
) -> None:
    repo, _store = make_plan(tmp_path)
    before = snapshot(repo)
    roles(scenario, [], [])
    result = cli("plan", "update", "--from-wave", "1")
    assert result.returncode == 1
    assert "wave 1 is closed, and closed waves are never rewritten (closed: 1)" in result.stderr
    assert "--from-wave 2" in result.stderr
    assert runs_of(scenario) == {} and snapshot(repo) == before
    assert cli("plan", "update", "--from-wave", "9").returncode == 1  # no such wave


def test_an_architect_wave_that_edits_a_done_task_is_refused_and_nothing_is_written(
    tmp_path: Path, scenario: Path, cli: Cli
) -> None:
    repo, _store = make_plan(tmp_path)
    before = snapshot(repo)
    two = spec.read(spec.spec_path(repo, 2))
    edited = replanned_two(two)
    edited["tasks"][0]["prompt"] = "Rewrite the core from scratch."
    roles(scenario, [architect(edited)], [PASS])

    result = cli("plan", "update", "--from-wave", "2", "--max-rounds", "1")

    assert result.returncode == 1, result
    assert "Wave 2 was not verified in 1 round(s); nothing was written" in result.stdout
    assert "task `core` is done: its entry changed (prompt)" in result.stdout
    assert snapshot(repo) == before  # no spec, no Markdown, no graph change, no record
    assert runs_of(scenario) == {"wave_architect": 1}  # refused before the Plan Verifier, wave 3 never


def test_a_dropped_done_task_goes_back_to_the_architect_which_then_keeps_it(
    tmp_path: Path, scenario: Path
) -> None:
    repo, store = make_plan(tmp_path)
    two, three = spec.read(spec.spec_path(repo, 2)), spec.read(spec.spec_path(repo, 3))
    dropped = replanned_two(two)
    dropped["tasks"] = dropped["tasks"][1:2]
    roles(scenario, [architect(dropped), architect(replanned_two(two)), architect(three)], [PASS, PASS])

    done = replan.update(repo, config(), store, 2, author=TESTER, reason="cache")

    assert done.state is replan.State.APPLIED
    first, second = done.waves[0].rounds
    assert first.refusals == [
        "task `core` is done: it was dropped — put it back, its entry exactly as it was"
    ]
    assert first.verification is None and second.passed
    record_dir = done.waves[0].record_dir
    assert record_dir is not None
    again = (record_dir / "wave_architect-2" / "round-1" / "prompt.md").read_text()
    assert "speedrift refused the wave:\n- task `core` is done: it was dropped" in again
    assert spec.read(spec.spec_path(repo, 2)) == replanned_two(two)
    assert done.summary()["unchanged_waves"] == [3] and "3" not in done.summary()["waves"]


def test_a_dry_run_shows_the_change_lists_and_writes_nothing(
    tmp_path: Path, scenario: Path, cli: Cli
) -> None:
    repo, _store = make_plan(tmp_path)
    before = snapshot(repo)
    two, three = spec.read(spec.spec_path(repo, 2)), spec.read(spec.spec_path(repo, 3))
    roles(scenario, [architect(replanned_two(two)), architect(replanned_three(three))], [PASS, PASS])

    shown = cli.json("plan", "update", "--from-wave", "2", "--dry-run")

    assert shown["replan"]["state"] == "dry_run" and shown["record"] is None
    assert shown["replan"]["waves"]["2"]["abandoned"] == ["w2-extra"]
    assert snapshot(repo) == before


# --- oversight: a person approves first ------------------------------------------------------------
def test_an_oversight_replan_waits_as_a_proposal_and_approving_applies_exactly_it(
    tmp_path: Path, scenario: Path, cli: Cli
) -> None:
    repo, store = make_plan(tmp_path, mode="oversight")
    two, three = spec.read(spec.spec_path(repo, 2)), spec.read(spec.spec_path(repo, 3))
    roles(scenario, [architect(replanned_two(two)), architect(replanned_three(three))], [PASS, PASS])
    before = snapshot(repo)

    proposed = cli("plan", "update", "--from-wave", "2", "--reason", "cache")

    assert proposed.returncode == 0, proposed
    assert "`speedrift plan approve-replan 1` applies it" in proposed.stdout
    after = snapshot(repo)
    assert {k: v for k, v in after.items() if "coord" not in k} == {
        k: v for k, v in before.items() if "coord" not in k
    }  # nothing applied: specs, Markdown and graph as they were
    folder = replan_store.proposal_dir(repo, 1)
    assert (folder / "wave-2.json").read_bytes() == spec.canonical(replanned_two(two))
    asking = [r for r in CoordStore.for_scope(repo, "wave-2").read().records.values() if r.open]
    assert len(asking) == 1 and asking[0].kind is Kind.DECISION and asking[0].targets == ("human",)
    assert asking[0].data["replan"]["state"] == "proposed"
    again = cli("plan", "update", "--from-wave", "2")  # a second replan over a waiting one
    assert again.returncode == 1 and "replan 1 waits for approval" in again.stderr

    approved = cli.json("plan", "approve-replan", "1", "--as", "alice")

    assert approved["replan"]["state"] == "applied" and approved["replan"]["by"] == "alice"
    assert spec.spec_path(repo, 2).read_bytes() == spec.canonical(replanned_two(two))
    assert spec.spec_path(repo, 3).read_bytes() == spec.canonical(replanned_three(three))
    assert store.load().tasks["w2-extra"]["status"] == "abandoned"
    record = CoordStore.for_scope(repo, "wave-2").get(asking[0].id)
    assert record.status is Status.RESOLVED and record.data["replan"]["waves"]["2"]["abandoned"] == [
        "w2-extra"
    ]
    assert record.summary.startswith("Replan 1 from wave 2 approved by alice and applied (wave 2: ")
    twice = cli("plan", "approve-replan", "1")
    assert twice.returncode == 1 and "replan 1 is applied, not waiting for approval" in twice.stderr


def test_approving_a_replan_is_refused_when_a_target_waves_spec_changed_meanwhile(
    tmp_path: Path, scenario: Path
) -> None:
    repo, store = make_plan(tmp_path, mode="oversight")
    two, three = spec.read(spec.spec_path(repo, 2)), spec.read(spec.spec_path(repo, 3))
    roles(scenario, [architect(replanned_two(two)), architect(replanned_three(three))], [PASS, PASS])
    proposed = replan.update(repo, config(), store, 2, author=TESTER)
    assert proposed.state is replan.State.PROPOSED and proposed.proposal == 1
    by_hand = {**three, "title": "Interface, edited by hand"}
    render.write(repo, by_hand)
    before = snapshot(repo)

    with pytest.raises(
        Refused, match=r"wave 3's spec changed since replan 1 was proposed; nothing was applied"
    ):
        replan.approve(repo, store, 1, author=TESTER)

    assert snapshot(repo) == before  # wave 2 was not written either
    assert replan_store.pending(repo) == [1]
    tampered = replan_store.proposal_dir(repo, 1) / "wave-2.json"
    tampered.write_bytes(spec.canonical({**replanned_two(two), "title": "Not what was proposed"}))
    with pytest.raises(Refused, match=r"wave-2\.json: not the spec replan 1 proposed"):
        replan.approve(repo, store, 1, author=TESTER)
    rejected = replan.reject(repo, 1, author=TESTER)  # a damaged proposal can still be turned down
    assert rejected.state is replan.State.REJECTED and replan_store.pending(repo) == []
    record = CoordStore.for_scope(repo, "wave-2").get(str(proposed.record))
    assert record.status is Status.CANCELLED and record.data["replan"]["state"] == "rejected"


def test_approving_a_replan_is_refused_when_a_target_wave_closed_meanwhile(
    tmp_path: Path, scenario: Path
) -> None:
    repo, store = make_plan(tmp_path, mode="oversight")
    two = spec.read(spec.spec_path(repo, 2))
    three = spec.read(spec.spec_path(repo, 3))
    roles(scenario, [architect(replanned_two(two)), architect(replanned_three(three))], [PASS, PASS])
    replan.update(repo, config(), store, 2, author=TESTER)
    finish(store, "w3-ui", "w3.integration", "w3.documentation", "w3.evaluation")
    before = snapshot(repo)
    with pytest.raises(Refused, match=r"wave 3 closed since replan 1 was proposed"):
        replan.approve(repo, store, 1, author=TESTER)
    assert snapshot(repo) == before


def test_the_done_task_rule_names_each_edited_or_dropped_done_task_and_ignores_open_ones() -> None:
    current = wave(2, "Core", "oversight", item("a", "a.py"), item("b", "b.py"), item("c", "c.py"))
    proposed = copy.deepcopy(current)
    proposed["tasks"] = [
        {**current["tasks"][0], "owned": ["a.py", "a2.py"], "title": "A"},
        item("c", "c.py", prompt="Something else."),
    ]
    keep = "keep it exactly as it was; put new work in a new task"
    assert done_task_problems(current, proposed, ["a", "b", "gone"]) == [
        f"task `a` is done: its entry changed (owned, title) — {keep}",
        "task `b` is done: it was dropped — put it back, its entry exactly as it was",
    ]
    assert done_task_problems(current, proposed, ["c"]) == [
        f"task `c` is done: its entry changed (prompt) — {keep}"
    ]
    assert done_task_problems(current, current, ["a", "b", "c"]) == []
