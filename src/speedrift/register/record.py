"""The control plane's data: what each stage of a cycle hands to the next.

observe -> :class:`RepoSnapshot`; score -> :class:`RepoHealth` and :class:`Metric`;
plan -> :class:`Action`; policy -> :class:`Plan` (allowed + :class:`Skipped` with the rule);
execute -> :class:`Outcome`; attention -> :class:`AttentionQueue` of :class:`QueueEntry`;
record -> :class:`CycleRecord` (one ledger line, the dashboard's
input, what ``why`` reads). All frozen dataclasses; orjson serializes them directly
(datetimes as ISO-8601 UTC). ``docs/cycle-record.md`` documents the serialized shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

from speedrift.pausestore import RuntimePause

SCHEMA_VERSION = 1

ControlMode = Literal["manual", "observe", "supervise", "autonomous"]
CONTROL_MODES: tuple[ControlMode, ...] = ("manual", "observe", "supervise", "autonomous")
AUTOMATION_MODES: frozenset[ControlMode] = frozenset({"supervise", "autonomous"})  # the hub may act (leased)
Tier = Literal["healthy", "watch", "at-risk"]
Trend = Literal["improving", "flat", "worsening", "new"]
Activity = Literal["active", "stalled", "idle", "missing", "error", "untracked"]


class ActionKind(StrEnum):
    """What a planned action does; the value is what the ledger, the register and the API carry."""

    RESTART_SERVICE = "restart_service"  # a speedrift service the repo runs is down while ready work waits
    DISPATCH_READY = "dispatch_ready"  # start bounded workers (`speedrift run`) for ready tasks
    RUN_GATE_SCAN = "run_gate_scan"  # run the gates / secret scan on the target branch
    REPAIR_DEPENDENCIES = "repair_dependencies"  # missing or failed blockers: delegated to a corrective task
    VERIFY_IN_PROGRESS = "verify_in_progress"  # in-progress tasks whose claimant is dead or aging: re-check
    SYNC_UPSTREAM = "sync_upstream"  # `git fetch` only; never merges, rebases or pushes
    PREPARE_UPSTREAM_PACKET = "prepare_upstream_packet"  # dry-run contribution packet (markdown), never a PR
    EMIT_CORRECTIVE_TASK = "emit_corrective_task"  # write a follow-up task into the repo graph (the loopback)
    RETRY_FAILED = "retry_failed"  # carry out failed tasks' recorded automatic recovery (no service does)


# every kind, in definition order; a tuple so that any string can be tested against it
ACTION_KINDS: tuple[ActionKind, ...] = tuple(ActionKind)
# the kinds whose outcome is a corrective task in the repo's graph (the policy caps them; the
# register remembers the tasks they opened)
CORRECTIVE_KINDS: frozenset[ActionKind] = frozenset(
    {ActionKind.EMIT_CORRECTIVE_TASK, ActionKind.REPAIR_DEPENDENCIES}
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
        if self.mode not in AUTOMATION_MODES:
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
    runtime: str | None = None  # the runtime the task names (agents/choose.py); None: the repo's default


@dataclass(frozen=True, slots=True)
class Escalation:
    """A task tagged ``needs-human`` (fleet/recovery_graph.py), or an open ``human_escalation``
    record of the repo's coordination store (fleet/clarify.py): what the human is asked, and how to
    answer. Gone once the task is retried (the tag is removed) or finished, or the record answered."""

    task: str
    title: str
    status: str
    question: str  # the question or required action recorded on the task (its recovery decision)
    answer: str  # the copyable command that answers it, e.g. `speedrift retry ID --context "…"`
    first: str | None = None  # what to do before the command (rotate the secret, log the CLI in, …)
    failure_class: str | None = None
    since: datetime | None = None  # when it was escalated, when the task says
    # the coordination record a person answers (`speedrift answer ID "…"`, fleet/answers.py): an open
    # human_escalation — alone (a question triage could not answer) or the one the task's question names
    record: str | None = None


ApprovalPoint = Literal["merge", "start"]  # fleet/approval.py's Checkpoint values


@dataclass(frozen=True, slots=True)
class ApprovalWait:
    """A task of an oversight wave waiting at a human approval checkpoint (fleet/approval.py): its
    gated attempt waits merge-pending until a person approves the merge, or (a deploy task) it is
    ready but not dispatched until a person approves its start. Gone once approved (`speedrift plan
    approve TASK`, or the dashboard's Approve button) or once the task moves on."""

    task: str
    title: str
    checkpoint: ApprovalPoint
    attempt: int | None = None  # the attempt waiting to merge (None: a start)
    wave: int | str | None = None  # speedrift.plan.wave: a number, or an ad-hoc run's key
    since: datetime | None = None  # when it began waiting, when the task says (its merge-pending log line)

    def sentence(self) -> str:
        """What it waits for, in words its queue entry and its score reason share, e.g.
        "w3-api waits for approval to merge attempt 2 (wave 3)"."""
        what = "start" if self.checkpoint == "start" else "merge"
        if self.checkpoint == "merge" and self.attempt is not None:
            what += f" attempt {self.attempt}"
        wave = f" (wave {self.wave})" if self.wave is not None else ""
        return f"{self.task} waits for approval to {what}{wave}"


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
    dead_claims: tuple[str, ...]  # in-progress tasks claimed by a local process that is gone (pid + start)
    problems: int  # lines the parser could not read (see `speedrift repair`)
    mentions: tuple[str, ...] = ()  # other registered repos referenced by task text / deps
    # unfinished tasks tagged needs-human, and open human_escalation records no such task names
    # (each waits on a person's answer)
    needs_human: int = 0
    escalations: tuple[Escalation, ...] = ()  # the first 50 of them, oldest first
    # unfinished tasks' `after` entries naming a task in another repo: (task, "REPO:TASK")
    peer_dependencies: tuple[tuple[str, str], ...] = ()
    # those of them that name a repo or task that does not exist: (task, "REPO:TASK", problem);
    # each is also in missing_dependencies, so every consumer of breaks counts it
    peer_breaks: tuple[tuple[str, str, str], ...] = ()
    # failed tasks whose recorded recovery is an automatic retry not carried out yet (fleet/followup.py)
    retries_due: tuple[str, ...] = ()
    # tasks waiting at a human approval checkpoint (an oversight wave's merges and deploy starts)
    awaiting_approval: int = 0
    approvals: tuple[ApprovalWait, ...] = ()  # the first 50 of them, oldest first


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
    # declared in ecosystem.toml; dependency: a task's `after` names a task there; inferred: mentions
    kind: Literal["declared", "dependency", "inferred"]
    weight: int
    reasons: tuple[str, ...] = ()


# ---------------------------------------------------------------- plan / policy / execute


# Each kind's params: what the plan tells its handler. Serialized as the action's ``params`` object
# (field names are its keys, in field order), so a field is never optional: a kind whose params
# differ in shape has one type per shape (the corrective tasks).


@dataclass(frozen=True, slots=True)
class NoParams:
    """restart_service, run_gate_scan, sync_upstream, prepare_upstream_packet: the repo's entry and
    its git state say the rest. Serialized as ``{}``."""


@dataclass(frozen=True, slots=True)
class DispatchParams:
    """dispatch_ready: start workers for up to ``max`` of ``tasks``."""

    tasks: tuple[str, ...]  # ready task ids, in dispatch order
    max: int  # workers started at most (the handler caps it further)

    def __post_init__(self) -> None:
        if self.max < 1:
            raise ValueError(f"dispatch max must be >= 1, not {self.max}")


@dataclass(frozen=True, slots=True)
class VerifyParams:
    """verify_in_progress: the in-progress tasks to check (``tasks`` = ``dead`` ∪ ``aging``)."""

    tasks: tuple[str, ...]
    dead: tuple[str, ...]  # claimed by a local process that is gone
    aging: tuple[str, ...]  # in progress for 3+ days


@dataclass(frozen=True, slots=True)
class RetryParams:
    """retry_failed: failed tasks whose recorded recovery is an automatic retry nobody carried out."""

    tasks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RepairParams:
    """repair_dependencies: the broken chain, delegated to a corrective task."""

    missing: tuple[tuple[str, str], ...]  # (task, missing blocker)
    failed_blockers: int  # open tasks behind a failed blocker
    corrective_kind: str  # the corrective task's kind tag
    title: str  # the corrective task's title


@dataclass(frozen=True, slots=True)
class CorrectiveParams:
    """emit_corrective_task about the repo as a whole (e.g. stale open work)."""

    corrective_kind: str
    title: str


@dataclass(frozen=True, slots=True)
class TaskCorrectiveParams:
    """emit_corrective_task about named tasks (e.g. one that keeps failing)."""

    tasks: tuple[str, ...]
    corrective_kind: str
    title: str


ActionParams = (
    NoParams
    | DispatchParams
    | VerifyParams
    | RepairParams
    | CorrectiveParams
    | TaskCorrectiveParams
    | RetryParams
)
NO_PARAMS = NoParams()
# the params each kind carries; the authority refuses an action whose params are not of its kind's type
PARAMS_TYPES: dict[ActionKind, tuple[type[ActionParams], ...]] = {
    ActionKind.RESTART_SERVICE: (NoParams,),
    ActionKind.DISPATCH_READY: (DispatchParams,),
    ActionKind.RUN_GATE_SCAN: (NoParams,),
    ActionKind.REPAIR_DEPENDENCIES: (RepairParams,),
    ActionKind.VERIFY_IN_PROGRESS: (VerifyParams,),
    ActionKind.SYNC_UPSTREAM: (NoParams,),
    ActionKind.PREPARE_UPSTREAM_PACKET: (NoParams,),
    ActionKind.EMIT_CORRECTIVE_TASK: (CorrectiveParams, TaskCorrectiveParams),
    ActionKind.RETRY_FAILED: (RetryParams,),
}
_P = TypeVar(
    "_P",
    NoParams,
    DispatchParams,
    VerifyParams,
    RepairParams,
    CorrectiveParams,
    TaskCorrectiveParams,
    RetryParams,
)


@dataclass(frozen=True, slots=True)
class Action:
    id: str  # deterministic: "<repo>:<kind>" or "<repo>:<kind>:<subject>"
    repo: str
    kind: ActionKind
    priority: int  # 0..100, higher first
    reason: str
    subject: str | None = None  # task id, path, ... the action is about
    params: ActionParams = NO_PARAMS  # of a type in PARAMS_TYPES[kind]
    prompts: dict[str, str] = field(default_factory=dict)  # {"claude": ..., "codex": ...}

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task ids the params name (dispatch, verify, retry and task correctives), else none."""
        params = self.params
        if isinstance(params, DispatchParams | VerifyParams | TaskCorrectiveParams | RetryParams):
            return params.tasks
        return ()

    def params_as(self, expected: type[_P]) -> _P:
        """The params as the one type the caller's kind carries. The authority refuses an action
        whose params do not fit its kind before any handler runs, so a mismatch here is a bug."""
        params = self.params
        if not isinstance(params, expected):
            raise TypeError(f"{self.id}: params are {type(params).__name__}, not {expected.__name__}")
        return params


@dataclass(frozen=True, slots=True)
class Skipped:
    action: Action
    rule: str  # plan_only | mode | lease | budget.cycle_repos | budget.cycle_actions | budget.repo_actions
    #            | budget.hour | cooldown | dedup | corrective_cap | hard_stop | dirty_checkout | refused
    #            | runtime_paused
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


# ---------------------------------------------------------------- attention (the queue stage)

QueueKey = Literal["aging", "dependency", "risk", "upstream", "human"]


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One thing waiting for attention. control/assess/queues.py decides it; the dashboard shows it."""

    id: str  # stable across cycles: aging:<repo>:<task>, dep-missing:<repo>:<task>:<blocker>, action:<id>, …
    queue: QueueKey
    repo: str
    what: str
    why: str
    rule: str  # the score reason code it comes from, or the action kind when it comes from an action
    priority: int  # 0..100: the answering action's priority, else the points its reason costs the score
    since: datetime  # when the condition began (a task's start) or was first seen
    waited_seconds: float  # since `since`, at the cycle's generated_at
    task: str | None = None
    action_id: str | None = None  # the action answering it (or the action it is)
    approvable: bool = False  # its action is held until a person decides (plan_only, mode, lease, …)
    detail: dict[str, Any] = field(default_factory=dict)  # what its prompt names: blocker, counts, branch
    prompts: dict[str, str] = field(default_factory=dict)  # {"claude", "codex"}; empty in the ledger


@dataclass(frozen=True, slots=True)
class AttentionQueue:
    key: QueueKey
    label: str
    total: int  # entries before the cap
    entries: tuple[QueueEntry, ...]  # highest priority first (ties: longest waiting, then id), capped


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
    queues: tuple[AttentionQueue, ...] = ()  # the attention queues, in contract order
    # runtimes paused machine-wide as the cycle began (pausestore.py): usage limits, rate limits,
    # auth failures, failed preflights; ``needs_human`` ones are escalations with their ``fix``
    pauses: tuple[RuntimePause, ...] = ()
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
