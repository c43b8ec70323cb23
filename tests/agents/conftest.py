"""Fixtures for the agent-runtime tests: fake CLIs on PATH, scenario files, the real CLIs.

The `agent_cli` marker is registered here (not in pyproject) because only these tests use it:
they drive the real Claude Code, Codex and OpenCode CLIs against `mock_provider.py`. The CLIs are
looked for in the cache dir `scripts/install-agent-clis` fills; when they are missing the tests
are skipped with the install command, except under CI, where that is a broken setup and fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from speedrift.agents.env import agent_env
from speedrift.agents.protocol import Budgets, RunRequest
from tests.agents.realcli import cli_for, request_for  # noqa: F401 (fixtures for the real-CLI tests)

HERE = Path(__file__).parent
FAKES = HERE / "fakes"
STREAMS = HERE / "fixtures" / "streams"
HELP = HERE / "fixtures" / "help"
REPO = HERE.parent.parent
INSTALL = REPO / "scripts" / "install-agent-clis"
CLIS = ("claude", "codex", "opencode")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "agent_cli: drives a real agent CLI (installed by scripts/install-agent-clis) against a local mock",
    )


def stream(name: str) -> list[str]:
    """A captured stdout stream, one line per item."""
    return (STREAMS / name).read_text(encoding="utf-8").splitlines()


def help_text(name: str) -> str:
    return (HELP / name).read_text(encoding="utf-8")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "worktree"
    path.mkdir()
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def make_request(tmp_path: Path, workdir: Path) -> Callable[..., RunRequest]:
    def make(prompt: str = "Create hello.txt containing hi.", **kwargs: Any) -> RunRequest:
        budgets = kwargs.pop("budgets", None) or Budgets(wall_clock_s=30, stall_s=15, kill_grace_s=2)
        return RunRequest(
            task_id="t1",
            attempt=1,
            prompt=prompt,
            prompt_file=tmp_path / "run" / "prompt.md",
            cwd=workdir,
            budgets=budgets,
            **kwargs,
        )

    return make


@dataclass
class FakeAgents:
    """Writes a scenario for the fake CLIs and builds the environment that runs them."""

    scenario_file: Path

    def scenario(self, *steps: dict[str, Any]) -> None:
        self.scenario_file.write_text(json.dumps(list(steps)))

    def env(self, **extra: str) -> dict[str, str]:
        path = f"{FAKES}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
        return agent_env({"PATH": path, **extra}, allow=["FAKE_AGENT_SCENARIO"]) | {
            "FAKE_AGENT_SCENARIO": str(self.scenario_file)
        }


@pytest.fixture
def fakes(tmp_path: Path) -> FakeAgents:
    return FakeAgents(tmp_path / "scenario.json")


def _cache_bin() -> Path:
    cache = os.environ.get("SPEEDRIFT_TEST_CACHE") or str(Path.home() / ".cache" / "speedrift-tests")
    return Path(cache) / "agent-clis" / "node_modules" / ".bin"


@pytest.fixture(scope="session")
def real_cli_bin() -> Path:
    """The bin dir holding the pinned real CLIs (see scripts/install-agent-clis)."""
    bin_dir = _cache_bin()
    missing = [name for name in CLIS if not (bin_dir / name).exists()]
    if not missing and shutil.which("node"):
        return bin_dir
    why = f"agent CLIs missing from {bin_dir} ({', '.join(missing) or 'node'}); install them with {INSTALL}"
    if os.environ.get("CI"):
        pytest.fail(f"{why} — CI must run that setup step first", pytrace=False)
    pytest.skip(why)
