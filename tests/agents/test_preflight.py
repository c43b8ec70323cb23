"""The executor preflight: installed, runnable, and logged in where the CLI can say so offline —
against small stand-ins for the failure shapes, and against the real CLIs (no model call)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speedrift import statehome
from speedrift.agents import preflight


def script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_cli_missing_from_the_agents_path_is_not_installed_with_the_install_command(tmp_path: Path) -> None:
    found = preflight.check("codex", env={"PATH": str(tmp_path)})
    assert (found.status, found.ready, found.installed) == ("not_installed", False, "failed")
    assert found.problem == "codex is not installed (not found on the agent's PATH)"
    assert found.fix == "install the Codex CLI: npm install -g @openai/codex"


def test_a_cli_whose_version_fails_is_not_runnable(tmp_path: Path) -> None:
    script(tmp_path, "claude", 'echo "node: bad option" >&2; exit 9\n')
    found = preflight.check("claude", env={"PATH": str(tmp_path)})
    assert found.status == "not_runnable" and "`claude --version` exited 9: node: bad option" in found.problem
    assert found.fix.startswith("reinstall it (install Claude Code")


def test_a_cli_that_does_not_answer_in_time_is_unknown_not_broken(tmp_path: Path) -> None:
    script(tmp_path, "claude", "exec sleep 30\n")
    found = preflight.check("claude", env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, timeout=0.5)
    assert found.runnable == "unknown" and found.auth == "unknown" and found.ready


def test_claude_auth_status_decides_logged_in_or_not(tmp_path: Path) -> None:
    body = (
        'case "$1" in --version) echo "2.1.197 (Claude Code)";; '
        'auth) if [ -n "$ANTHROPIC_API_KEY" ]; then echo \'{"loggedIn": true, "authMethod": "api_key"}\'; '
        'else echo \'{"loggedIn": false, "authMethod": "none"}\'; exit 1; fi;; esac\n'
    )
    script(tmp_path, "claude", body)
    out = preflight.check("claude", env={"PATH": str(tmp_path)})
    assert (out.status, out.auth, out.version) == ("not_authenticated", "failed", "2.1.197 (Claude Code)")
    assert "claude auth login" in out.fix
    logged = preflight.check("claude", env={"PATH": str(tmp_path), "ANTHROPIC_API_KEY": "k"})
    assert (logged.status, logged.auth, logged.auth_detail) == ("ready", "ok", "logged in (api_key)")


def test_a_codex_custom_provider_needs_its_env_key_in_the_agents_environment(tmp_path: Path) -> None:
    script(tmp_path / "bin", "codex", 'echo "codex-cli 0.169.0"\n')
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model_provider = "mock"\n[model_providers.mock]\n'
        'base_url = "http://127.0.0.1:9/v1"\nenv_key = "MOCK_API_KEY"\n'
    )
    env = {"PATH": str(tmp_path / "bin"), "CODEX_HOME": str(home)}
    missing = preflight.check("codex", env=env)
    assert missing.auth == "failed" and "$MOCK_API_KEY" in missing.auth_detail
    assert missing.fix == "set MOCK_API_KEY and name it in [env] secrets of speedrift.toml"
    assert preflight.check("codex", env=env | {"MOCK_API_KEY": "k"}).auth == "ok"


def test_the_shell_runtime_needs_only_its_shell_or_its_configured_command(tmp_path: Path) -> None:
    assert preflight.check("shell", env={"PATH": ""}, exec_task=True).ready
    options = {"command": ["my-agent", "--stdin"]}
    found = preflight.check("shell", env={"PATH": str(tmp_path)}, options=options)
    assert found.status == "not_installed" and found.executable == "my-agent"


def test_ready_verdicts_are_cached_briefly_and_forgotten_on_demand(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    script(tmp_path, "opencode", f'echo x >> "{counter}"; echo 1.18.33\n')
    env = {"PATH": str(tmp_path)}
    preflight.forget()
    times = [0.0, 10.0, 10.0 + preflight.CACHE_SECONDS + 1, 1e6, 1e6]
    clock, wall = iter(times), iter(times)
    first = preflight.cached_check("opencode", env=env, clock=lambda: next(clock), wall=lambda: next(wall))
    assert (
        preflight.cached_check("opencode", env=env, clock=lambda: next(clock), wall=lambda: next(wall))
        is first
    )
    calls = len(counter.read_text().splitlines())
    # expired, here and machine-wide: checked again
    preflight.cached_check("opencode", env=env, clock=lambda: next(clock), wall=lambda: next(wall))
    assert len(counter.read_text().splitlines()) > calls
    preflight.forget("opencode")


def _calls(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def _new_process() -> None:
    """What a new worker process starts with: this process's own cache empty, the state home kept."""
    preflight._cache.clear()


