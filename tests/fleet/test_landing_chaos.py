"""kill -9 chaos: the service (its whole process tree), its attempts' worker processes and their agents
are killed at random instants, right as the target branch moves, and at every named landing step
(``$SPEEDRIFT_TEST_KILL_AT``), again and again; then a service runs undisturbed until the work is done.

Checked at the end: no task landed twice (each task's output line is once on the target, one commit
carries its trailer), every task is done and none is claimed, no git lock file is left and no step
marker, no rebase is left in progress, ``git fsck`` is clean, and the target's tip is the last tip
the merge queue logged, with every commit on it produced by a logged landing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from speedrift import records
from speedrift.cli.chaos.ecosystem import CONFIG, WRITE  # the chaos run's own workshop
from speedrift.fleet import crash_recovery
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.repo import gitlocks, landing, landings, worktrees
from speedrift.times import now_utc
from tests.gitrepo import make_repo, sh_git

TASKS = 12  # to begin with; while the chaos lasts, new ones keep at least PENDING waiting
PENDING = 6
MAX_TASKS = 60
MIN_KILLS = 50
CHAOS_BUDGET_S = 65.0  # kills stop here (or at MIN_KILLS + 10); then the undisturbed run
SETTLE_BUDGET_S = 20.0
LIFE_S = 3.0  # how long a service lives (after its first heartbeat) in a random life
# how each service life ends: killed at a named landing step (every attempt that reaches it dies
# there), with attempts' processes killed at random instants, the instant main moves, or start-up
LIVES = ("step", "random", "step", "moved", "step", "random", "step", "startup")


# --- processes --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proc:
    name: str
    depth: int  # below the service
    started: int  # clock ticks since boot: with the pid, names this one process


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(command name, parent pid, start time) of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return stat[stat.find("(") + 1 : stat.rfind(")")], int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, Proc]:
    """Every live process under ``root``."""
    children: dict[int, list[tuple[int, str, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            children.setdefault(found[1], []).append((int(entry), found[0], found[2]))
    tree: dict[int, Proc] = {}
    frontier = [(root, 0)]
    while frontier:
        pid, depth = frontier.pop()
        for child, name, started in children.get(pid, []):
            tree[child] = Proc(name, depth + 1, started)
            frontier.append((child, depth + 1))
    return tree


def kill_tree(service: subprocess.Popen[bytes]) -> None:
    """SIGKILL the service and everything under it (git and agents lead their own sessions, so a
    group kill would miss them): frozen first, so nothing spawns between the listing and the kill."""
    service.send_signal(signal.SIGSTOP)
    frozen: dict[int, Proc] = {}
    for _ in range(5):
        fresh = {pid: proc for pid, proc in descendants(service.pid).items() if pid not in frozen}
        if not fresh:
            break
        for pid, proc in fresh.items():
            _signal(pid, proc, signal.SIGSTOP)
        frozen |= fresh
    service.kill()
    for pid, proc in frozen.items():
        _signal(pid, proc, signal.SIGKILL)
    service.wait(timeout=30)


def _signal(pid: int, proc: Proc, sig: signal.Signals) -> bool:
    """Signal exactly the process listed (a pidfd, its start time checked: a pid that was reused
    meanwhile is left alone — this test signals only what it started)."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return False
    try:
        found = _stat(pid)
        if found is None or found[2] != proc.started:
            return False
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
    return True


SPARE = """
import json, os, sys
from speedrift.cli import app, service_cmds  # the imports, done while the previous service lives
import speedrift.fleet.service, speedrift.fleet.workers, speedrift.gates.suite
line = sys.stdin.readline().strip()
if not line:
    sys.exit(0)
os.environ.update(json.loads(line))
sys.exit(app.main(sys.argv[1:]))
"""


