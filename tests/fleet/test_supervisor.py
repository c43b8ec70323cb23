"""Admission for every attempt (fleet/supervisor.py): limits counted from live attempts on disk,
so separate processes agree; dead attempts never hold a slot. Real processes throughout: the
entries name real pids and start times, and the cross-process tests run real ``speedrift run``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from speedrift import statehome
from speedrift.fleet import supervisor
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.supervisor import Limits
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.procs import ProcessIdentity, identity_of
from tests.cli.support import base_env
from tests.gitrepo import make_repo


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process other than this one, to hold slots."""
    child = subprocess.Popen(["sleep", "120"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def test_admission_holds_the_repo_limit_and_names_it(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    repo = tmp_path / "shop"
    limits = Limits(repo=2)
    held = identity_of(sleeper.pid)
    first = supervisor.admit(repo, "a", "shell", limits, identity=held, holder="service")
    second = supervisor.admit(repo, "b", "shell", limits, identity=held, holder="service")
    assert first.admitted and second.admitted and first.slot is not None
    assert "2 of 2 in the repo" in second.reason
    refused = supervisor.admit(repo, "c", "shell", limits)
    assert not refused.admitted and refused.slot is None and refused.limit == "repo"
    assert "repo limit reached: 2 attempt(s) already run" in refused.reason
    assert "[service] max_agents = 2" in refused.reason
    # another repo is not held by this one's limit
    assert supervisor.admit(tmp_path / "other", "c", "shell", limits).admitted
    first.slot.release()
    again = supervisor.admit(repo, "c", "shell", limits)
    assert again.admitted, again.reason
    record = next(e for e in supervisor.live_attempts(repo) if e.name == again.slot.name).record()  # type: ignore[union-attr]
    assert record["task"] == "c" and record["identity"]["pid"] == identity_of().pid


def test_a_dead_or_reused_identity_never_holds_a_slot(tmp_path: Path) -> None:
    repo = tmp_path / "shop"
    gone = subprocess.Popen(["true"])
    gone_identity = identity_of(gone.pid)
    gone.wait()
    reused = ProcessIdentity(identity_of().pid, (identity_of().started or 0) + 1)  # our pid, another start
    limits = Limits(repo=2)
    supervisor.admit(repo, "old", "shell", Limits(), identity=gone_identity)
    supervisor.admit(repo, "older", "shell", Limits(), identity=reused)
    assert len(supervisor.live_attempts(repo)) == 2
    decision = supervisor.admit(repo, "new", "shell", limits)
    assert decision.admitted and decision.pruned == 2, decision
    assert [e.name for e in supervisor.live_attempts(repo)] == [decision.slot.name]  # type: ignore[union-attr]


def test_a_zombie_holds_no_slot(tmp_path: Path) -> None:
    repo = tmp_path / "shop"
    child = subprocess.Popen(["true"])
    identity = identity_of(child.pid)
    deadline = time.monotonic() + 30  # a wait for the child to exit, not a speed assertion
    while (
        Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z" and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    try:
        supervisor.admit(repo, "zombie", "shell", Limits(), identity=identity)
        assert supervisor.admit(repo, "next", "shell", Limits(repo=1)).admitted
    finally:
        child.wait()


def test_the_runtime_and_ecosystem_limits_count_every_repo(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    held = identity_of(sleeper.pid)
    assert supervisor.admit(tmp_path / "a", "t", "claude", Limits(), identity=held).admitted
    assert supervisor.admit(tmp_path / "b", "t", "shell", Limits(), identity=held).admitted
    runtime = supervisor.admit(tmp_path / "c", "t", "claude", Limits(repo=5, runtime=1))
    assert (runtime.admitted, runtime.limit) == (False, "runtime")
    assert (
        "runtime limit reached: 1 claude attempt(s)" in runtime.reason
        and "[limits] claude = 1" in runtime.reason
    )
    assert supervisor.admit(tmp_path / "c", "t", "codex", Limits(repo=5, runtime=1)).admitted
    whole = supervisor.admit(tmp_path / "d", "t", "shell", Limits(repo=5, ecosystem=3))
    assert (whole.admitted, whole.limit) == (False, "ecosystem")
    assert "[policy] max_agents = 3" in whole.reason


def test_a_slot_admitted_by_the_hub_is_taken_over_by_its_worker(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    repo = tmp_path / "shop"
    reserved = supervisor.admit(repo, "t", "shell", Limits(repo=1), holder="hub")
    assert reserved.slot is not None
    name = reserved.slot.name
    reserved.slot.hand_to(identity_of(sleeper.pid), "run")  # the hub started the worker
    assert supervisor.adopt(name, repo, "another-task") is None  # made for t, not for it
    assert supervisor.adopt(name, tmp_path / "elsewhere", "t") is None
    taken = supervisor.adopt(name, repo, "t")
    assert taken is not None and taken.identity == identity_of()
    assert [e.identity for e in supervisor.live_attempts(repo)] == [identity_of()]
    taken.release()
    assert supervisor.live_attempts(repo) == []


def test_a_limits_table_with_an_unknown_runtime_or_a_bad_value_is_refused() -> None:
    assert RepoConfig.model_validate({"limits": {"claude": 2}}).limits.for_runtime("claude") == 2
    assert RepoConfig().limits.for_runtime("claude") is None
    with pytest.raises(ValueError, match="gemini"):
        RepoConfig.model_validate({"limits": {"gemini": 1}})
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        RepoConfig.model_validate({"limits": {"codex": 0}})


# ---------------------------------------------------------------- across processes


def _repo(path: Path, toml: str) -> Path:
    repo = make_repo(path, {"README.md": "# r\n", "speedrift.toml": toml})
    return repo


def _add(repo: Path, task_id: str, command: str) -> None:
    spec = ops.NewTask(task_id, task_id=task_id, exec_command=command)
    GraphStore(repo / ".workgraph").mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))


def _run(repo: Path, task_id: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "speedrift", "run", task_id],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout  # a wait for a condition, not a speed assertion
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("toml", "env_cap", "named"),
    [
        ("[limits]\nshell = 1\n", None, "[limits] shell = 1"),
        ("", "1", "[policy] max_agents = 1"),
    ],
    ids=["per-runtime", "ecosystem"],
)
def test_a_cap_holds_between_two_speedrift_processes_in_two_repos(
    tmp_path: Path, private_state_home: Path, toml: str, env_cap: str | None, named: str
) -> None:
    env = {**base_env(), "SPEEDRIFT_STATE_DIR": str(private_state_home)}
    if env_cap:
        env[supervisor.ECOSYSTEM_LIMIT_ENV] = env_cap
    gate = tmp_path / "release"
    started = tmp_path / "started"
    first = _repo(tmp_path / "first", toml + '[sandbox]\nmode = "off"\n')  # it signals outside its worktree
    second = _repo(tmp_path / "second", toml)
    _add(first, "holds", f"touch {started}; while [ ! -f {gate} ]; do sleep 0.05; done")
    _add(second, "waits", "echo ok > ok.txt")
    holder = _run(first, "holds", env)
    try:
        _wait_for(started, "the first attempt to run")
        refused = subprocess.run(
            [sys.executable, "-m", "speedrift", "run", "waits"],
            cwd=second, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert refused.returncode == 1, refused
        assert "not starting waits" in refused.stderr and named in refused.stderr
        assert GraphStore(second / ".workgraph").load().tasks["waits"]["status"] == "open"
    finally:
        gate.touch()
        out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, (out, err)
    assert supervisor.live_attempts() == []  # the finished attempt's entry is gone
    done = subprocess.run(
        [sys.executable, "-m", "speedrift", "run", "waits"],
        cwd=second,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done


def test_the_live_directory_is_private() -> None:
    supervisor.admit(Path("/nowhere"), "t", "shell", Limits())
    assert statehome.live_dir().stat().st_mode & 0o077 == 0
