"""Workgraph's vocabulary: node kinds, statuses, priorities, and typed accessors over task dicts.

Tasks stay the plain dicts decoded from ``graph.jsonl`` so that every field speedrift does not
model survives a rewrite untouched; these helpers give the fields speedrift reads a typed view.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from typing import Any

from speedrift.failure_class import FailureClass, parse_failure_class

Task = dict[str, Any]

# Workgraph's `enum Status` (kebab-case). `pending-review` is a legacy alias read as `done`.
OPEN = "open"
IN_PROGRESS = "in-progress"
WAITING = "waiting"
DONE = "done"
BLOCKED = "blocked"
FAILED = "failed"
ABANDONED = "abandoned"
PENDING_VALIDATION = "pending-validation"
PENDING_EVAL = "pending-eval"
FAILED_PENDING_EVAL = "failed-pending-eval"
INCOMPLETE = "incomplete"
STATUSES = frozenset(
    {
        OPEN,
        IN_PROGRESS,
        WAITING,
        DONE,
        BLOCKED,
        FAILED,
        ABANDONED,
        PENDING_VALIDATION,
        PENDING_EVAL,
        FAILED_PENDING_EVAL,
        INCOMPLETE,
    }
)
STATUS_ALIASES = {"pending-review": DONE}
TERMINAL = frozenset({DONE, FAILED, ABANDONED})
DEP_SATISFIED = frozenset({DONE, ABANDONED})  # failed does NOT unblock dependents
DISPATCHABLE = frozenset({OPEN, INCOMPLETE})


class WgFailureClass(StrEnum):
    """Workgraph's own `failure_class` enum: wg refuses the whole graph on any other value.

    Not speedrift's vocabulary (:class:`~speedrift.failure_class.FailureClass`): the task's top-level
    ``failure_class`` holds one of these or nothing; speedrift's class is ``speedrift.failure_class``."""

    API_ERROR_400_DOCUMENT = "api-error-400-document"
    API_ERROR_429_RATE_LIMIT = "api-error-429-rate-limit"
    API_ERROR_5XX_TRANSIENT = "api-error-5xx-transient"
    AGENT_HARD_TIMEOUT = "agent-hard-timeout"
    AGENT_EXIT_NONZERO = "agent-exit-nonzero"
    WRAPPER_INTERNAL = "wrapper-internal"


WG_FAILURE_CLASSES = frozenset(WgFailureClass)
WG_FAILURE_CLASS_KEY = "failure_class"  # wg's field, top level: a WgFailureClass value or absent

PRIORITY_LEVELS = {"critical": 100, "high": 50, "normal": 10, "low": 5, "idle": 0}
PRIORITY_TIERS = (0, 5, 10, 50, 100)  # ascending; the age bump moves one tier per day
DEFAULT_PRIORITY = 10

# The edge keys wg reads, canonical first. A line keeps the key it already has.
AFTER_KEYS = ("after", "blocked_by")
BEFORE_KEYS = ("before", "blocks")

SPEEDRIFT_KEY = "speedrift"  # the one object speedrift's own task data lives in
PLAN_KEY = "plan"  # speedrift.plan: the wave a task was compiled from (plans/compile.py)
PLAN_STAGE_KEY = "stage"  # speedrift.plan.stage: set on a wave's closure tasks only
APPROVAL_KEY = "approval"  # speedrift.approval: the checkpoints a person approves (fleet/approval.py)
APPROVED_KEY = "approved"  # speedrift.approved: the approvals given
START_CHECKPOINT = "start"  # the checkpoint before a task is dispatched


def status_of(task: Task) -> str:
    raw = task.get("status", OPEN)
    if not isinstance(raw, str):
        return OPEN
    return STATUS_ALIASES.get(raw, raw)


def priority_of(task: Task) -> int:
    raw = task.get("priority", DEFAULT_PRIORITY)
    if isinstance(raw, bool):
        return DEFAULT_PRIORITY
    if isinstance(raw, int):
        return max(raw, 0)
    if isinstance(raw, str):
        return PRIORITY_LEVELS.get(raw.lower(), DEFAULT_PRIORITY)
    return DEFAULT_PRIORITY


def parse_priority(text: str) -> int:
    """A CLI priority: a named level or a non-negative integer."""
    named = PRIORITY_LEVELS.get(text.strip().lower())
    if named is not None:
        return named
    value = int(text)  # ValueError is reported by the caller as a usage error
    if value < 0:
        raise ValueError("priority must be >= 0")
    return value


def _id_list(task: Task, keys: tuple[str, ...]) -> list[str]:
    for key in keys:
        value = task.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, str)]
    return []


def after_of(task: Task) -> list[str]:
    return _id_list(task, AFTER_KEYS)


