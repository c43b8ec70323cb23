"""Task nodes, live summaries and repo cards: the small dicts the page is drawn from."""

from __future__ import annotations

from speedrift.graph.codec import Graph
from speedrift.web.views import (
    PEER_NO_REPO,
    PEER_NO_TASK,
    RepoInfo,
    build_card,
    node_changes,
    peer_deps,
    risk_level,
    summarize,
    task_nodes,
)
from tests.builders import graph_of, task
from tests.conftest import NOW
from tests.web.support import report, snapshot


def test_task_nodes_mark_ready_tasks_and_hide_system_tasks() -> None:
    graph = graph_of(
        task("a", "done"),
        task("b", after=["a"]),
        task("c", after=["b"]),
        task(".housekeeping", "open"),
        task("d", "in-progress", assigned="agent-1"),
    )
    nodes = task_nodes(graph, NOW)
    assert set(nodes) == {"a", "b", "c", "d"}
    assert nodes["b"]["ready"] is True
    assert nodes["c"]["ready"] is False
    assert nodes["d"] == {
        "id": "d",
        "title": "d",
        "status": "in-progress",
        "after": [],
        "ready": False,
        "priority": 10,
        "assigned": "agent-1",
    }


def test_long_titles_are_cut_so_a_node_stays_small() -> None:
    nodes = task_nodes(graph_of(task("a", title="x" * 5000)), NOW)
    assert len(nodes["a"]["title"]) == 120


def test_summary_counts_statuses_ready_running_and_missing_blockers() -> None:
    nodes = task_nodes(
        graph_of(task("a", "in-progress"), task("b"), task("c", after=["ghost"]), task("d", "done")), NOW
    )
    summary = summarize(nodes)
    assert summary == {
        "graph": True,
        "total": 4,
        "counts": {"done": 1, "in-progress": 1, "open": 2},
        "ready": 1,
        "running": 1,
        "missing_deps": 1,
    }
    assert summarize(None)["graph"] is False


def _waiting_on_peers() -> Graph:
    return graph_of(
        task("ui", after=["shop-api:design-api"]),
        task("docs", after=["shop-api:spec"]),
        task("typo", after=["shop-api:design-ap"]),
        task("bill", after=["billing:invoice"]),
        task("a:b", "done"),  # a local id with a colon is a local task, not a peer
        task("local", after=["a:b"]),
    )


PEERS = {"shop-api:design-api": "done", "shop-api:spec": "open", "shop-api:design-ap": None}


def test_peer_blockers_count_by_their_status_there_and_each_node_names_them() -> None:
    nodes = task_nodes(_waiting_on_peers(), NOW, PEERS)
    assert nodes["ui"]["ready"] is True
    assert nodes["ui"]["peers"] == {"shop-api:design-api": "done"}
    assert nodes["docs"]["ready"] is False
    assert nodes["docs"]["peers"] == {"shop-api:spec": "open"}
    assert nodes["typo"]["ready"] is False
    assert nodes["typo"]["peers"] == {"shop-api:design-ap": PEER_NO_TASK}
    assert nodes["bill"]["ready"] is False
    assert nodes["bill"]["peers"] == {"billing:invoice": PEER_NO_REPO}
    assert nodes["local"]["ready"] is True and "peers" not in nodes["local"]
    assert peer_deps(_waiting_on_peers()) == {
        "shop-api": {"design-api", "spec", "design-ap"},
        "billing": {"invoice"},
    }


def test_summary_counts_a_peer_blocker_as_missing_only_when_its_repo_or_task_does_not_exist() -> None:
    summary = summarize(task_nodes(_waiting_on_peers(), NOW, PEERS))
    assert summary["missing_deps"] == 2  # shop-api:design-ap (no such task), billing:invoice (no such repo)
    assert summary["ready"] == 2  # ui and local


def test_without_peer_statuses_a_peer_blocker_stays_missing_as_in_wg() -> None:
    nodes = task_nodes(_waiting_on_peers(), NOW)
    assert nodes["ui"]["ready"] is False
    assert all("peers" not in node for node in nodes.values())
    assert summarize(nodes)["missing_deps"] == 4


def test_node_changes_list_only_changed_added_and_removed_tasks() -> None:
    old = task_nodes(graph_of(task("a"), task("b"), task("c")), NOW)
    new = task_nodes(graph_of(task("a", "done"), task("b"), task("d")), NOW)
    upsert, removed = node_changes(old, new)
    assert sorted(n["id"] for n in upsert) == ["a", "d"]
    assert removed == ["c"]
    assert node_changes(new, new) == ([], [])


def test_risk_level_follows_the_worst_finding() -> None:
    assert risk_level({}) == "none"
    assert risk_level({"low": 2}) == "low"
    assert risk_level({"medium": 1, "low": 3}) == "medium"
    assert risk_level({"high": 1}) == "high"
    assert risk_level({"last_status": "fail"}) == "high"
    assert risk_level({"secret_leaks": 1}) == "critical"
    # what the drift lanes found on the target branch counts as much as a gate finding
    assert risk_level({}, {"warning": 2}) == "medium"
    assert risk_level({"low": 1}, {"error": 1}) == "high"
    assert risk_level(None, {"critical": 1}) == "critical"


def test_a_card_before_any_cycle_shows_live_counts_and_no_score() -> None:
    info = RepoInfo(name="shop", path="/r/shop", tags=("api",))
    summary = summarize(task_nodes(graph_of(task("a", "in-progress"), task("b")), NOW))
    card = build_card(info, None, summary)
    assert card["score"] is None and card["tier"] is None and card["priority"] is None
    assert card["activity"] == "active"  # an agent is running: alive, whatever the last cycle said
    assert card["tasks"]["ready"] == 1
    assert card["tags"] == ["api"]
    assert card["mode"] == "observe"


def test_a_card_after_a_cycle_carries_score_tier_stall_words_and_priority() -> None:
    from speedrift.register.record import Reason
    from speedrift.serialize import to_plain

    snap = snapshot("billing", tags=("payments",))
    plain = to_plain(
        report(
            snap,
            score=42,
            tier="at-risk",
            activity="stalled",
            stall="service down while 3 tasks are ready",
            reasons=(Reason("service_down", "service down", 30.0),),
        )
    )
    card = build_card(RepoInfo(name="billing", path="/r/billing"), plain, summarize({}))
    assert card["tier"] == "at-risk"
    assert card["score"] == 42
    assert card["priority"] == 58
    assert card["stall"] == "service down while 3 tasks are ready"
    assert card["reasons"] == ["service down"]
    assert card["tags"] == ["payments"]
