"""Inter-repo edges: declared in ecosystem.toml or inferred from task references, weighted, with reasons."""

from __future__ import annotations

from speedrift.control.assess.edges import DECLARED_WEIGHT, MAX_WEIGHT, MENTION_WEIGHT, repo_edges
from speedrift.register.record import RepoEdge
from tests.control.core_builders import entry, graph, snap


def pairs(edges: tuple[RepoEdge, ...]) -> list[tuple[str, str, str, int]]:
    return [(e.source, e.target, e.kind, e.weight) for e in edges]


def test_a_declared_dependency_is_a_declared_edge() -> None:
    entries = [entry("web", depends_on=("api",)), entry("api")]
    edges = repo_edges(entries, [snap("web"), snap("api")])
    assert pairs(edges) == [("web", "api", "declared", DECLARED_WEIGHT)]
    assert edges[0].reasons == ("declared: web depends_on api in ecosystem.toml",)


def test_task_references_to_another_registered_repo_are_inferred_edges_weighted_by_count() -> None:
    entries = [entry("web"), entry("api"), entry("docs")]
    snaps = {
        "web": snap("web", graph_state=graph(mentions=["api", "api", "docs"])),
        "api": snap("api"),
        "docs": snap("docs"),
    }
    edges = repo_edges(entries, snaps)
    assert pairs(edges) == [
        ("web", "api", "inferred", 2 * MENTION_WEIGHT),
        ("web", "docs", "inferred", MENTION_WEIGHT),
    ]
    assert edges[0].reasons == ("inferred: 2 task references to api in web's graph",)


def test_a_declared_pair_that_is_also_mentioned_stays_declared_and_adds_weight() -> None:
    entries = [entry("web", depends_on=("api",)), entry("api")]
    edges = repo_edges(entries, [snap("web", graph_state=graph(mentions=["api"])), snap("api")])
    assert pairs(edges) == [("web", "api", "declared", DECLARED_WEIGHT + MENTION_WEIGHT)]
    assert len(edges[0].reasons) == 2


def test_weights_stop_at_the_maximum() -> None:
    entries = [entry("web", depends_on=("api",)), entry("api")]
    edges = repo_edges(entries, [snap("web", graph_state=graph(mentions=["api"] * 40)), snap("api")])
    assert edges[0].weight == MAX_WEIGHT


def test_self_references_and_unregistered_names_are_dropped() -> None:
    entries = [entry("web", depends_on=("web", "ghost")), entry("api")]
    edges = repo_edges(entries, [snap("web", graph_state=graph(mentions=["web", "stranger"])), snap("api")])
    assert edges == ()


def test_repos_without_a_graph_only_have_declared_edges() -> None:
    entries = [entry("web", depends_on=("api",)), entry("api")]
    assert pairs(repo_edges(entries, [snap("web", no_graph=True), snap("api")])) == [
        ("web", "api", "declared", DECLARED_WEIGHT)
    ]


def test_edges_come_out_in_a_stable_order() -> None:
    entries = [entry("c", depends_on=("a", "b")), entry("b", depends_on=("a",)), entry("a")]
    snaps = [snap("c"), snap("b"), snap("a")]
    edges = repo_edges(entries, snaps)
    assert [(e.source, e.target) for e in edges] == [("b", "a"), ("c", "a"), ("c", "b")]
    assert repo_edges(list(reversed(entries)), list(reversed(snaps))) == edges
