"""The agent sandbox (agents/sandbox.py) around real processes: a shell agent run by the session
inside bubblewrap, trying what a hostile agent would. Nothing is mocked: the agent is `/bin/sh`,
the checks are files on disk, `/proc` and a socket. Its reports go to files in its worktree, not
to events (the redactor would hide a leaked value there and make a leak look like none)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from speedrift import layout
from speedrift.agents import sandbox
from speedrift.agents.choose import runtime_for
from speedrift.agents.env import agent_env
from speedrift.agents.protocol import AgentEvent, Budgets, FailureKind, RunOutcome, RunRequest
from speedrift.agents.session import run_session

Run = Callable[..., RunOutcome]


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "repo" / "worktrees" / "t1-1"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "repo" / "runs" / "t1" / "1"


@pytest.fixture
def run_shell(bwrap: str, worktree: Path, run_dir: Path) -> Run:
    """Run ``command`` as a shell task in ``worktree``: sandboxed unless ``sandboxed=False``."""

    def run(
        command: str,
        *,
        sandboxed: bool = True,
        network: bool = True,
        extra: dict[str, str] | None = None,
        cancel: threading.Event | None = None,
        on_event: Callable[[AgentEvent], None] | None = None,
    ) -> RunOutcome:
        request = RunRequest(
            task_id="t1",
            attempt=1,
            prompt="",
            prompt_file=run_dir / "prompt.md",
            cwd=worktree,
            exec_command=command,
            budgets=Budgets(wall_clock_s=120, stall_s=120, kill_grace_s=2),
        )
        policy = sandbox.Policy(bwrap, worktree=worktree, run_dir=run_dir, network=network)
        return run_session(
            runtime_for("shell"),
            request,
            env=agent_env(extra or {}),
            run_dir=run_dir,
            cancel=cancel,
            on_event=on_event,
            sandboxed=policy if sandboxed else None,
        )

    return run


def _processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and state[state.rfind(")") + 2] not in "ZX":
            found.append(int(entry.name))
    return found


@pytest.fixture
def holder_of_a_secret() -> Iterator[tuple[int, str]]:
    """A process started with a credential in its environment, as speedrift's own are: (its pid,
    the value). ``/proc/<pid>/environ`` shows a process's environment as it started."""
    canary = "canary-" + secrets.token_hex(8)
    env = {"PATH": os.environ.get("PATH", os.defpath), "AWS_SECRET_ACCESS_KEY": canary}
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    try:
        yield holder.pid, canary
    finally:
        holder.kill()
        holder.wait()


def test_a_sandboxed_agent_sees_neither_speedrifts_processes_nor_their_environment(
    run_shell: Run, worktree: Path, holder_of_a_secret: tuple[int, str]
) -> None:
    pid, canary = holder_of_a_secret
    look = (
        f"found=clean; for f in /proc/[0-9]*/environ; do grep -qs {canary} $f && found=leaked; done; "
        "echo $found > environ.txt; "
        f"if grep -qs time.sleep /proc/{pid}/cmdline; then echo visible > holder.txt; "
        "else echo hidden > holder.txt; fi; "
        "tr '\\0' '\\n' < /proc/$PPID/environ | cut -d= -f1 > parent.txt; "
        "ls -d /proc/[0-9]* | wc -l > count.txt"
    )
    outcome = run_shell(look)
    assert outcome.success, outcome.reason
    assert (worktree / "environ.txt").read_text().strip() == "clean"
    assert (worktree / "holder.txt").read_text().strip() == "hidden"
    # its parent is the sandbox's own init, which holds the agent's scrubbed environment
    names = (worktree / "parent.txt").read_text().split()
    assert "PATH" in names and "AWS_SECRET_ACCESS_KEY" not in names
    assert int((worktree / "count.txt").read_text()) < 10  # the sandbox's init, the shell, its children
    if os.geteuid() == 0 or os.getuid() == os.stat(f"/proc/{pid}").st_uid:  # unsandboxed: the leak
        assert run_shell(look, sandboxed=False).success
        assert (worktree / "environ.txt").read_text().strip() == "leaked"
        assert (worktree / "holder.txt").read_text().strip() == "visible"


