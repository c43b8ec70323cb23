"""Shared fixtures: real graph directories in temp dirs, and the fixed clock tests pass around."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from speedrift.graph.store import GraphStore, init_graph_dir

FIXTURES = Path(__file__).parent / "fixtures"
WG_FIXTURES = sorted((FIXTURES / "workgraph").glob("*.jsonl"))
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own machine-wide state directory (runtime pauses, live attempts), so no
    test reads or writes the real one and tests running in parallel never share one."""
    path = tmp_path_factory.mktemp("state-home")
    monkeypatch.setenv("SPEEDRIFT_STATE_DIR", str(path))
    return path


@pytest.fixture
def graph_store(tmp_path: Path) -> GraphStore:
    return GraphStore(init_graph_dir(tmp_path))
