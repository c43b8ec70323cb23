"""What happens after a classified failure: the per-class recovery policy. Pure.

:data:`POLICIES` says, per failure class, whether it is retryable, its backoff and attempt cap,
and its recovery; ``[recovery]`` in speedrift.toml overrides it. :func:`decide` turns a
classification into a :class:`Decision`. ``fleet/recovery_graph.py`` turns decisions into graph
edits; the service schedules the retry kinds (``fleet/service.py``). ``docs/failure-classes.md``
is the human version.

Model escalation and runtime fallback, one mechanism per case: a task whose model is explicit (a
person's, or one an earlier ``escalate_model`` wrote) climbs ``[recovery] model_tiers`` here, the
model written on the task; a routed task (``[routing] tiers``, agents/routing.py) with ``[routing]
escalate`` climbs its routing tier instead — the decision writes no model, and routing counts the
failure on the next attempt. A failure whose runtime is paused for it (usage limit, refused
credentials) or that the provider caused, on a task with a fallback order, is retried on the next
runtime in the order (``fallback_from``: what the next attempt moves past, fleet/choosing.py).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from speedrift.agents import routing
from speedrift.failure_class import FailureClass, parse_failure_class
from speedrift.fleet import choosing
from speedrift.fleet.classify import Classification
from speedrift.fleet.config import RecoveryKind, RepoConfig
from speedrift.graph.model import Task
from speedrift.textclip import clip

MAX_PARTS = 6  # split_task: more file groups than this are merged by top-level directory
MAX_DIAGNOSIS = 4000
RETRY_KINDS = frozenset({"retry", "retry_with_diagnosis", "escalate_model", "pause_runtime"})


@dataclass(frozen=True)
class ClassPolicy:
    retryable: bool
    recovery: RecoveryKind
    max_attempts: int | None = None  # None: [service] max_attempts
    backoff_seconds: float | None = None  # None: [service] backoff_seconds (doubles per attempt)
    backoff_cap_seconds: float = 3600.0
    why: str = ""


POLICIES: dict[FailureClass, ClassPolicy] = {
    FailureClass.AUTH_FAILURE: ClassPolicy(
        False, "escalate_human", why="the runtime's credentials were refused: a human logs it in again"
    ),
    FailureClass.USAGE_LIMIT: ClassPolicy(
        True, "pause_runtime", max_attempts=10, why="the plan's limit: the runtime pauses until its reset"
    ),
    FailureClass.TRANSIENT_INFRA: ClassPolicy(
        True, "retry", why="network, 5xx or a crash: the same attempt again"
    ),
    FailureClass.SECRET_LEAK: ClassPolicy(
        False, "escalate_human", why="a credential in the diff: a human rotates it; never retried blind"
    ),
    FailureClass.SCOPE_VIOLATION: ClassPolicy(
        False, "replan", why="the change needs files other open tasks own: the plan must change"
    ),
    FailureClass.DECOMPOSITION_ERROR: ClassPolicy(
        False, "split_task", why="the task needed more files than it declared: split it along them"
    ),
    FailureClass.MERGE_CONFLICT: ClassPolicy(
        True, "retry_with_diagnosis", max_attempts=3, why="redo the work on the moved target branch"
    ),
    FailureClass.ENV_BOOTSTRAP: ClassPolicy(
        False, "escalate_human", why="the worktree, runtime or a required tool could not be set up"
    ),
    FailureClass.INVALID_OUTPUT: ClassPolicy(
        False,
        "escalate_human",
        why="a role's output failed its schema after one corrected retry: a human looks, never a loop",
    ),
    FailureClass.EXCEEDED_CAPACITY: ClassPolicy(
        True, "escalate_model", why="a hard budget was hit: a stronger model tier, then re-planning"
    ),
    FailureClass.AGENT_STALL: ClassPolicy(
        True, "retry", why="no progress within the stall window: once more"
    ),
    FailureClass.CONTEXT_CUT: ClassPolicy(
        True, "escalate_model", why="the context ran out: a stronger tier, then re-planning"
    ),
    FailureClass.EXPLORATION_DEATH: ClassPolicy(
        True, "retry_with_diagnosis", max_attempts=2, why="explored without editing: retry told to edit"
    ),
    FailureClass.SPEC_GAP: ClassPolicy(
        False, "escalate_human", why="the agent asked what only a human can answer"
    ),
    FailureClass.SAST_BLOCK: ClassPolicy(
        True, "retry_with_diagnosis", why="new security findings: retry with them"
    ),
    FailureClass.REGRESSION: ClassPolicy(
        True, "retry_with_diagnosis", why="tests that passed before fail now"
    ),
    FailureClass.REVIEW_REJECTED: ClassPolicy(
        False, "escalate_human", why="the reviewer rejected the change: a human decides what comes next"
    ),
    FailureClass.HOOK_REJECTED: ClassPolicy(
        True,
        "retry_with_diagnosis",
        max_attempts=2,
        why="the repo's task-completing hook vetoed landing: one retry told what it said, then a human",
    ),
    FailureClass.IMPLEMENTATION_ERROR: ClassPolicy(
        True, "retry_with_diagnosis", why="syntax, lint, type or test failures: retry with the gate output"
    ),
}


def policy_for(cls: FailureClass, config: RepoConfig) -> ClassPolicy:
    """The class's policy with ``[recovery.classes.<cls>]`` and the ``[service]`` defaults applied."""
    base = POLICIES[cls]
    override = config.recovery.classes.get(cls)
    if override is not None:
        fields = {k: v for k, v in override.model_dump().items() if v is not None}
        base = replace(base, **fields)
    return replace(
        base,
        max_attempts=base.max_attempts or config.service.max_attempts,
        backoff_seconds=config.service.backoff_seconds
        if base.backoff_seconds is None
        else base.backoff_seconds,
    )