def test_a_sandboxed_agent_writes_only_its_worktree_and_its_private_home_and_tmpdir(
    run_shell: Run, worktree: Path, run_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    attempts = [
        ("escape", "../escape.txt"),
        ("absolute", str(outside)),
        ("run-record", str(run_dir / "evidence.json")),
        ("home", "$HOME/mine.txt"),
        ("tmpdir", "$TMPDIR/mine.txt"),
        ("worktree", "inside.txt"),
    ]
    writes = "; ".join(f"echo x > {where} && echo {name} >> wrote.txt" for name, where in attempts)
    # root inside keeps no capability: remounting / read-write is refused too
    command = f"mount -o remount,bind,rw / 2>/dev/null; {writes}; echo $HOME > home.txt; true"
    outcome = run_shell(command)
    assert outcome.success, outcome.reason
    assert (worktree / "wrote.txt").read_text().split() == ["home", "tmpdir", "worktree"]
    assert not (worktree.parent / "escape.txt").exists() and not outside.exists()
    assert not (run_dir / "evidence.json").exists()
    home = Path((worktree / "home.txt").read_text().strip())
    assert home.is_relative_to(layout.sandbox_dir(run_dir))
    assert not layout.sandbox_dir(run_dir).exists()  # the private HOME and TMPDIR went with the run


@pytest.mark.parametrize("network", [True, False])
def test_network_false_cuts_the_agent_off_even_from_127_0_0_1(
    run_shell: Run, worktree: Path, network: bool
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        port = server.getsockname()[1]
        dial = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=10)"
        outcome = run_shell(
            f'if "{sys.executable}" -c "{dial}" 2>/dev/null; then echo connected > net.txt; '
            "else echo cut > net.txt; fi",
            network=network,
        )
    assert outcome.success, outcome.reason
    assert (worktree / "net.txt").read_text().strip() == ("connected" if network else "cut")


def test_a_cancelled_sandboxed_agent_leaves_no_process_behind(run_shell: Run, worktree: Path) -> None:
    """A child, and one that left the group (setsid): both end with the sandbox."""
    marker = f"{secrets.randbelow(10**6):06d}"
    cancel = threading.Event()

    def started(event: AgentEvent) -> None:
        if event.text == "both running":
            cancel.set()

    command = (
        f"sleep 3600.{marker} & setsid sleep 3601.{marker} & "
        f"until [ $(grep -ls {marker} /proc/[0-9]*/cmdline 2>/dev/null | wc -l) -ge 2 ]; "
        "do sleep 0.05; done; "
        "echo both running; wait"
    )
    outcome = run_shell(command, cancel=cancel, on_event=started)
    assert (outcome.failure, outcome.reason) == (FailureKind.CRASHED, "cancelled")
    assert _processes_with(f"3600.{marker}") == [] and _processes_with(f"3601.{marker}") == []


def test_a_signal_death_inside_the_sandbox_is_reported_as_one(run_shell: Run) -> None:
    outcome = run_shell("kill -9 $$")
    assert (outcome.failure, outcome.exit_code) == (FailureKind.CRASHED, -9)
    assert outcome.reason == "the command was killed by SIGKILL"


@pytest.fixture
def user_home(tmp_path: Path) -> Iterator[Path]:
    """A user's home as the agent CLIs leave it: configuration, logins, history."""
    home = tmp_path / "user-home"
    files = {
        ".codex/config.toml": 'model = "gpt-5.5"\n',
        ".codex/auth.json": '{"tokens": "old"}\n',
        ".codex/sessions/2026/old.jsonl": "{}\n",
        ".codex/skills/mine/SKILL.md": "mine\n",
        ".claude.json": '{"numStartups": 3}\n',
        ".claude/settings.json": '{"model": "sonnet"}\n',
        ".claude/.credentials.json": '{"claudeAiOauth": "old"}\n',
        ".claude/projects/x/history.jsonl": "{}\n",
        ".config/opencode/opencode.json": "{}\n",
        ".local/share/opencode/auth.json": '{"mock": "old"}\n',
        ".local/share/opencode/opencode.db": "history\n",
    }
    for rel, text in files.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text)
    yield home


