"""The demo ecosystem `speedrift demo` builds: five small real git repos, each showing one state.

- shop-api: healthy — its work is done, one task waits for a later date.
- billing: stalled — ready work, no service, observe mode (the hub plans but may not act).
- web-ui: dirty — uncommitted edits in the checkout; ready work.
- search: a task depends on a task that does not exist (a dependency break).
- factory: autonomous with a lease, shell tasks (`exec`) the hub dispatches and that really
  complete, land on main and unblock the next ones.
``[policy] plan_only = false`` so the loop is visible; only `factory` grants the hub authority.
A rerun reuses what exists.
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

ECOSYSTEM_TOML = """\
# The speedrift demo ecosystem. Point `speedrift hub up --ecosystem` at your own file like this one.
schema = 1
suite = "speedrift"

[policy]
# plan_only is the master switch: true (the default) computes and shows the plan, executes nothing.
# The demo turns it off so you can watch the hub act — but only where a repo grants it authority
# (`speedrift mode factory autonomous`): the other repos stay in observe mode.
plan_only = false
# factory's tasks are a short chain: look for its next ready link every 5 s (default 30 s)
cooldown_seconds = { dispatch_ready = 5 }

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

FACTORY_TOML = """\
# factory's tasks are plain commands (`exec`): the shell runtime runs them, no model needed.
default_runtime = "shell"

[service]
max_agents = 2
"""

_IDENTITY = ["-c", "user.name=speedrift demo", "-c", "user.email=demo@speedrift.invalid"]


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
    repo = _repo(root, "shop-api", {"README.md": "# shop-api\nThe healthy one.\n", "app.py": "VERSION = 1\n"})
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


def _billing(root: Path) -> None:
    repo = _repo(root, "billing", {"README.md": "# billing\nReady work, nobody running it.\n"})
    _tasks(
        repo,
        [
            ops.NewTask("Add invoice numbering", task_id="invoice-numbers", priority=80),
            ops.NewTask("Refund endpoint (uses shop-api orders)", task_id="refunds"),
            ops.NewTask("Monthly statements", task_id="statements", after=["invoice-numbers"]),
        ],
    )


def _web_ui(root: Path) -> None:
    repo = _repo(root, "web-ui", {"README.md": "# web-ui\n", "index.html": "<h1>shop</h1>\n"})
    _tasks(
        repo,
        [ops.NewTask("Cart page", task_id="cart-page"), ops.NewTask("Checkout flow", task_id="checkout")],
    )
    (repo / "index.html").write_text("<h1>shop</h1>\n<p>work in progress, not committed</p>\n")
    (repo / "notes.txt").write_text("an untracked scratch file\n")


def _search(root: Path) -> None:
    repo = _repo(root, "search", {"README.md": "# search\n"})
    _tasks(
        repo,
        [
            ops.NewTask("Build the index", task_id="build-index"),
            ops.NewTask("Ranking", task_id="ranking", after=["build-index", "tokenizer"]),
        ],
        partial(_finish, "build-index"),
    )


def _factory(root: Path) -> None:
    repo = _repo(
        root,
        "factory",
        {"README.md": "# factory\nThe hub works here on its own.\n", "speedrift.toml": FACTORY_TOML},
    )
    _tasks(
        repo,
        [
            ops.NewTask(
                "Write the greeting module",
                task_id="greeting",
                exec_command="printf 'def greet(name):\\n    return f\"hello {name}\"\\n' > greeting.py",
            ),
            ops.NewTask(
                "Write the farewell module",
                task_id="farewell",
                exec_command="printf 'def bye(name):\\n    return f\"bye {name}\"\\n' > farewell.py",
            ),
            ops.NewTask(
                "Document both modules",
                task_id="docs",
                after=["greeting", "farewell"],
                exec_command="printf '# modules\\n\\n- greeting.py\\n- farewell.py\\n' > MODULES.md",
            ),
        ],
    )
    write_control(
        repo,
        "autonomous",
        owner="demo",
        lease_ttl=None,
        actor="demo",
        reason="the demo's autonomous repo",
        now=now_utc(),
    )