def before_of(task: Task) -> list[str]:
    return _id_list(task, BEFORE_KEYS)


def edge_key(task: Task, keys: tuple[str, ...]) -> str:
    """The key this line already uses for an edge list, or the canonical one for new lines."""
    for key in keys:
        if key in task:
            return key
    return keys[0]


def str_list(task: Task, key: str) -> list[str]:
    value = task.get(key)
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def is_system(task_id: str) -> bool:
    return task_id.startswith(".")


def speedrift_data(task: Task) -> dict[str, Any]:
    data = task.get(SPEEDRIFT_KEY)
    return data if isinstance(data, dict) else {}


def plan_data(task: Task) -> dict[str, Any]:
    """``speedrift.plan``: what `speedrift plan compile` wrote about the task's wave ({} if none)."""
    data = speedrift_data(task).get(PLAN_KEY)
    return data if isinstance(data, dict) else {}


def dispatch_hold(task: Task) -> str | None:
    """Why no developer attempt may start ``task`` now — the service, the hub, `speedrift run`,
    `ready`, `why` and `plan status` all ask this one predicate — or None: a wave's closure stage
    (integration, documentation, evaluation: ``speedrift.plan.stage``), carried out by its role
    under `speedrift plan run`; or a start a person has not approved yet (an oversight wave's
    deploy task: :func:`start_wait`)."""
    plan = plan_data(task)
    stage = plan.get(PLAN_STAGE_KEY)
    if not isinstance(stage, str) or not stage:
        return start_wait(task)
    wave = plan.get("wave")
    of = f" of wave {wave}" if isinstance(wave, int) and not isinstance(wave, bool) else ""
    return f"a closure stage ({stage[:40]}){of}: runs under `speedrift plan run`"


def approval_required(task: Task, checkpoint: str) -> bool:
    """``speedrift.approval.<checkpoint>``: a person approves it first (fleet/approval.py)."""
    value = speedrift_data(task).get(APPROVAL_KEY)
    return isinstance(value, dict) and value.get(checkpoint) is True


def approval_given(task: Task, checkpoint: str) -> dict[str, Any] | None:
    """``speedrift.approved.<checkpoint>``: the approval a person gave, if any."""
    value = speedrift_data(task).get(APPROVED_KEY)
    given = value.get(checkpoint) if isinstance(value, dict) else None
    return given if isinstance(given, dict) else None


def start_wait(task: Task) -> str | None:
    """Why ``task`` may not be dispatched until a person approves its start (None: it may)."""
    if not approval_required(task, START_CHECKPOINT) or approval_given(task, START_CHECKPOINT) is not None:
        return None
    return f"awaiting approval to start: `speedrift plan approve {task['id']}`"


# The two failure classes a task carries, each read (and wg's written) only through these:
# wg's ``task["failure_class"]`` (wg's vocabulary, how the runtime failed) and speedrift's
# ``task["speedrift"]["failure_class"]`` (the FailureClass of the last failure, docs/failure-classes.md).
def wg_failure_class(task: Task) -> WgFailureClass | None:
    """wg's own ``failure_class`` field, or None when it is unset (or holds nothing wg knows)."""
    value = task.get(WG_FAILURE_CLASS_KEY)
    return WgFailureClass(value) if isinstance(value, str) and value in WG_FAILURE_CLASSES else None


def set_wg_failure_class(task: Task, value: WgFailureClass) -> None:
    task[WG_FAILURE_CLASS_KEY] = value.value


def speedrift_failure_class(task: Task) -> FailureClass | None:
    """speedrift's class of the task's last failure (``speedrift.failure_class``), or None."""
    return parse_failure_class(speedrift_data(task).get("failure_class"))


_CONTRACT = re.compile(r"```wg-contract\s*\n(.*?)```", re.S)


def contract_globs(task: Task) -> list[str]:
    """`touch` globs from a coredrift ```wg-contract``` block in the description (TOML)."""
    description = task.get("description")
    if not isinstance(description, str):
        return []
    match = _CONTRACT.search(description)
    if not match:
        return []
    try:
        contract = tomllib.loads(match.group(1))
    except tomllib.TOMLDecodeError:
        return []
    touch = contract.get("touch", [])
    return [t for t in touch if isinstance(t, str)] if isinstance(touch, list) else []


def declared_scope(task: Task) -> list[str]:
    """Every file glob the task declared it may change: ``speedrift.touch``, a wg-contract's
    ``touch`` and its deliverables (the scope gate, the prompt and the roles read this one list)."""
    touch = [t for t in speedrift_data(task).get("touch", []) or [] if isinstance(t, str)]
    return [*touch, *contract_globs(task), *str_list(task, "deliverables")]
