"""One repo's condition entries for the attention queues: the per-repo half of queues.py.

Pure: a repo's snapshot, its health (the reasons the scorer charged) and its candidate actions in;
the drafts of its condition entries out — one per unit of each reason (a task, a missing blocker
reference, the repo's findings), each with the candidate action that answers it, if any. queues.py
assembles every repo's drafts into the five queues: joins them to the final plan's held and run
actions, adds the actions that stand alone and the runtime pauses, ranks and caps.

Why a module of its own: the per-repo half is what costs (at 200 repos it was most of the queues
stage), and it is the half that can be kept. A repo's drafts depend on its snapshot, its reasons
and its actions; for a repo nothing changed in since the last cycle, those are the same, and
:func:`judge_conditions` hands back the previous cycle's :class:`RepoConditions` instead of
building them again. Who keeps them is the caller that owns the cycle state (judgement.assess
keeps them in its ``RepoMemo``, next to the score and the candidate actions); nothing here holds
anything between calls.

Time. Most condition entries say nothing that moves with the clock (a blocker that does not
exist, 3 commits behind, a question a task asks). The exceptions are the in-progress tasks of the
aging queue: which of them have aged past the scorer's threshold, "in progress for 3.2 h",
``since`` and ``waited``, all read from the task's age at ``now``. Those are never kept: a
:class:`RepoConditions` keeps only what does not depend on the clock (every other entry, the two
reasons an in-progress task can be charged under, and the action that answers each task), and
:meth:`RepoConditions.drafts` renders the in-progress entries at each cycle's ``now`` from the
repo's current snapshot (whose ages the observer moves forward). A time bucket in the key was the
alternative; it was not taken because every entry's ``waited`` moves every cycle anyway, a bucket
fine enough for the text ("3.2 h" moves every 6 minutes, a task crosses the threshold at any
second) would rarely hold, and rendering from the snapshot makes a kept repo's entries equal to a
fresh computation by construction, with no moment at which a kept text can be stale. The ranking
and the cap are cross-repo and use ``waited``: queues.py does them every cycle, from the drafts.
Whether an in-progress task can be charged at all is the health's to say (its reasons), so a kept
score (judgement.assess) bounds these entries exactly as it bounds the score, no more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from speedrift.control.assess.score import aged_in_progress
from speedrift.control.assess.weights import WEIGHTS
from speedrift.control.observe.graph import STALE_OPEN
from speedrift.register.actions import Action, ActionKind, CorrectiveParams, TaskCorrectiveParams
from speedrift.register.record import QueueKey, Reason, RepoHealth, RepoSnapshot

# The gate reasons behind a repo's findings entry, the one named as its rule first.
MAX_LANE_ENTRIES = 10  # drift findings listed per repo (the score counts them all)
RISK_RULES = ("secret_leaks", "gate_critical", "gate_high", "gate_failed")
DAY_SECONDS = 86_400.0  # for words only ("5.0 d"); every threshold is the scorer's
GONE = "claimed by a process that is gone: nobody is working on it"
# a task waiting at an approval checkpoint is as urgent as one waiting on a person's answer
APPROVAL_PRIORITY = int(WEIGHTS["needs_human"].first)


@dataclass(slots=True)
class Draft:
    """An entry before the cycle's plan is known: ``answer`` is the candidate action that answers
    the condition. Never changed once built: a kept repo's drafts are shared by every cycle that
    reuses them, so queues.py keeps the join to the plan's actions beside a draft, never in it, and
    copies ``detail`` and ``prompts`` into each entry. Not frozen only for speed: a frozen
    dataclass costs about three times as much to build, and an incremental cycle builds one for
    every in-progress aging entry and every action entry (hundreds at 200 repos)."""

    queue: QueueKey
    id: str
    repo: str
    what: str
    why: str
    rule: str
    priority: int
    task: str | None = None
    answer: Action | None = None
    since: datetime | None = None  # known from the data (a task's start); else first seen
    waited: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    action_id: str | None = None
    approvable: bool = False
    prompts: dict[str, str] = field(default_factory=dict)


def reason_priority(reason: Reason) -> int:
    """A condition no candidate action answers is as urgent as the points it costs the score."""
    return int(max(0.0, min(100.0, reason.points)) + 0.5)


def ranked(actions: Sequence[Action]) -> tuple[Action, ...]:
    """A repo's candidate actions in the order a condition looks for its answer: most urgent first."""
    return tuple(sorted(actions, key=lambda a: (-a.priority, a.id)))


