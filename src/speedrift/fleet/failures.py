"""Recording a failed attempt: classify it, decide its recovery, write both to the task.

The pipeline calls :meth:`FailureRecorder.failed` when an attempt fails (the agent, its commit,
the gates or the merge) and :meth:`FailureRecorder.crashed` when an exception escaped it. Both
write the class and the decision into the task's ``speedrift`` object in the same write that
marks it failed, apply a split or re-plan at once, and count the outcome toward the repo's
retry halt (``fleet/halt.py``). Retries themselves are scheduled by the service.

With ``[roles.debugger] enabled = true``, an automatic retry_with_diagnosis or escalate_model
decision is first shown to the Debugger (fleet/debugger.py), while the task is still claimed: its
valid diagnosis replaces the templated one (or turns the decision into a re-plan or a question for
a human); whatever becomes of its run, the failure is recorded, and the evidence says under
``debugger`` what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from speedrift import redact
from speedrift.agents import choose as registry
from speedrift.agents.protocol import CANCELLED, FailureKind, ProviderFault, RunOutcome
from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.fleet import attemptfeed, attempts, classify, debugger, facts, halt, recovery, recovery_graph
from speedrift.fleet.attempt import Attempt, failed_evidence
from speedrift.fleet.attempt_facts import AttemptFacts
from speedrift.fleet.config import RepoConfig
from speedrift.gates.verdict import GateVerdict
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import FAILED, IN_PROGRESS, WG_FAILURE_CLASS_KEY, Task, WgFailureClass
from speedrift.graph.store import GraphStore
from speedrift.repo import worktrees
from speedrift.textclip import clip

# how the runtime ended -> the nearest value of wg's own `failure_class` enum (the others: none)
WG_FAILURE_CLASS: dict[FailureKind, WgFailureClass] = {
    FailureKind.USAGE_LIMIT: WgFailureClass.API_ERROR_429_RATE_LIMIT,
    FailureKind.RATE_LIMIT: WgFailureClass.API_ERROR_429_RATE_LIMIT,
    FailureKind.TRANSIENT: WgFailureClass.API_ERROR_5XX_TRANSIENT,
    FailureKind.STALL: WgFailureClass.AGENT_HARD_TIMEOUT,
    FailureKind.BUDGET: WgFailureClass.AGENT_HARD_TIMEOUT,
    FailureKind.CRASHED: WgFailureClass.AGENT_EXIT_NONZERO,
}


def wg_failure_class(runtime_failure: FailureKind | None, *, internal: bool = False) -> WgFailureClass | None:
    """The one mapping into wg's vocabulary (docs/failure-classes.md): set only when the runtime itself
    failed (:data:`WG_FAILURE_CLASS`) or speedrift did (``internal``: wrapper-internal); otherwise
    None, and wg's field stays unset. speedrift's own class never goes there: wg would refuse it."""
    if internal:
        return WgFailureClass.WRAPPER_INTERNAL
    return WG_FAILURE_CLASS.get(runtime_failure) if runtime_failure is not None else None


def _redacted(found: classify.Classification) -> classify.Classification:
    """Evidence quotes the agent and the runtime: no credential reaches the graph through it."""
    return replace(found, evidence=[redact.recordable(line) for line in found.evidence])


@dataclass
class Recorded:
    failure_class: FailureClass
    reason: str
    evidence: dict[str, Any]
    decision: recovery.Decision


@dataclass
class FailureRecorder:
    repo: Path
    store: GraphStore
    config: RepoConfig
    actor: str

    def failed(
        self,
        attempt: Attempt,
        *,
        outcome: RunOutcome,
        verdicts: list[GateVerdict],
        extra: dict[str, Any],
        agent_failed: bool,
    ) -> Recorded:
        """``agent_failed``: the agent's own run (or its commit) failed, not a later step."""
        duration_s = attempt.elapsed()
        task_id, run_dir = attempt.task_id, attempt.run_dir
        if attempt.manifest.state is not worktrees.ManifestState.QUARANTINED:  # a withdrawn leak stays so
            attempt.manifest.state = worktrees.ManifestState.FAILED
            worktrees.write_manifest(self.repo, attempt.manifest)
        found = classify.classify(
            facts.gather(
                attempt,
                outcome=outcome,
                agent_failed=agent_failed,
                budgets=self.config.budgets,
                verdicts=verdicts,
                conflicting_files=extra.get("conflicting_files"),
                shared_paths=extra.get("shared_paths_modified", ()),
            )
        )
        found = _redacted(found)
        kind = found.cls
        reason = redact.recordable(outcome.reason or kind)
        task = self.store.load().get(task_id) or {"id": task_id}
        decision = self.decide(task, found, attempt.number, reason, ran=attempt, fault=outcome.fault)
        decision, diagnosed = debugger.consult(
            self.repo, self.config, attempt, task, found, decision, reason, verdicts
        )
        evidence = failed_evidence(
            attempt,
            outcome,
            verdicts,
            duration_s=duration_s,
            found=found,
            decision=decision,
            reason=reason,
            extra={**extra, "debugger": diagnosed} if diagnosed is not None else extra,
        )
        attempts.write_evidence(run_dir, evidence)
        wg_class = wg_failure_class(outcome.failure) if agent_failed else None
        actor = self.actor

        def record(graph: Graph, now: Any) -> ops.Mutation:
            shown = clip(f"{kind}: {reason}", 2000, flatten=False)  # a long reason keeps its hint
            mutation = ops.fail(graph, task_id, reason=shown, now=now, actor=actor)
            released = {
                "state": None,
                "worker": None,
                "evidence": str(attempt.evidence_path),
                "reset_at": evidence["reset_at"],
                **({"conflicting_files": extra["conflicting_files"]} if "conflicting_files" in extra else {}),
            }
            ops.set_fields(graph, task_id, speedrift=released, now=now, actor=actor, within=mutation)
            recovery_graph.annotate_failure(
                graph, task_id, found, decision, reason=reason, now=now, actor=actor, within=mutation
            )
            if wg_class is not None:
                wg_field = {WG_FAILURE_CLASS_KEY: wg_class.value}
                ops.set_fields(graph, task_id, wg_field, now=now, actor=actor, within=mutation)
            return mutation

        self.store.mutate(record, actor=actor)
        self.apply(task_id, decision)
        cancelled = outcome.failure is FailureKind.CRASHED and outcome.reason == CANCELLED
        status = CANCELLED if cancelled else FAILED
        halt.record_outcome(self.repo, task_id, attempt.number, status, kind)
        attemptfeed.feed(
            self.repo, attempt, outcome, evidence, status=status, failure=kind, task=task, config=self.config
        )
        attempts.write_attempt(
            run_dir, {"runtime": attempt.runtime, "state": FAILED, "failure": kind, "reason": reason}
        )
        return Recorded(kind, reason, evidence, decision)

    def crashed(self, *, task_id: str, attempt: int, run_dir: Path, reason: str, bootstrapped: bool) -> None:
        """An exception escaped the pipeline: before the agent started it is an environment
        problem, after it speedrift's own failure (transient_infra)."""
        reason = redact.recordable(reason)
        found = classify.classify(
            AttemptFacts(
                reason=reason,
                env_bootstrap=None if bootstrapped else reason,
                internal_error=reason if bootstrapped else None,
            )
        )
        found = _redacted(found)
        wg_class = wg_failure_class(None, internal=True)
        recorded: list[bool] = []
        tasks: list[Task] = []  # the task as it was interrupted (its tags: whose agent run it was)
        actor = self.actor

        def record(graph: Graph, now: Any) -> ops.Mutation:
            task = graph.get(task_id)
            if task is None or task.get("status") != IN_PROGRESS:
                return ops.Mutation()
            decision = self.decide(task, found, attempt, reason)
            recorded.append(True)
            tasks[:] = [dict(task)]
            mutation = ops.fail(
                graph,
                task_id,
                reason=clip(f"speedrift_internal: {reason}", 2000, flatten=False),
                now=now,
                actor=actor,
            )
            released = {"state": None, "worker": None}
            ops.set_fields(graph, task_id, speedrift=released, now=now, actor=actor, within=mutation)
            recovery_graph.annotate_failure(
                graph, task_id, found, decision, reason=reason, now=now, actor=actor, within=mutation
            )
            if wg_class is not None:
                wg_field = {WG_FAILURE_CLASS_KEY: wg_class.value}
                ops.set_fields(graph, task_id, wg_field, now=now, actor=actor, within=mutation)
            return mutation

        try:
            self.store.mutate(record, actor=actor)
            if recorded:
                halt.record_outcome(self.repo, task_id, attempt, FAILED, found.cls)
                attemptfeed.feed_interrupted(
                    self.repo,
                    task_id,
                    attempt,
                    run_dir,
                    status=FAILED,
                    failure=found.cls,
                    task=tasks[0],
                    config=self.config,
                )
        finally:
            attempts.write_attempt(
                run_dir, {"state": FAILED, "failure": "internal", "reason": clip(reason, 2000, flatten=False)}
            )

    def decide(
        self,
        task: Task,
        found: classify.Classification,
        attempt: int,
        reason: str,
        *,
        ran: Attempt | None = None,
        fault: ProviderFault | None = None,
    ) -> recovery.Decision:
        """``ran``: the attempt as it ran (its runtime, model and routing tier, fleet/choosing.py);
        without it (an interrupted attempt) the task's own runtime."""
        if ran is not None:
            runtime_name, model = ran.runtime, ran.model
            tier = (ran.chosen.get("routing") or {}).get("tier")
        else:
            runtime_name, model = registry.select_runtime(task, self.config.default_runtime)
            tier = None
        return recovery.decide(
            found,
            task=task,
            attempt=attempt,
            runtime=runtime_name,
            current_model=model or self.config.runtime_options(runtime_name).model,
            config=self.config,
            reason=reason,
            tier=tier if isinstance(tier, str) else None,
            provider_fault=fault.value if fault is not None else None,
        )

    def apply(self, task_id: str, decision: recovery.Decision) -> None:
        """Split or re-plan now; the failure is already recorded, so a refusal here is only logged."""
        try:
            recovery_graph.apply(self.store, task_id, decision, actor=self.actor)
        except SpeedriftError as error:
            message = f"Recovery {decision.recovery} could not be applied: {error.message}"
            self.store.mutate(
                lambda g, now: ops.log_message(g, task_id, message, now=now, actor=self.actor),
                actor=self.actor,
            )
