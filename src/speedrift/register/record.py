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
from pathlib import Path
from typing import Any, Literal

from speedrift.pausestore import RuntimePause
from speedrift.register.actions import Action, ActionKind

SCHEMA_VERSION = 1

ControlMode = Literal["manual", "observe", "supervise", "autonomous"]
CONTROL_MODES: tuple[ControlMode, ...] = ("manual", "observe", "supervise", "autonomous")
AUTOMATION_MODES: frozenset[ControlMode] = frozenset({"supervise", "autonomous"})  # the hub may act (leased)
Tier = Literal["healthy", "watch", "at-risk"]
Trend = Literal["improving", "flat", "worsening", "new"]
Activity = Literal["active", "stalled", "idle", "missing", "error", "untracked"]


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
class AttemptFindings:
    """What the gates found in an attempt they blocked: nothing of it landed, so these findings are
    never the target branch's (they never lower its score or tier); shown as information about
    the attempt while its worktree exists and it is the task's newest attempt."""

    task: str
    attempt: int
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    secret_leaks: int = 0
    blocking: tuple[str, ...] = ()  # the gates that blocked it
    state: str = "failed"  # the attempt's state (failed | waiting)
    where: str = "blocked_attempt"
    landed: bool = False


@dataclass(frozen=True, slots=True)
class GateStats:
    """Findings on the target branch (gates plane): the newest hub scan of it, or attempts that
    landed on it since; ``commit`` is the commit they were found at (``where`` says so). Findings
    of attempts the gates blocked are in ``blocked_attempts``, never in the counts."""

    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    secret_leaks: int = 0
    last_status: Literal["pass", "warn", "fail", "none"] = "none"
    where: str = "target_branch"
    commit: str | None = None  # the target-branch commit the counts are about (None: not known)
    source: str | None = None  # "scan" (the hub's scan of the target branch) or "landed attempt"
    blocked_attempts: tuple[AttemptFindings, ...] = ()


@dataclass(frozen=True, slots=True)
class LaneBrief:
    """One actionable drift-lane finding, as the hub shows and scores it."""

    lane: str
    kind: str
    severity: str  # warning | error | critical (lanes/model.py Severity)
    message: str
    file: str
    line: int
    fingerprint: str
    fix: str
    followup: str  # the follow-up task the guard creates for it (deterministic id)


@dataclass(frozen=True, slots=True)
class LaneRun:
    """When one lane last judged the repo, and its schedule."""

    lane: str
    checked_at: datetime | None
    cron: str | None = None
    error: str | None = None  # the lane could not judge (crashed, timed out, printed no JSON)
    score: int | None = None  # secdrift's risk, qadrift's quality
    head: str | None = None  # the commit it judged


@dataclass(frozen=True, slots=True)
class LaneStats:
    """The drift lanes' view of a repo (``.speedrift/lanes/latest.json`` and the drift policy)."""

    enabled: tuple[str, ...] = ()  # the lanes the policy runs, in order
    policy_error: str | None = None  # the drift policy cannot be read (file:line: key: problem)
    triggers: tuple[str, ...] = ()  # when the hub runs them (policy [lanes] on)
    target: str | None = None  # the target branch
    target_tip: str | None = None  # its tip now
    head: str | None = None  # the commit the last repo-wide check judged (None: never checked)
    checked_at: datetime | None = None
    runs: tuple[LaneRun, ...] = ()
    critical: int = 0
    error: int = 0
    warning: int = 0
    findings: tuple[LaneBrief, ...] = ()  # the first 20 actionable ones, worst first


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
    lanes: LaneStats = field(default_factory=LaneStats)
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


@dataclass(frozen=True, slots=True)
class Skipped:
    action: Action
    rule: str  # plan_only | mode | lease | budget.cycle_repos | budget.cycle_actions | budget.repo_actions
    #            | budget.hour | cooldown | dedup | corrective_cap | hard_stop | dirty_checkout | refused
    #            | runtime_paused | hub_lease | register_unavailable (control/hublease.py HubRule)
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
