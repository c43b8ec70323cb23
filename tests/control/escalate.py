"""Tasks that wait on a human, made the way the worker pipeline makes them: ``ops.fail`` plus the
failure's classification and the recovery decided for it (fleet/recovery_graph.annotate_failure),
which tags the task ``needs-human`` and records the question."""

from __future__ import annotations

from datetime import datetime

from speedrift.failure_class import FailureClass
from speedrift.fleet import recovery_graph
from speedrift.fleet.classify import Classification
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.recovery import Decision, decide
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore

ACTOR = "speedrift@test"
QUESTIONS = {
    FailureClass.SPEC_GAP: "should amounts be rounded per line or per invoice?",
    FailureClass.SECRET_LEAK: "secrets gate: config/keys.py:3 aws-access-key",
    FailureClass.AUTH_FAILURE: "the runtime reported auth: 401 invalid x-api-key",
    FailureClass.ENV_BOOTSTRAP: "the runtime reported not_installed: claude: command not found",
}


def escalate(
    store: GraphStore,
    task_id: str,
    cls: FailureClass,
    *,
    files: tuple[str, ...] = (),
    now: datetime | None = None,
) -> Decision:
    """Fail ``task_id`` as ``cls`` the way an attempt's failure is recorded; returns the decision."""
    evidence = QUESTIONS.get(cls, f"{cls}: evidence")
    subclass = "ambiguous_spec" if cls == FailureClass.SPEC_GAP else None
    found = Classification(cls, [evidence], "test", subclass, files)
    decided: list[Decision] = []

    def build(graph: Graph, at: datetime) -> ops.Mutation:
        decision = decide(
            found,
            task=graph.tasks[task_id],
            attempt=1,
            runtime="claude",
            current_model=None,
            config=RepoConfig(),
            reason=evidence,
        )
        decided.append(decision)
        failed = ops.fail(graph, task_id, reason=evidence, now=at, actor=ACTOR)
        return recovery_graph.annotate_failure(
            graph, task_id, found, decision, reason=evidence, now=at, actor=ACTOR, within=failed
        )

    store.mutate(build, actor=ACTOR, now=now)
    return decided[0]
