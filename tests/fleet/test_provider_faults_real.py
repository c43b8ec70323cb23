"""Provider faults through the whole pipeline with the real agent CLIs (against the local mock
provider, inside the agent sandbox), as a user runs it: what reaches the graph, the evidence and the
runtime pause store.

- A provider error full of control characters is recorded, escaped, and the graph, the evidence and
  `speedrift show` agree on the class; `speedrift run` exits as for any failed attempt (1), not with
  the usage-error code.
- A rate limit (HTTP 429 with retry-after) that the CLI waits out — claude, codex and opencode
  alike — is ended by the provider-retry window, classed as a rate limit (wg
  `api-error-429-rate-limit`), holds the runtime machine-wide until the provider's reset, and the
  next task on that runtime is not claimed before it; the failed task's retry is scheduled no
  earlier than the reset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift.fleet import followup, pauses
from speedrift.fleet.pipeline import RunOptions
from speedrift.graph.store import GraphStore
from speedrift.times import parse_time
from tests.agents.mock_provider import Script, mock_provider
from tests.agents.realcli import CODEX_MODEL, Cli
from tests.fleet.conftest import Workshop

pytestmark = pytest.mark.agent_cli

ALLOW = ["ANTHROPIC_BASE_URL", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "CLAUDE_CODE_MAX_RETRIES"]
NO_GATES = ["syntax", "secrets", "scope", "contract", "lint", "types", "tests", "sast", "sca"]


@pytest.fixture
def claude_env(real_cli_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    monkeypatch.setenv("PATH", f"{real_cli_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-mock")
    yield


def _config(**extra: object) -> str:
    lines = [
        "[env]",
        f"allow = {json.dumps(ALLOW)}",
        'secrets = ["ANTHROPIC_API_KEY"]',
        "[gates]",
        f"skip = {json.dumps(NO_GATES)}",
        "[budgets]",
        "wall_clock_minutes = 2",
        "stall_seconds = 60",
        *(f"{key} = {json.dumps(value)}" for key, value in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def test_a_provider_error_full_of_control_characters_is_recorded_escaped_and_agreed_on(
    workshop: Workshop, bwrap: str, claude_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_provider(Script(fail="hostile")) as provider:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", provider.url)
        (workshop.repo / "speedrift.toml").write_text(_config())
        workshop.add("hostile", model="claude:sonnet")
        done = subprocess.run(
            [sys.executable, "-m", "speedrift", "run", "hostile"],
            cwd=workshop.repo, env=dict(os.environ), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)  # a failed attempt, not a usage error
    task = workshop.task("hostile")
    reason = str(task["failure_reason"])
    assert "\\x1b[31mred" in reason and "\\x00 nul" in reason and "\\x07" in reason
    assert not any(ch in reason for ch in "\x1b\x00\x07")
    speedrift = task["speedrift"]
    assert isinstance(speedrift, dict)
    evidence = json.loads(Path(str(speedrift["evidence"])).read_text())
    assert speedrift["failure_class"] == evidence["failure"] != "speedrift_internal"
    assert task.get("failure_class") != "wrapper-internal"
    shown = subprocess.run(
        [sys.executable, "-m", "speedrift", "show", "hostile", "--json"],
        cwd=workshop.repo, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert evidence["failure"] in shown.stdout


# Each CLI as a task names it: codex needs a model from its bundled catalog, opencode the mock's.
MODELS = {"claude": "claude:sonnet", "codex": f"codex:{CODEX_MODEL}", "opencode": "opencode:mock/mock-model"}
SECRETS = {"claude": ["ANTHROPIC_API_KEY"], "codex": ["MOCK_API_KEY"], "opencode": []}


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_a_rate_limit_holds_the_runtime_until_the_providers_reset_and_the_next_task_waits(
    name: str,
    workshop: Workshop,
    bwrap: str,
    cli_for: Callable[[str, Script], Cli],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every CLI honours a retry-after of this size by waiting (claude up to 60 s; codex and opencode
    # silently): the retry window ends the attempt long before, with the reset the 429 announced.
    retry_after = 40
    cli = cli_for(name, Script(fail="rate_limit", retry_after=retry_after))
    env = cli.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    workshop.add("limited", model=MODELS[name])
    workshop.add("next", model=MODELS[name])
    pipeline = workshop.pipeline(
        env={"allow": sorted(set(env) - set(SECRETS[name])), "secrets": SECRETS[name]},
        gates={"skip": NO_GATES},
        budgets={"wall_clock_minutes": 2, "stall_seconds": 60, "provider_retry_seconds": 6},
    )
    before = datetime.now(UTC)
    result = pipeline.run("limited", RunOptions())
    after = datetime.now(UTC)
    assert (result.status, result.failure) == ("failed", "transient_infra"), result.reason
    assert cli.provider.agent_calls()
    task = workshop.task("limited")
    assert task.get("failure_class") == "api-error-429-rate-limit"
    speedrift = task["speedrift"]
    assert isinstance(speedrift, dict)
    evidence = json.loads(Path(str(speedrift["evidence"])).read_text())
    assert evidence["failure_kind"] == "rate_limit" and evidence["provider_fault"] == "rate_limit"
    # ended by the retry window (6 s), not by the CLI's own 40 s wait or the stall window
    assert "the provider kept failing for 6s" in evidence["reason"], evidence["reason"]
    reset = parse_time(speedrift["reset_at"])
    assert reset is not None
    assert before + timedelta(seconds=retry_after - 1) <= reset <= after + timedelta(seconds=retry_after + 1)
    # the runtime is held machine-wide until that reset: the next task is not claimed before it
    pause = pauses.blocking_pause(name)
    assert pause is not None and pause.cause == "rate_limit" and pause.until == reset
    assert pauses.blocking_pause(name, None, reset) is None
    refused = subprocess.run(
        [sys.executable, "-m", "speedrift", "run", "next"],
        cwd=workshop.repo, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # "opencode (mock) is paused": opencode's pause holds the provider its model names
    assert refused.returncode == 1 and f"error: {name}" in refused.stderr, refused.stderr
    assert "is paused until" in refused.stderr and "rate limit" in refused.stderr
    assert GraphStore(workshop.repo / ".workgraph").load().tasks["next"]["status"] == "open"
    # the failed task's own retry is scheduled no earlier than the reset, whatever its backoff
    retried = followup.carry_out(
        workshop.repo, workshop.store, pipeline.config, "limited", actor="test", runtime=name
    )
    assert retried.outcome == "reopened" and retried.ready_at is not None and retried.ready_at >= reset
