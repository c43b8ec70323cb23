"""One attempt at one task, end to end:

claim (atomic) -> worktree -> prompt -> runtime -> commit -> gate seam -> merge queue -> done
with evidence, or failed with a class and a reason. Every step that can fail after the claim
releases the task properly: no task stays claimed by a process that has stopped working on it,
and no worktree holding work is ever deleted. Nothing lands from an attempt during which the
repository's git configuration or hooks changed (repo/gitboundary.py): it waits for a human.

The development step (the agent's run) goes through the pipeline's executor
(fleet/remote/executor.py): here, or on a Dask worker whose commits come back onto the attempt's
branch. Everything before and after it — claim, worktree, prompt, boundaries, gates, review,
merge queue — runs here either way; a task no worker could take is refused before its claim.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from speedrift import layout, redact
from speedrift.agents import choose as registry
from speedrift.agents import env as agent_env
from speedrift.agents import result, sandbox
from speedrift.agents.protocol import AgentEvent, Budgets, FailureKind, RunOutcome, RunRequest, Usage
from speedrift.errors import Refused, SpeedriftError
from speedrift.fleet import (
    attempts,
    choosing,
    clarify,
    coordination,
    crash_recovery,
    hookpolicy,
    prompt,
    recovery_graph,
    repohooks,
    resume,
    review,
)
from speedrift.fleet.attempt import Attempt, AttemptResult, worker_actor
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.merging import Landing
from speedrift.fleet.outside import OutsideWatch, settle_outcome
from speedrift.fleet.remote.executor import Developed, Development, Executor, LocalExecutor
from speedrift.fleet.remote.ingest import StaleResult
from speedrift.fleet.remote.seam import ExecutorSeam
from speedrift.fleet.remote.spec import EnvRecipe
from speedrift.gates.verdict import GateRunner, NoGates
from speedrift.graph import ops, peers, query
from speedrift.graph.codec import Graph
from speedrift.graph.model import DONE, speedrift_data
from speedrift.graph.query import PeerStatuses
from speedrift.graph.store import GraphStore
from speedrift.procs import identity_of
from speedrift.repo import boundary, envshare, git, gitboundary, landing, worktrees
from speedrift.times import format_time


@dataclass
class RunOptions:
    actor: str = ""
    force: bool = False  # run a task that is not ready (a human's explicit choice)
    cancel: threading.Event | None = None
    on_event: Callable[[AgentEvent], None] | None = None
    on_step: Callable[[str], None] | None = None
    on_claimed: Callable[[int], None] | None = None  # told the attempt number once the task is claimed


@dataclass
class _Developing:
    """What one attempt's development step works with (the claim's task, the graph read at
    admission, the worktree's ports and injection, the boundaries as they were before)."""

    task: dict[str, Any]
    ports: envshare.PortBlock
    options: RunOptions
    graph: Graph
    injection: envshare.Injection
    git_before: gitboundary.Snapshot
    watch: OutsideWatch
    step: Callable[[str], None]


