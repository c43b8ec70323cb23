"""Admitting an attempt to its runtime: the machine-wide pause, the executor preflight and the
sandbox decision, and what a failed attempt means for its runtime.

:class:`RuntimeAdmission` is one part of :class:`~speedrift.fleet.pipeline.Pipeline` (as
:class:`~speedrift.fleet.merging.Landing` is another): the pipeline provides the repo, its graph
and config. Invariant: a task on a paused or unusable runtime, or one that is no developer's to run
(a wave's closure stage, :func:`refuse_if_held`), or one whose dispatch would exceed a money budget
(:func:`budget_verdict`, fleet/spend.py), is refused before its claim (no attempt burned), and a
runtime's failure pauses it for every repo on this machine at most once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from speedrift import attemptlog, pausestore, statehome
from speedrift.agents import env as agent_env
from speedrift.agents import preflight, sandbox
from speedrift.agents.protocol import RunOutcome
from speedrift.errors import InvalidValue, Refused
from speedrift.fleet import budgetpub, choosing, failures, pauses, spend
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


class BudgetRefused(Refused):
    """A dispatch was not claimed because it would exceed a money budget: no attempt was burned."""

    def __init__(self, refusal: spend.BudgetRefusal | spend.InvalidBudget) -> None:
        super().__init__(refusal.sentence, hint=refusal.fix)
        self.refusal = refusal


_LOG_CACHE: dict[datetime | None, tuple[object, list[attemptlog.AttemptEntry]]] = {}
_LOG_LOCK = threading.Lock()


def _entries(since: datetime | None) -> list[attemptlog.AttemptEntry]:
    """The attempt log, parsed again only when it changed (a service asks before every dispatch;
    a rotation changes the current file too)."""
    try:
        info = os.stat(statehome.attempt_log_path())
        state: object = (info.st_size, info.st_mtime_ns, info.st_ino)
    except OSError:
        state = None
    with _LOG_LOCK:
        cached = _LOG_CACHE.get(since)
        if cached is not None and cached[0] == state:
            return cached[1]
    entries = attemptlog.read(since)
    with _LOG_LOCK:
        if len(_LOG_CACHE) > 4:  # one key per day (and "all"): keep only the recent ones
            _LOG_CACHE.clear()
        _LOG_CACHE[since] = (state, entries)
    return entries


def budget_verdict(
    repo: Path, config: RepoConfig, task: Task, now: datetime
) -> spend.BudgetRefusal | spend.InvalidBudget | None:
    """Whether dispatching ``task`` now would exceed a money budget (fleet/spend.py): its own, the
    repo's daily one, its agent's or the ecosystem's (as the hub published it). The attempt log is
    read only when a budget applies: all of it for a task budget, else today's part."""
    unreadable = spend.budget_problem(task)
    if unreadable is not None:
        return unreadable
    task_id = str(task.get("id") or "")
    tags = task.get("tags")
    agent = attemptlog.agent_of(tags if isinstance(tags, list) else [])
    published = budgetpub.published_for(repo)
    key = budgetpub.repo_key(repo)
    applying = spend.budgets_for(
        repo=key,
        task_id=task_id,
        task=task,
        agent=agent,
        repo_budgets=config.budgets,
        published=published,
        repo_agents=config.agents,
    )
    if not applying:
        return None
    whole = any(budget.kind is spend.BudgetKind.TASK for budget in applying)
    entries = _entries(None if whole else spend.day_start(now))
    runs, _where = spend.agent_budget(task, agent, config.agents, published, f"{key}/speedrift.toml")
    usd, tokens = spend.reservation(config.budgets, runs)
    return spend.check_budgets(
        entries,
        now=now,
        repo=key,
        task_id=task_id,
        task=task,
        agent=agent,
        repo_budgets=config.budgets,
        published=published,
        reservation_usd=usd,
        reservation_tokens=tokens,
        repo_agents=config.agents,
        applying=applying,  # worked out once per admission (a service asks before every dispatch)
    )


def refuse_if_over_budget(repo: Path, config: RepoConfig, task: Task, now: datetime) -> None:
    """Raise :class:`BudgetRefused` when dispatching ``task`` would exceed a budget."""
    refusal = budget_verdict(repo, config, task, now)
    if refusal is not None:
        raise BudgetRefused(refusal)


class RuntimeAdmission:
    repo: Path
    store: GraphStore
    config: RepoConfig
    _contained: sandbox.Decision | None

    def _admit_runtime(self, task_id: str) -> tuple[Graph, choosing.Chosen | None]:
        """Refuse (no claim, no attempt burned) while every runtime the task may run on is paused
        machine-wide (fleet/pauses.py), and run the executor preflight before the first dispatch to
        a runtime: a failed one pauses the runtime with one escalation naming the fix, instead of
        failing every task on it. Returns the graph as read (the prompt's dependencies come from
        it: a claim changes only the task) and the attempt's runtime as chosen (fleet/choosing.py:
        routing, then the fallback order past paused runtimes); None for a task that does not
        exist (the claim reports it) or a bad routing value (the attempt reports it).
        ``[sandbox] mode = "required"`` without a working bwrap refuses every task the same way."""
        sandbox.require(self.config.sandbox.mode, self._sandbox())
        graph = self.store.load()
        task = graph.get(task_id)
        if task is None:
            return graph, None
        refuse_if_held(task)
        refuse_if_over_budget(self.repo, self.config, task, now_utc())  # money (fleet/spend.py)
        try:
            return graph, self._choose_runtime(task)
        except InvalidValue:
            return graph, None  # the attempt reports the bad configuration as it always has

    def _choose_runtime(self, task: Task) -> choosing.Chosen:
        """The runtime and model of ``task``'s next attempt (fleet/choosing.py); a runtime whose
        preflight fails is paused with the fix and passed over like a paused one."""
        now = now_utc()
        command = task.get("exec")
        exec_task = isinstance(command, str) and bool(command.strip())

        def usable(runtime: str, model: str | None) -> pausestore.RuntimePause | None:
            checked = self._preflight(runtime, exec_task=exec_task)
            if checked.ready:
                return None
            pause, _new = pauses.pause_for_preflight(
                checked, model=model, set_by=worker_actor(), now=now, repo=self.repo, task=str(task.get("id"))
            )
            return pause

        return choosing.choose(task, self.config, now=now, usable=usable)

    def _say_fallback(
        self, chosen: choosing.Chosen, task_id: str, actor: str, step: Callable[[str], None]
    ) -> None:
        """A fallback is never silent: the task's log and the run's steps say it (the evidence and
        attempt.json record it with the attempt)."""
        said = chosen.log_line()
        if said is None:
            return
        step(said)
        self.store.mutate(lambda g, at: ops.log_message(g, task_id, said, now=at, actor=actor), actor=actor)

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
