"""Tasks waiting at a human approval checkpoint, written into a real graph the way speedrift writes
them: `speedrift plan compile` gives an oversight wave's task ``speedrift.approval`` and
``speedrift.plan``; an attempt claims it; its gated landing then waits merge-pending with the
reason ``fleet.approval.merge_wait`` gives (fleet/merging.py ``_merge_pending``). No agent runs."""

from __future__ import annotations

import socket
import subprocess
from datetime import datetime

from speedrift.fleet import approval
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import APPROVAL_KEY
from speedrift.graph.store import GraphStore

ACTOR = "speedrift@test"


def gone_pid() -> int:
    """The pid of a process that has exited (a worker that is gone)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def add_gated(
    store: GraphStore,
    task_id: str,
    title: str,
    *,
    wave: int | str = 3,
    start: bool = False,
    after: tuple[str, ...] = (),
    now: datetime | None = None,
) -> None:
    """A task of an oversight wave: its merge waits for a person; a deploy task's start too."""
    checkpoints = {"merge": True, **({"start": True} if start else {})}

    def build(graph: Graph, at: datetime) -> ops.Mutation:
        added = ops.add_task(
            graph, ops.NewTask(title, task_id=task_id, after=list(after)), now=at, actor=ACTOR
        )
        task = added.get(task_id)
        assert task is not None
        ops.set_speedrift(task, **{APPROVAL_KEY: checkpoints, "plan": {"wave": wave, "local": task_id}})
        return added

    store.mutate(build, actor=ACTOR, now=now)


def add_plain(store: GraphStore, task_id: str, title: str, *, now: datetime | None = None) -> None:
    spec = ops.NewTask(title, task_id=task_id)
    store.mutate(lambda g, at: ops.add_task(g, spec, now=at, actor=ACTOR), actor=ACTOR, now=now)


def wait_to_merge(
    store: GraphStore, task_id: str, attempt: int, *, started: datetime, pending: datetime
) -> str:
    """Claim ``task_id`` for ``attempt`` (a worker that has since exited), then leave its gated
    attempt merge-pending as the landing does; returns the recorded reason."""
    worker = {"pid": gone_pid(), "host": socket.gethostname(), "started": started.isoformat()}

    def claim(graph: Graph, at: datetime) -> ops.Mutation:
        claimed = ops.claim(graph, task_id, now=at, actor=ACTOR)
        task = claimed.get(task_id)
        assert task is not None
        ops.set_speedrift(task, attempt=attempt, worker=worker, state="running")
        return claimed

    store.mutate(claim, actor=ACTOR, now=started)
    task = store.load().tasks[task_id]
    reason = approval.merge_wait(task, attempt) or "the target checkout has uncommitted changes"
    store.mutate(
        lambda g, at: ops.update_speedrift(
            g,
            task_id,
            {"state": "merge-pending", "pending_reason": reason},
            now=at,
            actor=ACTOR,
            message=f"Merge pending: {reason}",
        ),
        actor=ACTOR,
        now=pending,
    )
    return reason


def finish(store: GraphStore, task_id: str, *, now: datetime | None = None) -> None:
    store.mutate(lambda g, at: ops.done(g, task_id, now=at, actor=ACTOR), actor=ACTOR, now=now)
