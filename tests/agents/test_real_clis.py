"""The real Claude Code, Codex and OpenCode CLIs, driven by the session against a local mock.

Each CLI runs offline against `mock_provider.py` on 127.0.0.1 with the isolation the reference
lists (own HOME/TMPDIR/XDG dirs, background traffic disabled), its environment built by our
`agent_env`. These tests prove what unit tests cannot: that our argv is accepted, that the agent
really edits files through its own tools, and that each failure comes out typed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from speedrift.agents import sandbox
from speedrift.agents.choose import runtime_for
from speedrift.agents.env import agent_env
from speedrift.agents.protocol import Budgets, FailureKind, RunOutcome, RunRequest
from speedrift.agents.session import run_session
from tests.agents.mock_provider import CACHED_TOKENS, OUTPUT_TOKENS, PROMPT_TOKENS, MockProvider, Script, Step

pytestmark = pytest.mark.agent_cli

PROMPT = "Create hello.txt containing hi, then change greet.txt to say hello mock."
CODEX_MODEL = "gpt-5.5"  # in codex 0.169's bundled catalog, so it offers the freeform apply_patch tool
OWN_401_RETRIES = {"claude": 10, "codex": 5}  # how often each CLI retries a 401 before it gives up


@dataclass
class Cli:
    name: str
    bin_dir: Path
    tmp: Path
    provider: MockProvider
    bwrap: str

    def env(self, *, oauth: bool = False, **extra: str) -> dict[str, str]:
        """Test-only isolation for this CLI, passed through speedrift's own `agent_env`."""
        home = self.tmp / "home"
        isolation = {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "HOME": str(home),
            "TMPDIR": str(_mkdir(home / "tmp")),
        }
        secrets: list[str] = []
        if self.name == "claude":
            isolation |= {
                "ANTHROPIC_BASE_URL": self.provider.url,  # no /v1: the CLI appends /v1/messages
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            }
            # A subscription (OAuth) token makes claude read the unified usage-limit headers.
            key = "CLAUDE_CODE_OAUTH_TOKEN" if oauth else "ANTHROPIC_API_KEY"
            isolation[key] = "sk-ant-oat01-mock" if oauth else "sk-ant-mock"
            secrets.append(key)
        elif self.name == "codex":
            codex_home = _mkdir(home / ".codex")
            (codex_home / "config.toml").write_text(_codex_config(self.provider.url))
            isolation |= {"CODEX_HOME": str(codex_home), "MOCK_API_KEY": "sk-mock"}
            secrets.append("MOCK_API_KEY")
        else:
            for var, sub in [
                ("XDG_CONFIG_HOME", ".config"),
                ("XDG_DATA_HOME", ".local/share"),
                ("XDG_CACHE_HOME", ".cache"),
                ("XDG_STATE_HOME", ".local/state"),
            ]:
                isolation[var] = str(_mkdir(home / sub))
            config = _mkdir(home / ".config" / "opencode") / "opencode.json"
            config.write_text(json.dumps(_opencode_config(self.provider.url)))
            isolation |= {
                "OPENCODE_DISABLE_MODELS_FETCH": "1",
                "OPENCODE_DISABLE_AUTOUPDATE": "1",
                "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
                "npm_config_registry": "http://127.0.0.1:9/",  # its background plugin install fails fast
            }
        return agent_env(isolation | extra, passthrough_secrets=secrets)

    def run(self, request: RunRequest, **env: str) -> RunOutcome:
        """One run of the CLI, inside the agent sandbox, as every attempt runs where bwrap works."""
        oauth = env.pop("oauth", "") == "1"
        run_dir = self.tmp / "run"
        policy = sandbox.Policy(self.bwrap, worktree=request.cwd, run_dir=run_dir)
        return run_session(
            runtime_for(self.name),
            request,
            env=self.env(oauth=oauth, **env),
            run_dir=run_dir,
            sandboxed=policy,
        )


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _codex_config(url: str) -> str:
    return f"""model = "{CODEX_MODEL}"
model_provider = "mock"

[model_providers.mock]
name = "mock"
base_url = "{url}/v1"
env_key = "MOCK_API_KEY"
wire_api = "responses"

[analytics]
enabled = false

[features]
plugins = false
"""


