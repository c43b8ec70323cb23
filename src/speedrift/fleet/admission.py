"""Admitting an attempt to its runtime: the machine-wide pause, the executor preflight and the
sandbox decision, and what a failed attempt means for its runtime.

:class:`RuntimeAdmission` is one part of :class:`~speedrift.fleet.pipeline.Pipeline` (as
:class:`~speedrift.fleet.merging.Landing` is another): the pipeline provides the repo, its graph
and config. Invariant: a task on a paused or unusable runtime, or one that is no developer's to run
(a wave's closure stage, :func:`refuse_if_held`), is refused before its claim (no attempt burned),
and a runtime's failure pauses it for every repo on this machine at most once.
"""

from __future__ import annotations

from pathlib import Path

from speedrift import pausestore
from speedrift.agents import choose as registry
from speedrift.agents import env as agent_env
from speedrift.agents import preflight, sandbox
from speedrift.agents.protocol import RunOutcome
from speedrift.errors import InvalidValue, Refused
from speedrift.fleet import failures, pauses
from speedrift.fleet.attempt import Attempt, worker_actor
from speedrift.fleet.config import RepoConfig
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import Task, dispatch_hold, start_wait
from speedrift.graph.store import GraphStore
from speedrift.times import now_utc


def refuse_if_held(task: Task) -> None:
    """Refuse a developer attempt at a task that is not a developer's to run (a wave's closure
    stage) or not yet (an oversight deploy task a person has not approved): graph/model.py
    ``dispatch_hold``, whatever ``--force`` says: nothing is claimed."""
    hold = dispatch_hold(task)
    if hold is None:
        return
    if hold == start_wait(task):
        raise Refused(f"task {task.get('id')!r} is {hold}", hint="a person approves it first")
    raise Refused(
        f"task {task.get('id')!r} is {hold}; a developer attempt does not run it",
        hint="run the wave with `speedrift plan run WAVE`; `speedrift plan status` shows its stage",
    )


class RuntimeAdmission:
    repo: Path
    store: GraphStore
    config: RepoConfig
    _contained: sandbox.Decision | None

    def _admit_runtime(self, task_id: str) -> Graph:
        """Refuse (no claim, no attempt burned) while the task's runtime is paused machine-wide
        (fleet/pauses.py), and run the executor preflight before the first dispatch to a runtime:
        a failed one pauses the runtime with one escalation naming the fix, instead of failing
        every task on it. A task that does not exist is left for the claim to report. Returns the
        graph as read (the prompt's dependencies come from it: a claim changes only the task).
        ``[sandbox] mode = "required"`` without a working bwrap refuses every task the same way."""
        sandbox.require(self.config.sandbox.mode, self._sandbox())
        graph = self.store.load()
        task = graph.get(task_id)
        if task is None:
            return graph
        refuse_if_held(task)
        try:
            runtime, model = registry.select_runtime(task, self.config.default_runtime)
        except InvalidValue:
            return graph  # the attempt reports the bad configuration as it always has
        model = model or self.config.runtime_options(runtime).model
        now = now_utc()
        pauses.refuse_if_paused(runtime, model, now)
        command = task.get("exec")
        checked = self._preflight(runtime, exec_task=isinstance(command, str) and bool(command.strip()))
        if not checked.ready:
            pause, _new = pauses.pause_for_preflight(
                checked, model=model, set_by=worker_actor(), now=now, repo=self.repo, task=task_id
            )
            raise pauses.RuntimePaused(pause, now, auto_resume=pausestore.read().auto_resume)
        return graph

    def _sandbox(self) -> sandbox.Decision:
        """What this repo's agents run in ([sandbox] in speedrift.toml), decided once per pipeline
        (bwrap probed once per process; a worker gets the supervisor's decision with the pipeline)."""
        if self._contained is None:
            self._contained = sandbox.decide(self.config.sandbox.mode, network=self.config.sandbox.network)
        return self._contained

    def _preflight(self, runtime: str, *, exec_task: bool, fresh: bool = False) -> preflight.Preflight:
        """The runtime's preflight with the environment its agents get (cached briefly per process)."""
        if fresh:
            preflight.forget(runtime)
        env = agent_env.agent_env(
            {}, allow=self.config.env.allow, passthrough_secrets=self.config.env.secrets
        )
        options = self.config.runtime_options(runtime).model_dump()
        return preflight.cached_check(runtime, env=env, options=options, exec_task=exec_task, cwd=self.repo)

    def _note_runtime_failure(
        self, attempt: Attempt, recorded: failures.Recorded, outcome: RunOutcome
    ) -> None:
        """What the failure means for its runtime, machine-wide: a usage limit, repeated rate limits
        or refused credentials pause it; after auth_failure or env_bootstrap the preflight runs
        again and a failed one pauses it. A new pause is said once in the task's log."""
        now = now_utc()

        def recheck() -> preflight.Preflight:
            task = self.store.load().get(attempt.task_id) or {}
            command = task.get("exec")
            exec_task = isinstance(command, str) and bool(command.strip())
            return self._preflight(attempt.runtime, exec_task=exec_task, fresh=True)

        try:
            noted = pauses.note_failure(
                runtime=attempt.runtime,
                model=attempt.model,
                failure_class=recorded.failure_class,
                reason=recorded.reason,
                reset_at=outcome.reset_at,
                set_by=worker_actor(),
                now=now,
                repo=self.repo,
                task=attempt.task_id,
                recheck=recheck,
                runtime_failure=outcome.failure,
            )
        except OSError:
            return  # an unwritable state home must not turn a recorded failure into a crash
        if noted is None or not noted[1]:
            return
        message = "Runtime paused for every repo on this machine: " + noted[0].sentence(now)
        self.store.mutate(
            lambda g, at: ops.log_message(g, attempt.task_id, message, now=at, actor=worker_actor()),
            actor=worker_actor(),
        )