def test_a_ready_verdict_is_shared_by_the_next_process_and_none_of_the_secrets_are_on_disk(
    tmp_path: Path,
) -> None:
    counter = tmp_path / "calls"
    script(tmp_path, "opencode", f'echo x >> "{counter}"; echo 1.18.33\n')
    env = {"PATH": str(tmp_path), "MOCK_API_KEY": "sk-very-secret-value"}
    preflight.forget()
    first = preflight.cached_check("opencode", env=env, wall=lambda: 1000.0)
    assert first.ready and _calls(counter) > 0
    checked = _calls(counter)
    _new_process()
    again = preflight.cached_check("opencode", env=env, wall=lambda: 1000.0 + preflight.CACHE_SECONDS - 1)
    assert _calls(counter) == checked  # no CLI started: the verdict came from the state home
    assert again.to_dict() == first.to_dict()
    on_disk = statehome.preflight_path().read_text()
    assert "sk-very-secret-value" not in on_disk and "MOCK_API_KEY" not in on_disk
    _new_process()  # past the window: checked afresh
    preflight.cached_check("opencode", env=env, wall=lambda: 1000.0 + preflight.CACHE_SECONDS + 1)
    assert _calls(counter) > checked


def test_a_verdict_that_is_not_ready_is_never_shared_and_forget_clears_the_machine_wide_one(
    tmp_path: Path,
) -> None:
    counter = tmp_path / "calls"
    script(tmp_path, "opencode", f'echo x >> "{counter}"; echo 1.18.33\n')
    env = {"PATH": str(tmp_path)}
    preflight.forget()
    preflight.cached_check("opencode", env=env)
    checked = _calls(counter)
    preflight.forget("opencode")  # after an auth failure: every process checks again
    _new_process()
    preflight.cached_check("opencode", env=env)
    assert _calls(counter) > checked
    preflight.forget()
    missing = preflight.cached_check("claude", env={"PATH": str(tmp_path / "nothing-here")})
    assert not missing.ready
    assert "claude" not in statehome.preflight_path().read_text()


def test_a_damaged_shared_cache_costs_one_check_and_is_rewritten(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    script(tmp_path, "opencode", f'echo x >> "{counter}"; echo 1.18.33\n')
    preflight.forget()
    statehome.preflight_path().write_text('{"x": {"at": "soon", "verdict": [1, 2]}, "y": 3')
    _new_process()
    assert preflight.cached_check("opencode", env={"PATH": str(tmp_path)}).ready
    assert _calls(counter) > 0
    assert "opencode" in statehome.preflight_path().read_text()


@pytest.mark.agent_cli
def test_the_real_clis_report_their_version_and_auth_offline(real_cli_bin: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": f"{real_cli_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}
    env |= {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1"}
    claude = preflight.check("claude", env=env)
    assert claude.version == "2.1.197 (Claude Code)" and claude.auth == "failed"  # no credentials
    assert preflight.check("claude", env=env | {"ANTHROPIC_API_KEY": "sk-x"}).ready
    codex = preflight.check("codex", env=env)
    assert codex.version == "codex-cli 0.169.0" and codex.auth == "failed"
    opencode = preflight.check("opencode", env=env)
    assert opencode.version == "1.18.33" and opencode.auth == "unknown" and opencode.ready
