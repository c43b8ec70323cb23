"""One attempt as the pipeline carries it once its runtime is chosen, and the one builder of the
evidence record (``evidence.json``) it leaves, landed or failed.

:class:`Attempt` is what the pipeline, the failure recorder (``fleet/failures.py``) and the
classifier's fact gathering (``fleet/facts.py``) share about the attempt: which task, which
number, its run directory and worktree, its runtime, when it started. :func:`landed_evidence` and
:func:`failed_evidence` are the two outcomes of :func:`evidence`, the record's one shape. Every
shape lists the tool calls the agent's CLI refused (``refused``, capped) and, when any, the files
outside the worktree that changed during the run (``outside_writes``, repo/boundary.py), and —
once its development ran — where (``machine``: executor, Dask worker, host), and the agent CLI's
``session_id`` and how it resumed an earlier session (``resume``, fleet/resume.py). Nothing here
reads or writes a file.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from speedrift import layout, redact
from speedrift.agents.protocol import FailureKind, RunOutcome
from speedrift.agents.sandbox import Decision as SandboxDecision
from speedrift.failure_class import FailureClass
from speedrift.fleet.classify import Classification
from speedrift.fleet.recovery import Decision
from speedrift.fleet.remote.spec import ExecutorKind
from speedrift.gates.verdict import GateVerdict
from speedrift.repo import worktrees
from speedrift.repo.landing import DiffStats
from speedrift.textclip import clip
from speedrift.times import format_time

MAX_REFUSED = 50  # refused tool calls kept in the evidence
MAX_OUTSIDE_WRITES = 200


@dataclass
class AttemptResult:
    """What one attempt came to, as its worker reports it to its supervisor."""

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


def worker_actor() -> str:
    """The actor name of this process in graph logs: ``speedrift@<host>:<pid>``."""
    return f"speedrift@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Attempt:
    task_id: str
    number: int  # 1, 2, …: the worktree, its branch and the run directory carry it
    run_dir: Path  # the run record: prompt, events, the agent's result, evidence
    manifest: worktrees.Manifest  # the worktree: path, branch, base commit, target (its state moves on)
    runtime: str  # claude | codex | opencode | shell
    model: str | None  # the model asked of the runtime (None: the runtime's own default)
    started: float  # time.monotonic() as the pipeline claimed the task: durations count from here
    # what the agent ran in (agents/sandbox.py); None: not known (a landing resumed elsewhere)
    sandbox: SandboxDecision | None = None
    # files outside the worktree that changed while the agent ran (repo/boundary.py)
    outside_writes: tuple[str, ...] = ()
    # how its runtime, model and limits were chosen (fleet/choosing.py): ``routing``, ``fallback``
    # (when it moved down the order) and ``limits``, recorded in the evidence as they are
    chosen: Mapping[str, Any] = field(default_factory=dict)
    # where its development ran (fleet/remote/executor.py): {"executor", "worker", "host"}; {} before
    machine: Mapping[str, Any] = field(default_factory=dict)
    # a Dask worker's PASSING gate verdict on exactly the tip it brought (evidence["tip"]): the
    # landing counts it as the own-commits verdict instead of gating that tip again
    worker_verdict: GateVerdict | None = None

    @property
    def worktree(self) -> Path:
        return Path(self.manifest.path)

    @property
    def developed_elsewhere(self) -> bool:
        """Its development ran on a Dask worker, which committed the agent's work: the ingest
        (fleet/remote/ingest.py) took exactly those commits onto the branch, in a clean worktree."""
        return self.machine.get("executor") == ExecutorKind.DASK

    @property
    def base_commit(self) -> str:
        return self.manifest.base_commit

    @property
    def branch(self) -> str:
        return self.manifest.branch

    @property
    def target_branch(self) -> str:
        return self.manifest.target_branch

    @property
    def evidence_path(self) -> Path:
        return layout.evidence_path(self.run_dir)

    def elapsed(self) -> float:
        """Seconds since the claim."""
        return time.monotonic() - self.started


def stopped_after_refusals(outcome: RunOutcome) -> bool:
    """The agent stopped unfinished after its CLI refused tool calls (opencode ends its run once a
    permission was auto-rejected). Such an attempt's changes, if it left any, are committed and
    gated like a finished run's: its outcome then says ``success`` and keeps this verdict."""
    return outcome.failure is FailureKind.INCOMPLETE and bool(outcome.refused)


def refused_calls(outcome: RunOutcome) -> list[str]:
    """The refused tool calls as recorded: capped, no credential, control characters escaped."""
    return [clip(redact.recordable(call), 500) for call in outcome.refused[:MAX_REFUSED]]


