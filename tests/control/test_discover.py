"""Autodiscovery: git repos with a recently changed graph under the workspace root; declared entries win."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from speedrift.control.ecosystem.discover import discover, with_discovered
from speedrift.control.ecosystem.load import DiscoverySettings
from speedrift.register.record import RepoEntry
from tests.gitrepo import make_repo

NOW = datetime.now(UTC)


def _age(repo: Path, days: float) -> None:
    graph = repo / ".workgraph" / "graph.jsonl"
    moment = (NOW - timedelta(days=days)).timestamp()
    os.utime(graph, (moment, moment))


def test_git_repos_with_a_recent_graph_are_found_and_nothing_else(tmp_path: Path) -> None:
    make_repo(tmp_path / "fresh")
    _age(make_repo(tmp_path / "old"), 40)
    make_repo(tmp_path / "no-graph", graph=False)
    (tmp_path / "plain-dir" / ".workgraph").mkdir(parents=True)
    (tmp_path / "plain-dir" / ".workgraph" / "graph.jsonl").write_text("")
    make_repo(tmp_path / ".hidden")
    found = discover(DiscoverySettings(enabled=True, max_age_days=30), (), NOW, tmp_path)
    assert [(e.name, e.path, e.source) for e in found] == [("fresh", tmp_path / "fresh", "autodiscovered")]


def test_discovery_is_off_unless_enabled(tmp_path: Path) -> None:
    make_repo(tmp_path / "fresh")
    assert discover(DiscoverySettings(), (), NOW, tmp_path) == ()


def test_a_declared_entry_is_never_overridden_by_path_or_name(tmp_path: Path) -> None:
    make_repo(tmp_path / "a")
    make_repo(tmp_path / "b")
    make_repo(tmp_path / "c")
    declared = (
        RepoEntry(name="alpha", path=tmp_path / "a", role="service"),
        RepoEntry(name="b", path=tmp_path / "somewhere-else"),
    )
    merged = with_discovered(DiscoverySettings(enabled=True), declared, NOW, tmp_path)
    assert merged[:2] == declared
    assert [(e.name, e.source) for e in merged[2:]] == [("c", "autodiscovered")]


def test_a_separate_discovery_root_is_searched(tmp_path: Path) -> None:
    make_repo(tmp_path / "work" / "x")
    settings = DiscoverySettings(enabled=True, root=tmp_path / "work")
    assert [e.name for e in discover(settings, (), NOW, tmp_path)] == ["x"]
    assert discover(DiscoverySettings(enabled=True, root=tmp_path / "missing"), (), NOW, tmp_path) == ()
