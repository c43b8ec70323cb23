"""The landing half of an attempt: commit, gate the attempt's own commits, the merge queue, and
what the attempt comes to — done with evidence, failed with a class, waiting for a human, or
merge-pending — plus resuming a merge-pending landing later.

:class:`Landing` is one half of :class:`~speedrift.fleet.pipeline.Pipeline` (which runs the agent
and hands over here once it finished). Invariants: nothing reaches the target branch without a
gate verdict on exactly the tree that lands — a resumed landing is gated again, never trusted
from before; the agent is blamed only for what it did (fleet/blame.py); the worktree goes only
once ``done`` is written; a commit the secrets gate blocked is taken off its branch (no ref holds
it, so no push publishes it) and its files are kept in the quarantined worktree, said in the
evidence (``withdrawn``) and the task's log; the Reviewer judges the gated tip (fleet/review.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from threading import Event
from typing import Any

from speedrift import records, redact
from speedrift.agents.protocol import FailureKind, RunOutcome, Usage
from speedrift.errors import Refused
from speedrift.failure_class import FailureClass
from speedrift.fleet import (
    approval,
    attemptfeed,
    attempts,
    blame,
    failures,
    halt,
    hookpolicy,
    recovery_graph,
    repohooks,
    review,
    review_record,
)
from speedrift.fleet.attempt import Attempt, AttemptResult, landed_evidence, waiting_evidence, worker_actor
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.remote.trust import trusted_worker_verdict
from speedrift.gates.verdict import GateBlocked, GateRunner, GateVerdict
from speedrift.gitcmd import GitError
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import DONE, FAILED, IN_PROGRESS, Task, speedrift_data
from speedrift.graph.store import GraphStore
from speedrift.procs import identity_of
from speedrift.repo import git, landing, landings, worktrees
from speedrift.times import format_time, now_utc, parse_time

Step = Callable[[str], None]  # says what the attempt does now


def outcome_record(outcome: RunOutcome) -> dict[str, Any]:
    """What a resumed landing needs of the agent's run (JSON): its verdict, usage and report, and
    the tool calls its CLI refused (an agent that stopped after them keeps saying so)."""
    return {
        "success": outcome.success,
        "failure": outcome.failure.value if outcome.failure else None,
        "refused": list(outcome.refused),
        "reason": outcome.reason,
        "usage": asdict(outcome.usage),
        "exit_code": outcome.exit_code,
        "final_text": outcome.final_text[-20_000:],
        "duration_s": outcome.duration_s,
        "result_file": str(outcome.result_file) if outcome.result_file else None,
        "reset_at": format_time(outcome.reset_at) if outcome.reset_at else None,
    }


def outcome_from(raw: object) -> RunOutcome:
    """:func:`outcome_record` read back; what is missing or malformed takes its default (a resumed
    landing only exists because the agent's run succeeded)."""
    data = raw if isinstance(raw, dict) else {}
    raw_usage = data.get("usage")
    used = raw_usage if isinstance(raw_usage, dict) else {}

    def count(key: str) -> int:
        value = used.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    cost = used.get("cost_usd")
    usage = Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_tokens"),
        cache_write_tokens=count("cache_write_tokens"),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else 0.0,
        turns=count("turns"),
    )
    result_file = data.get("result_file")
    reset_at = data.get("reset_at")
    refused = data.get("refused")
    # only the verdict a landing goes on with (an agent that stopped after refused calls)
    stopped = FailureKind.INCOMPLETE if data.get("failure") == FailureKind.INCOMPLETE.value else None
    return RunOutcome(
        success=True,
        failure=stopped,
        refused=tuple(str(r) for r in refused) if isinstance(refused, list) else (),
        reason=str(data.get("reason") or ""),
        usage=usage,
        exit_code=data.get("exit_code") if isinstance(data.get("exit_code"), int) else None,
        final_text=str(data.get("final_text") or ""),
        duration_s=float(data["duration_s"]) if isinstance(data.get("duration_s"), int | float) else 0.0,
        result_file=Path(result_file) if isinstance(result_file, str) else None,
        reset_at=parse_time(reset_at) if isinstance(reset_at, str) else None,
    )


