"""The cycle in a few sentences: posture, what changed, what to look at first, what policy held back.

Pure and deterministic: the same healths, metrics and plan always give the same text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from speedrift.register.actions import Action
from speedrift.register.record import Metric, Plan, RepoHealth

TIER_RANK = {"healthy": 0, "watch": 1, "at-risk": 2}
MAX_CHANGES = 4  # tier changes named in the change sentence


def narrate(
    healths: Sequence[RepoHealth],
    metrics: Mapping[str, Metric],
    previous_healths: Mapping[str, RepoHealth] | Sequence[RepoHealth] | None,
    plan: Plan,
) -> str:
    previous = (
        previous_healths
        if isinstance(previous_healths, Mapping)
        else {h.name: h for h in (previous_healths or ())}
    )
    sentences = [
        _posture(healths, metrics),
        _changes(healths, previous),
        _first_look(healths, plan),
        _held(plan),
    ]
    return " ".join(s for s in sentences if s)


def _posture(healths: Sequence[RepoHealth], metrics: Mapping[str, Metric]) -> str:
    total = len(healths)
    if total == 0:
        return "Stable posture: no repos registered yet."
    tiers = Counter(h.tier for h in healths)
    flow = metrics.get("flow_health")
    flow_text = f" Flow health {flow.value:g} ({flow.tier}, {flow.trend})." if flow else ""
    if tiers["at-risk"]:
        head = f"Alert posture: {tiers['at-risk']} of {total} repos at risk"
        head += f", {tiers['watch']} on watch." if tiers["watch"] else "."
    elif tiers["watch"]:
        head = f"Watch posture: {tiers['watch']} of {total} repos on watch, none at risk."
    else:
        head = f"Stable posture: all {total} repos healthy."
    return head + flow_text


def _changes(healths: Sequence[RepoHealth], previous: Mapping[str, RepoHealth]) -> str:
    if not previous:
        return "First cycle: no earlier state to compare with."
    changes: list[str] = []
    for h in sorted(healths, key=lambda h: (h.score, h.name)):
        before = previous.get(h.name)
        if before is None:
            changes.append(f"{h.name} joined ({h.tier})")
        elif before.tier != h.tier:
            verb = "fell to" if TIER_RANK[h.tier] > TIER_RANK[before.tier] else "recovered to"
            changes.append(f"{h.name} {verb} {h.tier} (from {before.tier}, score {before.score} → {h.score})")
        elif h.activity == "stalled" and before.activity != "stalled":
            changes.append(f"{h.name} stalled: {h.stall}")
    if not changes:
        return "No tier changes since the last cycle."
    more = f" and {len(changes) - MAX_CHANGES} more" if len(changes) > MAX_CHANGES else ""
    return "Since the last cycle: " + "; ".join(changes[:MAX_CHANGES]) + more + "."


def _top_action(plan: Plan) -> tuple[Action, str | None] | None:
    """The highest-priority candidate and the rule holding it (None when allowed)."""
    candidates = [(a, None) for a in plan.allowed] + [(s.action, s.rule) for s in plan.skipped]
    if not candidates:
        return None
    return min(candidates, key=lambda pair: (-pair[0].priority, pair[0].id))


def _first_look(healths: Sequence[RepoHealth], plan: Plan) -> str:
    worst = min(healths, key=lambda h: (h.score, h.name), default=None)
    top = _top_action(plan)
    if top is not None:
        action, rule = top
        held = f" (held by {rule})" if rule else ""
        return f"Look first at {action.repo}: {action.kind.replace('_', ' ')} — {action.reason}{held}."
    if worst is not None and worst.tier != "healthy":
        why = worst.stall or (worst.reasons[0].text if worst.reasons else "no reason recorded")
        return f"Look first at {worst.name} ({worst.score}, {worst.tier}): {why}."
    return "Nothing needs attention."


def _held(plan: Plan) -> str:
    total = len(plan.allowed) + len(plan.skipped)
    if total == 0:
        return "No actions planned."
    rules = Counter(s.rule for s in plan.skipped)
    if rules["plan_only"] == total:
        return f"plan_only held back all {total} planned action(s); nothing was executed."
    if not plan.skipped:
        return f"All {total} planned action(s) allowed."
    held = ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{len(plan.allowed)} of {total} planned action(s) allowed; held: {held}."
