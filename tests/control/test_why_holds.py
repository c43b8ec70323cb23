"""`speedrift why REPO:TASK` names what holds a task that neither the service nor the hub will
move: a gated attempt waiting for a person's approval to merge, a deploy task waiting for its
start to be approved, a wave's closure stage that `speedrift plan run` carries out."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from speedrift.control.cycle import Hub
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.times import now_utc
from tests.cli.support import Cli
from tests.control.approving import add_gated, wait_to_merge
from tests.gitrepo import make_repo

ECOSYSTEM = 'schema = 1\n\n[repos.shop]\npath = "shop"\n'


def test_why_names_an_approval_wait_a_start_wait_and_a_closure_hold(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", {"README.md": "# shop\n"})
    store = GraphStore(repo / ".workgraph")
    started = now_utc() - timedelta(minutes=5)
    add_gated(store, "w3-api", "The api")
    wait_to_merge(store, "w3-api", 2, started=started, pending=started + timedelta(minutes=1))
    add_gated(store, "w3-deploy", "Deploy", start=True)
    closure = ops.NewTask("Integration of wave 3", task_id="w3.integration")

    def add_closure(graph: Graph, now: datetime) -> ops.Mutation:
        added = ops.add_task(graph, closure, now=now, actor="t")
        task = added.get("w3.integration")
        assert task is not None
        ops.set_speedrift(task, plan={"wave": 3, "stage": "integration"})
        return added

    store.mutate(add_closure, actor="t")
    path = tmp_path / "ecosystem.toml"
    path.write_text(ECOSYSTEM)
    Hub(path).cycle()
    cli = Cli(tmp_path)

    merge = cli.json("why", "shop:w3-api", "--ecosystem", str(path))["answer"]
    assert (
        merge.startswith("w3-api is awaiting approval to merge attempt 2") and "plan approve w3-api" in merge
    )
    start = cli.json("why", "shop:w3-deploy", "--ecosystem", str(path))["answer"]
    assert start == "w3-deploy is held: awaiting approval to start: `speedrift plan approve w3-deploy`"
    held = cli.json("why", "shop:w3.integration", "--ecosystem", str(path))["answer"]
    assert held.startswith("w3.integration is held:") and "closure stage" in held
