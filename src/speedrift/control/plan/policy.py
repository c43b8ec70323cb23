"""The policy envelope: which planned actions may run this cycle, and the rule that holds each other one.

Pure: candidates, the ``[policy]`` config, the snapshots (control mode, lease, dirty state), the
action history (from the register) and ``now`` in; a :class:`Plan` out. Nothing is dropped:
``len(plan.allowed) + len(plan.skipped) == len(candidates)`` always.

Rules run in :data:`RULE_ORDER`; an action is cut by the first rule that holds it. The first
seven look at the action alone (``runtime_paused``: a dispatch waiting on a runtime paused
machine-wide); the budgets are then spent greedily in priority order (highest first, ties by id),
so the most urgent actions get the budget. ``plan_only`` is the master switch: the whole
evaluation still runs, every action is then skipped with rule ``plan_only``, and the reason says
what would have happened with it off — the full plan stays visible.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from speedrift.control.plan.config import PolicyConfig
from speedrift.pausestore import RuntimePause
from speedrift.register.actions import ACTION_KINDS, CORRECTIVE_KINDS, Action, ActionKind, DispatchParams
from speedrift.register.record import ActionHistory, ControlMode, Plan, RepoSnapshot, Skipped
from speedrift.times import iso_utc

RULE_ORDER: tuple[str, ...] = (
    "plan_only",
    "mode",
    "lease",
    "runtime_paused",
    "dirty_checkout",
    "dedup",
    "cooldown",
    "budget.cycle_repos",
    "budget.cycle_actions",
    "budget.repo_actions",
    "budget.service_starts",
    "budget.hour",
    "corrective_cap",
)
HARD_STOP_RULE = "hard_stop"  # applied during execution by the cycle, see cut_after_hard_stop

MODE_PERMITS: dict[ControlMode, frozenset[ActionKind]] = {
    "manual": frozenset(),
    "observe": frozenset(),
    "supervise": frozenset(
        {
            ActionKind.RESTART_SERVICE,
            ActionKind.RUN_GATE_SCAN,
            ActionKind.VERIFY_IN_PROGRESS,
            ActionKind.SYNC_UPSTREAM,
            ActionKind.PREPARE_UPSTREAM_PACKET,
            ActionKind.EMIT_CORRECTIVE_TASK,
            ActionKind.REPAIR_DEPENDENCIES,
            ActionKind.RETRY_FAILED,
            ActionKind.RUN_LANES,
        }
    ),
    "autonomous": frozenset(ACTION_KINDS),
}

# Whether an action depends on (or would change) the checkout's working tree, and why. Only those
# marked True are cut by `dirty_checkout_blocks`; the others never touch the user's checkout.
DIRTY_CHECKOUT: dict[ActionKind, tuple[bool, str]] = {
    ActionKind.RESTART_SERVICE: (False, "starts a process; its workers run in their own worktrees"),
    ActionKind.DISPATCH_READY: (False, "workers run in their own worktrees, never in the checkout"),
    ActionKind.RUN_GATE_SCAN: (False, "scans a detached temporary worktree of the target branch"),
    ActionKind.REPAIR_DEPENDENCIES: (False, "writes a corrective task into the task graph (speedrift state)"),
    ActionKind.VERIFY_IN_PROGRESS: (False, "reads claims and reopens dead ones in the task graph only"),
    ActionKind.RETRY_FAILED: (False, "reopens failed tasks (their recorded recovery) in the task graph only"),
    ActionKind.SYNC_UPSTREAM: (False, "`git fetch` updates remote-tracking refs only"),
    ActionKind.PREPARE_UPSTREAM_PACKET: (
        True,
        "describes the checkout's branch against upstream; with uncommitted changes it would "
        "misrepresent the work (clean before proposing upstream)",
    ),
    ActionKind.EMIT_CORRECTIVE_TASK: (False, "writes a task into the task graph (speedrift state)"),
    ActionKind.RUN_LANES: (
        False,
        "reads commits of the target branch (tests run in a private checkout); writes follow-ups",
    ),
}

UNFINISHED = frozenset({"started", "running"})
# refused counts: retrying a refusal every cycle would only fill the ledger; skipped never ran
COUNTED = frozenset({"started", "running", "succeeded", "failed", "delegated", "interrupted", "refused"})
HOUR = timedelta(hours=1)


def apply_policy(
    actions: Sequence[Action],
    policy: PolicyConfig,
    snapshots: Mapping[str, RepoSnapshot] | Sequence[RepoSnapshot],
    history: ActionHistory,
    now: datetime,
    *,
    pauses: Sequence[RuntimePause] = (),
    default_runtimes: Mapping[str, str] | None = None,
) -> Plan:
    """``pauses``: the machine's runtime pauses (pausestore.py); ``default_runtimes``: each repo's
    ``default_runtime``, for ready tasks that name no runtime of their own (rule runtime_paused)."""
    by_name = snapshots if isinstance(snapshots, Mapping) else {s.name: s for s in snapshots}
    ordered = sorted(actions, key=lambda a: (-a.priority, a.id))
    evaluation = _Evaluation(policy, by_name, history, now, tuple(pauses), dict(default_runtimes or {}))
    verdicts = evaluation.run(ordered)
    if policy.plan_only:
        return Plan(
            allowed=(),
            skipped=tuple(Skipped(a, "plan_only", _plan_only_reason(rule, why)) for a, rule, why in verdicts),
        )
    return Plan(
        allowed=tuple(a for a, rule, _ in verdicts if rule is None),
        skipped=tuple(Skipped(a, rule, why) for a, rule, why in verdicts if rule is not None),
    )


def cut_after_hard_stop(remaining: Sequence[Action], failed: Action) -> list[Skipped]:
    """The actions a cycle did not run because ``failed`` failed and the hard stop is on."""
    reason = (
        f"cycle stopped after {failed.id} failed (hard_stop_on_failed_verification); "
        "the next cycle re-observes and plans again"
    )
    return [Skipped(action, HARD_STOP_RULE, reason) for action in remaining]


def _plan_only_reason(rule: str | None, why: str) -> str:
    base = "plan_only = true: the hub executes nothing; set [policy] plan_only = false to execute"
    if rule is None:
        return f"{base} (with it off this would run)"
    return f"{base} (with it off it would still be held by {rule}: {why})"


Verdict = tuple[Action, str | None, str]


class _Evaluation:
    """One pass over the candidates in priority order, spending the budgets as it allows."""

    def __init__(
        self,
        policy: PolicyConfig,
        snapshots: Mapping[str, RepoSnapshot],
        history: ActionHistory,
        now: datetime,
        pauses: tuple[RuntimePause, ...] = (),
        default_runtimes: dict[str, str] | None = None,
    ) -> None:
        self.policy = policy
        self.snapshots = snapshots
        self.now = now
        self.pauses = pauses
        self.default_runtimes = default_runtimes or {}
        self.open_corrective = history.open_corrective
        counted = [p for p in history.executions if p.status in COUNTED]
        self.running = {p.action_id: p for p in history.executions if p.status in UNFINISHED}
        self.last_run: dict[tuple[str, str], datetime] = {}
        for past in counted:
            key = (past.repo, past.kind)
            if key not in self.last_run or past.started_at > self.last_run[key]:
                self.last_run[key] = past.started_at
        recent = [p for p in counted if now - HOUR < p.started_at <= now]
        self.hour_total = len(recent)
        self.hour_repo = Counter(p.repo for p in recent)
        self.open_total = sum(len(ids) for ids in self.open_corrective.values())
        # spent this cycle
        self.seen: set[str] = set()
        self.repos: set[str] = set()
        self.total = 0
        self.per_repo: Counter[str] = Counter()
        self.starts = 0
        self.new_corrective: Counter[str] = Counter()

    def run(self, ordered: Sequence[Action]) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for action in ordered:
            action, paused = self._paused(action)
            cut = self._alone(action, paused) or self._budget(action)
            self.seen.add(action.id)
            if cut is None:
                self._spend(action)
                verdicts.append((action, None, ""))
            else:
                verdicts.append((action, cut[0], cut[1]))
        return verdicts

    # -- rules that look at the action alone: mode, lease, runtime_paused, dirty_checkout, dedup,
    #    cooldown

    def _alone(self, action: Action, paused: tuple[str, str] | None = None) -> tuple[str, str] | None:
        snapshot = self.snapshots.get(action.repo)
        if snapshot is None:
            return "mode", f"no snapshot of {action.repo} this cycle: fail closed"
        control = snapshot.control
        if action.kind not in MODE_PERMITS[control.mode]:
            return "mode", _mode_reason(action, control.mode)
        ok, why = control.authority(self.now)
        if not ok:
            return "lease", (
                f"{why}; renew with `speedrift mode {action.repo} {control.mode} --owner NAME --lease-ttl 8h`"
            )
        if paused is not None:
            return paused
        return self._dirty(action, snapshot) or self._dedup(action) or self._cooldown(action)

    def _paused(self, action: Action) -> tuple[Action, tuple[str, str] | None]:
        """runtime_paused: a dispatch whose tasks all run on a paused runtime is held with the
        pause in words; one where only some do goes ahead without those (its reason names them)."""
        if action.kind != ActionKind.DISPATCH_READY or not self.pauses:
            return action, None
        params = action.params
        snapshot = self.snapshots.get(action.repo)
        if not isinstance(params, DispatchParams) or snapshot is None or snapshot.graph is None:
            return action, None
        briefs = {brief.id: brief for brief in snapshot.graph.ready}
        default = self.default_runtimes.get(action.repo)
        held: dict[str, RuntimePause] = {}
        for task in params.tasks:
            brief = briefs.get(task)
            runtime = (brief.runtime if brief is not None else None) or default
            if runtime is None:
                continue  # unknown here: the worker's own check (before its claim) still holds it
            for pause in self.pauses:
                if pause.blocks(runtime, None, self.now, self.policy.auto_resume):
                    held[task] = pause
                    break
        if not held:
            return action, None
        words = "; ".join(dict.fromkeys(p.sentence(self.now, self.policy.auto_resume) for p in held.values()))
        tasks = ", ".join(held)
        if len(held) == len(params.tasks):
            return action, ("runtime_paused", f"{words} (holds {tasks})")
        keep = tuple(task for task in params.tasks if task not in held)
        trimmed = replace(
            action,
            params=replace(params, tasks=keep),
            reason=f"{action.reason}; runtime_paused holds {tasks}: {words}",
        )
        return trimmed, None

    def _dirty(self, action: Action, snapshot: RepoSnapshot) -> tuple[str, str] | None:
        touches, what = DIRTY_CHECKOUT[action.kind]
        if not (touches and self.policy.dirty_checkout_blocks):
            return None
        git = snapshot.git
        if git is None:  # git could not be read this cycle: fail closed
            return (
                "dirty_checkout",
                f"{action.repo}'s checkout state is unknown this cycle and {action.kind} {what}",
            )
        if git.dirty_files > 0:
            return "dirty_checkout", (
                f"{action.repo} has {git.dirty_files} uncommitted changed file(s) and "
                f"{action.kind} {what}; commit or stash them (the hub never touches them)"
            )
        return None

    def _dedup(self, action: Action) -> tuple[str, str] | None:
        if action.id in self.seen:
            return "dedup", f"{action.id} appears twice in this plan; kept the first"
        running = self.running.get(action.id)
        if running is not None:
            return (
                "dedup",
                f"{action.id} already started at {iso_utc(running.started_at)} and has not finished",
            )
        open_here = self.open_corrective.get(action.repo, ())
        if action.kind in CORRECTIVE_KINDS and action.subject and action.subject in open_here:
            return "dedup", f"corrective task {action.subject} is already open in {action.repo}"
        return None

    def _cooldown(self, action: Action) -> tuple[str, str] | None:
        last = self.last_run.get((action.repo, action.kind))
        if last is None:
            return None
        cooldown = self.policy.cooldown_for(action.kind)
        ready_at = last + timedelta(seconds=cooldown)
        if self.now < ready_at:
            return "cooldown", (
                f"{action.kind} last ran in {action.repo} at {iso_utc(last)}; cooldown {cooldown:g} s, "
                f"eligible again at {iso_utc(ready_at)}"
            )
        return None

    # -- budgets, spent greedily in priority order

    def _budget(self, action: Action) -> tuple[str, str] | None:
        p, repo = self.policy, action.repo
        if repo not in self.repos and len(self.repos) >= p.max_repos_per_cycle:
            return (
                "budget.cycle_repos",
                f"already acting in {len(self.repos)} repo(s) this cycle (max_repos_per_cycle)",
            )
        if self.total >= p.max_actions_per_cycle:
            return (
                "budget.cycle_actions",
                f"{self.total} action(s) already allowed this cycle (max_actions_per_cycle)",
            )
        if self.per_repo[repo] >= p.max_actions_per_repo:
            return "budget.repo_actions", (
                f"{self.per_repo[repo]} action(s) already allowed in {repo} this cycle (max_actions_per_repo)"
            )
        if action.kind == ActionKind.RESTART_SERVICE and self.starts >= p.max_service_starts_per_cycle:
            return "budget.service_starts", (
                f"{self.starts} service start(s) already allowed this cycle (max_service_starts_per_cycle)"
            )
        if self.hour_total + self.total >= p.max_actions_per_hour:
            return "budget.hour", (
                f"{self.hour_total + self.total} action(s) in the last hour across the ecosystem "
                "(max_actions_per_hour)"
            )
        if self.hour_repo[repo] + self.per_repo[repo] >= p.max_actions_per_repo_per_hour:
            return "budget.hour", (
                f"{self.hour_repo[repo] + self.per_repo[repo]} action(s) in {repo} in the last hour "
                "(max_actions_per_repo_per_hour)"
            )
        if action.kind in CORRECTIVE_KINDS:
            open_here = len(self.open_corrective.get(repo, ())) + self.new_corrective[repo]
            if open_here >= p.max_corrective_per_repo:
                return "corrective_cap", (
                    f"{open_here} corrective task(s) already open in {repo} (max_corrective_per_repo); "
                    "finish or close them first"
                )
            open_all = self.open_total + sum(self.new_corrective.values())
            if open_all >= p.max_corrective_total:
                return (
                    "corrective_cap",
                    f"{open_all} corrective task(s) open across the ecosystem (max_corrective_total)",
                )
        return None

    def _spend(self, action: Action) -> None:
        self.repos.add(action.repo)
        self.total += 1
        self.per_repo[action.repo] += 1
        if action.kind == ActionKind.RESTART_SERVICE:
            self.starts += 1
        if action.kind in CORRECTIVE_KINDS:
            self.new_corrective[action.repo] += 1


def _mode_reason(action: Action, mode: ControlMode) -> str:
    if not MODE_PERMITS[mode]:
        return (
            f"control mode {mode} permits no hub action in {action.repo}; "
            f"`speedrift mode {action.repo} supervise --owner NAME` allows safe handlers"
        )
    return (
        f"control mode {mode} does not permit {action.kind}; "
        f"`speedrift mode {action.repo} autonomous --owner NAME` allows it"
    )


def kind_table_markdown() -> str:
    """Per action kind: the modes that permit it and whether a dirty checkout cuts it (for the doc)."""
    rows = ["| kind | supervise | autonomous | cut on a dirty checkout | why |", "|---|---|---|---|---|"]
    for kind in ACTION_KINDS:
        touches, why = DIRTY_CHECKOUT[kind]
        cells = [kind in MODE_PERMITS["supervise"], kind in MODE_PERMITS["autonomous"], touches]
        rows.append(f"| `{kind}` | " + " | ".join("yes" if c else "no" for c in cells) + f" | {why} |")
    return "\n".join(rows)
