"""The seam where quality gates plug into the pipeline: nothing lands without a verdict.

The pipeline calls the runner twice per attempt — on the agent's commit, and again on the tip
the merge queue produced by rebasing — and lands only if both pass. Until the gates plane is
configured the runner is :class:`NoGates`, which passes and says so in the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from speedrift.errors import SpeedriftError
from speedrift.failure_class import FailureClass
from speedrift.graph.model import Task


@dataclass
class GateVerdict:
    passed: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    failure_class: FailureClass | None = None  # e.g. secret_leak, regression (set by the gates plane)
    verified: bool = False  # the repo's tests ran on it and nothing new fails
    unverified_reason: str | None = None  # when not verified: why ("no tests found (…)")


class GateBlocked(SpeedriftError):
    def __init__(self, verdict: GateVerdict) -> None:
        super().__init__(f"quality gates blocked landing: {verdict.summary}")
        self.verdict = verdict


class GateRunner(Protocol):
    def check(self, repo: Path, worktree: Path, base: str, tip: str, task: Task) -> GateVerdict: ...


class NoGates:
    def check(self, repo: Path, worktree: Path, base: str, tip: str, task: Task) -> GateVerdict:
        return GateVerdict(
            True,
            "no gates configured",
            {"gates": [], "tip": tip},
            unverified_reason="no quality gates are configured, so no tests ran",
        )
