"""The control plane's data: what each stage of a cycle hands to the next.

observe -> :class:`RepoSnapshot`; score -> :class:`RepoHealth` and :class:`Metric`;
plan -> :class:`Action`; policy -> :class:`Plan` (allowed + :class:`Skipped` with the rule);
execute -> :class:`Outcome`; record -> :class:`CycleRecord` (one ledger line, the dashboard's
input, what ``why`` reads). All frozen dataclasses; orjson serializes them directly
(datetimes as ISO-8601 UTC). ``docs/cycle-record.md`` documents the serialized shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = 1

ControlMode = Literal["manual", "observe", "supervise", "autonomous"]
CONTROL_MODES: tuple[ControlMode, ...] = ("manual", "observe", "supervise", "autonomous")
Tier = Literal["healthy", "watch", "at-risk"]
Trend = Literal["improving", "flat", "worsening", "new"]
Activity = Literal["active", "stalled", "idle", "missing", "error", "untracked"]

ActionKind = Literal[
    "restart_service",  # a speedrift service the repo runs is down while ready work waits
    "dispatch_ready",  # start bounded workers (`speedrift run`) for ready tasks
    "run_gate_scan",  # run the gates / secret scan on the target branch
    "repair_dependencies",  # missing or failed blockers: delegated to a corrective task
    "verify_in_progress",  # in-progress tasks whose claimant is dead or aging: re-check
    "sync_upstream",  # `git fetch` only; never merges, rebases or pushes
    "prepare_upstream_packet",  # dry-run contribution packet (markdown), never opens a PR
    "emit_corrective_task",  # write a follow-up task into the repo graph (the loopback)
]
ACTION_KINDS: tuple[ActionKind, ...] = (
    "restart_service",
    "dispatch_ready",
    "run_gate_scan",
    "repair_dependencies",
    "verify_in_progress",
    "sync_upstream",
    "prepare_upstream_packet",
    "emit_corrective_task",
)
OutcomeStatus = Literal["succeeded", "failed", "refused", "delegated", "interrupted", "skipped"]


# ---------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class RepoEntry:
    """One ``[repos.<name>]`` table of ecosystem.toml (or an autodiscovered repo)."""

    name: str
    path: Path  # absolute; a `url`-only entry resolves to <workspace_root>/<name>
    url: str | None = None
    role: str = "product"
    tags: tuple[str, ...] = ()
    lifecycle: str = "active"  # active | maintenance | retired | experimental
    daemon_posture: str = "on-demand"  # always-on | on-demand | never
    upstream_remote: str | None = None
    upstream_branch: str | None = None
    depends_on: tuple[str, ...] = ()  # declared inter-repo dependencies (repo names)
    source: Literal["ecosystem-toml", "autodiscovered"] = "ecosystem-toml"
    notes: str | None = None


# ---------------------------------------------------------------- per-repo control (lease)


@dataclass(frozen=True, slots=True)
class ControlState:
    """``<repo>/.speedrift/control.json``: what the hub's automation may do in this repo."""

    mode: ControlMode = "observe"
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None  # None with an owner = no expiry
    updated_at: datetime | None = None
    updated_by: str | None = None
    reason: str | None = None

    def authority(self, now: datetime) -> tuple[bool, str]:
        """Fail-closed: the hub may act only in supervise/autonomous with a live lease."""
        if self.mode not in ("supervise", "autonomous"):
            return False, f"control mode {self.mode} does not permit automation"
        if not self.lease_owner:
            return False, "no lease owner"
        if self.lease_expires_at is not None and now >= self.lease_expires_at:
            return False, f"lease held by {self.lease_owner} expired at {self.lease_expires_at.isoformat()}"
        return True, f"{self.mode} with lease held by {self.lease_owner}"


# ---------------------------------------------------------------- observe


@dataclass(frozen=True, slots=True)
class GitState:
    branch: str | None  # None when HEAD is detached
    head: str | None  # None in a repo without commits
    dirty_files: int  # tracked files changed (staged or not), speedrift's own dirs excluded
    untracked_files: int
    dirty_paths: tuple[str, ...] = ()  # the first 50
    upstream: str | None = None  # e.g. origin/main
    ahead: int | None = None  # None without an upstream
    behind: int | None = None
    last_commit_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskBrief:
    id: str
    title: str
    status: str
    age_seconds: float | None = None  # since started_at (in-progress) or created_at
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class GraphState:
    graph_dir: str  # ".workgraph" or ".wg"
    counts: dict[str, int]  # tasks by status
    ready: tuple[TaskBrief, ...]  # the first 20 in dispatch order
    ready_count: int
    in_progress: tuple[TaskBrief, ...]  # with age, the first 20
    blocked: int  # open tasks waiting on unfinished blockers
    missing_dependencies: tuple[tuple[str, str], ...]  # (task, missing blocker id)
    failed_blockers: int  # open tasks blocked by a failed/abandoned task
    stale_open: int  # open >= 14 days
    stale_in_progress: int  # in progress >= 3 days
    dead_claims: tuple[str, ...]  # in-progress tasks claimed by a local pid that is gone
    problems: int  # lines the parser could not read (see `speedrift repair`)
    mentions: tuple[str, ...] = ()  # other registered repos referenced by task text / deps