@dataclass(frozen=True)
class Decision:
    failure_class: FailureClass
    recovery: RecoveryKind  # what happens now (after fallbacks)
    retryable: bool
    automatic: bool  # the service retries it by itself (the retry kinds, attempts remaining)
    attempt: int
    max_attempts: int
    delay_seconds: float = 0.0
    model: str | None = None  # escalate_model: the next tier, runtime-prefixed ("claude:opus")
    question: str | None = None  # escalate_human: what the human is asked
    note: str | None = None  # why this recovery (fallbacks say what they replaced)
    diagnosis: str | None = None  # goes into the next attempt's prompt as retry guidance
    parts: tuple[tuple[str, tuple[str, ...]], ...] = ()  # split_task: (label, files) per part
    # the runtime[:model] this attempt failed on, which the next attempt moves past in the task's
    # fallback order (fleet/choosing.py): its runtime is paused for this failure, or the provider failed
    fallback_from: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, ())}
        if self.parts:
            out["parts"] = [{"label": label, "files": list(files)} for label, files in self.parts]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        parts = tuple(
            (str(p.get("label", "")), tuple(str(f) for f in p.get("files", [])))
            for p in data.get("parts", [])
            if isinstance(p, dict)
        )
        known = {f for f in cls.__dataclass_fields__ if f not in ("parts", "failure_class")}
        # a class this version does not know is treated as policy_for always did: implementation_error
        failure_class = parse_failure_class(data.get("failure_class")) or FailureClass.IMPLEMENTATION_ERROR
        return cls(
            failure_class=failure_class,
            **{k: v for k, v in data.items() if k in known},
            parts=parts,
        )