def _opencode_config(url: str) -> dict[str, object]:
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "Mock",
        "options": {"baseURL": f"{url}/v1", "apiKey": "sk-mock"},
        "models": {"mock-model": {"name": "Mock model"}},
    }
    return {"model": "mock/mock-model", "provider": {"mock": provider}}


@pytest.fixture
def cli_for(real_cli_bin: Path, bwrap: str, tmp_path: Path) -> Iterator[Callable[[str, Script], Cli]]:
    providers: list[MockProvider] = []

    def make(name: str, script: Script) -> Cli:
        provider = MockProvider(script).start()
        providers.append(provider)
        return Cli(name, real_cli_bin, tmp_path, provider, bwrap)

    yield make
    for provider in providers:
        provider.stop()


@pytest.fixture
def request_for(tmp_path: Path) -> Callable[..., RunRequest]:
    def make(name: str, budgets: Budgets | None = None) -> RunRequest:
        cwd = _mkdir(tmp_path / "repo")
        (cwd / "greet.txt").write_text("hello world\n")
        return RunRequest(
            task_id="t1",
            attempt=1,
            prompt=PROMPT,
            prompt_file=tmp_path / "run" / "prompt.md",
            cwd=cwd,
            model=CODEX_MODEL if name == "codex" else None,
            budgets=budgets or Budgets(wall_clock_s=60, stall_s=30, kill_grace_s=3),
        )

    return make


