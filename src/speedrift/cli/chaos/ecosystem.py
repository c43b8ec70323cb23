"""The ecosystem the chaos runs on: the demo ecosystem, made busy and autonomous.

Job: build ``speedrift demo``'s five repos (:mod:`speedrift.demo.ecosystem`) in the run's
directory, then make two of them a workshop: ``factory`` (autonomous, the hub dispatches
``speedrift run`` workers into it) gets a bare remote its agents can try to force-push to, and a
new repo ``line`` (autonomous, ``daemon_posture = "always-on"``: the hub keeps its service running)
is added. Both take shell tasks (``exec``) that each write one line to a file of their own, so a
landing shows on the target exactly once; gates are skipped and retries unbounded, so what is
measured is crash safety, not gate verdicts. The policy's budgets and cooldowns are opened up so
the hub acts on every cycle.

Invariant: everything lives under the run's directory; the demo's own content is kept as built.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

from speedrift import hubdir
from speedrift.cli.chaos import forbidden
from speedrift.control.controlfile import write_control
from speedrift.demo import ecosystem as demo
from speedrift.graph import ops
from speedrift.graph.store import GraphStore, init_graph_dir
from speedrift.times import now_utc

WORKSHOPS = ("factory", "line")
CONFIG = """\
# the chaos run's workshop: shell tasks, no gates, retries without end (crash safety is measured)
default_runtime = "shell"

[service]
max_agents = 2
poll_seconds = 0.05
backoff_seconds = 0
max_attempts = 1000

[recovery]
halt_threshold = 1.0

[recovery.classes.transient_infra]
max_attempts = 1000
backoff_seconds = 0

[gates]
skip = ["syntax", "secrets", "scope", "contract", "lint", "types", "tests", "sast", "sca"]
"""
# one line per task in a file of its own: landed twice, it shows twice
WRITE = "sleep 0.2; mkdir -p out && echo $SPEEDRIFT_TASK_ID >> out/$SPEEDRIFT_TASK_ID.txt"
PUSH_MARK = "chaos-push-exit-"  # the hostile agents print it, with git push's exit status
IDENTITY = ("-c", "user.name=speedrift chaos", "-c", "user.email=chaos@speedrift.invalid")


def git(repo: Path, *args: str, check: bool = True, stdin: str | None = None) -> str:
    """git for the run's own setup and checks (not speedrift's runner: nothing here is product)."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, env=env, capture_output=True, text=True, input=stdin, timeout=120
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Workshop:
    root: Path
    remote: Path
    tasks: list[str] = field(default_factory=list)  # the chaos tasks, in the order added
    pushers: set[str] = field(default_factory=set)  # tasks whose agent tries a force-push first

    @property
    def eco(self) -> Path:
        return self.root / "eco"

    @property
    def ecosystem_file(self) -> Path:
        return self.eco / hubdir.ECOSYSTEM_FILE

    def repo(self, name: str) -> Path:
        return self.eco / name

    def store(self, name: str) -> GraphStore:
        return GraphStore(self.repo(name) / ".workgraph")

    @property
    def hub(self) -> Path:
        return hubdir.hub_dir(self.ecosystem_file)

    def add_task(self, name: str) -> str:
        """One more chaos task in workshop ``name``; every fourth one in factory is hostile."""
        task_id = f"{name[0]}{len([t for t in self.tasks if t.startswith(name[0])]):04d}"
        command = WRITE
        if name == "factory" and len(self.tasks) % 4 == 1:
            command = f"{forbidden.agent_push_command()}; echo {PUSH_MARK}$?; {WRITE}"
            self.pushers.add(task_id)
        spec = ops.NewTask(f"chaos task {task_id}", task_id=task_id, exec_command=command)
        self.store(name).mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="chaos"), actor="chaos")
        self.tasks.append(task_id)
        return task_id

    def workshop_of(self, task_id: str) -> str:
        return "factory" if task_id.startswith("f") else "line"


def build(root: Path) -> Workshop:
    eco = root / "eco"
    demo.build(eco)
    shop = Workshop(root, root / "remotes" / "factory.git")
    factory = shop.repo("factory")
    (factory / "speedrift.toml").write_text(CONFIG)
    git(factory, "add", "-A")
    git(factory, "commit", "-qm", "chaos: the workshop's config")
    shop.remote.parent.mkdir(parents=True)
    git(root, "init", "-q", "--bare", "-b", "main", str(shop.remote))
    git(shop.remote, "config", "core.logAllRefUpdates", "always")  # the reflog counts what arrived
    git(factory, "remote", "add", "origin", str(shop.remote))
    git(factory, "push", "-q", "origin", "main")
    git(factory, "fetch", "-q", "origin")

    line = shop.repo("line")
    line.mkdir()
    git(line, "init", "-q", "-b", "main")
    (line / "README.md").write_text("# line\nThe hub keeps this repo's service running.\n")
    (line / "speedrift.toml").write_text(CONFIG)
    git(line, "add", "-A")
    git(line, "commit", "-qm", "initial commit")
    init_graph_dir(line)
    with open(line / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write(".workgraph/\n")
    write_control(
        line,
        "autonomous",
        owner="chaos",
        lease_ttl=None,
        actor="chaos",
        reason="the chaos run",
        now=now_utc(),
    )

    document = tomlkit.parse(shop.ecosystem_file.read_text())
    policy, repos = document.get("policy"), document.get("repos")
    if not isinstance(policy, tomlkit.items.Table) or not isinstance(repos, tomlkit.items.Table):
        raise RuntimeError(
            f"{shop.ecosystem_file}: the demo's [policy] and [repos] tables are not where expected"
        )
    policy["plan_only"] = False
    policy["cooldown_seconds"] = {"dispatch_ready": 0, "restart_service": 1, "default": 1}
    policy["max_actions_per_hour"] = 1_000_000
    policy["max_actions_per_repo_per_hour"] = 1_000_000
    policy["max_actions_per_cycle"] = 100
    policy["max_repos_per_cycle"] = 10
    policy["max_corrective_per_repo"] = 0  # killed attempts fail; no corrective tasks for that
    policy["max_corrective_total"] = 0
    repos["line"] = {"path": "line", "role": "service", "daemon_posture": "always-on"}
    shop.ecosystem_file.write_text(tomlkit.dumps(document))
    return shop