# --- deciding -----------------------------------------------------------------------------------
def decide(
    found: Classification,
    *,
    task: Task,
    attempt: int,
    runtime: str,
    current_model: str | None,
    config: RepoConfig,
    reason: str = "",
    tier: str | None = None,
    provider_fault: str | None = None,
) -> Decision:
    """The recovery for one failed attempt. Pure. ``tier``: the routing tier the attempt ran on
    (None: its model was explicit or not routed); ``provider_fault``: what failed on the
    provider's side, when something did (agents/protocol.py ProviderFault)."""
    policy = policy_for(found.cls, config)
    max_attempts = policy.max_attempts or config.service.max_attempts
    base = Decision(
        failure_class=found.cls,
        recovery=policy.recovery,
        retryable=policy.retryable,
        automatic=False,
        attempt=attempt,
        max_attempts=max_attempts,
        note=policy.why,
    )
    task_id = str(task.get("id", ""))
    moved = fallback_from(found.cls, provider_fault, task, runtime, current_model, config)
    if moved is not None and attempt < max_attempts:
        return replace(
            base,
            recovery="retry",
            retryable=True,
            automatic=True,
            delay_seconds=backoff(policy, attempt),
            fallback_from=moved[0],
            note=f"{policy.why or found.cls}; the next attempt moves down the fallback order ({moved[1]})",
        )
    if policy.retryable and attempt >= max_attempts:
        return replace(
            base,
            recovery="escalate_human",
            note=f"{attempt} attempt(s) failed, the cap for {found.cls} is {max_attempts}",
            question=f"{attempt} attempts failed; the last as {found.cls}: {_first(found, reason)}. "
            f"What should the next attempt do differently? `speedrift retry {task_id} --context '…'`",
        )
    kind = policy.recovery
    if kind in ("retry_with_diagnosis", "escalate_model") and runtime == "shell":
        # a shell command reads no prompt: neither a diagnosis nor a stronger model changes it
        return replace(
            base,
            recovery="escalate_human",
            note="a shell task's command does not read a diagnosis; it is rerun only after transient faults",
            question=f"The command failed ({found.cls}): {_first(found, reason)}. Fix the command or the "
            f"code, then `speedrift retry {task_id} --force`",
        )
    if kind == "escalate_model" and tier is not None and config.routing.escalate and config.routing.tiers:
        return _routing_escalation(base, found, policy, attempt, tier, config, reason)
    if kind == "escalate_model":
        tiers = config.recovery.model_tiers.get(runtime, [])  # type: ignore[call-overload]
        following = next_tier(tiers, current_model)
        if following is None:
            return replace(
                base,
                recovery="replan",
                note=f"{found.cls} on the strongest configured model tier ({current_model or 'default'}): "
                "split the task or give it more budget",
            )
        told = diagnose(found, attempt, reason) + f"\nYou now run on the stronger model {following}."
        return replace(
            base,
            automatic=policy.retryable,
            delay_seconds=backoff(policy, attempt),
            model=f"{runtime}:{following}",
            diagnosis=told[:MAX_DIAGNOSIS],
        )
    if kind == "split_task":
        groups = split_groups(found.files)
        if not groups or task.get("exec"):
            return replace(
                base, recovery="replan", note=f"{found.cls}, with no file groups to split along: re-plan it"
            )
        return replace(base, parts=tuple(groups), note=f"split along {len(groups)} file group(s)")
    if kind == "escalate_human":
        return replace(base, question=_question(found, task_id, runtime, reason))
    if kind == "replan":
        return replace(base, note=f"{policy.why}: {_first(found, reason)}")
    delay = backoff(policy, attempt)
    diagnosis = diagnose(found, attempt, reason)[:MAX_DIAGNOSIS] if kind == "retry_with_diagnosis" else None
    return replace(
        base, automatic=policy.retryable and kind in RETRY_KINDS, delay_seconds=delay, diagnosis=diagnosis
    )


def _routing_escalation(
    base: Decision,
    found: Classification,
    policy: ClassPolicy,
    attempt: int,
    tier: str,
    config: RepoConfig,
    reason: str,
) -> Decision:
    """escalate_model on a routed attempt with ``[routing] escalate``: routing climbs the tier on
    the retry (it counts this failure); nothing is written on the task's model."""
    tiers = choosing.tiers_of(config)
    following = routing.next_tier(tiers, tier)
    if following is None:
        return replace(
            base,
            recovery="replan",
            note=f"{found.cls} on the strongest routing tier ({tier}): split the task or give it more budget",
        )
    entry = tiers[following]
    told = diagnose(found, attempt, reason) + f"\nYou now run on the stronger {following} tier ({entry})."
    return replace(
        base,
        automatic=policy.retryable,
        delay_seconds=backoff(policy, attempt),
        note=f"{policy.why}: routing climbs from the {tier} to the {following} tier ({entry}) on the retry",
        diagnosis=told[:MAX_DIAGNOSIS],
    )


# failures that pause the runtime they happened on (fleet/pauses.py): the order moves on
PAUSING = frozenset({FailureClass.USAGE_LIMIT, FailureClass.AUTH_FAILURE})


def fallback_from(
    cls: FailureClass,
    provider_fault: str | None,
    task: Task,
    runtime: str,
    model: str | None,
    config: RepoConfig,
) -> tuple[str, str] | None:
    """(the failed runtime[:model], the order in words) when this failure lets the next attempt
    move down the task's fallback order: its runtime is paused for it (usage limit, refused
    credentials) or the provider failed, and the order holds somewhere else to go. None otherwise
    (no order, a shell task, the agent's own failure)."""
    if runtime == "shell" or (cls not in PAUSING and provider_fault is None):
        return None
    entries, source, _ignored = choosing.fallback_order(task, config)
    if not entries:
        return None
    failed = routing.entry_label(runtime, choosing.resolved(runtime, model, config))
    labels = [choosing.resolved_label(entry, config) for entry in entries]
    others = [c for c in routing.order(failed, labels) if c != failed]
    if cls in PAUSING:  # the whole runtime is paused: only another runtime helps
        others = [c for c in others if c.split(":", 1)[0] != runtime]
    if not others:
        return None
    return failed, f"{source}: {failed} → {others[0]}"


