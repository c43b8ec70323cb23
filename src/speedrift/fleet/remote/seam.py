"""The pipeline's side of the executor seam (fleet/remote/executor.py): what an attempt's
admission, sandbox decision and record become when its agent may run on another machine.

:class:`ExecutorSeam` is one part of :class:`~speedrift.fleet.pipeline.Pipeline` (as
:class:`~speedrift.fleet.admission.RuntimeAdmission`, which it extends, is another). With the local
executor every method is what it always was. With a cluster executor: a task no worker can take is
refused before its claim, naming why; the runtime's CLI and the agent's sandbox are checked and
decided on the worker, not here (nothing on this machine pauses the runtime for a CLI it does not
need); the attempt records where it ran and the sandbox the worker used; a result that is not the
attempt's leaves the graph to whoever holds the task now.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from speedrift.agents import sandbox
from speedrift.agents.preflight import Preflight
from speedrift.agents.protocol import RunOutcome
from speedrift.errors import Refused
from speedrift.fleet import attempts, choosing
from speedrift.fleet.admission import RuntimeAdmission
from speedrift.fleet.attempt import Attempt
from speedrift.fleet.remote.executor import Developed, Executor
from speedrift.fleet.remote.ingest import StaleResult
from speedrift.fleet.remote.spec import ExecutorKind
from speedrift.graph.codec import Graph
from speedrift.repo import git, worktrees
from speedrift.times import now_utc


class ExecutorSeam(RuntimeAdmission):
    executor: Executor

    def _watched(self, contained: sandbox.Decision | None) -> bool:
        """Whether the agent could write outside its worktree on this machine (fleet/outside.py)."""
        return self.executor.kind is ExecutorKind.LOCAL and not (contained is not None and contained.used)

    def _developed(self, attempt: Attempt, developed: Developed) -> tuple[Attempt, RunOutcome]:
        """The attempt as its development left it: where it ran (``machine``, in the evidence), a
        worker's passing verdict on the tip it brought (the landing does not gate that tip again),
        and a worker's sandbox decision in place of the hub's placeholder."""
        ran = replace(attempt, machine=dict(developed.machine), worker_verdict=developed.verdict)
        box = developed.sandbox
        if isinstance(box, dict) and isinstance(box.get("used"), bool):
            used, network, why = bool(box["used"]), bool(box.get("network", True)), str(box.get("why", ""))
            decided = sandbox.Decision(used, network, why)
            ran = replace(ran, sandbox=decided)
            attempts.write_attempt(attempt.run_dir, {"sandbox": decided.evidence()})
        return ran, developed.outcome

    def _admit_executor(self, graph: Graph, task_id: str, chosen: choosing.Chosen | None) -> None:
        """With a cluster executor: refuse (nothing claimed) a task no worker can take now — the
        scheduler unreachable, or no worker offering its runtime and resources — naming why."""
        task = graph.get(task_id)
        if self.executor.kind is ExecutorKind.LOCAL or task is None or chosen is None:
            return
        reason = self.executor.preflight(chosen.runtime, task)
        if reason is not None:
            raise Refused(
                f"task {task_id!r} is held: no Dask worker can take it now: {reason}",
                hint="start a worker offering it (`dask worker SCHEDULER --resources "
                f'"runtime:{chosen.runtime}=1"`), or route the task to a runtime a worker offers',
            )

    def _preflight(self, runtime: str, *, exec_task: bool, fresh: bool = False) -> Preflight:
        """With a cluster executor the runtime runs on a worker, which checks it there: nothing on
        this machine pauses it (the cluster preflight, :meth:`_admit_executor`, holds the task)."""
        if self.executor.kind is ExecutorKind.LOCAL:
            return super()._preflight(runtime, exec_task=exec_task, fresh=fresh)
        return Preflight(
            runtime, "", None, "ok", "ok", None, "n/a", "checked on the Dask worker", "", "", now_utc()
        )

    def _sandbox(self) -> sandbox.Decision:
        """With a cluster executor the worker decides the agent's sandbox (from ``[sandbox]``, which
        travels with the job) and reports it: until then the attempt records what is asked."""
        if self.executor.kind is ExecutorKind.LOCAL:
            return super()._sandbox()
        mode, network = self.config.sandbox.mode, self.config.sandbox.network
        if mode == "off":
            return sandbox.Decision(False, network, 'turned off ([sandbox] mode = "off" in speedrift.toml)')
        return sandbox.Decision(True, network, f"decided on the Dask worker ([sandbox] mode = {mode!r})")

    def _drop_stale(self, manifest: worktrees.Manifest | None, run_dir: Path, stale: StaleResult) -> None:
        """A Dask result arrived for an attempt this process no longer holds (fleet/remote/ingest.py):
        the graph is left to whoever holds the task now; the unused worktree goes, a used one is kept."""
        said = {"state": "failed", "reason": stale.message[:2000], "discarded": True}
        attempts.write_attempt(run_dir, said)
        if manifest is None:
            return
        worktree = Path(manifest.path)
        moved = git.rev_parse(self.repo, manifest.branch) != manifest.base_commit
        if worktree.is_dir() and not moved and not git.status_porcelain(worktree):
            worktrees.discard_unused(self.repo, manifest)
        else:
            manifest.set_state(worktrees.ManifestState.FAILED, stale.message[:300])
            worktrees.write_manifest(self.repo, manifest)
