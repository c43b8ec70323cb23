"""kill -9 of the hub, the services, their workers and the agents, at random instants and at each
landing step; then the undisturbed supervisors settle the work.

Job: ``speedrift hub up`` runs over the chaos ecosystem (:mod:`.ecosystem`) in autonomous mode:
it dispatches ``speedrift run`` workers into ``factory`` and keeps ``line``'s service running, whose
forkserver forks a worker per attempt. Hub after hub is started and dies, each life ending one of
several ways: killed at a random instant while random workers, agents and services die under it;
with ``$SPEEDRIFT_TEST_KILL_AT`` naming a landing step, so every attempt that reaches that step
kills itself there (:data:`speedrift.repo.landing.STEPS`, those not hit yet first); the whole run's
process tree killed the instant a target branch moved (a machine crash); the service's whole tree
killed; or the hub killed while it starts. New tasks keep arriving, so there is always a landing
to interrupt. Then everything is killed once more, a hub runs undisturbed until the work is done
(or its settling time ends), and every supervisor is stopped the ordinary way.

Invariant: only the run's own processes are signalled (:mod:`.proctree`); every kill is counted
when it was dealt, every step death from the log the dying process wrote; what the kills left is
judged afterwards by :mod:`.invariants` from the files, the refs and what the hubs printed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from speedrift.cli.chaos import forbidden, proctree
from speedrift.cli.chaos.ecosystem import WORKSHOPS, Workshop, git
from speedrift.cli.chaos.figures import Figures
from speedrift.fleet import service
from speedrift.register.ledger import Ledger
from speedrift.repo import landing

PENDING = 4  # open chaos tasks kept waiting in each workshop while the chaos lasts
MAX_TASKS = 120  # per workshop
LIVES = ("random", "service", "step", "random", "moved", "step", "random", "startup", "step")
VICTIMS = {"worker": 0.4, "agent": 0.45, "service": 0.15}
# a hub started ahead: the interpreter and the imports are paid while the previous hub lives; then
# it reads its life's environment and output file from stdin and runs `hub up` (an empty line: exit)
SPARE_HUB = """
import json, os, sys
from speedrift.cli import app, hub_cmds
import speedrift.control.daemon, speedrift.control.cycle, speedrift.fleet.service
line = sys.stdin.readline().strip()
if not line:
    sys.exit(0)
