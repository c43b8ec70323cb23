"""When a Dask worker's gate verdict stands for the hub's own-commits gate (fleet/merging.py).

Invariant: a worker's verdict replaces the hub's gate run only when it *passed* on exactly the tip
the hub fetched and judged everything the hub's suite would — every gate the hub runs ran on the
worker, and no other open task declares a scope (the worker has no graph to see those). A failed
verdict is never trusted: the hub gates the tip itself, so blame and retries stay one code path.
The merge queue gates again after any rebase whatever this says.
"""

from __future__ import annotations

from speedrift.fleet.attempt import Attempt
from speedrift.gates import scope
from speedrift.gates.verdict import GateRunner, GateVerdict
from speedrift.graph.store import GraphStore


def trusted_worker_verdict(
    attempt: Attempt, gates: GateRunner, store: GraphStore, tip: str
) -> GateVerdict | None:
    """The worker's verdict when it may stand for the hub's gate on ``tip``; else None."""
    seeded = attempt.worker_verdict
    if seeded is None or not seeded.passed or seeded.evidence.get("tip") != tip:
        return None
    if tip == attempt.manifest.base_commit:
        return None
    ran = seeded.evidence.get("worker_gates")
    ours = [str(getattr(gate, "name", "")) for gate in getattr(gates, "gates", ())]
    if not isinstance(ran, list) or not set(ours) <= set(ran):
        return None
    if scope.other_scopes(store.load().tasks, attempt.task_id):
        return None
    return seeded
