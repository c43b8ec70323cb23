"""`speedrift demo`: build a small real repository with a task graph and walk through it.

This is the graph-plane demo; it grows into the whole control plane with its dashboard.
A rerun reuses the demo directory instead of rebuilding it.
"""

from __future__ import annotations

from argparse import Namespace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from speedrift.cli.admin_cmds import init_repo
from speedrift.cli.output import say, table
from speedrift.graph import ops, query, viz
from speedrift.graph.codec import Graph
from speedrift.graph.model import now_utc, priority_of
from speedrift.graph.store import GraphStore
from speedrift.repo.git import git

DEMO_TASKS = [
    ops.NewTask("Design the HTTP API", task_id="design-api", priority=50),
    ops.NewTask("Write the database schema", task_id="schema"),
    ops.NewTask("Implement data models", task_id="models", after=["schema"]),
    ops.NewTask("Implement the endpoints", task_id="endpoints", after=["design-api", "models"]),
    ops.NewTask("Add token authentication", task_id="auth", after=["endpoints"], priority=100),
    ops.NewTask("Write the API guide", task_id="docs", after=["design-api"], priority=5),
    ops.NewTask("Load-test the service", task_id="load-test", after=["endpoints", "perf-harness"]),
    ops.NewTask("Cut release 1.0", task_id="release", after=["auth", "docs", "load-test"]),
    ops.NewTask("Nightly quality report", task_id="nightly-report", delay=timedelta(hours=6)),
]


def _add(spec: ops.NewTask, graph: Graph, now: datetime) -> ops.Mutation:
    return ops.add_task(graph, spec, now=now, actor="demo")


def _build(repo: Path) -> GraphStore:
    repo.mkdir(parents=True)
    git(["init", "-q", "-b", "main"], repo)
    (repo / "README.md").write_text("# shop-api\nA demo repository managed by speedrift.\n")
    git(["add", "README.md"], repo)
    git(
        [
            "-c",
            "user.name=speedrift demo",
            "-c",
            "user.email=demo@speedrift.invalid",
            "commit",
            "-q",
            "-m",
            "initial commit",
        ],
        repo,
    )
    graph_dir, _ = init_repo(repo)
    graph_store = GraphStore(graph_dir)
    for spec in DEMO_TASKS:
        graph_store.mutate(partial(_add, spec), actor="demo")
    graph_store.mutate(lambda g, now: ops.claim(g, "design-api", now=now, actor="alice"), actor="alice")
    graph_store.mutate(lambda g, now: ops.done(g, "design-api", now=now, actor="alice"), actor="alice")
    graph_store.mutate(lambda g, now: ops.claim(g, "schema", now=now, actor="bob"), actor="bob")
    return graph_store


def demo(args: Namespace) -> None:
    """Create (or reuse) a demo repository with a task graph, and show what speedrift sees."""
    repo = Path(args.directory).resolve() / "shop-api"
    if (repo / ".workgraph" / "graph.jsonl").exists():
        graph_store = GraphStore(repo / ".workgraph")
        say(f"Reusing the demo in {repo}")
    else:
        graph_store = _build(repo)
        say(f"Created a demo repository in {repo}")
    graph = graph_store.load()
    now = now_utc()
    say("\nThe graph:")
    say(viz.tree(graph, include_done=True))
    ready = query.ready(graph, now)
    table(
        "\nReady now, in dispatch order",
        ["id", "title", "priority"],
        [(t["id"], t.get("title"), priority_of(t)) for t in ready],
    )
    say("\nWhy is `release` not running?")
    say(viz.render_block_tree(query.why_blocked(graph, "release", now)))
    chain, hours = query.critical_path(graph)
    say(f"\nCritical path ({hours:g} h): {' -> '.join(chain)}")
    say(
        f"\nTry it yourself:\n  cd {repo}\n  speedrift ready\n"
        f"  speedrift claim {ready[0]['id'] if ready else 'ID'}\n"
        "  speedrift why-blocked release --json\n  speedrift viz --format mermaid"
    )
