"""The graph watcher: a graph rewritten on disk becomes a delta with the changed tasks only, and
the repos whose tasks wait on a task in it (``after = ["REPO:TASK"]``) are re-derived with it."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore, init_graph_dir, repo_graph_file
from speedrift.web import watch
from speedrift.web.live import DashboardState
from speedrift.web.views import RepoInfo
from speedrift.web.watch import GraphWatcher


def _repo(root: Path, name: str, *task_ids: str) -> GraphStore:
    repo = root / name
    repo.mkdir(parents=True)
    store = GraphStore(init_graph_dir(repo))
    for task_id in task_ids:
        spec = ops.NewTask(title=task_id, task_id=task_id)

        def add(graph: Graph, now: datetime, spec: ops.NewTask = spec) -> ops.Mutation:
            return ops.add_task(graph, spec, now=now, actor="me")

        store.mutate(add)
    return store


def _watch(root: Path, *names: str) -> tuple[DashboardState, GraphWatcher, list[dict[str, Any]]]:
    infos = [RepoInfo(name=n, path=str(root / n)) for n in names]
    state = DashboardState()
    state.set_repos(infos)
    watcher = GraphWatcher(state, infos)
    watcher.load_all()
    deltas: list[dict[str, Any]] = []
    state.subscribe(lambda seq, text: deltas.append(json.loads(text)))
    return state, watcher, deltas


def test_a_status_change_on_disk_becomes_a_delta_with_only_that_task(tmp_path: Path) -> None:
    shop = _repo(tmp_path, "shop", "a", "b", "c")
    _repo(tmp_path, "billing", "x")
    _state, watcher, deltas = _watch(tmp_path, "shop", "billing")
    assert watcher.poll_once() == []
    shop.mutate(lambda g, now: ops.claim(g, "b", now=now, actor="agent"))
    assert watcher.poll_once() == ["shop"]
    [delta] = deltas
    assert delta["graph"]["repo"] == "shop"
    assert [(n["id"], n["status"]) for n in delta["graph"]["upsert"]] == [("b", "in-progress")]
    assert delta["cards"][0]["tasks"]["running"] == 1


def test_nothing_is_sent_while_no_graph_changes(tmp_path: Path) -> None:
    _repo(tmp_path, "shop", "a")
    _state, watcher, deltas = _watch(tmp_path, "shop")
    for _ in range(3):
        watcher.poll_once()
    assert deltas == []


def test_a_graph_created_after_start_is_picked_up(tmp_path: Path) -> None:
    (tmp_path / "late").mkdir()
    state, watcher, deltas = _watch(tmp_path, "late")
    assert state.repo_graph("late") == {
        "seq": state.seq,
        "repo": "late",
        "graph": False,
        "nodes": [],
        "problems": [],
    }
    store = GraphStore(init_graph_dir(tmp_path / "late"))
    store.mutate(
        lambda g, now: ops.add_task(g, ops.NewTask(title="first", task_id="first"), now=now, actor="me")
    )
    assert watcher.poll_once() == ["late"]
    graph = state.repo_graph("late")
    assert graph is not None and [n["id"] for n in graph["nodes"]] == ["first"]
    assert deltas[-1]["cards"][0]["tasks"]["total"] == 1


def test_a_removed_graph_empties_the_repo(tmp_path: Path) -> None:
    store = _repo(tmp_path, "shop", "a")
    state, watcher, _deltas = _watch(tmp_path, "shop")
    shutil.rmtree(store.directory)
    assert watcher.poll_once() == ["shop"]
    graph = state.repo_graph("shop")
    assert graph is not None and graph["graph"] is False


def test_wg_directory_is_preferred_like_wg_does(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    (repo / ".wg").mkdir(parents=True)
    (repo / ".wg" / "graph.jsonl").write_text('{"kind":"task","id":"w","title":"w","status":"open"}\n')
    (repo / ".workgraph").mkdir()
    (repo / ".workgraph" / "graph.jsonl").write_text("")
    assert repo_graph_file(repo) == repo / ".wg" / "graph.jsonl"


def test_the_watch_thread_delivers_changes_without_being_asked(tmp_path: Path) -> None:
    shop = _repo(tmp_path, "shop", "a")
    infos = [RepoInfo(name="shop", path=str(tmp_path / "shop"))]
    state = DashboardState()
    state.set_repos(infos)
    watcher = GraphWatcher(state, infos, interval=0.02)
    watcher.load_all()
    seen = threading.Event()
    state.subscribe(lambda seq, text: seen.set() if '"graph"' in text else None)
    watcher.start()
    try:
        shop.mutate(lambda g, now: ops.done(g, "a", now=now, actor="me"))
        assert seen.wait(30)
    finally:
        watcher.stop()
    graph = state.repo_graph("shop")
    assert graph is not None and graph["nodes"][0]["status"] == "done"


def _add(store: GraphStore, task_id: str, *after: str) -> None:
    spec = ops.NewTask(title=task_id, task_id=task_id, after=list(after))
    store.mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="me"))


def _node(state: DashboardState, repo: str, task_id: str) -> dict[str, Any]:
    graph = state.repo_graph(repo)
    assert graph is not None
    [node] = [n for n in graph["nodes"] if n["id"] == task_id]
    return dict(node)


def test_a_task_waiting_on_another_watched_repo_is_judged_by_that_repos_graph(tmp_path: Path) -> None:
    _repo(tmp_path, "shop-api", "design-api", "spec")
    web = _repo(tmp_path, "web")
    _add(web, "ui", "shop-api:design-api")
    _add(web, "docs", "shop-api:spec")
    _add(web, "typo", "shop-api:design-ap")
    shop_api = GraphStore(tmp_path / "shop-api" / ".workgraph")
    shop_api.mutate(lambda g, now: ops.done(g, "design-api", now=now, actor="me"))
    state, _watcher, _deltas = _watch(tmp_path, "web", "shop-api")  # the dependent is read first
    assert _node(state, "web", "ui")["ready"] is True
    assert _node(state, "web", "ui")["peers"] == {"shop-api:design-api": "done"}
    assert _node(state, "web", "docs")["ready"] is False
    assert _node(state, "web", "docs")["peers"] == {"shop-api:spec": "open"}
    assert _node(state, "web", "typo")["peers"] == {"shop-api:design-ap": "no-such-task"}
    card = next(c for c in state.snapshot()["cards"] if c["name"] == "web")
    assert card["tasks"]["missing_deps"] == 1 and card["tasks"]["ready"] == 1


def test_a_peer_repos_graph_changing_re_derives_the_repos_that_wait_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop_api = _repo(tmp_path, "shop-api", "design-api")
    web = _repo(tmp_path, "web", "local")
    _add(web, "ui", "shop-api:design-api")
    _repo(tmp_path, "billing", "x")
    state, watcher, deltas = _watch(tmp_path, "shop-api", "web", "billing")
    assert _node(state, "web", "ui")["ready"] is False
    read: list[Path | None] = []
    real_read = watch.read_graph

    def counted(path: Path | None) -> Any:
        read.append(path)
        return real_read(path)

    monkeypatch.setattr(watch, "read_graph", counted)

    shop_api.mutate(lambda g, now: ops.done(g, "design-api", now=now, actor="me"))
    assert watcher.poll_once() == ["shop-api"]
    assert read == [repo_graph_file(tmp_path / "shop-api")]  # web is re-derived from what was kept
    web_delta = next(d["graph"] for d in deltas if d.get("graph", {}).get("repo") == "web")
    [ui] = web_delta["upsert"]  # only the task whose readiness moved
    assert ui["id"] == "ui" and ui["ready"] is True and ui["peers"] == {"shop-api:design-api": "done"}
    assert not any(d.get("graph", {}).get("repo") == "billing" for d in deltas)  # it names no peer
    assert watcher.poll_once() == []


def test_a_peer_repo_joining_or_leaving_the_registry_re_derives_the_repos_naming_it(tmp_path: Path) -> None:
    _repo(tmp_path, "shop-api", "design-api")
    web = _repo(tmp_path, "web")
    _add(web, "ui", "shop-api:design-api")
    state, watcher, _deltas = _watch(tmp_path, "web")
    assert _node(state, "web", "ui")["peers"] == {"shop-api:design-api": "unregistered-repo"}

    both = [RepoInfo(name=n, path=str(tmp_path / n)) for n in ("web", "shop-api")]
    state.set_repos(both)
    watcher.set_repos(both)
    assert watcher.poll_once() == ["shop-api"]
    assert _node(state, "web", "ui")["peers"] == {"shop-api:design-api": "open"}

    alone = both[:1]
    state.set_repos(alone)
    watcher.set_repos(alone)  # no poll needed: the repo that left is unregistered at once
    assert _node(state, "web", "ui")["peers"] == {"shop-api:design-api": "unregistered-repo"}
