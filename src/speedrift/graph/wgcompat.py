"""The guard that keeps every line speedrift writes loadable by ``wg``.

wg deserializes into a fixed Rust struct and aborts loading the whole graph on a single value it
cannot parse. Before speedrift writes a task line it checks the wg fields it may have touched;
a violation is a bug in speedrift, so it raises instead of writing.
"""

from __future__ import annotations

from typing import Any

from speedrift.errors import SpeedriftError
from speedrift.graph.model import (
    PRIORITY_LEVELS,
    STATUS_ALIASES,
    STATUSES,
    WG_FAILURE_CLASSES,
    Task,
)
from speedrift.times import parse_time

_STRING_FIELDS = (
    "id", "title", "description", "assigned", "agent", "failure_reason", "exec", "exec_mode",
    "model", "provider", "endpoint", "context_scope", "session_id", "superseded_by",
    "cron_schedule", "last_cron_fire", "next_cron_fire",
)  # fmt: skip
_STRING_LIST_FIELDS = (
    "after", "blocked_by", "before", "blocks", "requires", "tags", "skills", "inputs",
    "deliverables", "artifacts", "tried_models",
)  # fmt: skip
_TIME_FIELDS = (
    "created_at", "started_at", "completed_at", "last_interaction_at", "not_before", "ready_after",
)  # fmt: skip
_UINT_FIELDS = ("retry_count", "dispatch_count", "verify_failures", "spawn_failures", "loop_iteration")
_BOOL_FIELDS = ("paused", "cron_enabled")
_EXEC_MODES = frozenset({"full", "light", "bare", "shell"})


class WgCompatError(SpeedriftError, ValueError):
    """A line wg could not load; a bug in speedrift, so nothing is written. Still a ValueError."""


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _problem(key: str, value: Any) -> str | None:
    """What wg would refuse about ``key: value``, or None."""
    if key == "kind":
        return None if value == "task" else "kind must be 'task'"
    if key == "status":
        ok = value in STATUSES or value in STATUS_ALIASES
        return None if ok else f"status {value!r} is not one of wg's statuses"
    if key == "priority":
        ok = _is_uint(value) or (isinstance(value, str) and value.lower() in PRIORITY_LEVELS)
        return None if ok else "priority must be a non-negative integer"
    if key == "failure_class":
        return None if value in WG_FAILURE_CLASSES else f"failure_class {value!r} is not in wg's enum"
    if key == "exec_mode":
        return None if value in _EXEC_MODES else f"exec_mode {value!r} is not in wg's enum"
    if key in _STRING_FIELDS:
        return None if isinstance(value, str) else f"{key} must be a string"
    if key in _STRING_LIST_FIELDS:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else f"{key} must be a list of strings"
    if key in _TIME_FIELDS:
        return None if parse_time(value) is not None else f"{key} must be an RFC 3339 timestamp"
    if key in _UINT_FIELDS:
        return None if _is_uint(value) else f"{key} must be a non-negative integer"
    if key in _BOOL_FIELDS:
        return None if isinstance(value, bool) else f"{key} must be true or false"
    if key == "log":
        ok = isinstance(value, list) and all(
            isinstance(e, dict) and isinstance(e.get("message"), str) for e in value
        )
        return None if ok else "log must be a list of {timestamp, message} objects"
    if key == "speedrift":
        return None if isinstance(value, dict) else "speedrift must be an object"
    return None  # fields wg does not know are never ours to judge


def check_task(task: Task, before: Task | None = None) -> None:
    """Raise :class:`WgCompatError` if wg could not load what speedrift changed on this line.

    Only keys whose value differs from ``before`` are judged: speedrift answers for what it
    writes, and never refuses to touch a line because of a value someone else put there.
    """
    problems: list[str] = []
    if not isinstance(task.get("title"), str) and (before is None or "title" not in before):
        problems.append("title must be a string")
    if "after" in task and "blocked_by" in task:
        problems.append("both 'after' and 'blocked_by'")
    for key, value in task.items():
        if before is not None and key in before and before[key] == value:
            continue
        problem = _problem(key, value)
        if problem:
            problems.append(problem)
    if problems:
        raise WgCompatError(f"task {task.get('id')!r} would not load in wg: " + "; ".join(problems))
