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

Two halves. A repo's condition entries — built from its snapshot, reasons and actions alone — are
conditions.py's, and can be kept across cycles while the repo is unchanged (judgement.assess
keeps them; only what does not move with the clock is kept, see there). This module is the
cross-repo half, done every cycle from those drafts: joining them to the final plan's actions,
the actions that stand alone, the runtime pauses, ``since`` and ``waited`` at ``now``, the
ranking and the cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from speedrift.control.assess.conditions import (
    Draft,
    RepoConditions,
    conditions_key,
    judge_conditions,
    reason_priority,
)
from speedrift.control.plan.candidates import TRIGGERS
from speedrift.pausestore import RuntimePause
from speedrift.register.actions import Action, ActionKind
from speedrift.register.record import AttentionQueue, QueueEntry, QueueKey, RepoHealth, RepoSnapshot, Skipped
from speedrift.times import parse_time

# reason_priority is the per-repo half's (conditions.py), still named here where it always was
__all__ = [
    "QUEUES",
    "QUEUE_CAP",
    "attention_queues",
    "carried_since",
    "carried_since_plain",
    "reason_priority",
]

QUEUES: tuple[tuple[QueueKey, str], ...] = (
    ("aging", "Aging gaps"),
    ("dependency", "Dependency breaks"),
    ("risk", "Security & quality findings"),
    ("upstream", "Upstream candidates"),
    ("human", "Waiting on a human"),
)
QUEUE_CAP = 50  # entries recorded per queue (highest priority first); `total` counts them all

# Policy rules that hold an action until a person decides — approve it, or change the mode, the
# lease or the policy. An action held by one of them is approvable; one held by anything else
# (dedup, cooldown, budgets) will run on its own in a later cycle. Either way the hub's own action
# waits in the column of what it is about (KIND_QUEUE), never in "Waiting on a human": that column
# holds only what waits on a person — a task tagged needs-human or an agent's question, a task at
# an approval checkpoint, a runtime pause only a person can lift, a repo that cannot be observed.
HUMAN_RULES = frozenset(
    {"plan_only", "mode", "lease", "hard_stop", "refused", "dirty_checkout", "corrective_cap"}
)
# Where a hub action shows as an entry of its own (held for a person's approval, or answering no
# condition entry): the column of what it is about. Ready work not dispatched and a service not
# running are work left to age.
KIND_QUEUE: dict[ActionKind, QueueKey] = {
    ActionKind.VERIFY_IN_PROGRESS: "aging",
    ActionKind.RETRY_FAILED: "aging",
    ActionKind.REPAIR_DEPENDENCIES: "dependency",
    ActionKind.EMIT_CORRECTIVE_TASK: "dependency",
    ActionKind.RUN_GATE_SCAN: "risk",
    ActionKind.RUN_LANES: "risk",
    ActionKind.SYNC_UPSTREAM: "upstream",
    ActionKind.PREPARE_UPSTREAM_PACKET: "upstream",
    ActionKind.RESTART_SERVICE: "aging",
    ActionKind.DISPATCH_READY: "aging",
}
PAUSE_RULE = "runtime_paused"  # the policy's rule for dispatch held by a paused runtime
PAUSE_REPO = "(every repo)"  # a runtime pause is machine-wide; its entry names the repo it was found in


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
    conditions: Mapping[str, RepoConditions] | None = None,
) -> tuple[AttentionQueue, ...]:
    """The five queues for one cycle. ``planned`` is every candidate action, ``skipped`` the policy's
    cuts (with hard stops); ``first_seen`` is the previous cycle's :func:`carried_since`;
    ``pauses`` the machine's runtime pauses the cycle saw (those only a person can lift wait in
    the human queue: :func:`_paused_runtimes`). ``conditions``: the repos' condition drafts as
    judged this cycle from these same snapshots (judgement.assess judges them, keeping an unchanged
    repo's from the last cycle: conditions.py); a repo's are used only when they were judged from
    the health and the actions given here, and a repo without them is judged here."""
    held = {s.action.id: s for s in skipped}
    actions = {a.id: a for a in planned}
    for skip in skipped:
        actions.setdefault(skip.action.id, skip.action)
    by_repo: dict[str, list[Action]] = {}
    for action in sorted(actions.values(), key=lambda a: (-a.priority, a.id)):
        by_repo.setdefault(action.repo, []).append(action)

    judged = conditions or {}
    drafts: list[Draft] = []
    for name in sorted(snapshots):
        health = healths.get(name)
        if health is None:
            continue
        snapshot, mine = snapshots[name], tuple(by_repo.get(name, ()))
        repo = judged.get(name)
        if repo is None or repo.key != conditions_key(snapshot, health, mine):
            repo = judge_conditions(snapshot, health, mine)
        drafts.extend(repo.drafts(snapshot, now))  # the in-progress ones rendered at `now`
    drafts.extend(_paused_runtimes(pauses, skipped, now))

    # An action waiting on a person is an entry of its own (approvable) in its kind's column; its
    # condition entries keep their priority but do not point at it. Any other action is joined to
    # every condition it answers, and is an entry of its own only when it answers none. The join
    # is kept beside the drafts (``links``), not written into them: a kept repo's drafts are shared
    # with the cycles before, whose plans held other actions.
    person = {ident for ident, cut in held.items() if _waits_on_person(cut)}
    links: list[Action | None] = []
    linked: set[str] = set()
    for draft in drafts:
        answer = draft.answer
        if answer is not None and answer.id not in person:
            linked.add(answer.id)
        else:
            answer = None
        links.append(answer)
    for action in sorted(actions.values(), key=lambda a: a.id):
        if action.id in person or action.id not in linked:
            drafts.append(_action_entry(action, held.get(action.id)))
            links.append(None)

    # Ranked by priority, then how long waited (at `now`, every cycle), then id; the draft's index
    # last, so ties fall as a stable sort leaves them. Only the entries recorded (the cap) are built.
    seen = first_seen or {}
    grouped: dict[QueueKey, list[tuple[int, float, str, int, datetime]]] = {key: [] for key, _label in QUEUES}
    for index, draft in enumerate(drafts):
        since = draft.since or seen.get(draft.id) or now
        waited = draft.waited if draft.waited is not None else max(0.0, (now - since).total_seconds())
        grouped[draft.queue].append((-draft.priority, -waited, draft.id, index, since))
    out = []
    for key, label in QUEUES:
        ranked = sorted(grouped[key])
        entries = tuple(
            _entry(drafts[index], links[index], since, -negated)
            for _priority, negated, _id, index, since in ranked[:cap]
        )
        out.append(AttentionQueue(key=key, label=label, total=len(ranked), entries=entries))
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


