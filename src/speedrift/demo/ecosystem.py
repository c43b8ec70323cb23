"""The demo ecosystem `speedrift demo` builds: five small real git repos, each showing one state.

- factory, shop-api, web-ui: autonomous (a lease for the demo), worked by the `demo` runtime — a
  scripted agent that streams like Claude Code and edits real files (agents/demo_agent.py).
  factory's and web-ui's first tasks cover every path: a clean landing, a failing test the retry
  fixes, a task that fails twice so the hub writes a corrective task, a leaked key the secrets gate
  stops, a question for a person. shop-api starts healthy, its work done. The feeder
  (demo/feeder.py) keeps adding such tasks to all of them while the demo runs.
- billing: stalled — ready work on the demo runtime, observe mode (the hub plans but may not
  act) until ``speedrift mode billing autonomous --lease-ttl 1h``.
- search: a task depends on a task that does not exist (a dependency break), and its checkout has
  uncommitted edits; observe mode.

``[policy] plan_only = false`` so the loop is visible; only the autonomous repos grant the hub
authority. A rerun reuses what exists.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from speedrift.control.controlfile import write_control
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore, init_graph_dir
from speedrift.repo.git import exclude_locally, git
from speedrift.times import now_utc

AUTONOMOUS = ("factory", "shop-api", "web-ui")  # the repos the hub works in from the start
FED = (*AUTONOMOUS, "billing")  # the repos the feeder adds work to (billing's waits for its mode)

ECOSYSTEM_TOML = """\
# The speedrift demo ecosystem. Point `speedrift hub up --ecosystem` at your own file like this one.
schema = 1
suite = "speedrift"

[policy]
# plan_only is the master switch: true (the default) computes and shows the plan, executes nothing.
# The demo turns it off so you can watch the hub act — but only where a repo grants it authority
# (`speedrift mode factory autonomous`): billing and search stay in observe mode.
plan_only = false
# the demo's work is quick: look for ready tasks, retries and repeated failures every 5 s
cooldown_seconds = { dispatch_ready = 5, retry_failed = 5, emit_corrective_task = 5 }
max_actions_per_repo = 2
max_actions_per_repo_per_hour = 600
max_actions_per_hour = 3000
max_agents = 4

[repos.shop-api]
path = "shop-api"
role = "product"
tags = ["api"]

[repos.billing]
path = "billing"
role = "service"
tags = ["payments"]
depends_on = ["shop-api"]

[repos.web-ui]
path = "web-ui"
role = "product"
tags = ["frontend"]
depends_on = ["shop-api"]

[repos.search]
path = "search"
role = "service"
tags = ["api"]

[repos.factory]
path = "factory"
role = "experiment"
tags = ["autonomous"]
"""

REPO_TOML = """\
# The demo runtime: a scripted agent that streams like Claude Code and edits real files, no model.
default_runtime = "demo"

[service]
max_agents = 2
backoff_seconds = 5  # a failed attempt's automatic retry waits 5 s, doubling per attempt

[recovery]
# the demo's agents fail on purpose, often: keep retrying unless nearly every attempt fails
halt_threshold = 0.9

[gates]
# the slow scanners (semgrep, pip-audit) add nothing to the demo's small changes
skip = ["sast", "sca"]

[gates.tests]
command = ["python3", "-m", "unittest", "discover", "-s", "tests"]

[roles.triage]
enabled = false  # an agent's question goes straight to a person ("Waiting on a human")
"""

SMOKE_TEST = """\
import unittest


class SmokeTest(unittest.TestCase):
    def test_the_repository_imports(self):
        self.assertTrue(True)
"""

_IDENTITY = ["-c", "user.name=speedrift demo", "-c", "user.email=demo@speedrift.invalid"]


def scenario_text(scenario: str, what: str) -> str:
    """A demo task's description: what to do, and the scenario line the demo agent follows."""
    return f"{what}\n\ndemo-scenario: {scenario}"


def _repo(root: Path, name: str, files: dict[str, str]) -> Path:
    repo = root / name
    repo.mkdir(parents=True)
    git(["init", "-q", "-b", "main"], repo)
    for rel, text in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(["add", "-A"], repo)
    git([*_IDENTITY, "commit", "-q", "-m", "initial commit"], repo)
    init_graph_dir(repo)
    # the graph changes with every claim and done; the demo keeps it out of git's way
    exclude_locally(repo, ".workgraph/")
    return repo


def _worked(root: Path, name: str, readme: str) -> Path:
    """A repo the demo runtime works in: its config and a passing test suite."""
    return _repo(
        root,
        name,
        {"README.md": readme, "speedrift.toml": REPO_TOML, "tests/test_smoke.py": SMOKE_TEST},
    )