def conditions_key(
    snapshot: RepoSnapshot, health: RepoHealth, actions: Sequence[Action]
) -> tuple[object, ...]:
    """Everything a repo's kept drafts depend on. The fingerprint stands for what the observer read
    (git state, the graph with its peer statuses, runs and gate results: observer.py signs them
    all); the errors and the dead claims are re-checked every cycle without a read, so they are
    named here; then the reasons charged and the actions (``ranked``) the drafts were built from.
    Comparing is cheap for a kept repo: its reasons and actions are the very objects kept."""
    graph = snapshot.graph
    dead = graph.dead_claims if graph is not None else None
    return (snapshot.fingerprint, snapshot.errors, dead, health.reasons, tuple(actions))


@dataclass(frozen=True, slots=True)
class RepoConditions:
    """A repo's condition drafts with nothing in them that moves with the clock (module docstring).

    ``fixed``: the drafts that do not depend on ``now``, in the order they are listed; ``at``: where
    the in-progress aging drafts go among them. ``aged`` / ``dead``: the reasons an in-progress task
    is charged under (None when the scorer did not charge it); ``answers``: each in-progress task's
    answering action, for the tasks that can be charged."""

    key: tuple[object, ...]
    fixed: tuple[Draft, ...]
    at: int = 0
    aged: Reason | None = None
    dead: Reason | None = None
    answers: Mapping[str, Action | None] = field(default_factory=dict)

    def drafts(self, snapshot: RepoSnapshot, now: datetime) -> Sequence[Draft]:
        """The repo's drafts at ``now``: the kept ones, with the in-progress aging ones rendered from
        ``snapshot`` (the one these were judged from, or one the observer reused and moved forward)."""
        if self.aged is None and self.dead is None:
            return self.fixed
        running = self._in_progress(snapshot, now)
        if not running:
            return self.fixed
        return (*self.fixed[: self.at], *running, *self.fixed[self.at :])

    def _in_progress(self, snapshot: RepoSnapshot, now: datetime) -> list[Draft]:
        """In-progress tasks the scorer charged: aging past its threshold at ``now``, or claimed by a
        dead process (an aged dead claim is charged as aging, a fresh one as a dead claim)."""
        graph = snapshot.graph
        if graph is None:
            return []
        aged = {t.id: t.age_seconds or 0.0 for t in aged_in_progress(snapshot, now)}
        dead = set(graph.dead_claims)
        elapsed = max(0.0, (now - snapshot.observed_at).total_seconds())
        name = snapshot.name
        out: list[Draft] = []
        for brief in graph.in_progress:
            if brief.id in dead:
                reason = self.aged if brief.id in aged else self.dead
                why = GONE
            elif brief.id in aged:
                reason = self.aged
                why = f"in progress for {_days(aged[brief.id])} with no finish"
            else:
                continue
            if reason is None:
                continue
            since = waited = None
            if brief.age_seconds is not None:  # the task's start is known: it has waited since then
                waited = brief.age_seconds + elapsed
                since = (snapshot.observed_at - timedelta(seconds=brief.age_seconds)).replace(microsecond=0)
            answer = self.answers.get(brief.id)
            out.append(
                Draft(
                    "aging",
                    f"aging:{name}:{brief.id}",
                    name,
                    what=f"{brief.id}: {brief.title}",
                    why=why,
                    rule=reason.code,
                    priority=answer.priority if answer is not None else reason_priority(reason),
                    task=brief.id,
                    answer=answer,
                    since=since,
                    waited=waited,
                    detail={"title": brief.title},
                )
            )
        return out


def judge_conditions(
    snapshot: RepoSnapshot,
    health: RepoHealth,
    actions: Sequence[Action],
    previous: RepoConditions | None = None,
) -> RepoConditions:
    """The repo's condition drafts; ``actions`` its candidates, :func:`ranked`. ``previous`` (the
    last cycle's for this repo) is handed back when the observer reused the snapshot and
    :func:`conditions_key` is unchanged — a freshly read snapshot is always judged again, as the
    scorer's memo does (judgement.memo_key): its fingerprint may be the same while what was read
    is not (a graph read again past its time horizon)."""
    key = conditions_key(snapshot, health, actions)
    if previous is not None and snapshot.reused and previous.key == key:
        return previous
    repo = _Repo(snapshot, {r.code: r for r in health.reasons}, actions)
    first = repo.unobservable()
    rest = [
        *repo.stale_open(),
        *repo.dependencies(),
        *repo.findings(),
        *repo.lane_findings(),
        *repo.upstream(),
        *repo.escalated(),
        *repo.awaiting(),
    ]
    aged, dead = repo.reasons.get("aging_in_progress"), repo.reasons.get("dead_claims")
    answers: dict[str, Action | None] = {}
    if (aged is not None or dead is not None) and snapshot.graph is not None:
        answers = {
            brief.id: repo.answer(ActionKind.VERIFY_IN_PROGRESS, _about(brief.id))
            for brief in snapshot.graph.in_progress
        }
    return RepoConditions(key, (*first, *rest), len(first), aged, dead, answers)


