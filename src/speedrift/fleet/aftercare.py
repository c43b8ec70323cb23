"""What a supervisor does after an attempt ends badly, and at any tick after a crash: crash recovery
for the repo, a worker that died without reporting (its orphaned agent ended, its work settled or
its crash recorded), the failed attempt's automatic retry, and reopening what a stop interrupted.

Used by the per-repo service (fleet/service.py) and ``speedrift run``; every function takes the
pipeline (or store) it acts on and writes the graph only through its mutations. Invariant: a task
is never left claimed by a process that is gone, and work that reached the target is recorded done,
never run again.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path

from speedrift import layout, records
from speedrift.fleet import crash_recovery, failures, followup, recovery, recovery_graph
from speedrift.fleet.attempt import AttemptResult, worker_actor
from speedrift.fleet.pipeline import Pipeline
from speedrift.fleet.workers import WorkerExit
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import FAILED, IN_PROGRESS, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.procs import identity_alive, identity_in, pid_alive, terminate_group
from speedrift.times import format_time, now_utc


# --- recovery ------------------------------------------------------------------------------------
def recover(pipeline: Pipeline, *, wait: bool = True) -> list[str]:
    """Make the repo consistent after a crash (fleet/crash_recovery.py: stale git locks, interrupted
    rebases, landings from every state, dead attempts, claims of dead workers). Safe on any tick;
    ``wait=False`` leaves the landing part for later while a landing holds the merge queue.
    Returns what was done, one line per action."""
    return crash_recovery.recover(pipeline.repo, pipeline.store, actor=worker_actor(), wait=wait)


# --- workers that died ----------------------------------------------------------------------------
def _end_orphaned_agent(repo: Path, task_id: str, attempt: int, grace_s: float) -> bool:
    """A worker killed mid-attempt leaves its agent running (the agent leads its own session): end
    that group. Its leader's identity is recorded (``agent_pgid`` + ``agent_start``); a group whose
    leader is gone can still be ended (its id cannot be reused while members remain), one whose pid
    now names another process is not ours."""
    record = records.read_attempt(layout.attempt_dir(repo, task_id, attempt))
    agent = identity_in(record.raw if record else None, "agent_pgid", "agent_start")
    if agent is None or agent.pid <= 1:
        return False
    if not (identity_alive(agent) or not pid_alive(agent.pid)):
        return False
    return terminate_group(agent.pid, grace_s)


def worker_died(pipeline: Pipeline, task_id: str, ended: WorkerExit) -> list[str]:
    """A worker process ended without reporting (SIGKILL, OOM, a crash), handled at once by its
    parent: the agent it left running is ended; work it had already landed is recorded done
    (fleet/crash_recovery.py ``settle_attempt``); otherwise the attempt is recorded as crashed
    (``transient_infra``, the exit status in the reason), so its recovery can be carried out now.
    Then crash recovery settles what the worker left: its git locks, an interrupted rebase, its
    manifest (the worktree and its work are kept)."""
    repo, store = pipeline.repo, pipeline.store
    task = store.load().get(task_id)
    data = speedrift_data(task) if task is not None else {}
    worker = data.get("worker")
    claimed = isinstance(worker, dict) and worker.get("pid") == ended.pid
    if task is None or task.get("status") != IN_PROGRESS or not claimed:
        return [f"{task_id}: its worker ({ended.pid}) ended without a report; {ended.describe()}"]
    number = int(data.get("attempt") or ended.attempt or 0)
    notes: list[str] = []
    if _end_orphaned_agent(repo, task_id, number, pipeline.config.budgets.kill_grace_seconds):
        notes.append(f"{task_id}: ended the agent its dead worker left running")
    landed = crash_recovery.settle_attempt(repo, store, task_id, number, actor=worker_actor())
    if landed is not None:
        return [*notes, landed]
    reason = (
        f"the worker process running attempt {number} (pid {ended.pid}) ended without a result: "
        f"{ended.describe()}"
    )
    recorder = failures.FailureRecorder(repo, store, pipeline.config, worker_actor())
    recorder.crashed(
        task_id=task_id,
        attempt=number,
        run_dir=layout.attempt_dir(repo, task_id, number),
        reason=reason,
        bootstrapped=True,
    )
    notes.append(f"{task_id}: {reason}; recorded as a crash")
    notes += [f"recovery: {note}" for note in recover(pipeline)]
    return notes


# --- retry policy ----------------------------------------------------------------------------------
STOPPED = "interrupted by a service stop"


def schedule_retry(pipeline: Pipeline, result: AttemptResult, withheld: set[str] | None = None) -> str | None:
    """Carry out an attempt's automatic recovery right after it failed (fleet/followup.py, the same
    function the hub's ``retry_failed`` calls): reopen the task after its backoff or its runtime's
    usage-limit reset, with the decision's diagnosis and model tier; while the repo's retries are
    halted (fleet/halt.py) the task stays failed, marked withheld. Returns when it is ready again.
    A runtime the failure paused is paused in the machine-wide store already (fleet/pauses.py), which
    :meth:`ServiceLoop.dispatch` reads before every claim: there is no pause of this process's own."""
    runtime = str(result.evidence.get("runtime", "")) or None
    done = followup.carry_out(
        pipeline.repo, pipeline.store, pipeline.config, result.task_id, actor=worker_actor(), runtime=runtime
    )
    if done.outcome == "withheld" and withheld is not None:
        withheld.add(result.task_id)
    if done.outcome != "reopened" or done.ready_at is None:
        return None
    return format_time(max(done.ready_at, now_utc()))


def _reopen(
    graph: Graph,
    now: datetime,
    task_id: str,
    decision: recovery.Decision | None,
    when: datetime | None,
    context: str | None = None,
) -> ops.Mutation:
    task = graph.get(task_id)
    if task is None or task.get("status") != FAILED:
        return ops.Mutation()  # recovered already (split, re-planned, retried by a human)
    return recovery_graph.retry_mutation(
        graph, task_id, decision, when=when, now=now, actor=worker_actor(), context=context
    )


def reopen_interrupted(store: GraphStore, task_id: str, why: str) -> bool:
    """An attempt cut off by a stop (the service's, or a signal to ``speedrift run``) goes straight
    back to open: not the task's fault. False when the task is no longer failed."""
    mutation = store.mutate(
        partial(_reopen, task_id=task_id, decision=None, when=None, context=why), actor=worker_actor()
    )
    return bool(mutation.tasks)


def withheld_tasks(graph: Graph) -> set[str]:
    """Failed tasks whose automatic retry a halt withheld."""
    return followup.withheld(graph)


def retry_withheld(pipeline: Pipeline, task_id: str) -> bool:
    """Retries resumed: reopen a withheld task now, as its recorded decision said."""
    return followup.reopen_withheld(pipeline.store, task_id, actor=worker_actor())
