"""The whole pipeline with a real agent CLI: Claude Code edits files through its own tools
(against the local mock provider), inside the agent sandbox, and speedrift commits, merges and
records the result.

Configured the way a user would: the provider's address and key reach the agent only because
`speedrift.toml` allows them (`[env] allow` / `[env] secrets`); everything else is scrubbed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from speedrift.fleet.pipeline import RunOptions
from tests.agents.mock_provider import MockProvider, Script, Step
from tests.fleet.conftest import Workshop
from tests.gitrepo import sh_git

pytestmark = pytest.mark.agent_cli


@pytest.fixture
def provider() -> Iterator[MockProvider]:
    steps = [Step("read", "app.py"), Step("edit", "app.py", old="print('v1')", new="print('v2')")]
    mock = MockProvider(Script(steps=steps, final_text="Changed the greeting.")).start()
    yield mock
    mock.stop()


def test_claude_edits_a_file_and_speedrift_lands_it(
    workshop: Workshop,
    provider: MockProvider,
    real_cli_bin: Path,
    bwrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    monkeypatch.setenv("PATH", f"{real_cli_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", provider.url)
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-mock")
    workshop.add("bump-greeting", model="claude:sonnet", description="Make app.py print v2.")
    pipeline = workshop.pipeline(
        env={
            "allow": ["ANTHROPIC_BASE_URL", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"],
            "secrets": ["ANTHROPIC_API_KEY"],
        },
        budgets={"wall_clock_minutes": 2, "stall_seconds": 60},
    )
    result = pipeline.run("bump-greeting", RunOptions())
    assert result.status == "done", result.reason
    assert (workshop.repo / "app.py").read_text() == "print('v2')\n"
    assert sh_git(workshop.repo, "rev-parse", "main") == result.landed_commit
    evidence = json.loads(Path(result.run_dir or "", "evidence.json").read_text())
    assert evidence["runtime"] == "claude"
    assert evidence["sandbox"] == {"used": True, "network": True}  # Claude Code ran inside bwrap
    assert evidence["usage"]["output_tokens"] > 0
    assert evidence["agent_summary"] == "Changed the greeting."
    # the model saw our prompt: title, description and the result-file instructions
    first = json.dumps(provider.agent_calls()[0].body)
    assert "Make app.py print v2." in first and "SPEEDRIFT_RESULT" in first