@dataclass(frozen=True, slots=True)
class ServiceState:
    running: bool
    kind: Literal["speedrift", "wg"] | None = None
    pid: int | None = None
    heartbeat_age_seconds: float | None = None
    active_agents: int = 0
    started_by_hub: bool = False


@dataclass(frozen=True, slots=True)
class AttemptStats:
    """The repo's recent task attempts (.speedrift/runs), newest window."""

    recent: int = 0
    succeeded: int = 0
    failed: int = 0
    failure_classes: dict[str, int] = field(default_factory=dict)
    repeated_failures: tuple[str, ...] = ()  # tasks that failed >= 2 times in a row (failed loopbacks)
    last_finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class GateStats:
    """Findings from the latest evidence bundles (gates plane)."""

    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    secret_leaks: int = 0
    last_status: Literal["pass", "warn", "fail", "none"] = "none"


@dataclass(frozen=True, slots=True)
class RepoSnapshot:
    name: str
    path: str
    observed_at: datetime
    exists: bool
    errors: tuple[str, ...] = ()  # e.g. "git: timed out after 15s"
    git: GitState | None = None
    graph: GraphState | None = None  # None: no task graph in this repo
    service: ServiceState = field(default_factory=lambda: ServiceState(running=False))
    attempts: AttemptStats = field(default_factory=AttemptStats)
    gates: GateStats = field(default_factory=GateStats)
    control: ControlState = field(default_factory=ControlState)
    tags: tuple[str, ...] = ()
    fingerprint: str = ""  # mtime signature: equal => nothing changed since the last cycle
    reused: bool = False  # True when this cycle reused the previous snapshot (no git call made)


# ---------------------------------------------------------------- prioritize


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # stable machine key, e.g. "service_down_with_ready_work"
    text: str  # words for a human
    points: float  # penalty it cost the score


@dataclass(frozen=True, slots=True)
class RepoHealth:
    name: str
    score: int  # 0..100, higher is healthier
    tier: Tier
    trend: Trend
    delta: int | None  # vs the previous cycle
    reasons: tuple[Reason, ...]  # ranked, largest penalty first
    activity: Activity
    stall: str | None  # the stall explanation in words, None when not stalled


@dataclass(frozen=True, slots=True)
class Metric:
    key: str  # reporting_coverage | flow_health | execution_reliability | quality_security_pressure
    label: str
    value: float  # 0..100
    tier: Tier
    trend: Trend
    delta: float | None
    formula: str  # shown on hover
    inputs: dict[str, float]


@dataclass(frozen=True, slots=True)
class RepoEdge:
    source: str  # depends on ->
    target: str
    kind: Literal["declared", "inferred"]
    weight: int
    reasons: tuple[str, ...] = ()


# ---------------------------------------------------------------- plan / policy / execute


@dataclass(frozen=True, slots=True)
class Action:
    id: str  # deterministic: "<repo>:<kind>" or "<repo>:<kind>:<subject>"
    repo: str
    kind: ActionKind
    priority: int  # 0..100, higher first
    reason: str
    subject: str | None = None  # task id, path, ... the action is about
    params: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)  # {"claude": ..., "codex": ...}


@dataclass(frozen=True, slots=True)
class Skipped:
    action: Action
    rule: str  # plan_only | mode | lease | budget.cycle_repos | budget.cycle_actions | budget.repo_actions
    #            | budget.hour | cooldown | dedup | corrective_cap | hard_stop | dirty_checkout | refused
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    allowed: tuple[Action, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    action_id: str
    repo: str
    kind: ActionKind
    status: OutcomeStatus
    detail: str
    started_at: datetime
    finished_at: datetime | None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RepoReport:
    name: str
    score: int
    tier: Tier
    trend: Trend
    delta: int | None
    reasons: tuple[Reason, ...]
    activity: Activity
    stall: str | None
    snapshot: RepoSnapshot


@dataclass(frozen=True, slots=True)
class CycleRecord:
    cycle_id: str  # "c-<UTC timestamp>-<6 hex>"
    generated_at: datetime
    finished_at: datetime | None
    plan_only: bool
    ecosystem: str  # path of ecosystem.toml
    repos: tuple[RepoReport, ...]  # ranked: worst first
    metrics: dict[str, Metric]
    edges: tuple[RepoEdge, ...]
    planned: tuple[Action, ...]
    skipped: tuple[Skipped, ...]
    executed: tuple[Outcome, ...]
    hints: tuple[str, ...]  # next-cycle hints in words
    inputs: dict[str, Any]  # {repos_total, observed, reused, errors, duration_ms}
    narrative: str = ""
    schema: int = SCHEMA_VERSION


# ---------------------------------------------------------------- history (the policy's input)


@dataclass(frozen=True, slots=True)
class PastAction:
    """One action the hub started (a row of the register's actions table).

    ``status``: started (or running) = not finished yet; succeeded | failed | refused |
    delegated | interrupted | skipped = finished.
    """

    action_id: str
    repo: str
    kind: str
    started_at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class ActionHistory:
    """What the hub did recently (the register's window) and the corrective tasks still open."""

    executions: tuple[PastAction, ...] = ()
    open_corrective: dict[str, tuple[str, ...]] = field(default_factory=dict)  # repo -> task ids