class Landing:
    """The landing steps of a pipeline (see the module docstring). The pipeline provides the repo,
    its graph, config and gates, and what a failure means for its runtime."""

    repo: Path
    store: GraphStore
    config: RepoConfig
    gates: GateRunner
    _note_runtime_failure: Callable[[Attempt, failures.Recorded, RunOutcome], None]

    def resume_landing(self, task_id: str) -> AttemptResult:
        """Land a merge-pending attempt now: take the task over (this process is its worker from
        here, so a crash is recovered like any landing's), undo a rebase a crash cut off, then the
        landing steps of :meth:`_land` again — gated again, on whatever tree lands now. Raises
        Refused when the task has no merge-pending attempt."""
        pending = [
            m
            for m in worktrees.read_manifests(self.repo)
            if m.task_id == task_id and m.state is worktrees.ManifestState.MERGE_PENDING
        ]
        if not pending:
            raise Refused(f"task {task_id!r} has no attempt waiting to land")
        manifest = max(pending, key=lambda m: m.attempt)
        run_dir = attempts.run_dir(self.repo, task_id, manifest.attempt)
        record = records.read_attempt(run_dir)
        raw = record.raw if record is not None else {}
        actor = worker_actor()

        def take_over(graph: Graph, now: Any) -> ops.Mutation:
            task = graph.get(task_id)
            if task is None or task.get("status") != IN_PROGRESS:
                raise Refused(f"task {task_id!r} is no longer in progress; its pending landing is left alone")
            data = speedrift_data(task)
            if data.get("state") != "merge-pending" or data.get("attempt") != manifest.attempt:
                raise Refused(f"task {task_id!r} is not waiting to land attempt {manifest.attempt}")
            me = identity_of()
            worker = {
                "pid": me.pid,
                "proc_start": me.started,
                "host": socket.gethostname(),
                "started": format_time(now),
            }
            return ops.update_speedrift(
                graph,
                task_id,
                {"state": "landing", "worker": worker},
                now=now,
                actor=actor,
                message=f"Resuming the landing of attempt {manifest.attempt}",
            )

        task = self.store.mutate(take_over, actor=actor).tasks[0]
        manifest.owner = identity_of().to_dict()
        worktrees.write_manifest(self.repo, manifest)
        landing.abort_rebase_if_any(Path(manifest.path))
        runtime = str(raw.get("runtime") or "shell")
        model = raw.get("model") if isinstance(raw.get("model"), str) else None
        listed = raw.get("outside_writes")
        outside = tuple(str(p) for p in listed) if isinstance(listed, list) else ()
        attempt = Attempt(task_id, manifest.attempt, run_dir, manifest, runtime, model, time.monotonic())
        ran = raw.get("machine")  # where its development ran (the evidence says it again)
        attempt = replace(attempt, outside_writes=outside, machine=ran if isinstance(ran, dict) else {})
        attempts.write_attempt(run_dir, {"state": "running", "resumed": format_time(now_utc())})
        return self._land(attempt, task, outcome_from(raw.get("outcome")), lambda _message: None)

    def _land(
        self, attempt: Attempt, task: Task, outcome: RunOutcome, step: Step, cancel: Event | None = None
    ) -> AttemptResult:
        task_id, run_dir, manifest = attempt.task_id, attempt.run_dir, attempt.manifest
        worktree = attempt.worktree
        timings: dict[str, float] = {"agent_done": attempt.elapsed()}
        verdicts: list[GateVerdict] = []
        reviewing = review_record.Review.load(self.config, task, run_dir)  # earlier rounds: in the record

        def fail(
            kind: FailureKind, reason: str, failure_class: FailureClass | None = None, **extra: Any
        ) -> AttemptResult:
            outcome.success, outcome.failure, outcome.reason = False, kind, reason
            return self._failed(
                attempt,
                outcome,
                verdicts,
                extra | reviewing.evidence(),
                # the agent's own work is at fault (no commit, no change); else a later step failed
                agent_failed=failure_class is None and not verdicts,
            )

        hooks = hookpolicy.landing_hooks(self.config, self.store, attempt)  # [git] hooks
        committed: str | None = None
        try:
            # work developed on a Dask worker came committed; anything uncommitted here now is no
            # agent's (none ran here), and is not taken as its work
            if not attempt.developed_elsewhere:
                title = str(task.get("title", task_id))
                committed = landing.commit_all(self.repo, worktree, task_id, title, hooks=hooks.directory)
        except landing.CommitRejected as error:
            return fail(FailureKind.AGENT_ERROR, error.message)
        tip = committed or git.rev_parse(worktree, "HEAD")
        assert tip is not None
        if tip == manifest.base_commit and attempt.runtime != "shell":
            return fail(FailureKind.INCOMPLETE, "the agent reported success but changed nothing")
        seeded = trusted_worker_verdict(attempt, self.gates, self.store, tip)  # not gated twice
        if seeded is not None:
            verdicts.append(seeded)

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
                tip = self._own_verdict(manifest, tip, gate, hooks.directory)
                review.judge(self, attempt, task, tip, verdicts, reviewing, step, cancel)  # or raises
                repohooks.completing(self, attempt, task, tip, verdicts)  # or raises HookRejected
                self._approved_to_merge(attempt)  # or raises MergePending: a person approves first
                manifest.set_state(worktrees.ManifestState.LANDING)
                worktrees.write_manifest(self.repo, manifest)
                step("in the merge queue")
                landed: str | None = landing.land(
                    self.repo, manifest, gate, timings, own_tip=tip, hooks=hooks.directory
                )
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
            withdrawn = self._withdraw_leak(attempt, blocked.verdict)
            if withdrawn:
                self._log_withdrawn(attempt, withdrawn["withdrawn"])
            return fail(FailureKind.AGENT_ERROR, blocked.message, blocked.verdict.failure_class, **withdrawn)
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
            return self._merge_pending(attempt, outcome, pending.message)
        except review.ReviewRunFailed as failed:  # not the agent's doing: the reviewer's run failed
            return self._failed(*failed.failing(attempt, outcome), verdicts, reviewing.evidence())
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
        if hooks.refused:
            evidence["hooks_not_run"] = hooks.refused[:50]
        evidence |= reviewing.evidence()
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
        attemptfeed.feed(self.repo, attempt, outcome, evidence, status=DONE, task=task, config=self.config)
        repohooks.fire(self, attempt, repohooks.HookEvent.TASK_DONE, tip=landed, verdicts=verdicts)
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
        self,
        manifest: worktrees.Manifest,
        tip: str,
        gate: Callable[[worktrees.Manifest, str], None],
        hooks: Path | None = None,
    ) -> str:
        """Gate the attempt's own commits; blame the agent only for what it did (fleet/blame.py).
        A failure that a fresh base may change is judged again after a rebase onto the target's
        current tip (the target must have moved only through the merge queue); a failure still there
        and already present on that tip raises :class:`blame.PreExisting`. Returns the tip to land.
        ``hooks``: the approved hooks directory for the rebase (fleet/hookpolicy.py), if any."""
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
            rebased = landing.rebase_onto_target(self.repo, manifest, onto, hooks=hooks)
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

    def _withdraw_leak(self, attempt: Attempt, verdict: GateVerdict) -> dict[str, Any]:
        """A commit the secrets gate blocked leaves its branch (repo/worktrees.py ``withdraw``): no
        ref holds it, its files stay in the quarantined worktree. Returns the evidence's
        ``withdrawn`` entry ({} for any other failure); a git step that fails is recorded there,
        never raised — the failure is recorded either way."""
        if verdict.failure_class is not FailureClass.SECRET_LEAK:
            return {}
        manifest = attempt.manifest
        try:
            done = worktrees.withdraw(self.repo, manifest, "the secrets gate blocked it")
        except (GitError, OSError) as error:
            said = redact.redact_text(str(error))
            return {
                "withdrawn": {
                    "done": False,
                    "branch": manifest.branch,
                    "worktree": manifest.path,
                    "error": said,
                    "sentence": f"the blocked commit could NOT be taken off branch {manifest.branch}: "
                    f"{said}; delete the branch by hand before any `git push --all`",
                }
            }
        return {
            "withdrawn": {
                "done": True,
                "commit": done.commit,
                "branch": done.branch,
                "branch_now_at": done.base,
                "worktree": done.worktree,
                "still_held_by": list(done.still_held_by),
                "sentence": done.sentence(),
            }
        }

    def _log_withdrawn(self, attempt: Attempt, withdrawn: dict[str, Any]) -> None:
        message = f"Secret leak contained: {withdrawn['sentence']}."
        actor = worker_actor()
        self.store.mutate(
            lambda g, now: ops.log_message(g, attempt.task_id, message, now=now, actor=actor), actor=actor
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
        self._note_runtime_failure(attempt, recorded, outcome)
        repohooks.failed(self, attempt, recorded.failure_class, recorded.reason, agent_failed)
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
        reason, question = redact.recordable(reason), redact.recordable(question)
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
        task = self.store.load().get(attempt.task_id)  # its tags: whose agent run it was
        attemptfeed.feed(
            self.repo, attempt, outcome, evidence, status="waiting", task=task, config=self.config
        )
        run_dir = str(attempt.run_dir)
        return AttemptResult(
            attempt.task_id, attempt.number, "waiting", reason, run_dir=run_dir, evidence=evidence
        )

    def _approved_to_merge(self, attempt: Attempt) -> None:
        """An oversight task (fleet/approval.py) lands only once a person approved this attempt:
        read from the graph now, since the approval comes while the attempt waits."""
        task = self.store.load().get(attempt.task_id)
        reason = approval.merge_wait(task, attempt.number) if task is not None else None
        if reason is not None:
            raise landing.MergePending(reason)

    def _merge_pending(self, attempt: Attempt, outcome: RunOutcome, reason: str) -> AttemptResult:
        """The checkout holding the target refused the fast-forward (a person's uncommitted change
        there): the gated work waits in its worktree, and the supervisor resumes the landing later
        (:meth:`resume_landing`) — from what is recorded here, in any process."""
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
        attempts.write_attempt(
            attempt.run_dir,
            {
                "state": "merge-pending",
                "reason": reason,
                "runtime": attempt.runtime,
                "model": attempt.model,
                "outcome": outcome_record(outcome),
            },
        )
        return AttemptResult(
            attempt.task_id, attempt.number, "merge-pending", reason, run_dir=str(attempt.run_dir)
        )
