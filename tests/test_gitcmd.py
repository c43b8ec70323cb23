"""gitcmd: argv and environment for every git call (the configuration speedrift forces on it: no
hook, fsmonitor or diff program of the repo runs), its errors, its timeout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from speedrift import gitcmd, procs, statehome
from tests.gitrepo import make_repo, sh_git


def forced(hooks: Path) -> list[str]:
    return [
        "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never", "-c", "log.showSignature=false",
        "-c", f"core.hooksPath={hooks}",
    ]  # fmt: skip


def test_argv_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    none = statehome.no_hooks_dir()
    assert gitcmd.command(["status"]) == ["git", *forced(none), "status"]
    assert gitcmd.command(["status"], no_optional_locks=True) == [
        "git", *forced(none), "--no-optional-locks", "status"
    ]  # fmt: skip
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")  # as inside a git hook
    monkeypatch.setenv("KEEP_ME", "1")
    env = gitcmd.environment({"GIT_INDEX_FILE": "/tmp/index"}, no_optional_locks=True)
    assert "GIT_DIR" not in env and env["KEEP_ME"] == "1"
    assert (env["GIT_TERMINAL_PROMPT"], env["LC_ALL"], env["GIT_OPTIONAL_LOCKS"]) == ("0", "C", "0")
    assert (env["GIT_EDITOR"], env["GIT_SEQUENCE_EDITOR"], env["GIT_PAGER"]) == ("true", "true", "cat")
    assert env["GIT_INDEX_FILE"] == "/tmp/index"  # relocation only when asked for


def test_every_command_line_overrides_fsmonitor_hooks_ext_and_diff_programs(tmp_path: Path) -> None:
    approved = tmp_path / "approved-hooks"
    assert gitcmd.command(["commit", "-q"], hooks=approved) == ["git", *forced(approved), "commit", "-q"]
    none = statehome.no_hooks_dir()
    assert gitcmd.command(["diff", "--numstat", "a..b"])[-5:] == [
        "diff", "--no-ext-diff", "--no-textconv", "--numstat", "a..b"
    ]  # fmt: skip
    assert gitcmd.command(["-c", "x.y=z", "log", "-1"])[-6:] == [
        "-c", "x.y=z", "log", "--no-ext-diff", "--no-textconv", "-1"
    ]  # fmt: skip
    assert gitcmd.command(["show-ref"]) == ["git", *forced(none), "show-ref"]


def plant(repo: Path, markers: Path) -> dict[str, Path]:
    """What an agent with a shell could leave in a repository's git dir: a core.fsmonitor program,
    hooks, an external diff and a textconv driver — each writes a marker file when git runs it."""
    markers.mkdir()
    ran: dict[str, Path] = {}

    def program(name: str, body: str = "") -> Path:
        path = markers.parent / f"{name}.sh"
        path.write_text(f"#!/bin/sh\ntouch {markers / name}\n{body}")
        path.chmod(0o755)
        ran[name] = markers / name
        return path

    sh_git(repo, "config", "core.fsmonitor", str(program("fsmonitor", "exit 1\n")))
    sh_git(repo, "config", "diff.external", str(program("external-diff")))
    sh_git(repo, "config", "diff.evil.textconv", str(program("textconv", 'cat "$1"\n')))
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text("* diff=evil\n")
    for hook in ("pre-commit", "post-commit", "post-checkout", "post-merge", "reference-transaction"):
        target = repo / ".git" / "hooks" / hook
        target.write_text(f"#!/bin/sh\ntouch {markers / hook}\n")
        target.chmod(0o755)
        ran[hook] = markers / hook
    return ran


def test_a_planted_fsmonitor_hooks_and_diff_programs_do_not_run_in_speedrifts_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    ran = plant(repo, tmp_path / "ran")
    (repo / "README.md").write_text("# changed\n")
    gitcmd.run(["status", "--porcelain"], repo, no_optional_locks=True)
    gitcmd.run(["diff"], repo)
    gitcmd.run(["add", "-A"], repo)
    gitcmd.run(["commit", "-q", "-m", "x"], repo)
    gitcmd.run(["log", "-p", "-2"], repo)
    gitcmd.run(["show", "HEAD"], repo)
    gitcmd.run(["checkout", "-q", "-b", "other"], repo)
    assert [name for name, marker in ran.items() if marker.exists()] == []
    # the same git, without speedrift's command line, runs them: the plant is real
    sh_git(repo, "status", "--porcelain")
    assert ran["fsmonitor"].exists()


def test_an_approved_hooks_directory_runs_its_hooks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    approved = tmp_path / "approved"
    approved.mkdir()
    (approved / "pre-commit").write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\n")
    (approved / "pre-commit").chmod(0o755)
    (repo / "x.txt").write_text("x\n")
    gitcmd.run(["add", "x.txt"], repo)
    gitcmd.run(["commit", "-q", "-m", "x"], repo, hooks=approved)
    assert (tmp_path / "ran").exists()


def test_a_file_put_into_the_empty_hooks_directory_stops_git_with_the_fix(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    none = statehome.no_hooks_dir()
    none.chmod(0o700)
    (none / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(gitcmd.GitError, match="pre-commit") as caught:
        gitcmd.run(["status"], repo)
    assert caught.value.hint is not None and str(none) in caught.value.hint


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