def test_the_clis_keep_their_login_and_read_their_configuration_which_they_cannot_change(
    run_shell: Run, worktree: Path, user_home: Path
) -> None:
    tries = {
        "read-codex-config": 'grep -q gpt-5.5 "$CODEX_HOME/config.toml"',
        "write-codex-config": 'echo x >> "$HOME/.codex/config.toml"',
        "refresh-codex-login": 'echo \'{"tokens": "new"}\' > "$HOME/.codex/auth.json"',
        "see-codex-history": 'test -e "$HOME/.codex/sessions"',
        "read-own-skill": 'grep -q mine "$HOME/.codex/skills/mine/SKILL.md"',
        "add-a-skill": 'mkdir "$HOME/.codex/skills/.system"',
        "claude-state": 'grep -q numStartups "$HOME/.claude.json" && echo "{}" > "$HOME/.claude.json"',
        "write-claude-settings": 'echo \'{"hooks": 1}\' > "$HOME/.claude/settings.json"',
        "refresh-claude-login": 'echo \'{"claudeAiOauth": "new"}\' > "$HOME/.claude/.credentials.json"',
        "see-claude-history": 'test -e "$HOME/.claude/projects"',
        "read-opencode-config": 'test -f "$XDG_CONFIG_HOME/opencode/opencode.json"',
        "refresh-opencode-login": 'echo \'{"mock": "new"}\' > "$XDG_DATA_HOME/opencode/auth.json"',
        "see-opencode-history": 'test -e "$XDG_DATA_HOME/opencode/opencode.db"',
    }
    command = "; ".join(f"( {check} ) 2>/dev/null && echo {name} >> did.txt" for name, check in tries.items())
    extra = {
        "HOME": str(user_home),
        "CODEX_HOME": str(user_home / ".codex"),
        "XDG_CONFIG_HOME": str(user_home / ".config"),
        "XDG_DATA_HOME": str(user_home / ".local" / "share"),
    }
    outcome = run_shell(command + "; true", extra=extra)
    assert outcome.success, outcome.reason
    assert (worktree / "did.txt").read_text().split() == [
        "read-codex-config",
        "refresh-codex-login",
        "read-own-skill",
        "add-a-skill",
        "claude-state",
        "refresh-claude-login",
        "read-opencode-config",
        "refresh-opencode-login",
    ]
    # a refreshed login reached the user's own file; nothing else of the user's home changed
    assert (user_home / ".codex/auth.json").read_text() == '{"tokens": "new"}\n'
    assert (user_home / ".claude/.credentials.json").read_text() == '{"claudeAiOauth": "new"}\n'
    assert (user_home / ".local/share/opencode/auth.json").read_text() == '{"mock": "new"}\n'
    assert (user_home / ".codex/config.toml").read_text() == 'model = "gpt-5.5"\n'
    assert (user_home / ".claude.json").read_text() == '{"numStartups": 3}\n'
    assert (user_home / ".claude/settings.json").read_text() == '{"model": "sonnet"}\n'
    assert not (user_home / ".codex/skills/.system").exists()


def test_auto_runs_unsandboxed_without_bwrap_and_required_refuses(path_without_bwrap: str) -> None:
    assert sandbox.probe() == sandbox.Probe(False, None, "bwrap (bubblewrap) is not installed")
    auto = sandbox.decide("auto", network=True)
    assert not auto.used and "not installed" in auto.why and "apt-get install bubblewrap" in auto.why
    assert auto.evidence() == {"used": False, "why": auto.why}
    sandbox.require("auto", auto)  # auto says so and goes on
    with pytest.raises(sandbox.SandboxUnavailable, match="bwrap") as refused:
        sandbox.require("required", auto)
    assert "apt-get install bubblewrap" in (refused.value.hint or "")


def test_off_never_sandboxes_and_a_working_bwrap_is_used(bwrap: str) -> None:
    off = sandbox.decide("off", network=True)
    assert not off.used and off.evidence() == {"used": False, "why": off.why} and "off" in off.why
    on = sandbox.decide("auto", network=False)
    assert on.used and on.bwrap == bwrap and on.evidence() == {"used": True, "network": False}
