"""``after = ["shop-api:design-api"]`` in the hub: resolved against the registered repos by name, from
the graphs the observer reads in the same cycle — readiness for dispatch, dependency breaks in the
score, the attention queue and the inter-repo graph all use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from speedrift.control.assess.edges import repo_edges
from speedrift.control.assess.score import penalties
from speedrift.control.cycle import Hub
from speedrift.control.ecosystem.load import parse_ecosystem
from speedrift.control.handlers.base import HandlerContext
from speedrift.control.observe.observer import Observer
from speedrift.graph import peers as peer_deps
from speedrift.graph.codec import Graph
from speedrift.register.record import GraphState, RepoSnapshot
from speedrift.serialize import cycle_to_dict
from tests.builders import task
from tests.gitrepo import make_repo

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def write_graph(repo: Path, *nodes: dict[str, Any]) -> None:
    (repo / ".workgraph" / "graph.jsonl").write_bytes(b"".join(orjson.dumps(n) + b"\n" for n in nodes))


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """shop-api (design-api done) and web (ui waits on shop-api:design-api), registered by name."""
    write_graph(make_repo(tmp_path / "shop"), task("design-api", "done"), task("endpoints"))
    write_graph(make_repo(tmp_path / "web"), task("ui", after=["shop-api:design-api"]))
    (tmp_path / "ecosystem.toml").write_text('[repos.shop-api]\npath = "shop"\n\n[repos.web]\npath = "web"\n')
    return tmp_path


def observer_of(root: Path) -> Observer:
    path = root / "ecosystem.toml"
    return Observer(parse_ecosystem(path.read_text(), path))


def web_graph(snapshots: dict[str, RepoSnapshot]) -> GraphState:
    graph = snapshots["web"].graph
    assert graph is not None
    return graph


def test_a_task_after_a_task_done_in_a_registered_repo_is_ready_in_the_hubs_view(fleet: Path) -> None:
    graph = web_graph(observer_of(fleet).observe(NOW))
    assert [t.id for t in graph.ready] == ["ui"] and graph.ready_count == 1
    assert graph.missing_dependencies == () and graph.peer_breaks == ()
    assert graph.peer_dependencies == (("ui", "shop-api:design-api"),)


def test_the_hub_plans_to_dispatch_it(fleet: Path) -> None:
    record = cycle_to_dict(Hub(fleet / "ecosystem.toml").cycle(execute_actions=False))
    dispatch = [a for a in record["planned"] if a["repo"] == "web" and a["kind"] == "dispatch_ready"]
    assert dispatch and dispatch[0]["params"]["tasks"] == ["ui"]
    web = next(r for r in record["repos"] if r["name"] == "web")
    assert not any("missing" in reason["text"] for reason in web["reasons"])


def test_an_unfinished_peer_task_holds_it_and_finishing_it_frees_it_in_the_next_cycle(fleet: Path) -> None:
    write_graph(fleet / "shop", task("design-api", "in-progress"), task("endpoints"))
    observer = observer_of(fleet)
    held = web_graph(observer.observe(NOW))
    assert (held.ready_count, held.blocked, held.missing_dependencies) == (0, 1, ())
    write_graph(fleet / "shop", task("design-api", "done"), task("endpoints"))
    freed = observer.observe(NOW + timedelta(seconds=30))
    assert freed["web"].reused  # web's graph was not read again: its kept reading was re-judged
    assert [t.id for t in web_graph(freed).ready] == ["ui"]
    again = web_graph(observer.observe(NOW + timedelta(seconds=60)))
    assert again.ready_count == 1


def test_a_missing_repo_is_a_named_dependency_break(fleet: Path) -> None:
    write_graph(fleet / "web", task("ui", after=["billing:invoice"]))
    snapshots = observer_of(fleet).observe(NOW)
    graph = web_graph(snapshots)
    assert graph.ready_count == 0
    assert graph.missing_dependencies == (("ui", "billing:invoice"),)
    assert graph.peer_breaks == (("ui", "billing:invoice", "no repo billing in the ecosystem"),)
    reasons = [r.text for r in penalties(snapshots["web"], NOW)]
    assert "blocked on billing:invoice: no repo billing in the ecosystem (needed by ui)" in reasons


def test_a_missing_task_in_a_registered_repo_is_a_named_dependency_break(fleet: Path) -> None:
    write_graph(fleet / "web", task("ui", after=["shop-api:design-ap"]))
    record = cycle_to_dict(Hub(fleet / "ecosystem.toml").cycle(execute_actions=False))
    web = next(r for r in record["repos"] if r["name"] == "web")
    texts = [reason["text"] for reason in web["reasons"]]
    assert "blocked on shop-api:design-ap: no task design-ap in shop-api (needed by ui)" in texts
    assert not any(a["repo"] == "web" and a["kind"] == "dispatch_ready" for a in record["planned"])
    entries = [e for q in record["queues"] for e in q["entries"] if e["repo"] == "web"]
    assert any(e["what"] == "ui waits on shop-api:design-ap: no task design-ap in shop-api" for e in entries)


def test_the_inter_repo_graph_shows_the_cross_repo_after_as_an_edge(fleet: Path) -> None:
    observer = observer_of(fleet)
    edges = repo_edges(observer.entries, observer.observe(NOW))
    edge = next(e for e in edges if (e.source, e.target) == ("web", "shop-api"))
    assert edge.kind == "dependency"
    assert "dependency: 1 task waits in web on shop-api:design-api" in edge.reasons


def test_a_peer_graph_is_read_for_its_statuses_only_when_first_asked_about(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real = peer_deps.read_peer_graph

    def counting(repo: Path) -> Graph | None:
        reads.append(repo)
        return real(repo)

    monkeypatch.setattr(peer_deps, "read_peer_graph", counting)
    observer = observer_of(fleet)
    observer.observe(NOW)
    assert reads == [fleet / "shop"]  # first asked: read once, the answers kept with its reading
    observer.observe(NOW + timedelta(seconds=30))
    write_graph(fleet / "shop", task("design-api", "done"), task("endpoints", "done"))
    observer.observe(NOW + timedelta(seconds=60))  # shop-api re-read as usual, answering with it
    assert reads == [fleet / "shop"]


def test_the_hub_plans_the_dispatch_in_the_cycle_after_the_peer_task_is_done(fleet: Path) -> None:
    write_graph(fleet / "shop", task("design-api", "in-progress"), task("endpoints"))
    hub = Hub(fleet / "ecosystem.toml")

    def dispatches() -> list[Any]:
        record = cycle_to_dict(hub.cycle(execute_actions=False))
        return [a for a in record["planned"] if a["repo"] == "web" and a["kind"] == "dispatch_ready"]

    assert dispatches() == []
    assert dispatches() == []  # web unchanged: its kept judgement is reused
    write_graph(fleet / "shop", task("design-api", "done"), task("endpoints"))
    planned = dispatches()  # web's files did not change; what it waits on did
    assert planned and planned[0]["params"]["tasks"] == ["ui"]


def test_the_workers_the_hub_starts_are_told_its_ecosystem_so_their_claims_resolve_peers(
    fleet: Path,
) -> None:
    """`speedrift run` resolves REPO:TASK against $SPEEDRIFT_ECOSYSTEM (tests/cli); the hub's
    handlers hand it to every process they start, so a planned dispatch is not refused at claim."""
    hub = Hub(fleet / "ecosystem.toml")
    entry = next(e for e in hub.ecosystem.repos if e.name == "web")
    context = HandlerContext(repo=entry.path, entry=entry, ecosystem_path=hub.ecosystem_path, env={})
    assert context.process_env()["SPEEDRIFT_ECOSYSTEM"] == str(fleet.resolve() / "ecosystem.toml")
    assert "SPEEDRIFT_ECOSYSTEM" not in HandlerContext(repo=entry.path, entry=entry, env={}).process_env()
