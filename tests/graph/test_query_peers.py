"""Blockers in peer repos (``after = ["shop-api:design-api"]``): judged from the statuses the caller
supplies; without them, exactly today's rule (missing blocks, as workgraph does without peers)."""

from __future__ import annotations

from pathlib import Path

import orjson

from speedrift.graph import peers, query
from speedrift.graph.query import PEER_HINT
from tests.builders import graph_of, task
from tests.conftest import NOW

PEER = "shop-api:design-api"


def ready_with(statuses: query.PeerStatuses | None, *nodes: dict[str, object]) -> set[str]:
    return set(query.ready_ids(graph_of(*nodes), NOW, statuses))


def test_without_peer_statuses_a_peer_blocker_is_missing_and_blocks() -> None:
    graph = graph_of(task("ui", after=[PEER]))
    assert query.ready_ids(graph, NOW) == []
    assert query.direct_reasons(graph, graph.tasks["ui"], NOW) == [
        {"kind": "blocker", "blocker": PEER, "detail": "missing"}
    ]


def test_a_peer_task_done_or_abandoned_in_its_repo_releases_the_dependent() -> None:
    assert ready_with({PEER: "done"}, task("ui", after=[PEER])) == {"ui"}
    assert ready_with({PEER: "abandoned"}, task("ui", after=[PEER])) == {"ui"}


def test_a_peer_task_still_open_or_failed_holds_the_dependent() -> None:
    for status in ("open", "in-progress", "failed"):
        graph = graph_of(task("ui", after=[PEER]))
        assert query.ready_ids(graph, NOW, {PEER: status}) == []
        reasons = query.direct_reasons(graph, graph.tasks["ui"], NOW, {PEER: status})
        assert reasons == [{"kind": "blocker", "blocker": PEER, "detail": status}]


def test_a_peer_repo_that_is_not_registered_is_a_named_break() -> None:
    graph = graph_of(task("ui", after=[PEER]))
    assert query.ready_ids(graph, NOW, {}) == []
    assert query.direct_reasons(graph, graph.tasks["ui"], NOW, {})[0]["detail"] == (
        "no repo shop-api in the ecosystem"
    )


def test_a_peer_task_that_does_not_exist_in_its_repo_is_a_named_break() -> None:
    graph = graph_of(task("ui", after=[PEER]))
    assert query.ready_ids(graph, NOW, {PEER: None}) == []
    assert query.direct_reasons(graph, graph.tasks["ui"], NOW, {PEER: None})[0]["detail"] == (
        "no task design-api in shop-api"
    )


def test_local_blockers_are_judged_as_before_when_peer_statuses_are_given() -> None:
    nodes = (task("a"), task("b", after=["a"]), task("c", after=["gone"]), task("d", "done"))
    assert ready_with({PEER: "done"}, *nodes) == ready_with(None, *nodes) == {"a"}


def test_a_back_edge_still_frees_a_loop_header_that_also_waits_on_a_done_peer_task() -> None:
    nodes = (
        task("head", after=["tail", PEER], cycle_config={"max_iterations": 3}),
        task("tail", after=["head"]),
    )
    assert ready_with({PEER: "done"}, *nodes) == {"head"}
    assert ready_with(None, *nodes) == set()


def test_why_blocked_without_an_ecosystem_says_the_blocker_is_in_another_repo() -> None:
    graph = graph_of(task("ui", after=[PEER]))
    child = query.why_blocked(graph, "ui", NOW).children[0]
    assert (child.id, child.status) == (PEER, "missing")
    assert child.reason == f"{PEER} {PEER_HINT}"
    assert "name the ecosystem (--ecosystem or $SPEEDRIFT_ECOSYSTEM) to resolve it" in child.reason


def test_why_blocked_with_peer_statuses_names_the_break_or_the_peer_status() -> None:
    graph = graph_of(task("ui", after=[PEER]))
    assert query.why_blocked(graph, "ui", NOW, {}).children[0].reason == (
        "shop-api:design-api: no repo shop-api in the ecosystem"
    )
    assert query.why_blocked(graph, "ui", NOW, {PEER: None}).children[0].reason == (
        "shop-api:design-api: no task design-api in shop-api"
    )
    open_there = query.why_blocked(graph, "ui", NOW, {PEER: "open"}).children[0]
    assert (open_there.status, open_there.reason) == ("open", "open in shop-api")
    assert query.why_blocked(graph, "ui", NOW, {PEER: "done"}).reason == "ready: waiting to be picked up"


def test_the_blocked_list_uses_the_peer_statuses() -> None:
    graph = graph_of(task("ui", after=[PEER]), task("api", after=["shop-api:spec"]))
    rows = query.blocked(graph, NOW, {PEER: "done", "shop-api:spec": None})
    assert [(r["id"], r["reasons"][0]["detail"]) for r in rows] == [("api", "no task spec in shop-api")]


def test_referenced_lists_the_peer_tasks_unfinished_work_waits_on() -> None:
    graph = graph_of(
        task("ui", after=[PEER, "local"]),
        task("local"),
        task("old", "done", after=["billing:invoice"]),
        task("retry-me", "failed", after=["search:index"]),
    )
    assert peers.referenced(graph) == {"shop-api": {"design-api"}, "search": {"index"}}


def test_resolve_answers_from_the_registered_repos_graphs_and_leaves_unknown_repos_out(
    tmp_path: Path,
) -> None:
    shop = tmp_path / "shop"
    (shop / ".workgraph").mkdir(parents=True)
    lines = [task("design-api", "done"), task("endpoints")]
    (shop / ".workgraph" / "graph.jsonl").write_bytes(b"".join(orjson.dumps(n) + b"\n" for n in lines))
    found = peers.resolve({"shop-api": {"design-api", "nope"}, "ghost": {"x"}}, {"shop-api": shop})
    assert found == {PEER: "done", "shop-api:nope": None}
