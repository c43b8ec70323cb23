"""Workgraph's vocabulary: node kinds, statuses, priorities, and typed accessors over task dicts.

Tasks stay the plain dicts decoded from ``graph.jsonl`` so that every field speedrift does not
model survives a rewrite untouched; these helpers give the fields speedrift reads a typed view.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

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

# Workgraph's `failure_class` enum: wg refuses the whole graph on any other value.
WG_FAILURE_CLASSES = frozenset(
    {
        "api-error-400-document",
        "api-error-429-rate-limit",
        "api-error-5xx-transient",
        "agent-hard-timeout",
        "agent-exit-nonzero",
        "wrapper-internal",
    }
)

PRIORITY_LEVELS = {"critical": 100, "high": 50, "normal": 10, "low": 5, "idle": 0}
PRIORITY_TIERS = (0, 5, 10, 50, 100)  # ascending; the age bump moves one tier per day
DEFAULT_PRIORITY = 10

# The edge keys wg reads, canonical first. A line keeps the key it already has.
AFTER_KEYS = ("after", "blocked_by")
BEFORE_KEYS = ("before", "blocks")

SPEEDRIFT_KEY = "speedrift"  # the one object speedrift's own task data lives in


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
