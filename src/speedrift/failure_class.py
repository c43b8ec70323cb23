"""The failure classes: speedrift's one vocabulary for why an attempt failed.

Every failed attempt gets exactly one class: ``fleet/classify.py`` decides which, the gates name
the class a blocking result implies, ``fleet/recovery.py`` holds each class's recovery. It lives
at the foundation because the gates (below the fleet) produce classes too.

Invariants: the definition order of :class:`FailureClass` is the classifier's precedence order,
and ``docs/failure-classes.md`` lists the classes in that order (a test keeps the two equal). In
code a class is always a member; on disk (the task's ``speedrift.failure_class``, evidence
``failure``, ``outcomes.jsonl`` ``class``, gate results) it is the member's string, and a value read
back goes through :func:`parse_failure_class`, which never raises. wg's own ``failure_class`` field
has another vocabulary (``graph.model.WgFailureClass``) and never holds one of these.
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    """Why an attempt failed, in precedence order (the first matching rule of the classifier wins)."""

    AUTH_FAILURE = "auth_failure"
    USAGE_LIMIT = "usage_limit"
    TRANSIENT_INFRA = "transient_infra"
    SECRET_LEAK = "secret_leak"  # noqa: S105 (a class name, not a secret)
    SCOPE_VIOLATION = "scope_violation"
    DECOMPOSITION_ERROR = "decomposition_error"
    MERGE_CONFLICT = "merge_conflict"
    ENV_BOOTSTRAP = "env_bootstrap"
    INVALID_OUTPUT = "invalid_output"  # a role's typed output failed its schema twice
    EXCEEDED_CAPACITY = "exceeded_capacity"
    AGENT_STALL = "agent_stall"
    CONTEXT_CUT = "context_cut"
    EXPLORATION_DEATH = "exploration_death"
    SPEC_GAP = "spec_gap"
    SAST_BLOCK = "sast_block"
    REGRESSION = "regression"
    REVIEW_REJECTED = "review_rejected"  # the Reviewer role rejected the change
    HOOK_REJECTED = "hook_rejected"  # a repo's task-completing hook vetoed landing (fleet/repohooks.py)
    IMPLEMENTATION_ERROR = "implementation_error"


def parse_failure_class(value: object) -> FailureClass | None:
    """A class read from disk or JSON, or None for anything that is not one (old or foreign data)."""
    if isinstance(value, str):
        try:
            return FailureClass(value)
        except ValueError:
            return None
    return None