def _edit_steps(name: str) -> list[Step]:
    steps = [Step("write", "hello.txt", content="hi\n")]
    if name != "codex":  # claude's Edit refuses a file the session has not read; codex patches blind
        steps.append(Step("read", "greet.txt"))
    return [*steps, Step("edit", "greet.txt", old="hello world", new="hello mock")]


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_the_agent_edits_files_through_its_own_tools(
    name: str, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    steps = _edit_steps(name)
    cli = cli_for(name, Script(steps=steps, final_text="All done."))
    request = request_for(name)
    outcome = cli.run(request)
    assert outcome.success, outcome.reason
    assert outcome.final_text == "All done."
    assert (request.cwd / "hello.txt").read_text() == "hi\n"
    assert (request.cwd / "greet.txt").read_text() == "hello mock\n"
    calls = cli.provider.agent_calls()
    assert len(calls) == len(steps) + 1  # one model call per tool step, then the final answer
    # The whole prompt reached the model (on stdin, or attached as a file for opencode).
    assert PROMPT in json.dumps(calls[0].body)
    usage = outcome.usage
    assert usage.input_tokens == len(calls) * (PROMPT_TOKENS - CACHED_TOKENS)
    assert usage.cache_read_tokens == len(calls) * CACHED_TOKENS
    assert usage.output_tokens == len(calls) * OUTPUT_TOKENS
    assert (request.cwd.parent / "run" / "events.jsonl").stat().st_size > 0
    # it ran in the sandbox: what the CLI wrote of its own went to the private home, now gone
    home = cli.tmp / "home"
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    own_config = {
        "claude": [],
        "codex": [".codex/config.toml"],
        "opencode": [".config/opencode/opencode.json"],
    }
    assert written == own_config[name]  # only what the test put there
    assert not (cli.tmp / "run" / "sandbox").exists()


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_auth_failure(
    name: str, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for(name, Script(fail="auth"))
    outcome = cli.run(request_for(name))
    assert outcome.failure is FailureKind.AUTH, outcome.reason
    calls = len(cli.provider.agent_calls())
    if name == "opencode":  # no retries: opencode ends the run itself
        assert calls == 1 and outcome.exit_code == 1
    else:
        # claude and codex retry a 401 for minutes / seconds: the runtimes cut that short. The mock
        # saw fewer calls than the CLI's own retries would make, and the session ended the CLI
        # (SIGTERM: -15, or 143 from node's handler; SIGKILL after the grace) instead of waiting.
        assert calls < 1 + OWN_401_RETRIES[name], calls
        assert outcome.exit_code in (-15, 143, -9, 137), outcome.exit_code


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
def test_usage_limit_with_reset_time(
    name: str, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    reset = int(time.time()) + 2 * 3600 + 600
    cli = cli_for(name, Script(fail="usage_limit", reset_at=reset))
    outcome = cli.run(request_for(name), oauth="1")
    assert outcome.failure is FailureKind.USAGE_LIMIT, outcome.reason
    assert outcome.reset_at is not None
    expected = datetime.fromtimestamp(reset, UTC)
    if name == "codex":  # codex prints the reset as "h:mm AM", local time, no seconds
        assert abs((outcome.reset_at - expected).total_seconds()) < 60
    else:
        assert outcome.reset_at == expected


@pytest.mark.parametrize(("name", "stall_s"), [("claude", 2.0), ("codex", 2.0), ("opencode", 10.0)])
def test_stalled_stream_is_killed_by_the_stall_budget(
    name: str, stall_s: float, cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    """The scenario is a CLI that reached the model and then heard nothing. The stall window counts
    from spawn, so on a loaded machine a CLI may still be booting when a short window ends (a stall
    too, but not this one): then the window is widened and the run repeated, up to 8x."""
    for window in (stall_s, stall_s * 2, stall_s * 8):
        cli = cli_for(name, Script(stall=True))
        outcome = cli.run(
            request_for(name, Budgets(wall_clock_s=window + 60, stall_s=window, kill_grace_s=3))
        )
        assert outcome.failure is FailureKind.STALL, outcome.reason
        # the session's own stall decision, on its own clock: never before the stall window ran out
        assert outcome.reason.startswith(f"no progress for {window:g}s") and outcome.duration_s >= window
        if cli.provider.agent_calls():  # it did reach the model and then heard nothing
            return
    pytest.fail(f"{name} never reached the mock provider within a {window:g}s stall window")


def test_claude_max_turns(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(loop=Step("read", "greet.txt")))
    outcome = cli.run(request_for("claude", Budgets(max_turns=2, wall_clock_s=60, stall_s=30)))
    assert outcome.failure is FailureKind.MAX_TURNS
    # claude's own --max-turns ended it (our budget would say "turn budget"): the flag works.
    assert "Reached maximum number of turns (2)" in outcome.reason


def test_codex_turn_budget_is_enforced_by_the_session(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("codex", Script(loop=Step("edit", "greet.txt", old="hello world", new="hello world")))
    outcome = cli.run(request_for("codex", Budgets(max_turns=3, wall_clock_s=60, stall_s=30, kill_grace_s=3)))
    assert outcome.failure is FailureKind.MAX_TURNS, outcome.reason
    assert "turn budget of 3" in outcome.reason


def test_claude_server_error_is_transient(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("claude", Script(fail="server_error"))
    # Test-only: no retries (claude would retry a 500 ten times with backoff).
    outcome = cli.run(request_for("claude"), CLAUDE_CODE_MAX_RETRIES="0")
    assert outcome.failure is FailureKind.TRANSIENT, outcome.reason
    assert "500" in outcome.reason


def test_opencode_stops_unfinished_when_a_permission_is_auto_rejected(
    cli_for: Callable[[str, Script], Cli], request_for: Callable[..., RunRequest]
) -> None:
    cli = cli_for("opencode", Script(steps=[Step("write", "../outside.txt", content="no\n")]))
    request = request_for("opencode")
    outcome = cli.run(request)
    assert outcome.exit_code == 0  # opencode itself calls this a normal end
    assert outcome.failure is FailureKind.INCOMPLETE, outcome.reason
    assert not (request.cwd.parent / "outside.txt").exists()
