"""The real OpenCode CLI (against the local mock provider) writes a file in its worktree, then
tries a write outside it: `opencode run` auto-rejects that permission and ends its run, and
speedrift still commits, gates and lands the file it did write. Unsandboxed, so the refusal is
opencode's own, as on a machine without bubblewrap."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from speedrift.fleet.pipeline import RunOptions
from tests.agents.mock_provider import MockProvider, Script, Step
from tests.agents.realcli import _opencode_config
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git

pytestmark = pytest.mark.agent_cli

XDG = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_CACHE_HOME": ".cache",
    "XDG_STATE_HOME": ".local/state",
}
OPENCODE_ENV = {
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "npm_config_registry": "http://127.0.0.1:9/",  # its background plugin install fails fast
}


@pytest.fixture
def provider() -> Iterator[MockProvider]:
    steps = [Step("write", "hello.txt", content="hello\n"), Step("write", "../outside.txt", content="no\n")]
    mock = MockProvider(Script(steps=steps, final_text="Wrote hello.txt.")).start()
    yield mock
    mock.stop()


def test_opencode_stopped_by_a_refused_write_outside_still_lands_its_work(
    workshop: Workshop,
    provider: MockProvider,
    real_cli_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    for name, sub in XDG.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(home / sub))
    (home / ".config" / "opencode").mkdir(parents=True)
    (home / ".config" / "opencode" / "opencode.json").write_text(json.dumps(_opencode_config(provider.url)))
    for name, value in OPENCODE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", f"{real_cli_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))
    workshop.add("say-hello", model="opencode:mock/mock-model", description="Create hello.txt.")
    pipeline = workshop.pipeline(
        env={"allow": [*XDG, *OPENCODE_ENV]},
        sandbox={"mode": "off"},
        budgets={"wall_clock_minutes": 2, "stall_seconds": 60},
    )
    result = pipeline.run("say-hello", RunOptions())
    assert result.status == "done", result.reason
    assert (workshop.repo / "hello.txt").read_text() == "hello\n"
    assert sh_git(workshop.repo, "rev-parse", "main") == result.landed_commit
    evidence = json.loads(Path(result.run_dir or "", "evidence.json").read_text())
    assert evidence["runtime"] == "opencode" and evidence["refused"], evidence
    assert "outside.txt" in evidence["refused"][0]
    assert "agent_stopped" in evidence
    assert not (Path(workshop.repo) / ".speedrift" / "worktrees" / "outside.txt").exists()