def backoff(policy: ClassPolicy, attempt: int) -> float:
    """Exponential: base, 2x base, 4x base … capped."""
    base = policy.backoff_seconds or 0.0
    return float(min(policy.backoff_cap_seconds, base * (2 ** max(0, attempt - 1))))


def next_tier(tiers: Sequence[str], current: str | None) -> str | None:
    """The tier after ``current``; an unknown current model goes to the strongest tier."""
    if not tiers:
        return None
    position = None
    if current:
        for index, tier in enumerate(tiers):
            if current == tier or tier in current:  # "claude-sonnet-4-5" is the sonnet tier
                position = index
    if position is None:
        return tiers[-1] if tiers[-1] != current else None
    return tiers[position + 1] if position + 1 < len(tiers) else None


def split_groups(files: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Files grouped by directory (by top-level directory when that makes too many), sorted."""
    unique = sorted(dict.fromkeys(f for f in files if f))
    for key in (posixpath.dirname, _top_level):
        groups: dict[str, list[str]] = {}
        for path in unique:
            groups.setdefault(key(path) or ".", []).append(path)
        if len(groups) <= MAX_PARTS:
            return [(label, tuple(paths)) for label, paths in sorted(groups.items())]
    size = -(-len(unique) // MAX_PARTS)
    return [
        (f"files {i + 1}", tuple(unique[i * size : (i + 1) * size]))
        for i in range(MAX_PARTS)
        if unique[i * size :]
    ]


def _top_level(path: str) -> str:
    return path.split("/", 1)[0] if "/" in path else "."


def diagnose(found: Classification, attempt: int, reason: str) -> str:
    lines = [
        f"The previous attempt ({attempt}) failed as {found.cls} (rule {found.rule}). What speedrift saw:"
    ]
    lines += [f"- {e.strip()}" for e in found.evidence]
    advice = {
        FailureClass.MERGE_CONFLICT: "The target branch changed in those files while you worked: make your "
        "change on top of the current code, keeping what others changed there.",
        FailureClass.EXPLORATION_DEATH: "That attempt only read and searched. Start editing the files the "
        "task names early; explore only what the edit needs.",
        FailureClass.CONTEXT_CUT: "The context ran out: read less, edit in smaller steps.",
        FailureClass.EXCEEDED_CAPACITY: "The attempt hit its budget: do the smallest complete change first.",
        FailureClass.REGRESSION: "Tests that passed before your change fail now: fix the code, not the "
        "tests.",
        FailureClass.SAST_BLOCK: "Fix the security findings above without suppressing the rules.",
        FailureClass.IMPLEMENTATION_ERROR: "Fix what the checks above report, and run the project's checks "
        "yourself before finishing.",
    }.get(found.cls)
    if found.subclass == "refused_calls":  # it did not explore: its CLI refused what it tried
        advice = "Your CLI refused those calls: work only inside your worktree, with paths relative to it."
    if advice:
        lines.append(advice)
    elif reason:
        lines.append(f"Reason: {clip(reason, 500)}")
    return "\n".join(lines)


def _first(found: Classification, reason: str) -> str:
    return found.evidence[0] if found.evidence else (reason or found.cls)


def _question(found: Classification, task_id: str, runtime: str, reason: str) -> str:
    answer = f"Answer with `speedrift retry {task_id} --context '<answer>'`"
    forced = f"then `speedrift retry {task_id} --force`"
    first = _first(found, reason)
    if found.cls == FailureClass.SPEC_GAP:
        return f"The agent is blocked ({found.subclass or 'blocked'}): {first}. {answer}"
    if found.cls == FailureClass.AUTH_FAILURE:
        return f"The {runtime} runtime's credentials were refused. Log it in again, {forced}"
    if found.cls == FailureClass.SECRET_LEAK:
        where = ", ".join(found.files[:5]) or "the diff"
        return (
            f"The attempt wrote what looks like a secret ({where}; nothing was landed). Rotate it if it is "
            f"real and say where credentials belong. {answer}"
        )
    if found.cls == FailureClass.ENV_BOOTSTRAP:
        return f"The environment could not be prepared: {first}. Fix it, {forced}"
    return f"{found.cls}: {first}. What should happen next? {answer}"