def _tasks(repo: Path, specs: list[ops.NewTask], *after: Callable[[Graph, datetime], ops.Mutation]) -> None:
    store = GraphStore(repo / ".workgraph")

    def add(spec: ops.NewTask, graph: Graph, now: datetime) -> ops.Mutation:
        return ops.add_task(graph, spec, now=now, actor="demo")

    for spec in specs:
        store.mutate(partial(add, spec), actor="demo")
    for step in after:
        store.mutate(step, actor="demo")


def _finish(task_id: str, graph: Graph, now: datetime) -> ops.Mutation:
    return ops.done(graph, task_id, now=now, actor="alice")


def _autonomous(repo: Path) -> None:
    write_control(
        repo,
        "autonomous",
        owner="demo",
        lease_ttl=None,
        actor="demo",
        reason="one of the demo's autonomous repos",
        now=now_utc(),
    )


def build(root: Path) -> list[str]:
    """Create whatever part of the demo is missing under ``root``; return the repos created."""
    root.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    if not (root / "ecosystem.toml").exists():
        (root / "ecosystem.toml").write_text(ECOSYSTEM_TOML)
    builders = {
        "shop-api": _shop_api,
        "billing": _billing,
        "web-ui": _web_ui,
        "search": _search,
        "factory": _factory,
    }
    for name, builder in builders.items():
        if not (root / name / ".workgraph" / "graph.jsonl").exists():
            if (root / name).exists():
                raise FileExistsError(f"{root / name} exists but has no task graph; move it aside")
            builder(root)
            created.append(name)
    return created


def _shop_api(root: Path) -> None:
    repo = _worked(root, "shop-api", "# shop-api\nThe healthy one: its work is done; new work lands fast.\n")
    _tasks(
        repo,
        [
            ops.NewTask("Design the HTTP API", task_id="design-api"),
            ops.NewTask("Implement the endpoints", task_id="endpoints", after=["design-api"]),
            ops.NewTask("Quarterly dependency review", task_id="dep-review", delay=timedelta(days=30)),
        ],
        partial(_finish, "design-api"),
        partial(_finish, "endpoints"),
    )
    _autonomous(repo)


def _billing(root: Path) -> None:
    repo = _worked(root, "billing", "# billing\nReady work, nobody running it.\n")
    _tasks(
        repo,
        [
            ops.NewTask(
                "Add invoice numbering",
                task_id="invoice-numbers",
                priority=80,
                description=scenario_text("land", "Give every invoice a unique, increasing number."),
            ),
            ops.NewTask(
                "Refund endpoint (uses shop-api orders)",
                task_id="refunds",
                description=scenario_text("failing_test", "Refund an order, at most its charge."),
            ),
            ops.NewTask(
                "Monthly statements",
                task_id="statements",
                after=["invoice-numbers"],
                description=scenario_text("land", "One statement per customer and month."),
            ),
        ],
    )


def _web_ui(root: Path) -> None:
    repo = _worked(root, "web-ui", "# web-ui\nThe shop's pages.\n")
    _tasks(
        repo,
        [
            ops.NewTask(
                "Cart page",
                task_id="cart-page",
                description=scenario_text("stubborn", "Show the cart's distinct items."),
            ),
            ops.NewTask(
                "Checkout flow",
                task_id="checkout",
                description=scenario_text("leak", "Charge the cart through the payment provider."),
            ),
        ],
    )
    _autonomous(repo)


def _search(root: Path) -> None:
    repo = _repo(
        root,
        "search",
        {"README.md": "# search\n", "index.html": "<h1>search</h1>\n", "speedrift.toml": REPO_TOML},
    )
    _tasks(
        repo,
        [
            ops.NewTask("Build the index", task_id="build-index"),
            ops.NewTask("Ranking", task_id="ranking", after=["build-index", "tokenizer"]),
        ],
        partial(_finish, "build-index"),
    )
    (repo / "index.html").write_text("<h1>search</h1>\n<p>work in progress, not committed</p>\n")
    (repo / "notes.txt").write_text("an untracked scratch file\n")


def _factory(root: Path) -> None:
    repo = _worked(root, "factory", "# factory\nThe hub works here on its own.\n")
    _tasks(
        repo,
        [
            ops.NewTask(
                "Write the greeting module",
                task_id="greeting",
                description=scenario_text("land", "Greet each distinct name once."),
            ),
            ops.NewTask(
                "Write the farewell module",
                task_id="farewell",
                description=scenario_text("failing_test", "Say goodbye to each distinct name once."),
            ),
            ops.NewTask(
                "Merge duplicate greetings",
                task_id="greet-once",
                description=scenario_text("question", "Greet a name that appears twice only once."),
            ),
            ops.NewTask(
                "Document both modules",
                task_id="docs",
                after=["greeting", "farewell"],
                description=scenario_text("land", "List the modules and what they do."),
            ),
        ],
    )
    _autonomous(repo)