def _entry(draft: Draft, link: Action | None, since: datetime, waited: float) -> QueueEntry:
    """The recorded entry; ``link`` the action it is joined to. ``detail`` and ``prompts`` are the
    entry's own copies: a kept draft's are shared with other cycles' entries."""
    action_id, prompts = (draft.action_id, draft.prompts) if link is None else (link.id, link.prompts)
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
        action_id=action_id,
        approvable=draft.approvable,
        detail=dict(draft.detail),
        prompts=dict(prompts),
    )


def _action_entry(action: Action, cut: Skipped | None) -> Draft:
    person = _waits_on_person(cut)
    why = action.reason
    if cut is not None:
        why = f"{why} — held back ({cut.rule}): {cut.reason}"
    subject = f" ({action.subject})" if action.subject else ""
    return Draft(
        queue=KIND_QUEUE.get(action.kind, "aging"),
        id=f"action:{action.id}",
        repo=action.repo,
        what=f"{action.kind.replace('_', ' ')} in {action.repo}{subject}",
        why=why,
        rule=action.kind,
        priority=action.priority,
        task=action.subject,
        action_id=action.id,
        approvable=person,
        prompts=action.prompts,  # copied when the entry is built (_entry)
    )


def _paused_runtimes(
    pauses: Sequence[RuntimePause], skipped: Sequence[Skipped], now: datetime
) -> list[Draft]:
    """A runtime pause only a person can lift (refused credentials, a failed preflight: the pause
    store's ``needs_human``) waits in the human queue with its fix and the command that lifts it.
    Its priority is the dispatch it holds (the highest held by ``runtime_paused``), else the
    priority that dispatch would have (candidates' ``dispatch`` trigger): no urgency of its own."""
    held = [s.action.priority for s in skipped if s.rule == PAUSE_RULE]
    priority = max(held, default=TRIGGERS["dispatch"].priority)
    out: list[Draft] = []
    for pause in pauses:
        if not pause.needs_human:
            continue
        key = pause.runtime if pause.provider is None else f"{pause.runtime}:{pause.provider}"
        command = f"speedrift resume-runtime {pause.runtime}"
        out.append(
            Draft(
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
