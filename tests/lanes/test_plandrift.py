"""plandrift: gaps in the task graph's topology — implementation without downstream tests, failures
without a follow-up, edges to missing or abandoned work, announced continuations without a task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from speedrift.graph.codec import Graph
from speedrift.lanes.builtin.plandrift import LANE, continuation_said
from speedrift.lanes.model import Severity
from speedrift.lanes.spec import LaneOutput
from tests.builders import graph_of, task
from tests.gitrepo import make_repo
from tests.lanes.treesupport import run_lane


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "r")


def _run(repo: Path, graph: Graph, **settings: Any) -> LaneOutput:
    return run_lane(LANE, repo, graph=graph, settings=settings)


def _found(out: LaneOutput, kind: str) -> list[tuple[str, str]]:
    return sorted((f.subject, f.key) for f in out.findings if f.kind == kind)


def test_an_implementation_task_without_a_downstream_test_task_is_a_gap(repo: Path) -> None:
    graph = graph_of(
        task("build-parser", "open", title="Build the parser"),
        task("build-lexer", "in-progress", title="Build the lexer"),
        task("wire-cli", "open", title="Wire the CLI", after=["build-lexer"]),
        task("verify-cli", "open", title="Verify the CLI end to end", after=["wire-cli"]),
        task("old-work", "done", title="Old work"),
        task("write-docs", "open", title="Write docs", tags=["docs"]),
    )
    out = _run(repo, graph)
    assert _found(out, "missing_intervening_tests") == [("build-parser", "")]
    [finding] = out.findings
    assert finding.severity == Severity.WARNING and "build-parser" in finding.message
    assert _found(_run(repo, graph, require_integration_tests=False), "missing_intervening_tests") == []


def test_a_test_task_declared_through_before_also_counts(repo: Path) -> None:
    graph = graph_of(
        task("build", "open", title="Build it", before=["qa"]),
        task("qa", "open", title="Integration tests for it", tags=["test"]),
    )
    assert _run(repo, graph).findings == []


def test_a_failed_task_without_a_follow_up_is_missing_its_loopback(repo: Path) -> None:
    graph = graph_of(
        task("deploy", "failed", title="Deploy"),
        task("migrate", "failed", title="Migrate"),
        task("fix-migrate", "open", title="Fix the migration", after=["migrate"]),
        task("import", "failed", title="Import"),
        task("retry", "open", title="Retry import", description="Retry of import with a smaller batch"),
        task("verify-all", "open", title="Verify", after=["fix-migrate", "retry"]),
    )
    out = _run(repo, graph)
    assert _found(out, "missing_failure_loopback") == [("deploy", "")]
    assert _found(_run(repo, graph, require_failure_loopbacks=False), "missing_failure_loopback") == []


def test_a_drift_follow_up_counts_as_a_loopback_though_it_is_not_judged(repo: Path) -> None:
    graph = graph_of(
        task("deploy", "failed", title="Deploy"),
        task("drift-fix-deploy", "open", title="Fix deploy", tags=["speedrift"], after=["deploy"]),
    )
    assert _run(repo, graph).findings == []
    judged = _run(repo, graph, ignore_tags=[])
    assert _found(judged, "missing_intervening_tests") == [("drift-fix-deploy", "")]


def test_an_edge_to_a_missing_or_abandoned_task_is_a_dependency_integrity_gap(repo: Path) -> None:
    graph = graph_of(
        task("ship", "open", title="Verify and ship", after=["ghost", "dropped"]),
        task("dropped", "abandoned", title="Dropped"),
        task("history", "done", title="Verify history", after=["ghost"]),
    )
    found = {f.key: f for f in _run(repo, graph).findings if f.kind == "dependency_integrity_gap"}
    assert sorted(found) == ["dropped", "ghost"]
    assert found["ghost"].severity == Severity.ERROR and found["ghost"].subject == "ship"
    assert found["dropped"].severity == Severity.WARNING


def test_a_done_task_that_announces_more_work_without_a_successor_is_a_continuation_gap(repo: Path) -> None:
    graph = graph_of(
        task("split-1", "done", title="Split the store", description="Part 1 of 3: move the reads."),
        task(
            "split-2", "done", title="Split the store", description="Part 2 of 3: writes.", after=["split-1"]
        ),
        task("split-3", "done", title="Split the store", description="Part 3 of 3: cleanup."),
        task("spike", "done", title="Spike", log=[{"message": "works. Next step: wire it into the CLI"}]),
        task("loop", "done", title="Loop", description="continue on error is handled"),
    )
    out = _run(repo, graph)
    assert _found(out, "continuation_gap") == [("spike", ""), ("split-2", "")]
    assert _found(_run(repo, graph, require_continuation_edges=False), "continuation_gap") == []


def test_continuation_phrases_are_precise() -> None:
    assert continuation_said("Part 1 of 2") == "Part 1 of 2"
    assert continuation_said("part 2/2 done") is None
    assert continuation_said("To be continued.") == "To be continued"
    assert continuation_said("we continue on error") is None
    assert continuation_said("next steps: docs") == "next steps:"


def test_without_a_graph_the_lane_has_nothing_to_judge(repo: Path) -> None:
    assert run_lane(LANE, repo).findings == []


def test_a_well_formed_plan_has_no_findings(repo: Path) -> None:
    graph = graph_of(
        task("design", "done", title="Design the API", tags=["design"]),
        task("build", "in-progress", title="Build the API", after=["design"]),
        task("test", "open", title="Integration tests for the API", after=["build"]),
        task("flaky", "failed", title="Flaky deploy"),
        task("redo", "open", title="Redo flaky deploy", after=["flaky"]),
        task("redo-check", "open", title="Verify the redeploy", after=["redo"]),
        task("part-a", "done", title="Move reads", description="Part 1 of 2"),
        task("part-b", "open", title="Move writes", after=["part-a"]),
        task("part-b-tests", "open", title="Test the writes", after=["part-b"]),
        task(".coordinator", "in-progress", title="system task"),
    )
    assert _run(repo, graph).findings == []