class Spare:
    """A service process started ahead, its interpreter and imports ready, waiting to be told to run:
    a service life then costs its own start-up only."""

    def __init__(self, graph_dir: Path, repo: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in (landing.KILL_AT_ENV, landing.KILL_LOG_ENV)}
        argv = [sys.executable, "-c", SPARE, "--dir", str(graph_dir), "service", "run"]
        self.proc = subprocess.Popen(
            argv,
            cwd=repo,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def go(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(env).encode() + b"\n")
        self.proc.stdin.close()
        return self.proc

    def discard(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # an empty line: it exits
        self.proc.wait(timeout=30)


def wait_ready(repo: Path, service: subprocess.Popen[bytes], spawned: datetime) -> None:
    """Until the service wrote its first heartbeat (recovery done, the loop running)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and service.poll() is None:
        beat = records.read_heartbeat(repo)
        if beat is not None and beat.pid == service.pid and (beat.at_time or spawned) >= spawned:
            return
        time.sleep(0.01)


def kill_an_attempt(service: int, rng: random.Random) -> str | None:
    """SIGKILL one attempt's own process — its worker, or its agent — if one runs now."""
    tree = descendants(service)
    workers = [p for p, proc in tree.items() if proc.depth >= 2 and proc.name.startswith("python")]
    agents = [p for p, proc in tree.items() if proc.name in ("sh", "sleep")]
    victims, kind = (workers, "worker") if workers and rng.random() < 0.5 else (agents, "agent")
    if victims:
        victim = rng.choice(victims)
        if _signal(victim, tree[victim], signal.SIGKILL):
            return kind
    return None


def ref_of(repo: Path) -> str:
    try:
        return (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    except OSError:
        return sh_git(repo, "rev-parse", "main")


def adding(spec: ops.NewTask) -> Callable[[Graph, datetime], ops.Mutation]:
    return lambda graph, now: ops.add_task(graph, spec, now=now, actor="test")


# --- the test -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_at_random_instants_and_every_landing_step_never_lands_twice_or_leaves_a_mess(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    seed = int(os.environ.get("SPEEDRIFT_CHAOS_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    repo = make_repo(tmp_path / "repo", {"README.md": "# chaos\n", "speedrift.toml": CONFIG})
    store = GraphStore(repo / ".workgraph")
    ids: list[str] = []

    def more_work(count: int) -> None:
        for _ in range(count):
            ids.append(f"t{len(ids):02d}")
            store.mutate(adding(ops.NewTask(ids[-1], task_id=ids[-1], exec_command=WRITE)))

    more_work(TASKS)

    kills = {"service tree": 0, "as main moved": 0, "at a step": 0, "worker": 0, "agent": 0}
    kill_log = tmp_path / "killed-at-steps"
    life = 0
    spare = Spare(store.directory, repo)

    def died_at() -> list[str]:
        """The named steps attempts died at so far, one entry per death (the hook's log)."""
        return [line.split()[0] for line in kill_log.read_text().splitlines()] if kill_log.exists() else []

    def done_enough() -> bool:
        return sum(kills.values()) + len(died_at()) >= MIN_KILLS + 10 and set(died_at()) == set(landing.STEPS)

    while not done_enough() and time.monotonic() - started < CHAOS_BUDGET_S:
        life += 1
        mode = LIVES[life % len(LIVES)]
        pending = [t for t, task in store.load().tasks.items() if task.get("status") != "done"]
        if len(pending) < PENDING and len(ids) < MAX_TASKS:
            more_work(PENDING - len(pending))  # never run out of landings to kill
        kill_at = None
        if mode == "step":  # the next step no attempt has died at yet, else each in turn
            missing = [step for step in landing.STEPS if step not in died_at()]
            kill_at = missing[0] if missing else landing.STEPS[life % len(landing.STEPS)]
        spawned = now_utc()
        step_env = {landing.KILL_AT_ENV: kill_at, landing.KILL_LOG_ENV: str(kill_log)} if kill_at else {}
        deaths = len(died_at())
        service = spare.go(step_env)
        spare = Spare(store.directory, repo)  # the next one gets ready meanwhile
        if mode == "startup":  # killed while it starts and recovers
            time.sleep(rng.uniform(0.0, 1.5))
        else:
            wait_ready(repo, service, spawned)
            before, until = ref_of(repo), time.monotonic() + (LIFE_S if mode == "random" else 5.0)
            next_kill = time.monotonic() + rng.uniform(0.03, 0.2)
            while time.monotonic() < until and service.poll() is None:
                if mode == "moved" and ref_of(repo) != before:
                    break  # the instant the target moved
                if mode == "step" and len(died_at()) > deaths:
                    time.sleep(rng.uniform(0.0, 0.3))  # an attempt died at the step; more may follow
                    break
                if mode == "random" and time.monotonic() >= next_kill:
                    next_kill = time.monotonic() + rng.uniform(0.03, 0.2)
                    kind = kill_an_attempt(service.pid, rng)
                    if kind:
                        kills[kind] += 1
                time.sleep(0.005)
            if mode == "random":
                time.sleep(rng.uniform(0.0, 0.3))
        # the service died at a step itself (attempts in threads), or is killed now with its tree
        died_itself = service.poll() is not None and service.returncode == -signal.SIGKILL
        moved = mode == "moved" and service.poll() is None
        kill_tree(service)
        if not died_itself:
            kills["as main moved" if moved else "service tree"] += 1
    spare.discard()
    kills["at a step"] = len(died_at())
    steps_hit = sorted(set(died_at()), key=landing.STEPS.index)
    chaos_s = time.monotonic() - started
    total = sum(kills.values())

    # an undisturbed service finishes the work
    service = Spare(store.directory, repo).go({})
    deadline = time.monotonic() + SETTLE_BUDGET_S
    while time.monotonic() < deadline:
        tasks = store.load().tasks
        if all(tasks[t].get("status") == "done" for t in ids):
            break
        time.sleep(0.1)
    service.send_signal(signal.SIGTERM)
    try:
        service.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill_tree(service)
    # a git step a killed process had started runs on in its own session; once it is over, the
    # next recovery (a later tick) clears what it left
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(not m.over() for m in gitlocks.markers(repo)):
        time.sleep(0.02)
    crash_recovery.recover(repo, store)
    elapsed = time.monotonic() - started
    print(
        f"\nchaos: seed {seed}, {life} services started, {len(ids)} tasks, {total} kills {kills}, "
        f"at steps {steps_hit}, "
        f"{chaos_s:.1f}s of chaos, {elapsed:.1f}s in all"
    )

    assert total >= MIN_KILLS, f"only {total} kills in {chaos_s:.1f}s (seed {seed})"
    assert steps_hit == list(landing.STEPS), f"attempts died at {steps_hit} only (seed {seed})"
    tasks = store.load().tasks
    unfinished = {
        t: (tasks[t].get("status"), tasks[t].get("speedrift")) for t in ids if tasks[t]["status"] != "done"
    }
    assert unfinished == {}, f"seed {seed}"
    for task_id in ids:  # landed exactly once
        assert sh_git(repo, "show", f"main:out/{task_id}.txt").splitlines() == [task_id], f"seed {seed}"
    trailers = sh_git(repo, "log", "main", "--format=%(trailers:key=Speedrift-Task,valueonly)").split()
    assert sorted(trailers) == sorted(ids), f"seed {seed}"
    locks = [p for p in (repo / ".git").rglob("*.lock") if p.name != "speedrift-worktrees.lock"]
    assert locks == [] and gitlocks.markers(repo) == [], f"seed {seed}"
    for manifest in worktrees.read_manifests(repo):
        assert not landing.rebase_in_progress(Path(manifest.path)) or manifest.state == "quarantined"
    fsck = subprocess.run(["git", "fsck", "--no-dangling", "--no-progress"], cwd=repo, capture_output=True)
    assert fsck.returncode == 0, fsck.stderr
    logged = landings.read(repo, None)
    assert logged and logged[-1].new == ref_of(repo), f"seed {seed}"
    first = sh_git(repo, "rev-list", "--max-parents=0", "main")
    graph_commit = sh_git(repo, "rev-list", "--reverse", "main").split()[1]
    assert first and landings.foreign_commits(repo, "main", graph_commit, ref_of(repo), logged) == []