def _about(task: str) -> Callable[[Action], bool]:
    """An action about ``task``: its subject, or one of the tasks its params name."""
    return lambda a: a.subject == task or task in a.tasks


def _corrective(kind: str, task: str | None = None) -> Callable[[Action], bool]:
    """A corrective action of ``kind`` (candidates.py's corrective_kind), about ``task`` if given."""

    def matches(a: Action) -> bool:
        params = a.params
        if isinstance(params, CorrectiveParams | TaskCorrectiveParams) and params.corrective_kind != kind:
            return False
        return task is None or _about(task)(a)

    return matches


@dataclass(slots=True)
class _Repo:
    """The builders of one repo's clock-free drafts (the in-progress ones: RepoConditions.drafts)."""

    snapshot: RepoSnapshot
    reasons: dict[str, Reason]  # by code: what the scorer charged this cycle
    actions: Sequence[Action]  # the repo's candidates, highest priority first

    def answer(self, kind: ActionKind, match: Callable[[Action], bool] | None = None) -> Action | None:
        """The candidate action of ``kind`` that answers a condition (the most urgent, when several)."""
        return next((a for a in self.actions if a.kind == kind and (match is None or match(a))), None)

    def draft(self, queue: QueueKey, key: str, reason: Reason, answer: Action | None, **kw: Any) -> Draft:
        priority = answer.priority if answer is not None else reason_priority(reason)
        return Draft(queue, key, self.snapshot.name, rule=reason.code, priority=priority, answer=answer, **kw)

    def unobservable(self) -> list[Draft]:
        """Nothing the hub plans can answer a repo it cannot observe: a person must look."""
        reason = self.reasons.get("missing_repo") or self.reasons.get("snapshot_errors")
        if reason is None:
            return []
        name = self.snapshot.name
        errors = "; ".join(self.snapshot.errors) or "the path does not exist"
        return [
            self.draft("human", f"error:{name}", reason, None, what=f"{name} cannot be observed", why=errors)
        ]

    def stale_open(self) -> list[Draft]:
        """Open work older than the observer's stale-open line (the aging queue's one clock-free
        entry: the observer counts it, and reads the graph again when the count can change)."""
        graph, stale = self.snapshot.graph, self.reasons.get("stale_open")
        if graph is None or stale is None:
            return []
        days = STALE_OPEN.days
        return [
            self.draft(
                "aging",
                f"aging-open:{self.snapshot.name}",
                stale,
                self.answer(ActionKind.EMIT_CORRECTIVE_TASK, _corrective("stale")),
                what=f"{graph.stale_open} open task(s) older than {days} days",
                why="old open work is either not needed or not reachable",
                detail={"count": graph.stale_open, "days": days},
            )
        ]

    def dependencies(self) -> list[Draft]:
        """Missing blocker references, failed blockers, and tasks failing again and again."""
        name, graph = self.snapshot.name, self.snapshot.graph
        out: list[Draft] = []
        repair = self.answer(ActionKind.REPAIR_DEPENDENCIES)
        missing = self.reasons.get("missing_dependencies")
        if graph is not None and missing is not None:
            peer_breaks = {(task, blocker): problem for task, blocker, problem in graph.peer_breaks}
            for task, blocker in graph.missing_dependencies:  # one entry per broken reference
                problem = peer_breaks.get((task, blocker))
                out.append(
                    self.draft(
                        "dependency",
                        f"dep-missing:{name}:{task}:{blocker}",
                        missing,
                        repair,
                        what=f"{task} waits on {blocker}: {problem}"
                        if problem
                        else f"{task} waits on {blocker}, which does not exist",
                        why="a missing blocker never finishes",
                        task=task,
                        detail={"blocker": blocker},
                    )
                )
        failed = self.reasons.get("failed_blockers")
        if graph is not None and failed is not None:
            out.append(
                self.draft(
                    "dependency",
                    f"dep-failed:{name}",
                    failed,
                    repair,
                    what=f"{graph.failed_blockers} open task(s) blocked by a failed task",
                    why="failed blockers hold dependents forever",
                    detail={"count": graph.failed_blockers},
                )
            )
        looping = self.reasons.get("repeated_failures")
        if looping is not None:
            for task in self.snapshot.attempts.repeated_failures:  # one entry per failing task
                out.append(
                    self.draft(
                        "dependency",
                        f"loop:{name}:{task}",
                        looping,
                        self.answer(ActionKind.EMIT_CORRECTIVE_TASK, _corrective("failing", task)),
                        what=f"{task} failed twice in a row",
                        why="a failed loopback: retrying the same way will fail again",
                        task=task,
                    )
                )
        return out

    def findings(self) -> list[Draft]:
        """One entry per repo for its blocking gate findings; its rule is the heaviest kind found."""
        charged = [self.reasons[code] for code in RISK_RULES if code in self.reasons]
        if not charged:
            return []
        name, gates = self.snapshot.name, self.snapshot.gates
        counts = ((gates.secret_leaks, "secret leak(s)"), (gates.critical, "critical"), (gates.high, "high"))
        found = ", ".join(f"{n} {label}" for n, label in counts if n) or "the last gate run failed"
        at = f" at {gates.commit[:12]}" if gates.commit else ""
        by = f" (from the {gates.source})" if gates.source else ""
        return [
            self.draft(
                "risk",
                f"risk:{name}",
                charged[0],
                self.answer(ActionKind.RUN_GATE_SCAN),
                what=f"{name}: {found}",
                why=f"findings on the target branch{at}{by}",
                detail={
                    "found": found,
                    "gate_status": gates.last_status,
                    "where": gates.where,
                    "commit": gates.commit,
                    "source": gates.source,
                },
            )
        ]

    def lane_findings(self) -> list[Draft]:
        """One entry per actionable drift-lane finding (the first :data:`MAX_LANE_ENTRIES`, worst
        first), one per lane that could not judge, and one for a drift policy that cannot be read."""
        name, lanes = self.snapshot.name, self.snapshot.lanes
        answer = self.answer(ActionKind.RUN_LANES)
        out: list[Draft] = []
        policy = self.reasons.get("lane_policy_invalid")
        if policy is not None:
            out.append(
                self.draft(
                    "human",
                    f"lane-policy:{name}",
                    policy,
                    None,
                    what=f"{name}: the drift policy cannot be read",
                    why=lanes.policy_error or "",
                    detail={"error": lanes.policy_error},
                )
            )
        for brief in lanes.findings[:MAX_LANE_ENTRIES]:
            reason = self.reasons.get(f"lane_{brief.severity}")
            if reason is None:
                continue
            at = (
                f" ({brief.file}:{brief.line})"
                if brief.file and brief.line
                else f" ({brief.file})"
                if brief.file
                else ""
            )
            out.append(
                self.draft(
                    "risk",
                    f"lane:{name}:{brief.fingerprint}",
                    reason,
                    answer,
                    what=f"{brief.lane} {brief.kind}: {brief.message}{at}",
                    why=brief.fix or f"found by the {brief.lane} lane on the target branch",
                    task=brief.followup,
                    detail={
                        "lane": brief.lane,
                        "kind": brief.kind,
                        "severity": brief.severity,
                        "message": brief.message,
                        "file": brief.file,
                        "line": brief.line,
                        "fix": brief.fix,
                        "fingerprint": brief.fingerprint,
                        "followup": brief.followup,
                    },
                )
            )
        broken = self.reasons.get("lane_broken")
        for run in lanes.runs:
            if broken is not None and run.error:
                out.append(
                    self.draft(
                        "risk",
                        f"lane-broken:{name}:{run.lane}",
                        broken,
                        answer,
                        what=f"drift lane {run.lane} could not judge {name}",
                        why=run.error,
                        detail={"lane": run.lane, "error": run.error},
                    )
                )
        return out

    def upstream(self) -> list[Draft]:
        """Commits behind (a reason the scorer charges) and ahead (not a penalty: an entry only
        because the planner proposes a contribution packet for them)."""
        name, git = self.snapshot.name, self.snapshot.git
        if git is None:
            return []
        out: list[Draft] = []
        packet = self.answer(ActionKind.PREPARE_UPSTREAM_PACKET)
        if packet is not None and git.ahead:
            out.append(
                Draft(
                    "upstream",
                    f"upstream-ahead:{name}",
                    name,
                    what=f"{git.ahead} local commit(s) on {git.branch} not in {git.upstream}",
                    why="work that could be proposed upstream",
                    rule=packet.kind,
                    priority=packet.priority,
                    answer=packet,
                    detail={"ahead": git.ahead, "branch": git.branch, "upstream": git.upstream},
                )
            )
        behind = self.reasons.get("behind_upstream")
        if behind is not None and git.behind:
            out.append(
                self.draft(
                    "upstream",
                    f"upstream-behind:{name}",
                    behind,
                    self.answer(ActionKind.SYNC_UPSTREAM),
                    what=f"{git.behind} commit(s) behind {git.upstream}",
                    why="upstream moved on; local work diverges",
                    detail={"behind": git.behind, "upstream": git.upstream},
                )
            )
        return out

    def escalated(self) -> list[Draft]:
        """Each task tagged needs-human and each open human_escalation record no such task names
        (the scorer's ``needs_human``): the question and the command that answers it (with the
        record, for the dashboard's answer box). Nothing the hub plans answers a question; a
        person does."""
        reason, graph = self.reasons.get("needs_human"), self.snapshot.graph
        if reason is None or graph is None:
            return []
        name = self.snapshot.name
        out: list[Draft] = []
        for escalation in graph.escalations:
            label = f" ({escalation.failure_class})" if escalation.failure_class else ""
            # a question of the coordination store has an id of its own (one task may ask several)
            key = escalation.task if escalation.record is None else f"{escalation.task}:{escalation.record}"
            what = f"{escalation.task} needs a human{label}: {escalation.title}"
            if escalation.record is not None and not escalation.failure_class:
                who = escalation.task or "an agent"
                what = f"{who} asks a human ({escalation.record}): {escalation.question}"
            out.append(
                self.draft(
                    "human",
                    f"human:{name}:{key}",
                    reason,
                    None,
                    what=what,
                    why=escalation.question,
                    task=escalation.task,
                    since=escalation.since,
                    detail={
                        "title": escalation.title,
                        "question": escalation.question,
                        "answer": escalation.answer,
                        "first": escalation.first,
                        "failure_class": escalation.failure_class,
                        "record": escalation.record,
                    },
                )
            )
        return out

    def awaiting(self) -> list[Draft]:
        """Each task waiting at a human approval checkpoint (the scorer's ``awaiting_approval``):
        the checkpoint, the attempt and the wave, and the command that approves it — the dashboard's
        Approve button posts ``detail["approve"]`` (the task) to the approve endpoint. Nothing the
        hub plans answers it; a person decides. ``since``: when it began waiting, if the task says.
        Its priority is not its small score charge (score.py ``_approval_penalties``) but that of a
        question a person must answer (:data:`APPROVAL_PRIORITY`): a wave's work is held by the
        decision just as a task is by an answer, and it must not sink below the queue's cap."""
        reason, graph = self.reasons.get("awaiting_approval"), self.snapshot.graph
        if reason is None or graph is None:
            return []
        name = self.snapshot.name
        out: list[Draft] = []
        for wait in graph.approvals:
            if wait.checkpoint == "merge":
                why = "its gated attempt waits merge-pending; approving it lets the attempt land"
            else:
                why = "a deploy step of an oversight wave: it is not dispatched until approved"
            out.append(
                Draft(
                    "human",
                    f"approval:{name}:{wait.task}:{wait.checkpoint}",
                    name,
                    rule=reason.code,
                    priority=APPROVAL_PRIORITY,
                    what=wait.sentence(),
                    why=f"{why} ({wait.title})" if wait.title else why,
                    task=wait.task,
                    since=wait.since,
                    detail={
                        "title": wait.title,
                        "checkpoint": wait.checkpoint,
                        "attempt": wait.attempt,
                        "wave": wait.wave,
                        "answer": f"speedrift plan approve {wait.task}",
                        "approve": wait.task,
                    },
                )
            )
        return out


def _days(seconds: float) -> str:
    if seconds >= DAY_SECONDS:
        return f"{seconds / DAY_SECONDS:.1f} d"
    return f"{seconds / 3600:.1f} h"
