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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedrift import layout, redact
from speedrift.agents import choose as registry
from speedrift.agents import env as agent_env
from speedrift.agents import result, session
from speedrift.agents.protocol import AgentEvent, Budgets, FailureKind, RunOutcome, RunRequest
from speedrift.errors import Refused, SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.fleet import attempts, failures, halt, prompt
from speedrift.fleet.attempt import Attempt, landed_evidence
from speedrift.fleet.config import RepoConfig
from speedrift.gates.verdict import GateBlocked, GateRunner, GateVerdict, NoGates
from speedrift.graph import ops, query
from speedrift.graph.codec import Graph
from speedrift.graph.model import DONE, FAILED, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.repo import boundary, envshare, git, landing, worktrees
from speedrift.times import format_time


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


def worker_actor() -> str:
    return f"speedrift@{socket.gethostname()}:{os.getpid()}"


class Pipeline:
    def __init__(
        self, repo: Path, store: GraphStore, config: RepoConfig, gates: GateRunner | None = None
    ) -> None:
        self.repo = repo
        self.store = store
        self.config = config
        self.gates = gates or NoGates()
        self._target: str | None = None

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
        claimed = self._claim(task_id, actor, options.force)
        task = claimed.tasks[0]
        number = int(speedrift_data(task)["attempt"])
        step(f"claimed {task_id} (attempt {number})")
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
    def _claim(self, task_id: str, actor: str, force: bool) -> ops.Mutation:
        def build(graph: Graph, now: Any) -> ops.Mutation:
            task = graph.get(task_id)
            if task is not None and not force and task_id not in query.ready_ids(graph, now):
                reasons = query.direct_reasons(graph, task, now)
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
                "worker": {"pid": os.getpid(), "host": socket.gethostname(), "started": format_time(now)},
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
                runtime, request, env=environment, run_dir=run_dir, cancel=cancel, on_event=options.on_event
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
            verdict = self.gates.check(self.repo, worktree, checked.base_commit, candidate, task)
            verdict.evidence.setdefault("tip", candidate)
            verdicts.append(verdict)
            if not verdict.passed:
                raise GateBlocked(verdict)

        try:
            if tip != manifest.base_commit:
                gate(manifest, tip)
                manifest.state = worktrees.ManifestState.LANDING
                worktrees.write_manifest(self.repo, manifest)
                step("in the merge queue")
                landed: str | None = landing.land(self.repo, manifest, gate, timings)
            else:
                landed = None  # a shell task that changed nothing: done, with nothing to merge
        except GateBlocked as blocked:
            return fail(FailureKind.AGENT_ERROR, blocked.message, blocked.verdict.failure_class)
        except landing.MergeConflict as conflict:
            return fail(
                FailureKind.AGENT_ERROR,
                conflict.message,
                FailureClass.MERGE_CONFLICT,
                conflicting_files=conflict.files,
            )
        except landing.MergePending as pending:
            return self._merge_pending(attempt, pending.message)
        manifest.state = worktrees.ManifestState.LANDED
        manifest.landed_commit = landed
        worktrees.write_manifest(self.repo, manifest)
        worktrees.remove_landed(self.repo, manifest)
        stats = landing.diff_stats(self.repo, manifest.base_commit, landed) if landed else None
        duration = attempt.elapsed()
        evidence = landed_evidence(
            attempt, outcome, verdicts, duration_s=duration, landed=landed, stats=stats, timings=timings
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

        def finish(graph: Graph, now: Any) -> ops.Mutation:
            actor = worker_actor()
            mutation = ops.done(graph, task_id, now=now, actor=actor, force=True, message=message)
            ops.set_fields(graph, task_id, speedrift=landed_data, now=now, actor=actor, within=mutation)
            return mutation

        self.store.mutate(finish, actor=worker_actor())
        attempts.write_attempt(run_dir, {"runtime": attempt.runtime, "state": DONE, "landed_commit": landed})
        halt.record_outcome(self.repo, task_id, attempt.number, DONE)
        return AttemptResult(
            task_id,
            attempt.number,
            DONE,
            summary,
            landed_commit=landed,
            run_dir=str(run_dir),
            evidence=evidence,
        )

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

    def _merge_pending(self, attempt: Attempt, reason: str) -> AttemptResult:
        manifest = attempt.manifest
        manifest.state = worktrees.ManifestState.MERGE_PENDING
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
        """An exception escaped the pipeline: fail the task with the reason, keep any work."""
        reason = str(error) if isinstance(error, SpeedriftError) else f"{type(error).__name__}: {error}"
        if manifest is not None:
            if (
                git.status_porcelain(Path(manifest.path))
                or git.rev_parse(self.repo, manifest.branch) != manifest.base_commit
            ):
                manifest.state = worktrees.ManifestState.FAILED
                worktrees.write_manifest(self.repo, manifest)
            else:
                worktrees.discard_unused(self.repo, manifest)
        self._recorder().crashed(
            task_id=task_id, attempt=attempt, run_dir=run_dir, reason=reason, bootstrapped=bootstrapped
        )
