"""Structural queries: why-blocked chains, cycles, critical path, bottlenecks, aging, renderings."""

from __future__ import annotations

from datetime import timedelta

from speedrift.graph import query, viz
from speedrift.graph.cycles import analyze, strongly_connected
from speedrift.times import format_time
from tests.builders import graph_of, task
from tests.conftest import NOW


def test_why_blocked_follows_the_chain_to_each_root_cause() -> None:
    graph = graph_of(
        task("release", after=["build", "docs"]),
        task("build", after=["compile"]),
        task("compile", "failed"),
        task("docs", after=["ghost"]),
    )
    chain = query.why_blocked(graph, "release", NOW).to_dict()
    build, docs = chain["blocked_by"]
    assert build["id"] == "build" and build["blocked_by"][0]["id"] == "compile"
    assert "failed" in build["blocked_by"][0]["reason"]
    assert docs["blocked_by"][0] == {
        "id": "ghost",
        "status": "missing",
        "reason": "missing: no task with this id exists",
        "blocked_by": [],
    }


def test_why_blocked_names_time_gates_and_pauses() -> None:
    graph = graph_of(task("a", paused=True, not_before=format_time(NOW + timedelta(days=1))))
    reason = query.why_blocked(graph, "a", NOW).reason
    assert "paused" in reason and "not_before" in reason


def test_why_blocked_on_a_ready_task_says_so() -> None:
    assert query.why_blocked(graph_of(task("a")), "a", NOW).reason.startswith("ready")


def test_why_blocked_shows_a_shared_dependency_once() -> None:
    graph = graph_of(
        task("top", after=["l", "r"]), task("l", after=["base"]), task("r", after=["base"]), task("base")
    )
    text = viz.render_block_tree(query.why_blocked(graph, "top", NOW))
    assert text.count("base [open] ready") == 1
    assert "already shown above" in text


def test_blocked_lists_open_tasks_with_reasons() -> None:
    graph = graph_of(task("a"), task("b", after=["a"]), task("c", "done"))
    assert query.blocked(graph, NOW) == [
        {"id": "b", "title": "b", "reasons": [{"kind": "blocker", "blocker": "a", "detail": "open"}]}
    ]


def test_scc_finds_loops_and_self_loops_but_not_chains() -> None:
    found = strongly_connected({"a": ["b"], "b": ["a"], "c": ["c"], "d": ["a"]})
    assert sorted(sorted(c) for c in found) == [["a", "b"], ["c"]]


def test_loop_header_prefers_cycle_config_then_an_entry_edge() -> None:
    edges = {"x": ["z", "outside"], "y": ["x"], "z": ["y"]}
    assert analyze(edges).cycles[0].header == "x"
    assert analyze(edges, {"y"}).cycles[0].header == "y"
    back = analyze(edges).back_edges
    assert back == {("z", "x")}  # z -> x closes the loop that starts at x


def test_cycles_query_marks_configured_loops() -> None:
    graph = graph_of(task("a", after=["b"], cycle_config={"max_iterations": 2}), task("b", after=["a"]))
    (cycle,) = query.cycle_analysis(graph).cycles
    assert cycle.configured and set(cycle.members) == {"a", "b"}


def test_critical_path_weighs_estimated_hours_and_skips_finished_work() -> None:
    graph = graph_of(
        task("done-first", "done", estimate={"hours": 50.0}),
        task("a", after=["done-first"], estimate={"hours": 2.0}),
        task("b", after=["a"], estimate={"hours": 3.0}),
        task("c", after=["a"]),
        task("d", after=["b", "c"]),
    )
    assert query.critical_path(graph) == (["a", "b", "d"], 6.0)


def test_critical_path_survives_a_loop() -> None:
    graph = graph_of(task("a", after=["b"]), task("b", after=["a"]))
    chain, hours = query.critical_path(graph)
    assert set(chain) <= {"a", "b"} and hours >= 1.0


def test_bottlenecks_rank_by_transitive_waiters() -> None:
    graph = graph_of(
        task("root"), task("m1", after=["root"]), task("m2", after=["root"]), task("leaf", after=["m1"])
    )
    rows = query.bottlenecks(graph)
    assert [(r["id"], r["transitive_dependents"]) for r in rows] == [("root", 3), ("m1", 1)]


def test_aging_orders_unfinished_work_oldest_first_with_buckets() -> None:
    graph = graph_of(
        task("new", created_at=format_time(NOW - timedelta(hours=2))),
        task("old", "in-progress", created_at=format_time(NOW - timedelta(days=40)),
             started_at=format_time(NOW - timedelta(days=3))),
        task("finished", "done", created_at=format_time(NOW - timedelta(days=90))),
    )  # fmt: skip
    rows = query.aging(graph, NOW)
    assert [(r["id"], r["bucket"]) for r in rows] == [("old", "> 30 days"), ("new", "< 1 day")]
    assert rows[0]["in_progress_days"] == 3.0


def test_viz_formats_render_every_visible_edge() -> None:
    graph = graph_of(task("a"), task("b", after=["a"]), task('q"uote', after=["b"]))
    assert '"a" -> "b";' in viz.dot(graph)
    assert '"b" -> "q\\"uote";' in viz.dot(graph)
    mermaid = viz.mermaid(graph)
    assert mermaid.startswith("flowchart LR") and "n0 --> n1" in mermaid and "n1 --> n2" in mermaid
    tree = viz.tree(graph)
    assert tree.splitlines()[1].startswith("  ○ b")