class Pipeline(Landing, ExecutorSeam):
    def __init__(
        self,
        repo: Path,
        store: GraphStore,
        config: RepoConfig,
        gates: GateRunner | None = None,
        peer_repos: Mapping[str, Path] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.repo = repo
        self.store = store
        self.config = config
        self.gates = gates or NoGates()
        # the ecosystem's repos by name, when one is named: `after` entries REPO:TASK resolve
        # against them (graph/peers.py); None: they stay missing and block, as in workgraph
        self.peer_repos = dict(peer_repos) if peer_repos is not None else None
        # where the agent runs (fleet/remote/executor.py): this machine, unless a cluster is named
        self.executor: Executor = executor if executor is not None else LocalExecutor()
        self._target: str | None = None
        self._facts: git.RepoFacts | None = None
        self._listing: boundary.Listing | None = None
        self._contained: sandbox.Decision | None = None

    def peer_statuses(self, graph: Graph) -> PeerStatuses | None:
        """The statuses of the peer tasks ``graph`` waits on (only the referenced repos' graphs
        are read), or None without an ecosystem or without peer dependencies."""
        if self.peer_repos is None:
            return None
        wanted = peers.referenced(graph)
        return peers.resolve(wanted, self.peer_repos) if wanted else None

    # --- the attempt -----------------------------------------------------------------------
    def target_branch(self) -> str:
        if self._target is not None:
            return self._target
        branch = self.config.target_branch or git.default_branch(self.repo)
        if branch is None or git.rev_parse(self.repo, branch) is None:
            raise SpeedriftError(
                f"{self.repo} has no commit on a target branch yet",
                hint="make an initial commit, or set target_branch in speedrift.toml",
            )
        self._target = branch  # resolved once per pipeline (a service picks up changes on restart)
        return branch

    def prepare(self) -> None:
        """Resolve, once, what every attempt would otherwise ask git again: the target branch and
        the repo's :class:`~speedrift.repo.git.RepoFacts`, and the worktree listing the outside-write
        watch reuses for a few seconds (repo/boundary.py). A supervisor calls this before it starts
        a worker process, which gets them with the pipeline. Raises SpeedriftError for a repo with
        nothing to branch from."""
        self.target_branch()
        if self._facts is None:
            self._facts = git.facts(self.repo)
        self._listing = boundary.listing(self.repo)
        self._sandbox()  # bwrap probed here, not again in every worker

    def _adopt_prepared(self) -> None:
        """In a worker process: take what the supervisor resolved in :meth:`prepare`."""
        if self._facts is not None:
            git.adopt(self._facts)
        if self._listing is not None:
            boundary.adopt(self.repo, self._listing)

    def resume_landing(self, task_id: str) -> AttemptResult:
        self._adopt_prepared()
        result = super().resume_landing(task_id)
        if result.status == DONE:  # as after any done attempt: the task's handoffs and claims close
            coordination.settle_done(self.repo, self.store.load().get(task_id) or {"id": task_id}, result)
        return result

    def run(self, task_id: str, options: RunOptions) -> AttemptResult:
        step = options.on_step or (lambda _message: None)
        self._adopt_prepared()
        target = self.target_branch()  # before the claim: a repo with nothing to branch from is refused
        actor = options.actor or worker_actor()
        started = time.monotonic()
        # every runtime it may use paused or unusable: refused before the claim (fleet/choosing.py)
        before, chosen = self._admit_runtime(task_id)
        self._admit_executor(before, task_id, chosen)  # a task no worker can take: refused, unclaimed
        claimed = self._claim(task_id, actor, options.force)
        task = claimed.tasks[0]
        number = int(speedrift_data(task)["attempt"])
        step(f"claimed {task_id} (attempt {number})")
        if options.on_claimed is not None:
            options.on_claimed(number)
        run_dir = attempts.run_dir(self.repo, task_id, number)
        manifest: worktrees.Manifest | None = None
        ports: envshare.PortBlock | None = None
        bootstrapped = False  # until the agent starts, a crash is an environment problem
        try:
            manifest = worktrees.create(self.repo, task_id, number, target)
            injection = envshare.inject(self.repo, Path(manifest.path), self.config.worktrees.share)
            ports = envshare.lease_ports(
                layout.state_dir(self.repo),
                manifest.name,
                self.config.worktrees.port_base,
                self.config.worktrees.port_block,
            )
            step(f"worktree {manifest.path} on {manifest.branch}")
            contained = self._sandbox()
            # the outside-write watch (fleet/outside.py) is for an agent that could write there: a
            # sandboxed one cannot (everything but its worktree is read-only to it), nor one that
            # runs on another machine
            watch = OutsideWatch(self.repo, Path(manifest.path), watched=self._watched(contained))
            git_before = gitboundary.snapshot(self.repo, Path(manifest.path))
            bootstrapped = True
            chosen = chosen or self._choose_runtime(task)  # a bad routing value raises here: recorded
            self._say_fallback(chosen, task_id, actor, step)
            records, runtime, model = choosing.attempt_records(chosen, task), chosen.runtime, chosen.model
            attempt = Attempt(
                task_id, number, run_dir, manifest, runtime, model, started, contained, chosen=records
            )
            repohooks.fire(self, attempt, repohooks.HookEvent.TASK_CLAIMED, title=str(task.get("title", "")))
            developed = _Developing(task, ports, options, before, injection, git_before, watch, step)
            return self._conclude(attempt, task, self._develop(attempt, developed))
        except StaleResult as stale:  # a Dask result not this attempt's: nothing of it lands
            if stale.claim_held:  # still this attempt's task: released as after any crash
                self._release_after_crash(task_id, number, manifest, run_dir, stale, bootstrapped)
            else:  # the task moved on (recovery, a person): left to whoever holds it now
                self._drop_stale(manifest, run_dir, stale)
            raise
        except BaseException as error:  # release the claim whatever happened, then re-raise
            self._release_after_crash(task_id, number, manifest, run_dir, error, bootstrapped)
            raise
        finally:
            if ports is not None:
                envshare.release_ports(layout.state_dir(self.repo), ports)

    def _develop(self, attempt: Attempt, d: _Developing) -> AttemptResult:
        """The agent's run and what it comes to: failed, held at a boundary, or committed, gated,
        reviewed and landed (fleet/merging.py, fleet/review.py). A blocking review that requests
        changes gives its findings back to the agent in the same worktree, and the revision is
        committed, gated and reviewed again (at most ``[review] max_rounds`` revisions). Every
        round stays in the run record: ``prompt-revision-<n>.md``, the events appended to one log."""
        revision: review.RevisionRequested | None = None
        spent = Usage()  # the developer's earlier rounds: the evidence counts every round's usage
        while True:
            asked = revision.text if revision is not None else None
            developed = self._run_agent(attempt, d.task, d.ports, d.options, d.graph, revision=asked)
            attempt, outcome = self._developed(attempt, developed)
            if revision is not None:
                review.keep_revision_prompt(attempt.run_dir, revision.number)
                outcome.usage = spent.plus(outcome.usage)
            before = attempt.outside_writes
            # outside writes and refused calls recorded; an agent that stopped after refused calls
            # but left changes goes on to be committed and gated like a finished run
            attempt, outcome = settle_outcome(self.store, attempt, outcome, d.watch.finish())
            attempt = replace(
                attempt, outside_writes=tuple(dict.fromkeys((*before, *attempt.outside_writes)))
            )
            stopped = self._check_boundaries(attempt, outcome, d.injection, d.git_before)
            if stopped is not None:
                return stopped
            if not outcome.success:
                return self._failed(attempt, outcome, [], revision.review.evidence() if revision else None)
            d.step("agent finished; committing and checking")
            try:
                return self._land(attempt, d.task, outcome, d.step, d.options.cancel)
            except review.RevisionRequested as requested:
                revision, spent = requested, outcome.usage
                d.step(f"the reviewer requested changes: revision {requested.number}")
                review.start_revision(attempt.run_dir, requested.number)
                d.watch = OutsideWatch(self.repo, attempt.worktree, watched=self._watched(attempt.sandbox))

    def _conclude(self, attempt: Attempt, task: dict[str, Any], result: AttemptResult) -> AttemptResult:
        """After the attempt came to its result (done, failed, waiting, merge-pending): an unfinished
        attempt leaves a handoff to the next one, a done one closes the task's handoffs and claims
        (fleet/coordination.py); then its open clarifications are triaged (fleet/clarify.py)."""
        coordination.conclude(self.repo, self.store, attempt, task, result)
        if result.status == DONE:
            resume.scrub(self.repo, attempt.task_id)  # its agent sessions: nothing resumes them now
        return clarify.settle(self.repo, self.config, self.store, attempt, task, result)

    # --- steps ---------------------------------------------------------------------------------
    def _claim(self, task_id: str, actor: str, force: bool) -> ops.Mutation:
        taken = worktrees.attempt_branches(self.repo, task_id)  # git, before the graph lock

        def build(graph: Graph, now: Any) -> ops.Mutation:
            task = graph.get(task_id)
            statuses = self.peer_statuses(graph)
            if task is not None and not force and task_id not in query.ready_ids(graph, now, statuses):
                reasons = query.direct_reasons(graph, task, now, statuses)
                detail = "; ".join(f"{r.get('blocker', r['kind'])}: {r['detail']}" for r in reasons)
                raise Refused(
                    f"task {task_id!r} is not ready ({detail or task.get('status')})", hint="--force"
                )
            mutation = ops.claim(graph, task_id, now=now, actor=actor)
            claimed = mutation.tasks[0]
            data = speedrift_data(claimed)
            floor = max(int(data.get("attempts", 0) or 0), int(claimed.get("retry_count", 0) or 0)) + 1
            attempt = worktrees.next_attempt(self.repo, task_id, floor, taken)
            running = {
                "attempt": attempt,
                "attempts": attempt,
                "state": "running",
                # proc_start: the claimant's start time, so a reused pid or a zombie never looks alive
                "worker": {
                    "pid": os.getpid(),
                    "proc_start": identity_of().started,
                    "host": socket.gethostname(),
                    "started": format_time(now),
                },
            }
            return ops.set_fields(graph, task_id, speedrift=running, now=now, actor=actor, within=mutation)

        return self.store.mutate(build, actor=actor)

    def _run_agent(
        self,
        attempt: Attempt,
        task: dict[str, Any],
        ports: envshare.PortBlock,
        options: RunOptions,
        graph: Graph,
        revision: str | None = None,
    ) -> Developed:
        """Run the developer agent on the attempt's worktree through the executor (here, or on a
        Dask worker whose commits come back onto the attempt's branch); ``revision``: a review
        round's findings (the agent revises its own work in the same worktree)."""
        run_dir = attempt.run_dir
        # the coordination store's records for this attempt (saved as inbox.md, ids in attempt.json)
        inbox, inbox_record = coordination.compile_for(self.repo, attempt, task)
        # no known credential reaches the agent, or prompt.md
        text = redact.redact_text(
            prompt.build_prompt(
                task,
                repo_name=self.repo.name,
                target_branch=attempt.target_branch,
                dependencies=prompt.dependencies_of(task, graph.tasks),
                earlier=attempts.earlier_attempts(self.repo, task["id"], attempt.number),
                handoff=attempts.handoff_notes(self.repo, task["id"]),
                inbox=inbox.text or None,
                revision=revision,
            )
        )
        prompt_file = layout.prompt_path(run_dir)
        prompt_file.write_text(text)
        runtime_options = self.config.runtime_options(attempt.runtime)
        budgets = self.config.budgets
        request = RunRequest(
            task_id=task["id"],
            attempt=attempt.number,
            prompt=text,
            prompt_file=prompt_file,
            cwd=attempt.worktree,
            model=attempt.model,
            exec_command=task.get("exec") if isinstance(task.get("exec"), str) else None,
            options=runtime_options.model_dump(),
            budgets=Budgets(
                wall_clock_s=budgets.wall_clock_minutes * 60,
                max_turns=budgets.max_turns,
                max_tokens=budgets.max_tokens,
                max_cost_usd=budgets.max_cost_usd,
                stall_s=budgets.stall_seconds,
                kill_grace_s=budgets.kill_grace_seconds,
                provider_retry_s=budgets.provider_retry_seconds,
                startup_s=budgets.startup_seconds,
            ),
        )
        request, resuming = resume.prepare(self.repo, attempt, request, self.executor, revision=revision)
        result_path = layout.result_path(run_dir)
        environment = agent_env.agent_env(
            {
                "SPEEDRIFT_TASK_ID": task["id"],
                "SPEEDRIFT_ATTEMPT": str(attempt.number),
                "WG_DIR": str(self.store.directory),
                "WG_TASK_ID": task["id"],
                **ports.env(),
                **coordination.agent_env(attempt, task),  # `speedrift signal` and where it posts
            },
            allow=self.config.env.allow,
            passthrough_secrets=self.config.env.secrets,
        )
        sandboxed = attempt.sandbox.evidence() if attempt.sandbox is not None else None
        attempts.write_attempt(
            run_dir,
            {
                "runtime": attempt.runtime,
                "model": request.model,
                "state": "running",
                "sandbox": sandboxed,
                "inbox": inbox_record,
                **attempt.chosen,  # routing, fallback, limits (fleet/choosing.py)
            },
        )
        runtime = registry.runtime_for(attempt.runtime)
        contained = resume.bind_store(self.repo, attempt, self._sandbox_policy(attempt), request, environment)
        if contained is None and attempt.sandbox is not None and options.on_step is not None:
            options.on_step(f"not sandboxed: {attempt.sandbox.why}")
        repohooks.fire(self, attempt, repohooks.HookEvent.SESSION_START, title=str(task.get("title", "")))
        cancel = options.cancel or threading.Event()
        watcher = attempts.CancelWatcher(run_dir, cancel)  # `speedrift cancel` from another process
        watcher.start()
        recipe = EnvRecipe(  # a worker composes the agent's environment from its own: no value travels
            extra={"SPEEDRIFT_TASK_ID": task["id"], "SPEEDRIFT_ATTEMPT": str(attempt.number)},
            allow=tuple(self.config.env.allow),
            secrets=tuple(self.config.env.secrets),
        )
        work = Development(
            self.repo,
            self.store,
            self.config,
            attempt,
            task,
            runtime,
            request,
            environment,
            recipe,
            cancel,
            on_event=options.on_event,
            # the agent's group, so whoever finds this attempt's process gone can end the agent
            on_start=lambda pgid: attempts.write_attempt(
                run_dir, {"agent_pgid": pgid, "agent_start": identity_of(pgid).started}
            ),
            sandboxed=contained,
            limits=choosing.rlimit_plan(task),  # speedrift.agent.limits, as rlimits
        )
        try:
            developed = resume.develop(self.executor, work, resuming, text)  # falls back to a fresh session
        finally:
            watcher.stop()
        outcome = developed.outcome
        # what it posted with `speedrift signal`: checked again, stamped with this attempt, stored
        coordination.take_in(self.repo, self.store, attempt, task)
        report, _problem = result.read_report(outcome.result_file) if outcome.result_file else (None, "")
        if outcome.result_file and outcome.result_file.is_file():
            # the agent writes it inside its worktree (its sandbox allows nothing else), in the
            # git-excluded .speedrift/; the run record keeps a copy
            shutil.copyfile(outcome.result_file, result_path)
            redact.redact_file(result_path)
        developed.outcome = result.apply_report(outcome, report)
        return developed

    def _sandbox_policy(self, attempt: Attempt) -> sandbox.Policy | None:
        """The sandbox the attempt's agent runs in: writable only its worktree (and its private HOME
        and TMPDIR under the run dir), the repository's git dir read-only; None when unsandboxed."""
        decision = attempt.sandbox
        if decision is None or not decision.used or decision.bwrap is None:
            return None
        return sandbox.Policy(
            decision.bwrap,
            worktree=attempt.worktree,
            run_dir=attempt.run_dir,
            git_common_dir=git.common_dir(self.repo),
            network=decision.network,
            runtime=attempt.runtime,
            hide=self.config.sandbox.hidden(),
        )

    def _check_boundaries(
        self,
        attempt: Attempt,
        outcome: RunOutcome,
        injection: envshare.Injection,
        git_before: gitboundary.Snapshot,
    ) -> AttemptResult | None:
        """What an attempt may not change, checked once the agent ended. The repository's git
        configuration or hooks changed (repo/gitboundary.py): the attempt is held for a human,
        whatever the agent's own outcome — nothing lands, the work stays in the worktree, and the
        evidence and the task's log name the files and keys (never a value) and how to undo them.
        Shared environment paths changed: the attempt fails. None: within bounds."""
        # the hooks as they were before: what the landing may run ([git] hooks = "repo"), also
        # when it resumes in another process
        hookpolicy.record_before(attempt.run_dir, git_before.hooks)
        after = gitboundary.snapshot(self.repo, attempt.worktree, git_before)
        changed = gitboundary.changes(git_before, after)
        if changed:
            self._report_git_changes(attempt, changed)
        holding = [change for change in changed if not change.routine]
        if holding:
            return self._hold_git_changes(attempt, outcome, holding)
        changed_shared = envshare.shared_changes(self.repo, injection)
        if changed_shared and outcome.success:
            outcome.success = False
            outcome.failure = FailureKind.AGENT_ERROR
            outcome.reason = f"the agent modified shared environment paths: {', '.join(changed_shared)}"
            return self._failed(attempt, outcome, extra={"shared_paths_modified": list(changed_shared)})
        return None

    def _report_git_changes(self, attempt: Attempt, changed: list[gitboundary.Change]) -> None:
        """Every change in the git directory, in the attempt's record (the evidence gets them with
        a hold; a routine change alone, e.g. a tracking branch set by ``push -u``, only here)."""
        attempts.write_attempt(attempt.run_dir, {"git_changes": [str(change) for change in changed][:200]})

    def _hold_git_changes(
        self, attempt: Attempt, outcome: RunOutcome, changed: list[gitboundary.Change]
    ) -> AttemptResult:
        shown = gitboundary.describe(changed)
        undo = "; ".join(dict.fromkeys(change.undo for change in changed[:10]))
        reason = f"the repository's git configuration or hooks changed during the attempt: {shown}"
        agent = "" if outcome.success else f" (the agent's own run failed too: {outcome.reason[:300]})"
        question = (
            f"The repository's git configuration or hooks changed while attempt {attempt.number} ran "
            f"(by the agent, or by anyone else meanwhile): {shown}. Speedrift ran none of it (its git "
            "runs with its own hooks path and without fsmonitor), but your own git commands in this "
            "repository would: review and undo it — "
            f"{undo}. Nothing was landed; the work stays in {attempt.worktree}{agent}. Once the "
            f"repository is as you want it, `speedrift retry {attempt.task_id}` starts a fresh attempt."
        )
        # key names can hold a URL (url.<base>.insteadOf, http.<url>.*): redacted like everything written
        details = {
            "git_changes": [redact.redact_text(str(change)) for change in changed][:200],
            "git_undo": [redact.redact_text(change.undo) for change in changed][:200],
        }
        kind = recovery_graph.BOUNDARY_VIOLATION
        return self._wait(attempt, outcome, [], kind, reason, question, details)

    def _release_after_crash(
        self,
        task_id: str,
        attempt: int,
        manifest: worktrees.Manifest | None,
        run_dir: Path,
        error: BaseException,
        bootstrapped: bool,
    ) -> None:
        """An exception escaped the pipeline: fail the task with the reason, keep any work — unless
        the work is on the target already (the exception came after the ref moved): then the task is
        done, as recovery would record it, and nothing runs again."""
        reason = str(error) if isinstance(error, SpeedriftError) else f"{type(error).__name__}: {error}"
        if manifest is not None:
            written = worktrees.read_manifests(self.repo)
            on_disk = next((m for m in written if m.name == manifest.name), manifest)
            if crash_recovery.landed_tip(self.repo, on_disk) is not None:
                crash_recovery.settle_attempt(self.repo, self.store, task_id, attempt, actor=worker_actor())
                return
            worktree = Path(manifest.path)
            aborted = landing.abort_interrupted_rebase(self.repo, worktree) if worktree.is_dir() else None
            if aborted is not None and not aborted.aborted:
                manifest.notes = [*manifest.notes, f"a rebase is still in progress: {aborted.detail}"][-20:]
            moved = git.rev_parse(self.repo, manifest.branch) != manifest.base_commit
            if not worktree.is_dir() or git.status_porcelain(worktree) or moved:
                manifest.set_state(worktrees.ManifestState.FAILED, reason[:300])
                worktrees.write_manifest(self.repo, manifest)
            else:
                worktrees.discard_unused(self.repo, manifest)
        self._recorder().crashed(
            task_id=task_id, attempt=attempt, run_dir=run_dir, reason=reason, bootstrapped=bootstrapped
        )
