"""The observer: one snapshot per repo, incremental (no git process for an unchanged repo), never
changing a repo, every failure captured in the snapshot instead of ending the cycle."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from speedrift.control.controlfile import write_control
from speedrift.control.ecosystem.load import Ecosystem, parse_ecosystem
from speedrift.control.observe.observer import Observer
from speedrift.graph.store import init_graph_dir
from speedrift.register.record import RepoSnapshot
from speedrift.times import format_time
from tests.builders import task
from tests.gitrepo import commit_file, make_repo, sh_git

NOW = datetime.now(UTC)
REAL_GIT = shutil.which("git") or "/usr/bin/git"
HOLDER = """
import fcntl, os, sys, time
folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
fd = os.open(os.path.join(folder, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
open(os.path.join(folder, "pid"), "w").write(str(os.getpid()))
print("ready", flush=True)
time.sleep(120)
"""


def write_graph(repo: Path, *nodes: dict[str, Any], raw: bytes = b"", folder: str = ".workgraph") -> None:
    target = repo / folder
    target.mkdir(exist_ok=True)
    (target / "graph.jsonl").write_bytes(b"".join(orjson.dumps(n) + b"\n" for n in nodes) + raw)


def ecosystem(root: Path, names: list[str], extra: str = "") -> Ecosystem:
    text = "".join(f'[repos.{name}]\npath = "{name}"\n' for name in names) + extra
    path = root / "ecosystem.toml"
    path.write_text(text)
    return parse_ecosystem(text, path)


@pytest.fixture
def git_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """Put a `git` first on PATH that records the directory of every call, then runs the real git.

    Once a file ``hang`` exists in tmp_path, git calls in a repo named *slowrepo* hang instead: for
    30 s, in a subshell holding git's stdout that leaves ``hang-ran-out`` behind if it lasts them."""
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "git-calls.log"
    script = shim / "git"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$PWD" >> "{log}"\n'
        f'if [ -e "{tmp_path / "hang"}" ]; then case "$PWD" in *slowrepo*)\n'
        f'  (sleep 30; touch "{tmp_path / "hang-ran-out"}") & wait; exit 1;; esac; fi\n'
        f'exec "{REAL_GIT}" "$@"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")

    def calls() -> list[str]:
        lines = log.read_text().splitlines() if log.exists() else []
        log.write_text("")
        return [Path(line).name for line in lines]

    return calls


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def hold_service(repo: Path, procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo / ".speedrift" / "service")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    procs.append(proc)
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- a fleet in every state


def build_fleet(root: Path, procs: list[subprocess.Popen[str]]) -> list[str]:
    old = format_time(NOW - timedelta(days=20))
    make_repo(root / "clean")
    write_graph(make_repo(root / "ready"), task("a", priority=50), task("b"))
    dirty = make_repo(root / "dirty", {"app.py": "x = 1\n"})
    (dirty / "app.py").write_text("x = 2\n")
    untracked = make_repo(root / "untracked")
    (untracked / "scratch.txt").write_text("s\n")
    (untracked / "sub").mkdir()
    (untracked / "sub" / "more.txt").write_text("m\n")
    staged = make_repo(root / "staged")
    (staged / "new.py").write_text("y = 1\n")
    sh_git(staged, "add", "new.py")
    worker = {"pid": dead_pid(), "host": socket.gethostname()}
    write_graph(make_repo(root / "deadclaim"), task("w", "in-progress", speedrift={"worker": worker}))
    write_graph(make_repo(root / "missingdep"), task("x", after=["ghost"]))
    write_graph(make_repo(root / "failedblocker"), task("f", "failed"), task("g", after=["f"]))
    write_graph(
        make_repo(root / "stale"), task("s", created_at=old), task("p", "in-progress", started_at=old)
    )
    write_graph(make_repo(root / "malformed"), task("ok"), raw=b"{broken line\n")
    wg = make_repo(root / "newdir", graph=False)
    write_graph(wg, task("n"), folder=".wg")
    make_repo(root / "nograph", graph=False)
    detached = make_repo(root / "detached")
    sh_git(detached, "checkout", "-q", "--detach", "HEAD")
    served = make_repo(root / "served")
    write_graph(served, task("r"))
    hold_service(served, procs)
    (served / ".speedrift" / "service" / "heartbeat.json").write_bytes(
        orjson.dumps({"at": format_time(NOW), "running": ["r"]})
    )
    runs = make_repo(root / "withruns")
    for number, state in ((1, "failed"), (2, "failed")):
        folder = runs / ".speedrift" / "runs" / "t" / str(number)
        folder.mkdir(parents=True)
        (folder / "attempt.json").write_bytes(
            orjson.dumps({"state": state, "failure": "transient", "updated": format_time(NOW)})
        )
        (folder / "evidence.json").write_bytes(orjson.dumps({"task": "t", "gates": []}))
    controlled = make_repo(root / "controlled")
    write_control(controlled, "supervise", owner="ops", lease_ttl=None, actor="ops", reason=None, now=NOW)
    corrupt = make_repo(root / "corruptcontrol")
    (corrupt / ".speedrift").mkdir()
    (corrupt / ".speedrift" / "control.json").write_text("{oops")
    origin = make_repo(root / "origin")
    subprocess.run(["git", "clone", "-q", str(origin), str(root / "tracking")], check=True)
    sh_git(root / "tracking", "config", "user.name", "T")
    sh_git(root / "tracking", "config", "user.email", "t@example.invalid")
    commit_file(root / "tracking", "mine.txt", "m\n")
    packed = make_repo(root / "packed")
    sh_git(packed, "gc", "-q")
    unborn = root / "unborn"
    unborn.mkdir()
    sh_git(unborn, "init", "-q", "-b", "main")
    init_graph_dir(unborn)
    write_graph(make_repo(root / "mentions"), task("m", title="blocked on the ready repo and dirty"))
    return [
        "clean", "ready", "dirty", "untracked", "staged", "deadclaim", "missingdep", "failedblocker", "stale",
        "malformed", "newdir", "nograph", "detached", "served", "withruns", "controlled", "corruptcontrol",
        "tracking", "packed", "unborn", "mentions",
    ]  # fmt: skip


def tree_state(root: Path) -> dict[str, tuple[bool, int, int, str]]:
    """Every file and directory under root: (is_dir, mtime_ns, size, content hash)."""
    found: dict[str, tuple[bool, int, int, str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            is_dir = path.is_dir() and not path.is_symlink()
            digest = "" if is_dir else hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (is_dir, info.st_mtime_ns, info.st_size, digest)
    return found


def test_observing_twenty_repos_in_every_state_changes_no_byte_and_no_mtime(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    names = build_fleet(tmp_path, holders)
    assert len(names) >= 20
    before = {name: tree_state(tmp_path / name) for name in names}
    observer = Observer(ecosystem(tmp_path, names), full_rescan_every=2)
    cold = observer.observe(NOW)
    warm = observer.observe(NOW + timedelta(seconds=30))
    full = observer.observe(NOW + timedelta(seconds=60))
    after = {name: tree_state(tmp_path / name) for name in names}
    for name in names:
        assert after[name] == before[name], f"observing {name} changed it"

    assert list(cold) == names
    assert all(not s.reused for s in cold.values())
    assert all(s.reused for s in warm.values())
    assert all(not s.reused for s in full.values())
    assert [warm[n].fingerprint for n in names] == [cold[n].fingerprint for n in names]
    check_fleet_snapshots(cold)


def check_fleet_snapshots(s: dict[str, RepoSnapshot]) -> None:
    def git(name: str) -> Any:
        state = s[name].git
        assert state is not None, name
        return state

    def graph(name: str) -> Any:
        state = s[name].graph
        assert state is not None, name
        return state

    assert s["clean"].errors == () and git("clean").dirty_files == 0 and graph("clean").counts == {}
    assert [b.id for b in graph("ready").ready] == ["a", "b"]
    assert git("dirty").dirty_files == 1 and git("dirty").dirty_paths == ("app.py",)
    assert git("untracked").untracked_files == 2 and git("untracked").dirty_files == 0
    assert git("staged").dirty_files == 1
    assert graph("deadclaim").dead_claims == ("w",)
    assert graph("missingdep").missing_dependencies == (("x", "ghost"),)
    assert graph("failedblocker").failed_blockers == 1
    assert graph("stale").stale_open == 1 and graph("stale").stale_in_progress == 1
    assert graph("malformed").problems == 1
    assert graph("newdir").graph_dir == ".wg"
    assert s["nograph"].graph is None
    assert git("detached").branch is None and git("detached").head is not None
    assert s["served"].service.running and s["served"].service.active_agents == 1
    assert s["withruns"].attempts.failed == 2 and s["withruns"].attempts.repeated_failures == ("t",)
    assert s["controlled"].control.mode == "supervise" and s["controlled"].control.lease_owner == "ops"
    assert s["corruptcontrol"].control.mode == "observe"
    assert any("control.json" in e for e in s["corruptcontrol"].errors)
    assert (git("tracking").upstream, git("tracking").ahead, git("tracking").behind) == ("origin/main", 1, 0)
    assert git("packed").last_commit_at is not None
    assert git("unborn").head is None and graph("unborn").counts == {}
    assert graph("mentions").mentions == ("dirty", "ready")
    for name, snap in s.items():
        if name not in ("corruptcontrol",):
            assert snap.errors == (), (name, snap.errors)


# ---------------------------------------------------------------- incremental


def test_an_unchanged_repo_costs_no_git_process(tmp_path: Path, git_log: Callable[[], list[str]]) -> None:
    for name in ("a", "b", "c"):
        write_graph(make_repo(tmp_path / name), task("t"))
    observer = Observer(ecosystem(tmp_path, ["a", "b", "c"]))
    git_log()
    observer.observe(NOW)
    assert sorted(set(git_log())) == ["a", "b", "c"]
    again = observer.observe(NOW + timedelta(seconds=30))
    assert git_log() == []
    assert all(snap.reused for snap in again.values())


def test_a_commit_is_seen_next_cycle_and_only_that_repo_is_read_again(
    tmp_path: Path, git_log: Callable[[], list[str]]
) -> None:
    for name in ("a", "b"):
        make_repo(tmp_path / name)
    observer = Observer(ecosystem(tmp_path, ["a", "b"]))
    first = observer.observe(NOW)
    commit_file(tmp_path / "a", "x.txt", "x\n")
    git_log()
    second = observer.observe(NOW + timedelta(seconds=30))
    assert set(git_log()) == {"a"}
    assert second["a"].git is not None and first["a"].git is not None
    assert second["a"].git.head != first["a"].git.head and not second["a"].reused
    assert second["b"].reused and second["a"].fingerprint != first["a"].fingerprint


def test_a_graph_change_rereads_the_graph_without_a_git_process(
    tmp_path: Path, git_log: Callable[[], list[str]]
) -> None:
    repo = make_repo(tmp_path / "a")
    write_graph(repo, task("one"))
    observer = Observer(ecosystem(tmp_path, ["a"]))
    observer.observe(NOW)
    write_graph(repo, task("one"), task("two"))
    git_log()
    snap = observer.observe(NOW + timedelta(seconds=30))["a"]
    assert git_log() == []
    assert snap.graph is not None and snap.graph.ready_count == 2 and not snap.reused


def test_time_moves_reused_readings_forward(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "a")
    write_graph(repo, task("w", "in-progress", started_at=format_time(NOW)))
    observer = Observer(ecosystem(tmp_path, ["a"]))
    observer.observe(NOW)
    later = observer.observe(NOW + timedelta(hours=2))["a"]
    assert later.reused and later.observed_at == NOW + timedelta(hours=2)
    assert later.graph is not None and later.graph.in_progress[0].age_seconds == 7200.0
    stale = observer.observe(NOW + timedelta(days=3, seconds=1))["a"]
    assert stale.graph is not None and stale.graph.stale_in_progress == 1  # the horizon passed: reread


def test_working_tree_edits_are_seen_by_the_full_rescan_at_the_latest(
    tmp_path: Path, git_log: Callable[[], list[str]]
) -> None:
    repo = make_repo(tmp_path / "a", {"deep/file.py": "x = 1\n"})
    observer = Observer(ecosystem(tmp_path, ["a"]), full_rescan_every=3)
    observer.observe(NOW)
    (repo / "deep" / "file.py").write_text("x = 2\n")  # touches no git file: the documented bound
    one = observer.observe(NOW + timedelta(seconds=30))["a"]
    assert one.reused and one.git is not None and one.git.dirty_files == 0
    (repo / "top.txt").write_text("new top-level file\n")  # the repo directory's mtime changes
    two = observer.observe(NOW + timedelta(seconds=60))["a"]
    assert not two.reused and two.git is not None
    assert (two.git.dirty_files, two.git.untracked_files) == (1, 1)
    (repo / "deep" / "other.py").write_text("y\n")
    three = observer.observe(NOW + timedelta(seconds=90))["a"]  # cycle 3 of every 3: full rescan
    assert not three.reused and three.git is not None and three.git.untracked_files == 2


def test_a_killed_service_is_seen_although_no_file_changed(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    repo = make_repo(tmp_path / "a")
    proc = hold_service(repo, holders)
    observer = Observer(ecosystem(tmp_path, ["a"]))
    assert observer.observe(NOW)["a"].service.running
    proc.kill()
    proc.wait()
    snap = observer.observe(NOW + timedelta(seconds=30))["a"]
    assert snap.reused and not snap.service.running


def test_a_mode_change_is_seen_next_cycle(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "a")
    observer = Observer(ecosystem(tmp_path, ["a"]))
    assert observer.observe(NOW)["a"].control.mode == "observe"
    write_control(repo, "autonomous", owner="x", lease_ttl=None, actor="x", reason=None, now=NOW)
    assert observer.observe(NOW + timedelta(seconds=1))["a"].control.mode == "autonomous"


# ---------------------------------------------------------------- failures stay in the snapshot


def test_a_hanging_git_times_out_into_the_snapshot_and_the_others_are_observed(
    tmp_path: Path, git_log: Callable[[], list[str]]
) -> None:
    make_repo(tmp_path / "slowrepo")
    make_repo(tmp_path / "fine")
    (tmp_path / "hang").touch()
    observer = Observer(ecosystem(tmp_path, ["slowrepo", "fine"]), timeout_s=1)
    snaps = observer.observe(NOW)
    # back well before the hanging git's 30 s, by the hang's own account: its whole group was
    # ended, it never got to mark the end of its 30 s (waiting for it or its pipe would have)
    assert not (tmp_path / "hang-ran-out").exists()
    assert snaps["slowrepo"].errors == ("git: timed out after 1s",) and snaps["slowrepo"].git is None
    assert snaps["fine"].errors == () and snaps["fine"].git is not None
    git_log()
    assert observer.observe(NOW)["slowrepo"].errors == ("git: timed out after 1s",)  # no cache: tried again


def test_missing_paths_and_directories_without_git_are_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    make_repo(tmp_path / "ok")
    snaps = Observer(ecosystem(tmp_path, ["gone", "plain", "ok"])).observe(NOW)
    assert snaps["gone"].exists is False and snaps["gone"].git is None
    assert snaps["plain"].exists and snaps["plain"].errors == ("not a git repository (no .git)",)
    assert snaps["ok"].errors == ()


def test_discovered_repos_join_on_a_full_rescan(tmp_path: Path) -> None:
    make_repo(tmp_path / "declared")
    eco = ecosystem(tmp_path, ["declared"], "[discovery]\nenabled = true\n")
    observer = Observer(eco, full_rescan_every=2)
    assert list(observer.observe(NOW)) == ["declared"]
    make_repo(tmp_path / "found")
    assert list(observer.observe(NOW)) == ["declared"]
    assert list(observer.observe(NOW)) == ["declared", "found"]
    assert [e.source for e in observer.entries] == ["ecosystem-toml", "autodiscovered"]


def test_a_directory_that_becomes_a_repo_is_seen_next_cycle(tmp_path: Path) -> None:
    (tmp_path / "later").mkdir()
    observer = Observer(ecosystem(tmp_path, ["later"]), full_rescan_every=0)
    assert observer.observe(NOW)["later"].errors == ("not a git repository (no .git)",)
    shutil.rmtree(tmp_path / "later")
    make_repo(tmp_path / "later")
    snap = observer.observe(NOW + timedelta(seconds=30))["later"]
    assert snap.errors == () and snap.git is not None and snap.git.branch == "main"
