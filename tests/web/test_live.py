"""The live state: one numbered stream of deltas, each carrying only what changed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from speedrift.register.record import GateStats, RepoEdge
from speedrift.web.live import DashboardState
from speedrift.web.views import RepoInfo, task_nodes
from tests.builders import graph_of, task
from tests.conftest import NOW
from tests.web.support import action, graph_state, record, report, snapshot


class Recorder:
    def __init__(self, state: DashboardState) -> None:
        self.messages: list[tuple[int, str]] = []
        state.subscribe(lambda seq, text: self.messages.append((seq, text)))

    def decoded(self) -> list[dict[str, Any]]:
        return [json.loads(text) for _seq, text in self.messages]


def _state(*names: str) -> DashboardState:
    state = DashboardState("/eco/ecosystem.toml")
    state.set_repos([RepoInfo(name=n, path=f"/repos/{n}") for n in names], plan_only=True)
    return state


def _nodes(*tasks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return task_nodes(graph_of(*tasks), NOW)


def test_registry_repos_have_cards_before_any_cycle() -> None:
    state = _state("a", "b")
    snap = state.snapshot()
    assert [c["name"] for c in snap["cards"]] == ["a", "b"]
    assert snap["overview"]["plan_only"] is True
    assert snap["overview"]["cycle_id"] is None
    assert snap["seq"] == 1


def test_a_task_status_change_sends_that_task_its_unblocked_dependent_and_the_card_only() -> None:
    state = _state("shop", "billing")
    state.update_graph("shop", _nodes(task("a"), task("b", after=["a"]), task("c"), task("d")))
    state.update_graph("billing", _nodes(task("x")))
    recorder = Recorder(state)
    seq = state.update_graph("shop", _nodes(task("a", "done"), task("b", after=["a"]), task("c"), task("d")))
    assert seq is not None
    [delta] = recorder.decoded()
    assert delta["type"] == "delta" and delta["seq"] == seq and delta["cause"] == "graph"
    assert delta["graph"]["repo"] == "shop"
    assert sorted(n["id"] for n in delta["graph"]["upsert"]) == ["a", "b"]  # b became ready
    assert delta["graph"]["remove"] == []
    assert [c["name"] for c in delta["cards"]] == ["shop"]
    assert "metrics" not in delta and "queues" not in delta and "edges" not in delta


def test_rereading_an_unchanged_graph_sends_nothing() -> None:
    state = _state("shop")
    nodes = _nodes(task("a"))
    state.update_graph("shop", nodes)
    recorder = Recorder(state)
    assert state.update_graph("shop", dict(nodes)) is None
    assert recorder.messages == []


def test_seq_grows_by_one_per_delta_and_every_subscriber_gets_the_same_string() -> None:
    state = _state("shop")
    first, second = Recorder(state), Recorder(state)
    state.update_graph("shop", _nodes(task("a")))
    state.update_graph("shop", _nodes(task("a", "done")))
    state.publish_cycle(record([report(snapshot("shop"))]))
    seqs = [seq for seq, _ in first.messages]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    assert all(a[1] is b[1] for a, b in zip(first.messages, second.messages, strict=True))


def test_the_snapshot_is_encoded_once_per_seq() -> None:
    state = _state("shop")
    seq, text = state.snapshot_text()
    assert state.snapshot_text()[1] is text
    state.update_graph("shop", _nodes(task("a")))
    new_seq, new_text = state.snapshot_text()
    assert new_seq == seq + 1 and new_text is not text
    assert json.loads(new_text)["seq"] == new_seq


def test_a_cycle_brings_overview_metrics_cards_edges_and_queues() -> None:
    state = _state("shop", "billing")
    recorder = Recorder(state)
    shop = snapshot(
        "shop", gates=GateStats(critical=1), graph=graph_state(missing=[("refunds", "orders-api")])
    )
    billing = snapshot("billing")
    seq = state.publish_cycle(
        record(
            [report(shop, score=40, tier="at-risk", activity="stalled", stall="no service"), report(billing)],
            edges=[RepoEdge("billing", "shop", "declared", 1)],
            planned=[action("shop", "dispatch_ready")],
        )
    )
    [delta] = recorder.decoded()
    assert delta["seq"] == seq and delta["cause"] == "cycle"
    assert delta["overview"]["cycle_id"] == "c-1"
    assert delta["overview"]["narrative"] == "Stable posture."
    assert set(delta["metrics"]) == {"reporting_coverage", "flow_health"}
    assert delta["metrics"]["flow_health"]["history"] == [90.0]
    assert {c["name"] for c in delta["cards"]} == {"shop", "billing"}
    assert delta["order"] == ["shop", "billing"]  # the cycle's ranking (worst first), not the alphabet
    assert delta["edges"][0]["source"] == "billing"
    assert delta["queues"]["dependency"]["total"] == 1
    assert delta["queues"]["risk"]["total"] == 1
    assert all("prompts" not in item for q in delta["queues"].values() for item in q["items"])
    card = next(c for c in delta["cards"] if c["name"] == "shop")
    assert card["next_action"]["kind"] == "dispatch_ready"
    assert card["stall"] == "no service"


def test_an_identical_second_cycle_sends_only_what_differs() -> None:
    state = _state("shop")
    state.publish_cycle(record([report(snapshot("shop"))], cycle_id="c-1"))
    recorder = Recorder(state)
    state.publish_cycle(record([report(snapshot("shop"))], cycle_id="c-2", at=NOW + timedelta(minutes=1)))
    [delta] = recorder.decoded()
    assert "cards" not in delta and "edges" not in delta and "queues" not in delta
    assert delta["overview"]["cycle_id"] == "c-2"
    assert delta["metrics"]["flow_health"]["history"] == [90.0, 90.0]


def test_queues_are_not_resent_when_only_waiting_time_grew() -> None:
    state = _state("shop")
    stuck = snapshot("shop", graph=graph_state(failed_blockers=2))
    first = record([report(stuck)], cycle_id="c-1")
    state.publish_cycle(first)
    recorder = Recorder(state)
    state.publish_cycle(record([report(stuck)], cycle_id="c-2", at=NOW + timedelta(hours=3), previous=first))
    [delta] = recorder.decoded()
    assert "queues" not in delta and "queues_prompts_changed" not in delta
    full = state.queues()["queues"]["dependency"]["items"][0]
    assert full["waited_seconds"] == 3 * 3600  # the API still says how long, computed from `since`


def test_new_prompt_text_for_the_same_items_only_tells_clients_to_refetch_prompts() -> None:
    from dataclasses import replace

    state = _state("shop")
    planned = action("shop", "dispatch_ready")
    state.publish_cycle(record([report(snapshot("shop"))], cycle_id="c-1", planned=[planned]))
    recorder = Recorder(state)
    reworded = replace(planned, prompts={"claude": "new words", "codex": "new words too"})
    state.publish_cycle(record([report(snapshot("shop"))], cycle_id="c-2", planned=[reworded]))
    [delta] = recorder.decoded()
    assert "queues" not in delta and delta["queues_prompts_changed"] is True
    [item] = state.queues()["queues"]["aging"]["items"]  # a hub action: with what it is about
    assert item["prompts"]["claude"] == "new words"


def test_the_same_cycle_published_twice_is_one_delta() -> None:
    state = _state("shop")
    cycle = record([report(snapshot("shop"))])
    assert state.publish_cycle(cycle) is not None
    assert state.publish_cycle(cycle) is None


def test_history_from_the_ledger_seeds_the_sparklines() -> None:
    state = _state("shop")
    older = [
        record([report(snapshot("shop"))], cycle_id=f"c-{i}", metrics={"flow_health": float(60 + i)})
        for i in range(3)
    ]
    state.load_history([*older, {"kind": "operator", "op": "set_mode"}])
    state.publish_cycle(record([report(snapshot("shop"))], cycle_id="c-9", metrics={"flow_health": 99.0}))
    assert state.status()["metrics"]["flow_health"]["history"] == [60.0, 61.0, 62.0, 99.0]


def test_a_mode_change_updates_the_card_at_once() -> None:
    state = _state("shop")
    recorder = Recorder(state)
    state.update_control("shop", {"mode": "supervise", "lease_owner": "ann", "lease_expires_at": None})
    [delta] = recorder.decoded()
    assert delta["cause"] == "control"
    assert delta["cards"][0]["mode"] == "supervise"
    assert delta["cards"][0]["lease_owner"] == "ann"


def test_repos_dropped_from_the_registry_leave_with_a_delta() -> None:
    state = _state("a", "b")
    recorder = Recorder(state)
    state.set_repos([RepoInfo(name="a", path="/repos/a")])
    [delta] = recorder.decoded()
    assert delta["removed_cards"] == ["b"]
    assert delta["order"] == ["a"]


def test_repo_graph_is_tagged_with_the_seq_it_is_current_at() -> None:
    state = _state("shop")
    state.update_graph("shop", _nodes(task("a"), task("b")))
    graph = state.repo_graph("shop")
    assert graph is not None
    assert graph["seq"] == state.seq
    assert {n["id"] for n in graph["nodes"]} == {"a", "b"}
    assert state.repo_graph("nope") is None


def test_declared_dependencies_draw_the_inter_repo_graph_before_any_cycle() -> None:
    state = DashboardState()
    state.set_repos(
        [RepoInfo(name="web", path="/r/web", depends_on=("api",)), RepoInfo(name="api", path="/r/api")]
    )
    graph = state.ecosystem_graph()
    assert graph["edges"] == [
        {"source": "web", "target": "api", "kind": "declared", "weight": 1, "reasons": ["depends_on"]}
    ]
    assert {n["id"] for n in graph["nodes"]} == {"web", "api"}
