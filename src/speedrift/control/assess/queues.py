"""The attention queues: the stage of the control cycle that says what waits for a person, and how urgently.

Pure: the cycle's snapshots, repo healths (scores and reasons), candidate actions, the actions
the policy held back, and ``now`` in; five :class:`AttentionQueue` out, in contract order — aging
gaps, dependency breaks, security & quality findings, upstream candidates, waiting on a human.
The cycle records them (``CycleRecord.queues``); the dashboard only displays them.

Invariant: this stage decides no urgency of its own. An entry exists because the scorer charged
a reason for it (score.py: the reason's code is the entry's ``rule``; a task tagged needs-human is
``needs_human``), the planner proposed an action (candidates.py), or a runtime pause only a person
can lift holds dispatch (``runtime_paused``, ranked as the dispatch it holds). Its priority is
the priority of the candidate action that answers it — whether the policy lets that action run
or not, the plan's verdict on urgency is the same — and, when no candidate action answers it,
the points its reason costs the repo's score (0–100, the same scale: how far from healthy it
pulls the repo). Within a queue, entries rank by priority, then by how long they have waited,
then by id. Nothing here reads a file or a clock.

Entries are per unit of attention (a task, a missing blocker reference, a repo's findings), with
ids stable across cycles (``aging:<repo>:<task>``, ``dep-missing:<repo>:<task>:<blocker>``,
``risk:<repo>``, ``action:<action id>``, …), which is how ``since`` carries over: the caller
passes the previous cycle's ``{id: since}`` (:func:`carried_since`). Prompts are presentation:
an entry copies its action's prompts when the action carries them (it does not in the hub's own
cycle) and judgement.with_prompts adds the rest (prompts.entry_prompts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from speedrift.control.assess.score import aged_in_progress
from speedrift.control.observe.graph import STALE_OPEN
from speedrift.control.plan.candidates import TRIGGERS
from speedrift.pausestore import RuntimePause
from speedrift.register.record import (
    Action,
    ActionKind,
    AttentionQueue,
    CorrectiveParams,
    QueueEntry,
    QueueKey,
    Reason,
    RepoHealth,
    RepoSnapshot,
    Skipped,
    TaskCorrectiveParams,
)
from speedrift.times import parse_time

QUEUES: tuple[tuple[QueueKey, str], ...] = (
    ("aging", "Aging gaps"),
    ("dependency", "Dependency breaks"),
    ("risk", "Security & quality findings"),
    ("upstream", "Upstream candidates"),
    ("human", "Waiting on a human"),
)
QUEUE_CAP = 50  # entries recorded per queue (highest priority first); `total` counts them all

# Policy rules that hold an action until a person decides — approve it, or change the mode, the
# lease or the policy. An action held by one of them waits in the human queue (approvable); one
# held by anything else (dedup, cooldown, budgets) will run on its own in a later cycle.
HUMAN_RULES = frozenset(
    {"plan_only", "mode", "lease", "hard_stop", "refused", "dirty_checkout", "corrective_cap"}
)
# Where an action that is not waiting on a person shows when no condition entry stands for it.
KIND_QUEUE: dict[ActionKind, QueueKey] = {
    ActionKind.VERIFY_IN_PROGRESS: "aging",
    ActionKind.RETRY_FAILED: "aging",
    ActionKind.REPAIR_DEPENDENCIES: "dependency",
    ActionKind.EMIT_CORRECTIVE_TASK: "dependency",
    ActionKind.RUN_GATE_SCAN: "risk",
    ActionKind.SYNC_UPSTREAM: "upstream",
    ActionKind.PREPARE_UPSTREAM_PACKET: "upstream",
    ActionKind.RESTART_SERVICE: "human",
    ActionKind.DISPATCH_READY: "human",
}
# The gate reasons behind a repo's findings entry, the one named as its rule first.
RISK_RULES = ("secret_leaks", "gate_critical", "gate_high", "gate_failed")
DAY_SECONDS = 86_400.0  # for words only ("5.0 d"); every threshold is the scorer's
PAUSE_RULE = "runtime_paused"  # the policy's rule for dispatch held by a paused runtime
PAUSE_REPO = "(every repo)"  # a runtime pause is machine-wide; its entry names the repo it was found in


@dataclass(slots=True)
class _Draft:
    """An entry while it is built: ``answer`` is the candidate action that answers the condition."""

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


def attention_queues(
    snapshots: Mapping[str, RepoSnapshot],
    healths: Mapping[str, RepoHealth],
    planned: Sequence[Action],
    skipped: Sequence[Skipped],
    now: datetime,
    *,
    first_seen: Mapping[str, datetime] | None = None,
    cap: int = QUEUE_CAP,
    pauses: Sequence[RuntimePause] = (),
) -> tuple[AttentionQueue, ...]:
    """The five queues for one cycle. ``planned`` is every candidate action, ``skipped`` the policy's
    cuts (with hard stops); ``first_seen`` is the previous cycle's :func:`carried_since`;
    ``pauses`` the machine's runtime pauses the cycle saw (those only a person can lift wait in
    the human queue: :func:`_paused_runtimes`)."""
    held = {s.action.id: s for s in skipped}
    actions = {a.id: a for a in planned}
    for skip in skipped:
        actions.setdefault(skip.action.id, skip.action)
    by_repo: dict[str, list[Action]] = {}
    for action in sorted(actions.values(), key=lambda a: (-a.priority, a.id)):
        by_repo.setdefault(action.repo, []).append(action)

    drafts: list[_Draft] = []
    for name in sorted(snapshots):
        health = healths.get(name)
        if health is not None:
            drafts.extend(_conditions(snapshots[name], health, by_repo.get(name, []), now))
    drafts.extend(_paused_runtimes(pauses, skipped, now))

    # An action waiting on a person is an entry of its own (approvable) in the human queue; its
    # condition entries keep their priority but do not point at it. Any other action is joined to
    # every condition it answers, and is an entry of its own only when it answers none.
    linked: set[str] = set()
    for draft in drafts:
        answer = draft.answer
        if answer is not None and not _waits_on_person(held.get(answer.id)):
            draft.action_id, draft.prompts = answer.id, dict(answer.prompts)
            linked.add(answer.id)
    for action in sorted(actions.values(), key=lambda a: a.id):
        cut = held.get(action.id)
        if _waits_on_person(cut) or action.id not in linked:
            drafts.append(_action_entry(action, cut))

    seen = first_seen or {}
    grouped: dict[QueueKey, list[QueueEntry]] = {key: [] for key, _label in QUEUES}
    for draft in drafts:
        grouped[draft.queue].append(_entry(draft, seen, now))
    out = []
    for key, label in QUEUES:
        ranked = sorted(grouped[key], key=lambda e: (-e.priority, -e.waited_seconds, e.id))
        out.append(AttentionQueue(key=key, label=label, total=len(ranked), entries=tuple(ranked[:cap])))
    return tuple(out)


def carried_since(queues: Iterable[AttentionQueue]) -> dict[str, datetime]:
    """``{entry id: since}`` of a cycle's recorded entries: the next cycle's ``first_seen``."""
    return {entry.id: entry.since for queue in queues for entry in queue.entries}


def carried_since_plain(record: Mapping[str, Any] | None) -> dict[str, datetime]:
    """The same from a cycle record as the ledger stores it (a dict), e.g. the newest ledger line."""
    out: dict[str, datetime] = {}
    for queue in (record or {}).get("queues") or ():
        for entry in queue.get("entries") or ():
            since = parse_time(entry.get("since"))
            if since is not None and isinstance(entry.get("id"), str):
                out[entry["id"]] = since
    return out


# ---------------------------------------------------------------- entries


def _waits_on_person(cut: Skipped | None) -> bool:
    return cut is not None and cut.rule in HUMAN_RULES


def _entry(draft: _Draft, first_seen: Mapping[str, datetime], now: datetime) -> QueueEntry:
    since = draft.since or first_seen.get(draft.id) or now
    waited = draft.waited if draft.waited is not None else max(0.0, (now - since).total_seconds())
    return QueueEntry(
        id=draft.id,
        queue=draft.queue,
        repo=draft.repo,
        what=draft.what,
        why=draft.why,
        rule=draft.rule,
        priority=draft.priority,
        since=since,
        waited_seconds=waited,
        task=draft.task,
        action_id=draft.action_id,
        approvable=draft.approvable,
        detail=draft.detail,
        prompts=draft.prompts,
    )


def _action_entry(action: Action, cut: Skipped | None) -> _Draft:
    person = _waits_on_person(cut)
    why = action.reason
    if cut is not None:
        why = f"{why} — held back ({cut.rule}): {cut.reason}"
    subject = f" ({action.subject})" if action.subject else ""
    return _Draft(
        queue="human" if person else KIND_QUEUE.get(action.kind, "human"),
        id=f"action:{action.id}",
        repo=action.repo,
        what=f"{action.kind.replace('_', ' ')} in {action.repo}{subject}",
        why=why,
        rule=action.kind,
        priority=action.priority,
        task=action.subject,
        action_id=action.id,
        approvable=person,
        prompts=dict(action.prompts),
    )


def _paused_runtimes(
    pauses: Sequence[RuntimePause], skipped: Sequence[Skipped], now: datetime
) -> list[_Draft]:
    """A runtime pause only a person can lift (refused credentials, a failed preflight: the pause
    store's ``needs_human``) waits in the human queue with its fix and the command that lifts it.
    Its priority is the dispatch it holds (the highest held by ``runtime_paused``), else the
    priority that dispatch would have (candidates' ``dispatch`` trigger): no urgency of its own."""
    held = [s.action.priority for s in skipped if s.rule == PAUSE_RULE]
    priority = max(held, default=TRIGGERS["dispatch"].priority)
    out: list[_Draft] = []
    for pause in pauses:
        if not pause.needs_human:
            continue
        key = pause.runtime if pause.provider is None else f"{pause.runtime}:{pause.provider}"
        command = f"speedrift resume-runtime {pause.runtime}"
        out.append(
            _Draft(
                "human",
                f"pause:{key}",
                pause.repo or PAUSE_REPO,
                what=f"runtime {pause.label} is paused until a person fixes it",
                why=pause.sentence(now),
                rule=PAUSE_RULE,
                priority=priority,
                task=pause.task,
                since=pause.since,
                detail={
                    "runtime": pause.runtime,
                    "provider": pause.provider,
                    "cause": pause.cause,
                    "question": pause.reason,
                    "answer": command,
                    "first": pause.fix or None,
                },
            )
        )
    return out


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


def _conditions(
    snapshot: RepoSnapshot, health: RepoHealth, actions: Sequence[Action], now: datetime
) -> list[_Draft]:
    """The repo's condition entries: one per unit of each reason the scorer charged."""
    repo = _Repo(snapshot, {r.code: r for r in health.reasons}, actions, now)
    return [
        *repo.unobservable(),
        *repo.aging(),
        *repo.dependencies(),
        *repo.findings(),
        *repo.upstream(),
        *repo.escalated(),
    ]


@dataclass(slots=True)
class _Repo:
    snapshot: RepoSnapshot
    reasons: dict[str, Reason]  # by code: what the scorer charged this cycle
    actions: Sequence[Action]  # the repo's candidates, highest priority first
    now: datetime

    def answer(self, kind: ActionKind, match: Callable[[Action], bool] | None = None) -> Action | None:
        """The candidate action of ``kind`` that answers a condition (the most urgent, when several)."""
        return next((a for a in self.actions if a.kind == kind and (match is None or match(a))), None)

    def draft(self, queue: QueueKey, key: str, reason: Reason, answer: Action | None, **kw: Any) -> _Draft:
        priority = answer.priority if answer is not None else reason_priority(reason)
        return _Draft(
            queue, key, self.snapshot.name, rule=reason.code, priority=priority, answer=answer, **kw
        )

    def unobservable(self) -> list[_Draft]:
        """Nothing the hub plans can answer a repo it cannot observe: a person must look."""
        reason = self.reasons.get("missing_repo") or self.reasons.get("snapshot_errors")
        if reason is None:
            return []
        name = self.snapshot.name
        errors = "; ".join(self.snapshot.errors) or "the path does not exist"
        return [
            self.draft("human", f"error:{name}", reason, None, what=f"{name} cannot be observed", why=errors)
        ]

    def aging(self) -> list[_Draft]:
        """In-progress tasks the scorer charged (aging past its threshold, or claimed by a dead
        process), and open work older than the observer's stale-open line."""
        snapshot, graph = self.snapshot, self.snapshot.graph
        if graph is None:
            return []
        aged = {t.id: t.age_seconds or 0.0 for t in aged_in_progress(snapshot, self.now)}
        dead = set(graph.dead_claims)
        elapsed = max(0.0, (self.now - snapshot.observed_at).total_seconds())
        out: list[_Draft] = []
        for brief in graph.in_progress:
            if brief.id in dead:  # an aged dead claim is charged as aging, a fresh one as a dead claim
                reason = self.reasons.get("aging_in_progress" if brief.id in aged else "dead_claims")
                why = "claimed by a process that is gone: nobody is working on it"
            elif brief.id in aged:
                reason = self.reasons.get("aging_in_progress")
                why = f"in progress for {_days(aged[brief.id])} with no finish"
            else:
                continue
            if reason is None:
                continue
            since = waited = None
            if brief.age_seconds is not None:  # the task's start is known: it has waited since then
                waited = brief.age_seconds + elapsed
                since = (snapshot.observed_at - timedelta(seconds=brief.age_seconds)).replace(microsecond=0)
            out.append(
                self.draft(
                    "aging",
                    f"aging:{snapshot.name}:{brief.id}",
                    reason,
                    self.answer(ActionKind.VERIFY_IN_PROGRESS, _about(brief.id)),
                    what=f"{brief.id}: {brief.title}",
                    why=why,
                    task=brief.id,
                    since=since,
                    waited=waited,
                    detail={"title": brief.title},
                )
            )
        stale = self.reasons.get("stale_open")
        if stale is not None:
            days = STALE_OPEN.days
            out.append(
                self.draft(
                    "aging",
                    f"aging-open:{snapshot.name}",
                    stale,
                    self.answer(ActionKind.EMIT_CORRECTIVE_TASK, _corrective("stale")),
                    what=f"{graph.stale_open} open task(s) older than {days} days",
                    why="old open work is either not needed or not reachable",
                    detail={"count": graph.stale_open, "days": days},
                )
            )
        return out

    def dependencies(self) -> list[_Draft]:
        """Missing blocker references, failed blockers, and tasks failing again and again."""
        name, graph = self.snapshot.name, self.snapshot.graph
        out: list[_Draft] = []
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

    def findings(self) -> list[_Draft]:
        """One entry per repo for its blocking gate findings; its rule is the heaviest kind found."""
        charged = [self.reasons[code] for code in RISK_RULES if code in self.reasons]
        if not charged:
            return []
        name, gates = self.snapshot.name, self.snapshot.gates
        counts = ((gates.secret_leaks, "secret leak(s)"), (gates.critical, "critical"), (gates.high, "high"))
        found = ", ".join(f"{n} {label}" for n, label in counts if n) or "the last gate run failed"
        return [
            self.draft(
                "risk",
                f"risk:{name}",
                charged[0],
                self.answer(ActionKind.RUN_GATE_SCAN),
                what=f"{name}: {found}",
                why="findings on the target branch",
                detail={"found": found, "gate_status": gates.last_status},
            )
        ]

    def upstream(self) -> list[_Draft]:
        """Commits behind (a reason the scorer charges) and ahead (not a penalty: an entry only
        because the planner proposes a contribution packet for them)."""
        name, git = self.snapshot.name, self.snapshot.git
        if git is None:
            return []
        out: list[_Draft] = []
        packet = self.answer(ActionKind.PREPARE_UPSTREAM_PACKET)
        if packet is not None and git.ahead:
            out.append(
                _Draft(
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

    def escalated(self) -> list[_Draft]:
        """Each task tagged needs-human (the scorer's ``needs_human``): the question it asks and the
        command that answers it. Nothing the hub plans answers a question; a person does."""
        reason, graph = self.reasons.get("needs_human"), self.snapshot.graph
        if reason is None or graph is None:
            return []
        name = self.snapshot.name
        out: list[_Draft] = []
        for escalation in graph.escalations:
            label = f" ({escalation.failure_class})" if escalation.failure_class else ""
            out.append(
                self.draft(
                    "human",
                    f"human:{name}:{escalation.task}",
                    reason,
                    None,
                    what=f"{escalation.task} needs a human{label}: {escalation.title}",
                    why=escalation.question,
                    task=escalation.task,
                    since=escalation.since,
                    detail={
                        "title": escalation.title,
                        "question": escalation.question,
                        "answer": escalation.answer,
                        "first": escalation.first,
                        "failure_class": escalation.failure_class,
                    },
                )
            )
        return out


def _days(seconds: float) -> str:
    if seconds >= DAY_SECONDS:
        return f"{seconds / DAY_SECONDS:.1f} d"
    return f"{seconds / 3600:.1f} h"
