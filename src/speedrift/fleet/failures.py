"""Recording a failed attempt: classify it, decide its recovery, write both to the task.

The pipeline calls :meth:`FailureRecorder.failed` when an attempt fails (the agent, its commit,
the gates or the merge) and :meth:`FailureRecorder.crashed` when an exception escaped it. Both
write the class and the decision into the task's ``speedrift`` object in the same write that
marks it failed, apply a split or re-plan at once, and count the outcome toward the repo's
retry halt (``fleet/halt.py``). Retries themselves are scheduled by the service.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from speedrift import redact
from speedrift.agents import choose as registry
from speedrift.agents.protocol import FailureKind, RunOutcome
from speedrift.errors import SpeedriftError
from speedrift.fleet import attempts, classify, facts, halt, recovery, recovery_graph
from speedrift.fleet.attempt_facts import AttemptFacts
from speedrift.fleet.config import RepoConfig
from speedrift.gates.verdict import GateVerdict
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import FAILED, IN_PROGRESS, Task
from speedrift.graph.store import GraphStore
from speedrift.repo import worktrees
from speedrift.times import format_time

# speedrift's failure kinds -> the nearest value of wg's own `failure_class` enum (or none)
WG_FAILURE_CLASS = {
    FailureKind.USAGE_LIMIT: "api-error-429-rate-limit",
    FailureKind.TRANSIENT: "api-error-5xx-transient",
    FailureKind.STALL: "agent-hard-timeout",
    FailureKind.BUDGET: "agent-hard-timeout",
    FailureKind.CRASHED: "agent-exit-nonzero",
}


def _redacted(found: classify.Classification) -> classify.Classification:
    """Evidence quotes the agent and the runtime: no credential reaches the graph through it."""
    return replace(found, evidence=[redact.redact_text(line) for line in found.evidence])


@dataclass
class Recorded:
    failure_class: str
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
        *,
        task_id: str,
        attempt: int,
        manifest: worktrees.Manifest,
        run_dir: Path,
        outcome: RunOutcome,
        runtime_name: str,
        duration_s: float,
        verdicts: list[GateVerdict],
        extra: dict[str, Any],
        agent_failed: bool,
    ) -> Recorded:
        """``agent_failed``: the agent's own run (or its commit) failed, not a later step."""
        manifest.state = "failed"
        worktrees.write_manifest(self.repo, manifest)
        found = classify.classify(
            facts.gather(
                run_dir=run_dir,
                outcome=outcome,
                agent_failed=agent_failed,
                budgets=self.config.budgets,
                worktree=Path(manifest.path),
                base_commit=manifest.base_commit,
                verdicts=verdicts,
                conflicting_files=extra.get("conflicting_files"),
                shared_paths=extra.get("shared_paths_modified", ()),
            )
        )
        found = _redacted(found)
        kind = found.cls
        reason = redact.redact_text(outcome.reason or kind)
        decision = self.decide(self.store.load().get(task_id) or {"id": task_id}, found, attempt, reason)
        evidence = {
            "task": task_id,
            "attempt": attempt,
            "runtime": runtime_name,
            "failure": kind,
            "failure_kind": outcome.failure.value if outcome.failure else None,
            "classification": found.as_dict(),
            "recovery": decision.as_dict(),
            "reason": reason,
            "exit_code": outcome.exit_code,
            "usage": asdict(outcome.usage),
            "duration_s": round(duration_s, 3),
            "reset_at": format_time(outcome.reset_at) if outcome.reset_at else None,
            "worktree": manifest.path,
            "branch": manifest.branch,
            "gates": [v.evidence | {"passed": v.passed, "summary": v.summary} for v in verdicts],
            **extra,
        }
        attempts.write_evidence(run_dir, evidence)
        wg_class = WG_FAILURE_CLASS.get(outcome.failure) if outcome.failure and agent_failed else None
        actor = self.actor

        def record(graph: Graph, now: Any) -> ops.Mutation:
            mutation = ops.fail(graph, task_id, reason=f"{kind}: {reason}"[:2000], now=now, actor=actor)
            failed = mutation.tasks[0]
            ops.set_speedrift(
                failed,
                state=None,
                worker=None,
                evidence=str(run_dir / "evidence.json"),
                reset_at=evidence["reset_at"],
                **({"conflicting_files": extra["conflicting_files"]} if "conflicting_files" in extra else {}),
            )
            recovery_graph.annotate_failure(failed, found, decision, reason=reason, now=now, actor=actor)
            if wg_class:
                failed["failure_class"] = wg_class
            return mutation

        self.store.mutate(record, actor=actor)
        self.apply(task_id, decision)
        cancelled = outcome.failure is FailureKind.CRASHED and outcome.reason == "cancelled"
        halt.record_outcome(self.repo, task_id, attempt, "cancelled" if cancelled else FAILED, kind)
        attempts.write_attempt(
            run_dir, {"runtime": runtime_name, "state": FAILED, "failure": kind, "reason": reason}
        )
        return Recorded(kind, reason, evidence, decision)

    def crashed(self, *, task_id: str, attempt: int, run_dir: Path, reason: str, bootstrapped: bool) -> None:
        """An exception escaped the pipeline: before the agent started it is an environment
        problem, after it speedrift's own failure (transient_infra)."""
        reason = redact.redact_text(reason)
        found = classify.classify(
            AttemptFacts(
                reason=reason,
                env_bootstrap=None if bootstrapped else reason,
                internal_error=reason if bootstrapped else None,
            )
        )
        found = _redacted(found)
        recorded: list[bool] = []
        actor = self.actor

        def record(graph: Graph, now: Any) -> ops.Mutation:
            task = graph.get(task_id)
            if task is None or task.get("status") != IN_PROGRESS:
                return ops.Mutation()
            decision = self.decide(task, found, attempt, reason)
            recorded.append(True)
            mutation = ops.fail(
                graph, task_id, reason=f"speedrift_internal: {reason}"[:2000], now=now, actor=actor
            )
            ops.set_speedrift(mutation.tasks[0], state=None, worker=None)
            recovery_graph.annotate_failure(
                mutation.tasks[0], found, decision, reason=reason, now=now, actor=actor
            )
            mutation.tasks[0]["failure_class"] = "wrapper-internal"
            return mutation

        try:
            self.store.mutate(record, actor=actor)
            if recorded:
                halt.record_outcome(self.repo, task_id, attempt, FAILED, found.cls)
        finally:
            attempts.write_attempt(run_dir, {"state": FAILED, "failure": "internal", "reason": reason[:2000]})

    def decide(
        self, task: Task, found: classify.Classification, attempt: int, reason: str
    ) -> recovery.Decision:
        runtime_name, model = registry.select_runtime(task, self.config.default_runtime)
        return recovery.decide(
            found,
            task=task,
            attempt=attempt,
            runtime=runtime_name,
            current_model=model or self.config.runtime_options(runtime_name).model,
            config=self.config,
            reason=reason,
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
