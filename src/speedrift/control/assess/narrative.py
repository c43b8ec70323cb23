"""The cycle in plain words: posture, what changed, what to look at first, what policy held back.

Written for someone who has never read the code: short sentences, each fact its own sentence or
list line, every held-back rule explained with the command that changes it. Paragraphs are
separated by a blank line and lists are Markdown ``- `` lines (the dashboard renders them safely;
the terminal prints them as they are).

Pure and deterministic: the same healths, metrics and plan always give the same text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from speedrift.register.actions import Action
from speedrift.register.record import Metric, Plan, RepoHealth

TIER_RANK = {"healthy": 0, "watch": 1, "at-risk": 2}
MAX_CHANGES = 4  # tier changes listed in the change paragraph

# what each policy rule means, as the end of "N held by RULE: ..." (control/plan/policy.py RULE_ORDER)
RULE_WORDS: dict[str, str] = {
    "plan_only": "the hub only plans while `plan_only` is on (`plan_only = false` under [policy] in "
    "ecosystem.toml lets it act)",
    "mode": "the repo's mode does not let the hub do this (`speedrift mode REPO autonomous` grants it)",
    "lease": "the repo's control lease has run out or belongs to another owner "
    "(`speedrift mode REPO MODE --lease-ttl 1h` renews it)",
    "runtime_paused": "it would start agents on a paused runtime "
    "(`speedrift pauses` says why and until when)",
    "dirty_checkout": "the repo's checkout has uncommitted changes, which the hub does not touch",
    "dedup": "a repeat of an action already planned or under way",
    "cooldown": "the same action ran a short while ago and waits out its cooldown",
    "budget.cycle_repos": "the cycle already acts on as many repos as its budget allows",
    "budget.cycle_actions": "the cycle already takes as many actions as its budget allows",
    "budget.repo_actions": "the repo reached its budget of actions per hour",
    "budget.service_starts": "the budget of service starts is used up",
    "budget.hour": "the hourly budget is used up",
    "corrective_cap": "the repo already has as many open corrective tasks as allowed",
    "hard_stop": "an earlier action of this cycle failed and the hard stop is on; the next cycle plans again",
}


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
    paragraphs = [
        _posture(healths, metrics),
        _changes(healths, previous),
        _first_look(healths, plan),
        _held(plan),
    ]
    return "\n\n".join(p for p in paragraphs if p)


def _repos(n: int) -> str:
    return f"{n} repo" if n == 1 else f"{n} repos"


def _actions(n: int) -> str:
    return f"{n} action" if n == 1 else f"{n} actions"


def _posture(healths: Sequence[RepoHealth], metrics: Mapping[str, Metric]) -> str:
    total = len(healths)
    if total == 0:
        return "Stable posture. No repos are registered yet."
    tiers = Counter(h.tier for h in healths)
    flow = metrics.get("flow_health")
    flow_text = (
        f" Flow health is {flow.value:g} of 100 ({flow.tier}, trend {flow.trend}): how freely work moves."
        if flow
        else ""
    )
    if tiers["at-risk"]:
        head = f"Alert posture. {tiers['at-risk']} of {_repos(total)} at risk."
        if tiers["watch"]:
            head += f" {tiers['watch']} on watch."
    elif tiers["watch"]:
        head = f"Watch posture. {tiers['watch']} of {_repos(total)} on watch. None at risk."
    else:
        head = f"Stable posture. All {_repos(total)} healthy."
    return head + flow_text


def _changes(healths: Sequence[RepoHealth], previous: Mapping[str, RepoHealth]) -> str:
    if not previous:
        return "This is the first cycle, so there is no earlier state to compare with."
    changes: list[str] = []
    for h in sorted(healths, key=lambda h: (h.score, h.name)):
        before = previous.get(h.name)
        if before is None:
            changes.append(f"{h.name} joined ({h.tier}).")
        elif before.tier != h.tier:
            verb = "fell to" if TIER_RANK[h.tier] > TIER_RANK[before.tier] else "recovered to"
            changes.append(
                f"{h.name} {verb} {h.tier} (from {before.tier}, score {before.score} → {h.score})."
            )
        elif h.activity == "stalled" and before.activity != "stalled":
            changes.append(f"{h.name} stalled: {h.stall}.")
    if not changes:
        return "No repo changed tier since the last cycle."
    lines = [f"- {c}" for c in changes[:MAX_CHANGES]]
    if len(changes) > MAX_CHANGES:
        lines.append(f"- {len(changes) - MAX_CHANGES} more.")
    return "Since the last cycle:\n" + "\n".join(lines)


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
        kind = action.kind.replace("_", " ")
        text = f"Look first at {action.repo}. The hub's most urgent action there: {kind}."
        text += f" Why: {action.reason.rstrip('.')}."
        if rule:
            text += f" It is held by {rule}: {RULE_WORDS.get(rule, 'a policy rule')}."
        return text
    if worst is not None and worst.tier != "healthy":
        why = worst.stall or (worst.reasons[0].text if worst.reasons else "no reason recorded")
        return f"Look first at {worst.name} (score {worst.score}, {worst.tier}). Why: {why.rstrip('.')}."
    return "Nothing needs attention."


def _held(plan: Plan) -> str:
    total = len(plan.allowed) + len(plan.skipped)
    if total == 0:
        return "The hub planned no actions."
    rules = Counter(s.rule for s in plan.skipped)
    planned = f"The hub planned {_actions(total)}"
    if rules["plan_only"] == total:
        return f"{planned} and took none. {RULE_WORDS['plan_only'][0].upper()}{RULE_WORDS['plan_only'][1:]}."
    if not plan.skipped:
        return f"{planned}. Its policy allowed all of them."
    allowed = len(plan.allowed)
    head = f"{planned}. Its policy allowed {allowed}" if allowed else f"{planned} and took none"
    lines = [
        f"- {n} held by {rule}: {RULE_WORDS.get(rule, 'a policy rule')}."
        for rule, n in sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return f"{head}. It held back {len(plan.skipped)}:\n" + "\n".join(lines)
