"""One attempt at one task, end to end:

claim (atomic) -> worktree -> prompt -> runtime -> commit -> gate seam -> merge queue -> done
with evidence, or failed with a class and a reason. Every step that can fail after the claim
releases the task properly: no task stays claimed by a process that has stopped working on it,
and no worktree holding work is ever deleted.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedrift import layout, pausestore, redact
from speedrift.agents import choose as registry
from speedrift.agents import env as agent_env
from speedrift.agents import preflight, result, session
from speedrift.agents.protocol import AgentEvent, Budgets, FailureKind, RunOutcome, RunRequest
from speedrift.errors import InvalidValue, Refused, SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.fleet import attempts, blame, crash_recovery, failures, halt, pauses, prompt, recovery_graph
from speedrift.fleet.attempt import Attempt, landed_evidence, waiting_evidence
from speedrift.fleet.config import RepoConfig
from speedrift.gates.verdict import GateBlocked, GateRunner, GateVerdict, NoGates
from speedrift.graph import ops, peers, query
from speedrift.graph.codec import Graph
from speedrift.graph.model import DONE, FAILED, speedrift_data
from speedrift.graph.query import PeerStatuses
from speedrift.graph.store import GraphStore
from speedrift.procs import identity_of
from speedrift.repo import boundary, envshare, git, landing, landings, worktrees
from speedrift.times import format_time, now_utc


@dataclass
class AttemptResult:
    task_id: str
    attempt: int
    status: str  # done | failed | merge-pending
    reason: str
    failure: FailureClass | None = None
    landed_commit: str | None = None
    run_dir: str | None = None
    reset_at: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    recovery: dict[str, Any] | None = None  # the failure's recovery decision (fleet/recovery.py)


@dataclass
class RunOptions:
    actor: str = ""
    force: bool = False  # run a task that is not ready (a human's explicit choice)
    cancel: threading.Event | None = None
    on_event: Callable[[AgentEvent], None] | None = None
    on_step: Callable[[str], None] | None = None
    on_claimed: Callable[[int], None] | None = None  # told the attempt number once the task is claimed


def worker_actor() -> str:
    return f"speedrift@{socket.gethostname()}:{os.getpid()}"


class Pipeline:
    def __init__(
        self,
        repo: Path,
        store: GraphStore,
        config: RepoConfig,
        gates: GateRunner | None = None,
        peer_repos: Mapping[str, Path] | None = None,
    ) -> None:
        self.repo = repo
        self.store = store
        self.config = config
        self.gates = gates or NoGates()
        # the ecosystem's repos by name, when one is named: `after` entries REPO:TASK resolve
        # against them (graph/peers.py); None: they stay missing and block, as in workgraph
        self.peer_repos = dict(peer_repos) if peer_repos is not None else None
        self._target: str | None = None

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

    def run(self, task_id: str, options: RunOptions) -> AttemptResult:
        step = options.on_step or (lambda _message: None)
        target = self.target_branch()  # before the claim: a repo with nothing to branch from is refused
        actor = options.actor or worker_actor()
        started = time.monotonic()
        self._admit_runtime(task_id)  # a paused or unusable runtime: refused before the claim
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
            skip = boundary.running_worktrees(self.repo) | {Path(manifest.path).resolve()}
            watched = boundary.checkouts(self.repo, skip)
            outside_before = boundary.snapshot(watched)
            bootstrapped = True
            runtime_name, model = registry.select_runtime(task, self.config.default_runtime)
            model = model or self.config.runtime_options(runtime_name).model
            attempt = Attempt(task_id, number, run_dir, manifest, runtime_name, model, started)
            outcome = self._run_agent(attempt, task, ports, options)
            outside = boundary.changes(outside_before, boundary.snapshot(watched))
            if outside:
                self._report_outside_writes(task_id, run_dir, outside)
            outcome, shared = self._check_boundaries(outcome, manifest, injection)
            if not outcome.success:
                extra = {"shared_paths_modified": shared} if shared else None
                return self._failed(attempt, outcome, extra=extra)
            step("agent finished; committing and checking")
            return self._land(attempt, task, outcome, step)
        except BaseException as error:  # release the claim whatever happened, then re-raise
            self._release_after_crash(task_id, number, manifest, run_dir, error, bootstrapped)
            raise
        finally:
            if ports is not None:
                envshare.release_ports(layout.state_dir(self.repo), ports)

    # --- steps ---------------------------------------------------------------------------------
    def _admit_runtime(self, task_id: str) -> None:
        """Refuse (no claim, no attempt burned) while the task's runtime is paused machine-wide
        (fleet/pauses.py), and run the executor preflight before the first dispatch to a runtime:
        a failed one pauses the runtime with one escalation naming the fix, instead of failing
        every task on it. A task that does not exist is left for the claim to report."""
        task = self.store.load().get(task_id)
        if task is None:
            return
        try:
            runtime, model = registry.select_runtime(task, self.config.default_runtime)
        except InvalidValue:
            return  # the attempt reports the bad configuration as it always has
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

    def _claim(self, task_id: str, actor: str, force: bool) -> ops.Mutation:
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
            attempt = worktrees.next_attempt(self.repo, task_id, floor)
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
        self, attempt: Attempt, task: dict[str, Any], ports: envshare.PortBlock, options: RunOptions
    ) -> RunOutcome:
        run_dir = attempt.run_dir
        graph = self.store.load()
        # no known credential reaches the agent, or prompt.md
        text = redact.redact_text(
            prompt.build_prompt(
                task,
                repo_name=self.repo.name,
                target_branch=attempt.target_branch,
                dependencies=prompt.dependencies_of(task, graph.tasks),
                earlier=attempts.earlier_attempts(self.repo, task["id"], attempt.number),
                handoff=attempts.handoff_notes(self.repo, task["id"]),
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
            ),
        )
        result_path = layout.result_path(run_dir)
        environment = agent_env.agent_env(
            {
                "SPEEDRIFT_TASK_ID": task["id"],
                "SPEEDRIFT_ATTEMPT": str(attempt.number),
                "WG_DIR": str(self.store.directory),
                "WG_TASK_ID": task["id"],
                **ports.env(),
            },
            allow=self.config.env.allow,
            passthrough_secrets=self.config.env.secrets,
        )
        attempts.write_attempt(
            run_dir, {"runtime": attempt.runtime, "model": request.model, "state": "running"}
        )
        runtime = registry.runtime_for(attempt.runtime)
        cancel = options.cancel or threading.Event()
        watcher = attempts.CancelWatcher(run_dir, cancel)  # `speedrift cancel` from another process
        watcher.start()
        try:
            outcome = session.run_session(
                runtime,
                request,
                env=environment,
                run_dir=run_dir,
                cancel=cancel,
                on_event=options.on_event,
                # the agent's group, so whoever finds this attempt's process gone can end the agent
                on_start=lambda pgid: attempts.write_attempt(
                    run_dir, {"agent_pgid": pgid, "agent_start": identity_of(pgid).started}
                ),
            )
        finally:
            watcher.stop()
        report, _problem = result.read_report(outcome.result_file) if outcome.result_file else (None, "")
        if outcome.result_file and outcome.result_file.is_file():
            # the agent writes it inside its worktree (its sandbox allows nothing else), in the
            # git-excluded .speedrift/; the run record keeps a copy
            shutil.copyfile(outcome.result_file, result_path)
            redact.redact_file(result_path)
        return result.apply_report(outcome, report)

    def _report_outside_writes(self, task_id: str, run_dir: Path, paths: list[str]) -> None:
        shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        attempts.write_attempt(run_dir, {"outside_writes": paths[:200]})
        self.store.mutate(
            lambda g, now: ops.log_message(
                g,
                task_id,
                f"Files outside the attempt's worktree changed during the run: {shown}",
                now=now,
                actor=worker_actor(),
            ),
            actor=worker_actor(),
        )

    def _check_boundaries(
        self, outcome: RunOutcome, manifest: worktrees.Manifest, injection: envshare.Injection
    ) -> tuple[RunOutcome, list[str]]:
        changed_shared = envshare.shared_changes(self.repo, injection)
        if changed_shared and outcome.success:
            outcome.success = False
            outcome.failure = FailureKind.AGENT_ERROR
            outcome.reason = f"the agent modified shared environment paths: {', '.join(changed_shared)}"
            return outcome, list(changed_shared)
        return outcome, []

    def _land(
        self, attempt: Attempt, task: dict[str, Any], outcome: RunOutcome, step: Callable[[str], None]
    ) -> AttemptResult:
        task_id, run_dir, manifest = attempt.task_id, attempt.run_dir, attempt.manifest
        worktree = attempt.worktree
        timings: dict[str, float] = {"agent_done": attempt.elapsed()}
        verdicts: list[GateVerdict] = []

        def fail(
            kind: FailureKind, reason: str, failure_class: FailureClass | None = None, **extra: Any
        ) -> AttemptResult:
            outcome.success, outcome.failure, outcome.reason = False, kind, reason
            return self._failed(
                attempt,
                outcome,
                verdicts,
                extra,
                # the agent's own work is at fault (no commit, no change); else a later step failed
                agent_failed=failure_class is None and not verdicts,
            )

        try:
            landing.commit_all(self.repo, worktree, task_id, str(task.get("title", task_id)))
        except landing.CommitRejected as error:
            return fail(FailureKind.AGENT_ERROR, error.message)
        tip = git.rev_parse(worktree, "HEAD")
        assert tip is not None
        if tip == manifest.base_commit and attempt.runtime != "shell":
            return fail(FailureKind.INCOMPLETE, "the agent reported success but changed nothing")

        def gate(checked: worktrees.Manifest, candidate: str) -> None:
            if verdicts and verdicts[-1].evidence.get("tip") == candidate:
                return  # this exact tree was already checked
            # the attempt's own commits, judged against the commit they sit on: its base, or the
            # target's tip the merge queue rebased them onto (never other tasks' work)
            base = checked.landing_from or checked.base_commit
            verdict = self.gates.check(self.repo, worktree, base, candidate, task)
            verdict.evidence.setdefault("tip", candidate)
            verdicts.append(verdict)
            if not verdict.passed:
                raise GateBlocked(verdict)

        try:
            if tip != manifest.base_commit:
                tip = self._own_verdict(manifest, tip, gate)
                manifest.set_state(worktrees.ManifestState.LANDING)
                worktrees.write_manifest(self.repo, manifest)
                step("in the merge queue")
                landed: str | None = landing.land(self.repo, manifest, gate, timings)
            else:
                landed = None  # a shell task that changed nothing: done, with nothing to merge
        except blame.PreExisting as found:
            question = (
                f"The gates fail on {manifest.target_branch} itself, not because of this task: "
                f"{found.message}. Fix that on {manifest.target_branch}; the task resumes by itself once "
                f"{manifest.target_branch} moves on, or now with `speedrift retry {task_id}`."
            )
            details = {"pre_existing": found.failures[:50], "checked_on": found.onto}
            kind = recovery_graph.PRE_EXISTING
            return self._wait(attempt, outcome, verdicts, kind, found.message, question, details)
        except landing.TargetMoved as moved:
            question = (
                f"{moved.target} moved outside the merge queue while attempt {attempt.number} ran: "
                f"{moved.described}. Nothing was landed on top of that; review the commit(s) (they passed "
                f"no gate). To accept {moved.target} as it is now, `speedrift retry {task_id}` starts a "
                "fresh attempt from its tip."
            )
            details = {"foreign_commits": moved.foreign[:50]}
            kind = recovery_graph.BOUNDARY_VIOLATION
            return self._wait(attempt, outcome, verdicts, kind, moved.message, question, details)
        except GateBlocked as blocked:
            return fail(FailureKind.AGENT_ERROR, blocked.message, blocked.verdict.failure_class)
        except landing.MergeConflict as conflict:
            foreign = {"foreign_commits": conflict.foreign[:50]} if conflict.foreign else {}
            return fail(
                FailureKind.AGENT_ERROR,
                conflict.message,
                FailureClass.MERGE_CONFLICT,
                conflicting_files=conflict.files,
                **foreign,
            )
        except landing.MergePending as pending:
            return self._merge_pending(attempt, pending.message)
        if landed is None:
            manifest.set_state(worktrees.ManifestState.LANDED)
            worktrees.write_manifest(self.repo, manifest)
        # the commits this attempt itself landed: from the tip they were put on to its own tip
        onto = manifest.landing_from or manifest.base_commit
        stats = landing.diff_stats(self.repo, onto, landed) if landed else None
        duration = attempt.elapsed()
        evidence = landed_evidence(
            attempt,
            outcome,
            verdicts,
            duration_s=duration,
            landed=landed,
            stats=stats,
            timings=timings,
            onto=onto,
        )
        attempts.write_evidence(run_dir, evidence)
        if landed and stats:
            summary = f"Landed {landed[:12]} on {manifest.target_branch} "
            summary += f"({stats.files} files, +{stats.insertions}/-{stats.deletions})"
        else:
            summary = "Done with no changes to land"
        evidence_file = attempt.evidence_path
        message = f"{summary} via {attempt.runtime} in {duration:.1f}s; evidence: {evidence_file}"
        landed_data = {"state": None, "worker": None, "evidence": str(evidence_file), "landed_commit": landed}
        landed_data |= {k: evidence[k] for k in ("verified", "unverified_reason")}  # "done (unverified)"

        def finish(graph: Graph, now: Any) -> ops.Mutation:
            actor = worker_actor()
            mutation = ops.done(graph, task_id, now=now, actor=actor, force=True, message=message)
            ops.set_fields(graph, task_id, speedrift=landed_data, now=now, actor=actor, within=mutation)
            return mutation

        self.store.mutate(finish, actor=worker_actor())
        landing.at_step("done")
        attempts.write_attempt(run_dir, {"runtime": attempt.runtime, "state": DONE, "landed_commit": landed})
        halt.record_outcome(self.repo, task_id, attempt.number, DONE)
        worktrees.remove_landed(self.repo, manifest)  # only now: until done is written, it proves the landing
        landing.at_step("cleaned")
        return AttemptResult(
            task_id,
            attempt.number,
            DONE,
            summary,
            landed_commit=landed,
            run_dir=str(run_dir),
            evidence=evidence,
        )

    def _own_verdict(
        self, manifest: worktrees.Manifest, tip: str, gate: Callable[[worktrees.Manifest, str], None]
    ) -> str:
        """Gate the attempt's own commits; blame the agent only for what it did (fleet/blame.py).
        A failure that a fresh base may change is judged again after a rebase onto the target's
        current tip (the target must have moved only through the merge queue); a failure still there
        and already present on that tip raises :class:`blame.PreExisting`. Returns the tip to land."""
        try:
            gate(manifest, tip)
            return tip
        except GateBlocked as blocked:
            if not blame.fresh_base_may_help(blocked.verdict):
                raise
            judged = blocked
        target = manifest.target_branch
        onto = git.rev_parse(self.repo, f"refs/heads/{target}") or manifest.base_commit
        if onto != manifest.base_commit:
            foreign = landings.foreign_commits(self.repo, target, manifest.base_commit, onto)
            if foreign:  # judged on a base nobody gated: the merge queue refuses it anyway
                raise landing.TargetMoved(target, foreign, landings.describe(self.repo, foreign))
            rebased = landing.rebase_onto_target(self.repo, manifest, onto)
            manifest.landing_from = onto
            try:
                gate(manifest, rebased)
                return rebased
            except GateBlocked as again:
                judged = again
            finally:
                manifest.landing_from = None
        found = blame.pre_existing(judged.verdict)
        if found:
            raise blame.PreExisting(judged.verdict, found, onto)
        raise judged

    def _failed(
        self,
        attempt: Attempt,
        outcome: RunOutcome,
        verdicts: list[GateVerdict] | None = None,
        extra: dict[str, Any] | None = None,
        agent_failed: bool = True,
    ) -> AttemptResult:
        """Record a failed attempt (class, recovery: fleet/failures.py); the worktree is kept."""
        recorded = self._recorder().failed(
            attempt,
            outcome=outcome,
            verdicts=verdicts or [],
            extra=extra or {},
            agent_failed=agent_failed,
        )
        self._note_runtime_failure(attempt, recorded, outcome)
        return AttemptResult(
            attempt.task_id,
            attempt.number,
            FAILED,
            recorded.reason,
            failure=recorded.failure_class,
            run_dir=str(attempt.run_dir),
            reset_at=recorded.evidence["reset_at"],
            evidence=recorded.evidence,
            recovery=recorded.decision.as_dict(),
        )

    def _recorder(self) -> failures.FailureRecorder:
        return failures.FailureRecorder(self.repo, self.store, self.config, worker_actor())

    def _wait(
        self,
        attempt: Attempt,
        outcome: RunOutcome,
        verdicts: list[GateVerdict],
        kind: str,
        reason: str,
        question: str,
        details: dict[str, Any],
    ) -> AttemptResult:
        """Neither landed nor failed: the task waits (fleet/recovery_graph.py, "waiting instead of
        failing") — no failure class, no failure recorded, the attempt not burned; the worktree
        keeps the work."""
        manifest = attempt.manifest
        reason, question = redact.redact_text(reason), redact.redact_text(question)
        manifest.set_state(worktrees.ManifestState.WAITING, f"{kind}: {reason}"[:500])
        worktrees.write_manifest(self.repo, manifest)
        evidence = waiting_evidence(
            attempt,
            outcome,
            verdicts,
            duration_s=attempt.elapsed(),
            waiting=kind,
            reason=reason,
            extra=details,
        )
        attempts.write_evidence(attempt.run_dir, evidence)
        target = manifest.target_branch
        recorded = {
            "reason": reason[:2000],
            "attempt": attempt.number,
            "target": target,
            "target_tip": git.rev_parse(self.repo, f"refs/heads/{target}"),
            "evidence": str(attempt.evidence_path),
            **details,
        }
        actor = worker_actor()
        self.store.mutate(
            lambda g, now: recovery_graph.wait_mutation(
                g, attempt.task_id, kind=kind, question=question, details=recorded, now=now, actor=actor
            ),
            actor=actor,
        )
        state = {"runtime": attempt.runtime, "state": "waiting", "waiting": kind, "reason": reason}
        attempts.write_attempt(attempt.run_dir, state)
        halt.record_outcome(self.repo, attempt.task_id, attempt.number, "waiting")
        run_dir = str(attempt.run_dir)
        return AttemptResult(
            attempt.task_id, attempt.number, "waiting", reason, run_dir=run_dir, evidence=evidence
        )

    def refuse_moved_target(self, manifest: worktrees.Manifest, moved: landing.TargetMoved) -> str:
        """A merge-pending attempt whose target moved outside the merge queue while it waited (the
        service's merge retry found foreign commits): it is not built upon; the task waits, as in
        :meth:`_land`. Returns what was recorded."""
        task_id = manifest.task_id
        question = (
            f"{moved.target} moved outside the merge queue while attempt {manifest.attempt} waited to land: "
            f"{moved.described}. Nothing was landed on top of that; review the commit(s). To accept "
            f"{moved.target} as it is now, `speedrift retry {task_id}` starts a fresh attempt from its tip."
        )
        reason = redact.redact_text(moved.message)
        manifest.set_state(
            worktrees.ManifestState.WAITING, f"{recovery_graph.BOUNDARY_VIOLATION}: {reason}"[:500]
        )
        worktrees.write_manifest(self.repo, manifest)
        details = {
            "reason": reason[:2000],
            "attempt": manifest.attempt,
            "target": moved.target,
            "target_tip": git.rev_parse(self.repo, f"refs/heads/{moved.target}"),
            "foreign_commits": moved.foreign[:50],
        }
        actor = worker_actor()
        self.store.mutate(
            lambda g, now: recovery_graph.wait_mutation(
                g,
                task_id,
                kind=recovery_graph.BOUNDARY_VIOLATION,
                question=redact.redact_text(question),
                details=details,
                now=now,
                actor=actor,
            ),
            actor=actor,
        )
        run_dir = attempts.run_dir(self.repo, task_id, manifest.attempt)
        attempts.write_attempt(run_dir, {"state": "waiting", "waiting": recovery_graph.BOUNDARY_VIOLATION})
        halt.record_outcome(self.repo, task_id, manifest.attempt, "waiting")
        return f"waits for a human: {reason}"

    def _merge_pending(self, attempt: Attempt, reason: str) -> AttemptResult:
        manifest = attempt.manifest
        manifest.set_state(worktrees.ManifestState.MERGE_PENDING)
        worktrees.write_manifest(self.repo, manifest)
        self.store.mutate(
            lambda g, now: ops.update_speedrift(
                g,
                attempt.task_id,
                {"state": "merge-pending", "pending_reason": reason},
                now=now,
                actor=worker_actor(),
                message=f"Merge pending: {reason}",
            ),
            actor=worker_actor(),
        )
        attempts.write_attempt(attempt.run_dir, {"state": "merge-pending", "reason": reason})
        return AttemptResult(
            attempt.task_id, attempt.number, "merge-pending", reason, run_dir=str(attempt.run_dir)
        )

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
