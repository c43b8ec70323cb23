"""Shared fixtures: real graph directories in temp dirs, the fixed clock tests pass around, and the
agent sandbox's bubblewrap (present, or taken off PATH)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from speedrift.agents import sandbox
from speedrift.graph.store import GraphStore, init_graph_dir

# pg_server, pg_url: a real PostgreSQL server; dask_cluster: a real two-worker Dask cluster
pytest_plugins = ["tests.pgserver", "tests.daskcluster"]

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


@pytest.fixture
def path_without_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Our PATH with bwrap taken out (a machine without bubblewrap): every PATH folder holding it
    is replaced by a folder of links to everything else in it. Returns the PATH it set."""
    folders = []
    for index, entry in enumerate(os.environ.get("PATH", os.defpath).split(os.pathsep)):
        if entry and os.path.lexists(os.path.join(entry, sandbox.BWRAP)):
            shadow = tmp_path / f"path-without-bwrap-{index}"
            shadow.mkdir()
            for name in os.listdir(entry):
                if name != sandbox.BWRAP:
                    (shadow / name).symlink_to(os.path.join(entry, name))
            entry = str(shadow)
        folders.append(entry)
    value = os.pathsep.join(folders)
    monkeypatch.setenv("PATH", value)
    assert shutil.which(sandbox.BWRAP) is None
    return value


@pytest.fixture(scope="session")
def bwrap() -> str:
    """The bubblewrap executable the sandbox tests need (scripts/test installs it where it can)."""
    found = sandbox.probe()
    if found.usable and found.bwrap:
        return found.bwrap
    why = f"the agent sandbox cannot run here: {found.why}; {sandbox.FIX}"
    if os.environ.get("CI"):
        pytest.fail(f"{why} — CI must install it first (scripts/test does)", pytrace=False)
    pytest.skip(why)