order = json.loads(line)
os.environ.update(order["env"])
out = os.open(order["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(out, 1)
os.dup2(out, 2)
sys.exit(app.main(sys.argv[1:]))
"""


@dataclass
class Fleet:
    shop: Workshop
    figures: Figures
    rng: random.Random
    env: dict[str, str]
    logs: Path
    kill_log: Path
    lives: int = 0
    hub: subprocess.Popen[bytes] | None = None
    spare: subprocess.Popen[bytes] | None = None  # the next hub, started ahead, imports done
    tips: dict[str, set[str]] = field(default_factory=dict)  # workshop -> attempt-branch tips seen
    seen_cycles: set[str] = field(default_factory=set)  # cycle ids seen in the ledger meanwhile
    last_sample: float = 0.0

    # -- processes -------------------------------------------------------------------------------
    def start_hub(self, kill_at: str | None) -> subprocess.Popen[bytes]:
        """The next hub life: the spare (imports done) is told to run `hub up`, with
        ``$SPEEDRIFT_TEST_KILL_AT`` naming ``kill_at`` for everything it starts; a new spare gets
        ready meanwhile."""
        extra = {landing.KILL_AT_ENV: kill_at, landing.KILL_LOG_ENV: str(self.kill_log)} if kill_at else {}
        self.lives += 1
        spare = self.spare or self.new_spare()
        assert spare.stdin is not None
        spare.stdin.write(json.dumps({"env": extra, "out": str(self.hub_out())}).encode() + b"\n")
        spare.stdin.close()
        self.hub, self.spare = spare, self.new_spare()
        return spare

    def new_spare(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in self.env.items() if k not in (landing.KILL_AT_ENV, landing.KILL_LOG_ENV)}
        argv = [sys.executable, "-c", SPARE_HUB, "hub", "up", "--no-dashboard", "--interval", "0.5"]
        return subprocess.Popen(
            argv,
            cwd=self.shop.eco,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def discard_spare(self) -> None:
        if self.spare is not None:
            assert self.spare.stdin is not None
            self.spare.stdin.close()  # an empty line: it exits without running anything
            try:
                self.spare.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.spare.kill()
                self.spare.wait()
            self.spare = None

    def hub_out(self) -> Path:
        return self.logs / f"hub-{self.lives:03d}.out"

    def wait_first_cycle(self, hub: subprocess.Popen[bytes]) -> None:
        """Until the hub printed its first cycle (recovery done, the loop running), or 15s."""
        until = time.monotonic() + 15
        while time.monotonic() < until and hub.poll() is None:
            try:
                if b"\n" in self.hub_out().read_bytes():
                    return
            except OSError:
                pass
            self.pause(0.05)

    def kill_hub(self) -> None:
        if self.hub is None:
            return
        if self.hub.poll() is None:
            self.hub.kill()
            self.figures.kills["hub"] += 1
        self.hub.wait()
        self.hub = None

    def kill_everything(self) -> None:
        """A machine crash: every process of the run, frozen first, then killed."""
        me = os.getpid()
        if proctree.freeze_and_kill(proctree.descendants(me).values(), under=me):
            self.figures.kills["whole tree"] += 1
        for proc in (self.hub, self.spare):
            if proc is not None:
                proc.wait()
        self.hub = self.spare = None  # the next life starts a new spare
        self.reap()

    def reap(self) -> None:
        proctree.reap_orphans(keep=[p.pid for p in (self.hub, self.spare) if p is not None])

    def tree(self) -> tuple[dict[int, proctree.Proc], dict[str, list[proctree.Proc]]]:
        procs = proctree.descendants(os.getpid())
        hubs = {self.hub.pid} if self.hub is not None else set()
        kinds: dict[str, list[proctree.Proc]] = {}
        for proc in procs.values():
            if self.spare is not None and proc.pid == self.spare.pid:
                continue  # the next hub, waiting: not a victim
            kind = proctree.kind_of(proc, procs, hubs)
            if kind is not None:
                kinds.setdefault(kind, []).append(proc)
        return procs, kinds

    def kill_one(self) -> None:
        """SIGKILL one random worker, agent or service, if one runs now."""
        _, kinds = self.tree()
        present = [kind for kind in VICTIMS if kinds.get(kind)]
        if not present:
            return
        kind = self.rng.choices(present, weights=[VICTIMS[k] for k in present])[0]
        if proctree.signal_exact(self.rng.choice(kinds[kind]), signal.SIGKILL):
            self.figures.kills[kind] += 1

    def kill_service_tree(self) -> bool:
        _, kinds = self.tree()
        for proc in kinds.get("service", []):
            below = list(proctree.descendants(proc.pid).values())
            if proctree.freeze_and_kill([proc, *below], under=proc.pid):
                self.figures.kills["service"] += 1
                return True
        return False

    # -- the work and what is watched meanwhile --------------------------------------------------
    def keep_work_coming(self) -> None:
        for name in WORKSHOPS:
            graph = self.shop.store(name).load()
            mine = [t for t in self.shop.tasks if self.shop.workshop_of(t) == name]
            pending = [t for t in mine if graph.tasks.get(t, {}).get("status") != "done"]
            for _ in range(max(0, PENDING - len(pending))):
                if len(mine) < MAX_TASKS:
                    self.shop.add_task(name)
                    mine.append("")

    def sample(self, force: bool = False) -> None:
        """What must never be lost, seen now: attempt-branch tips and ledger cycle ids."""
        if not force and time.monotonic() - self.last_sample < 0.5:
            return
        self.last_sample = time.monotonic()
        for name in WORKSHOPS:
            out = git(
                self.shop.repo(name),
                "for-each-ref",
                "--format=%(objectname)",
                "refs/heads/speedrift/",
                check=False,
            )
            self.tips.setdefault(name, set()).update(out.split())
        try:
            records = Ledger(self.shop.hub).read(last=30)
        except OSError:
            return
        self.seen_cycles.update(str(r["cycle_id"]) for r in records if r.get("cycle_id"))

    def heads(self) -> dict[str, str]:
        """Each workshop's target tip, read from its ref file (git only when the ref is packed)."""
        tips = {}
        for name in WORKSHOPS:
            repo = self.shop.repo(name)
            try:
                tips[name] = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
            except OSError:
                tips[name] = git(repo, "rev-parse", "main", check=False).strip()
        return tips

    def step_deaths(self) -> list[str]:
        try:
            return [line.split()[0] for line in self.kill_log.read_text().splitlines() if line.strip()]
        except OSError:
            return []

    def pause(self, seconds: float) -> None:
        """Sleep while watching (sampling, reaping)."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.sample()
            self.reap()
            time.sleep(min(0.05, max(0.0, until - time.monotonic())))

    # -- lives -----------------------------------------------------------------------------------
    def life(self, mode: str) -> None:
        kill_at = None
        if mode == "step":  # a step no attempt died at yet, else any
            died = set(self.step_deaths())
            kill_at = self.rng.choice([step for step in landing.STEPS if step not in died] or landing.STEPS)
        hub = self.start_hub(kill_at)
        if mode == "startup":
            self.pause(self.rng.uniform(0.0, 1.5))
            self.kill_hub()
            return
        self.wait_first_cycle(hub)
        if mode == "random":
            until = time.monotonic() + self.rng.uniform(1.5, 4.0)
            while time.monotonic() < until and hub.poll() is None:
                self.pause(self.rng.uniform(0.15, 0.5))
                self.kill_one()
            self.kill_hub()
            return
        if mode == "service":
            until = time.monotonic() + 6.0
            while time.monotonic() < until and service.running_pid(self.shop.repo("line")) is None:
                self.pause(0.1)
            self.pause(self.rng.uniform(0.2, 1.5))
            self.kill_service_tree()
            self.pause(self.rng.uniform(0.5, 1.5))
            self.kill_hub()
            return
        if mode == "moved":
            before, until = self.heads(), time.monotonic() + 6.0
            while time.monotonic() < until and self.heads() == before:
                self.pause(0.01)
            self.kill_everything()  # the instant a target moved: the machine goes down
            return
        deaths, until = len(self.step_deaths()), time.monotonic() + 10.0
        while time.monotonic() < until and len(self.step_deaths()) == deaths:
            self.pause(0.05)
        self.pause(self.rng.uniform(0.0, 0.4))  # more attempts may reach the step meanwhile
        if self.rng.random() < 0.5:
            self.kill_everything()
        else:
            self.kill_hub()

    def chaos(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.keep_work_coming()
            forbidden.hostile_hub(self.figures, self.shop.repo("factory"), self.shop.repo("billing"))
            self.life(LIVES[self.lives % len(LIVES)])
        deaths = self.step_deaths()
        self.figures.kills["at a landing step"] += len(deaths)
        self.figures.steps_hit = [step for step in landing.STEPS if step in deaths]

    # -- settling --------------------------------------------------------------------------------
    def unfinished(self) -> list[str]:
        graphs = {name: self.shop.store(name).load() for name in WORKSHOPS}
        return [
            t
            for t in self.shop.tasks
            if graphs[self.shop.workshop_of(t)].tasks.get(t, {}).get("status") != "done"
        ]

    def settle(self, seconds: float) -> None:
        """A crash, then an undisturbed hub until the work is done; then the ordinary stops."""
        self.kill_everything()
        self.start_hub(None)
        until = time.monotonic() + seconds
        while time.monotonic() < until and self.unfinished():
            self.pause(0.3)
        self.figures.hub_lives = self.lives
        left = self.unfinished()
        if left:
            self.figures.notes.append(
                f"settling: {len(left)} of {len(self.shop.tasks)} chaos tasks not done within {seconds:.0f}s"
            )
        began = time.monotonic()
        self.stop()
        self.figures.phases["stopping"] = time.monotonic() - began

    def stop(self) -> None:
        """Stop every supervisor the ordinary way, let dispatched workers finish, and say what lingers."""
        self.discard_spare()
        if self.hub is not None and self.hub.poll() is None:
            self.hub.send_signal(signal.SIGTERM)
            try:
                self.hub.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.figures.notes.append("the settling hub did not stop on SIGTERM within 60s")
        self.hub = None
        for name in WORKSHOPS:
            argv = [sys.executable, "-m", "speedrift", "--dir", str(self.shop.repo(name) / ".workgraph")]
            subprocess.run(
                [*argv, "service", "stop", "--timeout", "60"],
                cwd=self.shop.repo(name),
                env=self.env,
                capture_output=True,
                timeout=120,
                check=False,
            )
        for sig in (None, signal.SIGTERM):  # dispatched workers finish; then they are asked to stop
            if sig is not None:
                for proc in proctree.descendants(os.getpid()).values():
                    proctree.signal_exact(proc, sig)  # a `speedrift run` cancels and releases its claim
            until = time.monotonic() + (60 if sig is None else 20)
            while time.monotonic() < until and proctree.descendants(os.getpid()):
                self.pause(0.1)
        left = proctree.descendants(os.getpid())
        if left:
            shown = sorted({p.name for p in left.values()})
            self.figures.notes.append(
                f"{len(left)} process(es) outlived the stops and a SIGTERM ({shown}); killed"
            )
            proctree.freeze_and_kill(left.values(), under=os.getpid())
            self.pause(0.5)
        self.sample(force=True)