def evidence(
    attempt: Attempt,
    outcome: RunOutcome,
    verdicts: Sequence[GateVerdict],
    *,
    duration_s: float,
    result: Mapping[str, Any],
    kept: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record's one shape, in this order: which attempt, what it came to (``result``), what it
    cost, where its work is kept (``kept``), every gate verdict, what the agent's CLI refused and
    what changed outside the worktree, then the outcome's own extras."""
    outside = list(attempt.outside_writes[:MAX_OUTSIDE_WRITES])
    return {
        "task": attempt.task_id,
        "attempt": attempt.number,
        "runtime": attempt.runtime,
        **attempt.chosen,
        **({"sandbox": attempt.sandbox.evidence()} if attempt.sandbox is not None else {}),
        **({"machine": dict(attempt.machine)} if attempt.machine else {}),
        **result,
        "usage": asdict(outcome.usage),
        "duration_s": round(duration_s, 3),
        **(kept or {}),
        "gates": [v.evidence | {"passed": v.passed, "summary": v.summary} for v in verdicts],
        "refused": refused_calls(outcome),
        **({"outside_writes": outside} if outside else {}),
        **({"session_id": outcome.session_id} if outcome.session_id else {}),
        **({"resume": dict(outcome.resume)} if outcome.resume else {}),  # fleet/resume.py
        **(extra or {}),
    }


def verification(verdicts: Sequence[GateVerdict]) -> dict[str, Any]:
    """``verified`` (the repo's tests ran on what landed and nothing new fails) and, when not,
    ``unverified_reason``: from the last verdict, the one on the tip that landed. No verdict (a
    shell task that changed nothing): ``verified`` is None — there was nothing to verify."""
    if not verdicts:
        return {"verified": None, "unverified_reason": None}
    last = verdicts[-1]
    if last.verified:
        return {"verified": True, "unverified_reason": None}
    return {"verified": False, "unverified_reason": last.unverified_reason or "the tests did not run"}


def landed_evidence(
    attempt: Attempt,
    outcome: RunOutcome,
    verdicts: Sequence[GateVerdict],
    *,
    duration_s: float,
    landed: str | None,
    stats: DiffStats | None,
    timings: Mapping[str, float],
    onto: str | None = None,
) -> dict[str, Any]:
    """A landed attempt (``landed`` None: a shell task that changed nothing, done with no merge);
    ``verified: false`` with ``unverified_reason`` makes it "done (unverified)". ``onto``: the
    target's tip the attempt's commits landed on top of; ``stats`` are of ``onto..landed`` — the
    attempt's own commits, never other work that landed since its base."""
    result = {
        "base_commit": attempt.base_commit,
        "landed_commit": landed,
        "landed_onto": onto if landed else None,
        "target_branch": attempt.target_branch,
        "diff": asdict(stats) if stats else None,
        **verification(verdicts),
    }
    tail = {
        **({"agent_stopped": stopped_sentence(outcome)} if stopped_after_refusals(outcome) else {}),
        "agent_summary": outcome.final_text[:2000],
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
    }
    return evidence(attempt, outcome, verdicts, duration_s=duration_s, result=result, extra=tail)


def stopped_sentence(outcome: RunOutcome) -> str:
    """What a landed attempt whose agent stopped after refused calls says about it."""
    return (
        f"the agent stopped after its CLI refused {len(outcome.refused)} tool call(s) (listed in "
        "refused); the changes it had left in its worktree were committed and gated like a finished run's"
    )


def waiting_evidence(
    attempt: Attempt,
    outcome: RunOutcome,
    verdicts: Sequence[GateVerdict],
    *,
    duration_s: float,
    waiting: str,
    reason: str,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """An attempt that neither landed nor failed: its task waits (``waiting``: pre_existing or
    boundary_violation, fleet/recovery_graph.py), and the worktree that keeps its work."""
    result = {"waiting": waiting, "reason": reason, "base_commit": attempt.base_commit}
    kept = {
        "target_branch": attempt.target_branch,
        "worktree": attempt.manifest.path,
        "branch": attempt.branch,
    }
    return evidence(attempt, outcome, verdicts, duration_s=duration_s, result=result, kept=kept, extra=extra)


def failed_evidence(
    attempt: Attempt,
    outcome: RunOutcome,
    verdicts: Sequence[GateVerdict],
    *,
    duration_s: float,
    found: Classification,
    decision: Decision,
    reason: str,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """A failed attempt: its class, the recovery decided, and the worktree that keeps its work."""
    result = {
        "failure": found.cls,
        "failure_kind": outcome.failure.value if outcome.failure else None,
        "provider_fault": outcome.fault.value if outcome.fault else None,
        "classification": found.as_dict(),
        "recovery": decision.as_dict(),
        "reason": reason,
        "exit_code": outcome.exit_code,
    }
    kept = {
        "reset_at": format_time(outcome.reset_at) if outcome.reset_at else None,
        "worktree": attempt.manifest.path,
        "branch": attempt.branch,
    }
    return evidence(attempt, outcome, verdicts, duration_s=duration_s, result=result, kept=kept, extra=extra)
