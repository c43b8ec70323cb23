"""What the agent sandbox hides (agents/sandbox.py, ``HIDDEN`` and ``[sandbox] hide``/``reveal``):
credentials the agent has no use for, under the home its environment names, with real bwrap and a
real shell agent. Everything else stays readable; a path holding what the agent needs is never
hidden, and the run's events say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speedrift.agents import sandbox
from speedrift.agents.choose import runtime_for
from speedrift.agents.env import agent_env
from speedrift.agents.protocol import Budgets, RunOutcome, RunRequest
from speedrift.agents.session import run_session
from speedrift.fleet.config import ConfigError, RepoConfig

KEY = "-----FAKE PRIVATE KEY----- not a real one"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The user's home as the agent's environment names it, with credentials and a plain file."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(KEY)
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = fake\n")
    (home / ".netrc").write_text("machine example.invalid login me password fake\n")
    (home / "notes.txt").write_text("plain notes\n")
    (home / "secrets.d").mkdir()
    (home / "secrets.d" / "token").write_text("fake token\n")
    return home


def _run(bwrap: str, tmp_path: Path, home: Path, command: str, hide: tuple[str, ...]) -> RunOutcome:
    worktree = tmp_path / "repo" / "wt"
    worktree.mkdir(parents=True, exist_ok=True)
    run_dir = tmp_path / "repo" / "run"
    request = RunRequest(
        "t1", 1, "", run_dir / "prompt.md", worktree, exec_command=command,
        budgets=Budgets(wall_clock_s=60, stall_s=60, kill_grace_s=2),
    )  # fmt: skip
    policy = sandbox.Policy(bwrap, worktree=worktree, run_dir=run_dir, hide=hide)
    return run_session(
        runtime_for("shell"), request, env=agent_env({"HOME": str(home)}), run_dir=run_dir, sandboxed=policy
    )


def _look(home: Path, *paths: str) -> str:
    """A shell command writing, per path, what the agent could read there into seen/<n>."""
    lines = ["mkdir -p seen"]
    for n, rel in enumerate(paths):
        target = home / rel
        lines.append(
            f"(if [ -d '{target}' ]; then ls -A '{target}'; else cat '{target}'; fi) > seen/{n} 2>&1 || true"
        )
    return "; ".join(lines)


def _seen(tmp_path: Path, n: int) -> str:
    return (tmp_path / "repo" / "wt" / "seen" / str(n)).read_text()


def test_default_credentials_are_hidden_and_everything_else_stays_readable(
    bwrap: str, tmp_path: Path, home: Path
) -> None:
    command = _look(home, ".ssh", ".ssh/id_ed25519", ".aws/credentials", ".netrc", "notes.txt")
    outcome = _run(bwrap, tmp_path, home, command, sandbox.HIDDEN)
    assert outcome.success, outcome.reason
    assert _seen(tmp_path, 0) == ""  # an empty directory where ~/.ssh was
    assert KEY not in _seen(tmp_path, 1) and "No such file" in _seen(tmp_path, 1)
    assert "aws_secret_access_key" not in _seen(tmp_path, 2)
    assert _seen(tmp_path, 3) == ""  # a file hidden is an empty one
    assert _seen(tmp_path, 4) == "plain notes\n"
    # hidden is not erased: the user's files are untouched
    assert (home / ".ssh" / "id_ed25519").read_text() == KEY


def test_a_hidden_directory_cannot_be_written_either(bwrap: str, tmp_path: Path, home: Path) -> None:
    command = f"echo planted > '{home}/.ssh/authorized_keys' 2> err.txt; echo $? > code.txt"
    outcome = _run(bwrap, tmp_path, home, command, sandbox.HIDDEN)
    assert outcome.success, outcome.reason
    assert (tmp_path / "repo" / "wt" / "code.txt").read_text().strip() != "0"
    assert not (home / ".ssh" / "authorized_keys").exists()


def test_hide_adds_paths_and_reveal_leaves_a_default_visible(bwrap: str, tmp_path: Path, home: Path) -> None:
    config = RepoConfig.model_validate({"sandbox": {"hide": ["~/secrets.d"], "reveal": ["~/.ssh"]}})
    command = _look(home, "secrets.d/token", ".ssh/id_ed25519", ".aws/credentials")
    outcome = _run(bwrap, tmp_path, home, command, config.sandbox.hidden())
    assert outcome.success, outcome.reason
    assert "fake token" not in _seen(tmp_path, 0)
    assert _seen(tmp_path, 1) == KEY  # revealed
    assert "aws_secret_access_key" not in _seen(tmp_path, 2)  # the other defaults still hidden


def test_a_path_holding_the_worktree_is_never_hidden_and_the_run_says_so(
    bwrap: str, tmp_path: Path, home: Path
) -> None:
    outcome = _run(bwrap, tmp_path, home, "echo ok > ok.txt", (str(tmp_path), "~/.ssh"))
    assert outcome.success, outcome.reason
    assert (tmp_path / "repo" / "wt" / "ok.txt").read_text() == "ok\n"
    events = [
        json.loads(line) for line in (tmp_path / "repo" / "run" / "events.jsonl").read_text().splitlines()
    ]
    said = [e["text"] for e in events if "left visible" in e["text"]]
    assert said and str(tmp_path) in said[0] and "holds what the agent needs" in said[0]


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"hide": ["relative/path"]}, "absolute paths or paths under ~"),
        ({"reveal": ["~/.bashrc"]}, "reveal names defaults only"),
    ],
)
def test_bad_hide_and_reveal_entries_are_config_errors(table: dict[str, list[str]], needle: str) -> None:
    with pytest.raises((ConfigError, ValueError)) as raised:
        RepoConfig.model_validate({"sandbox": table})
    assert needle in str(raised.value)
