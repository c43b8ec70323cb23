"""What a gate returns and what the evidence bundle holds.

A gate looks at one attempt's diff (worktree, base commit, task) and answers pass / warn / fail /
skipped-with-reason, with findings at file:line. The bundle is every gate's result for one
commit; a ``fail`` blocks landing, ``warn`` and ``skipped`` do not unless the gate is required.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from speedrift.failure_class import FailureClass

GateStatus = Literal["pass", "warn", "fail", "skipped"]
Severity = Literal["critical", "high", "medium", "low", "info"]


@dataclass(frozen=True, slots=True)
class Finding:
    file: str  # repo-relative path
    line: int | None
    kind: str  # e.g. "aws-access-key", "F401", "python.sql-injection", "undeclared-file"
    message: str  # never contains a secret's value
    severity: Severity = "medium"
    rule: str | None = None
    category: str | None = None  # e.g. OWASP "A03:2021-Injection"
    new: bool = True  # False: already present at the base commit (diff-aware gates)


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: str  # syntax | secrets | scope | contract | lint | types | tests | sast | sca
    status: GateStatus
    reason: str  # one line for a human; for skipped: why (e.g. "ruff not installed: pip install ruff")
    findings: tuple[Finding, ...] = ()
    duration_ms: float = 0.0
    # the failure class this result implies when it fails: secret_leak, scope_violation,
    # decomposition_error, sast_block, regression, implementation_error, env_bootstrap
    failure_class: FailureClass | None = None
    required: bool = False  # speedrift.toml marks it required: warn/skipped then block too
    command: tuple[str, ...] = ()  # what ran (secrets redacted)


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    commit: str  # the commit the gates checked
    base: str  # the base commit findings are compared against
    results: tuple[GateResult, ...]
    created_at: str  # ISO-8601 UTC
    task: str | None = None
    stopped_early: str | None = None  # the gate whose hard failure stopped the run
    extra: dict[str, str] = field(default_factory=dict)
    # the change was checked by the repo's tests (they ran, nothing new fails); when not, why —
    # a bundle that passes unverified lands as "done (unverified)"
    verified: bool = False
    unverified_reason: str | None = None

    @property
    def blocking(self) -> tuple[GateResult, ...]:
        return tuple(
            r for r in self.results if r.status == "fail" or (r.required and r.status in ("warn", "skipped"))
        )

    @property
    def passed(self) -> bool:
        return not self.blocking
