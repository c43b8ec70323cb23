"""gitcmd: argv and environment for every git call, its errors, its timeout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from speedrift import gitcmd, procs
from tests.gitrepo import make_repo


def test_argv_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gitcmd.command(["status"]) == ["git", "status"]
    assert gitcmd.command(["status"], no_optional_locks=True) == ["git", "--no-optional-locks", "status"]
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")  # as inside a git hook
    monkeypatch.setenv("KEEP_ME", "1")
    env = gitcmd.environment({"GIT_INDEX_FILE": "/tmp/index"}, no_optional_locks=True)
    assert "GIT_DIR" not in env and env["KEEP_ME"] == "1"
    assert (env["GIT_TERMINAL_PROMPT"], env["LC_ALL"], env["GIT_OPTIONAL_LOCKS"]) == ("0", "C", "0")
    assert env["GIT_INDEX_FILE"] == "/tmp/index"  # relocation only when asked for


def test_an_inherited_git_dir_does_not_redirect_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r")
    other = make_repo(tmp_path / "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    top = gitcmd.run(["rev-parse", "--show-toplevel"], repo).stdout.strip()
    assert Path(top).resolve() == repo.resolve()


def test_errors_name_the_command_and_the_directory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    with pytest.raises(gitcmd.GitError, match=r"git --no-optional-locks rev-parse nope failed in .*: "):
        gitcmd.run(["rev-parse", "nope"], repo, no_optional_locks=True)
    assert gitcmd.run(["rev-parse", "nope"], repo, check=False).returncode != 0
    with pytest.raises(gitcmd.GitError, match="does not exist"):
        gitcmd.run(["status"], tmp_path / "missing")
    assert gitcmd.run_bytes(["cat-file", "-p", "HEAD:README.md"], repo).stdout == b"# demo\n"


def test_input_reaches_git_and_a_slow_git_is_killed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    blob = gitcmd.run(["hash-object", "-w", "--stdin"], repo, input_text="hello\n").stdout.strip()
    assert gitcmd.run_bytes(["cat-file", "-p", blob], repo).stdout == b"hello\n"
    with pytest.raises(procs.ProcessTimeout):
        gitcmd.run(["-c", "alias.slow=!sleep 60", "slow"], repo, timeout=0.3)
    running = gitcmd.start(["status"], repo, deadline=time.monotonic() + 60, no_optional_locks=True)
    assert running.finish().returncode == 0
