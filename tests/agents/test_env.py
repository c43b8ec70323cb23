"""The agent's environment: an allow-list; credentials only when named as such."""

from __future__ import annotations

import pytest

from speedrift.agents.env import agent_env, is_secret_name, withheld

AMBIENT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/dev",
    "LANG": "en_US.UTF-8",
    "LC_ALL": "en_US.UTF-8",
    "TERM": "xterm",
    "TMPDIR": "/tmp",
    "USER": "dev",
    "SHELL": "/bin/bash",
    "TZ": "Europe/Berlin",
    "GITHUB_TOKEN": "ghp_x",
    "GH_TOKEN": "gho_x",
    "GITLAB_TOKEN": "glpat-x",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "AWS_SECRET_ACCESS_KEY": "s",
    "AWS_PROFILE": "prod",
    "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
    "AZURE_CLIENT_SECRET": "s",
    "ANTHROPIC_API_KEY": "sk-ant",
    "OPENAI_API_KEY": "sk-oai",
    "SSH_AUTH_SOCK": "/run/ssh.sock",
    "DATABASE_URL": "postgres://u:p@h/db",
    "MY_SERVICE_TOKEN": "t",
    "EDITOR": "vim",
    "PYTHONPATH": "/src",
}


def test_only_allow_listed_names_pass() -> None:
    env = agent_env({}, source=AMBIENT)
    assert env == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/dev",
        "LANG": "en_US.UTF-8",
        "LC_ALL": "en_US.UTF-8",
        "TERM": "xterm",
        "TMPDIR": "/tmp",
        "USER": "dev",
        "SHELL": "/bin/bash",
        "TZ": "Europe/Berlin",
    }


def test_configured_names_and_globs_are_added() -> None:
    env = agent_env({}, allow=["EDITOR", "PYTHON*"], source=AMBIENT)
    assert env["EDITOR"] == "vim" and env["PYTHONPATH"] == "/src"


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITLAB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_CLIENT_SECRET",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "OPENAI_API_KEY",
        "SSH_AUTH_SOCK",
        "DATABASE_URL",
        "MY_SERVICE_TOKEN",
    ],
)
def test_credentials_are_withheld_even_when_allowed(name: str) -> None:
    assert is_secret_name(name)
    assert name not in agent_env({}, allow=[name, "*"], source=AMBIENT)
    assert name not in agent_env({name: "from-config"}, source=AMBIENT)


def test_named_secrets_pass_through_from_the_ambient_environment() -> None:
    env = agent_env({}, passthrough_secrets=["ANTHROPIC_API_KEY"], source=AMBIENT)
    assert env["ANTHROPIC_API_KEY"] == "sk-ant"
    assert "OPENAI_API_KEY" not in env and "GITHUB_TOKEN" not in env


def test_extra_values_override_and_named_secrets_may_be_given_explicitly() -> None:
    extra = {"HOME": "/tmp/agent-home", "ANTHROPIC_API_KEY": "sk-mock", "WG_TASK_ID": "t1"}
    env = agent_env(extra, passthrough_secrets=["ANTHROPIC_API_KEY"], source=AMBIENT)
    assert env["HOME"] == "/tmp/agent-home"
    assert env["ANTHROPIC_API_KEY"] == "sk-mock"
    assert env["WG_TASK_ID"] == "t1"


@pytest.mark.parametrize(
    "name", ["PATH", "HOME", "LANG", "LC_CTYPE", "TZ", "TERM", "KEYBOARD_LAYOUT", "MONKEY"]
)
def test_ordinary_names_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


def test_the_real_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_live")
    monkeypatch.setenv("LC_MESSAGES", "C")
    env = agent_env({})
    assert "GITHUB_TOKEN" not in env and env["LC_MESSAGES"] == "C"


def test_withheld_names_are_reported_without_values() -> None:
    names = withheld({"OPENAI_API_KEY": "x"}, passthrough_secrets=["ANTHROPIC_API_KEY"], source=AMBIENT)
    assert "GITHUB_TOKEN" in names and "OPENAI_API_KEY" in names
    assert "ANTHROPIC_API_KEY" not in names and "PATH" not in names
