"""The real Claude Code, Codex and OpenCode CLIs, set up to run offline against `mock_provider.py`.

Each CLI runs with the isolation the reference lists (own HOME/TMPDIR/XDG dirs, background
traffic disabled), its environment built by our `agent_env`, inside the agent sandbox as every
attempt runs where bwrap works. `Cli.endpoint` points a CLI somewhere else than its mock (a
closed port, for an unreachable provider). Shared by the real-CLI test modules.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from speedrift.agents import sandbox
from speedrift.agents.choose import runtime_for
from speedrift.agents.env import agent_env
from speedrift.agents.protocol import Budgets, RunOutcome, RunRequest
from speedrift.agents.session import run_session
from tests.agents.mock_provider import MockProvider, Script

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
    endpoint: str | None = None  # where the CLI sends its model calls (None: the mock)

    @property
    def url(self) -> str:
        return self.endpoint or self.provider.url

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
                "ANTHROPIC_BASE_URL": self.url,  # no /v1: the CLI appends /v1/messages
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            }
            # A subscription (OAuth) token makes claude read the unified usage-limit headers.
            key = "CLAUDE_CODE_OAUTH_TOKEN" if oauth else "ANTHROPIC_API_KEY"
            isolation[key] = "sk-ant-oat01-mock" if oauth else "sk-ant-mock"
            secrets.append(key)
        elif self.name == "codex":
            codex_home = _mkdir(home / ".codex")
            (codex_home / "config.toml").write_text(_codex_config(self.url))
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
            config.write_text(json.dumps(_opencode_config(self.url)))
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
