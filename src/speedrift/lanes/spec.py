"""A lane's declaration: its name, what it reads, its settings and their defaults, the fence it
reads, and the function that judges.

Every built-in lane module defines one :class:`Lane` (``LANE``); ``lanes/builtin/__init__.py``
lists them. An external lane (an executable) gets a :class:`Lane` built from the policy by
:mod:`speedrift.lanes.external`. Settings are typed by their defaults: a policy or fence value of
another type is refused naming the key (:func:`check_settings`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from speedrift.errors import InvalidValue
from speedrift.lanes.model import LaneFinding, LaneScope

if TYPE_CHECKING:
    from speedrift.lanes.context import LaneContext


@dataclass(frozen=True, slots=True)
class LaneOutput:
    findings: Sequence[LaneFinding] = ()
    summary: str = ""
    score: int | None = None
    artifacts: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Lane:
    name: str
    scope: LaneScope
    summary: str  # one line for `speedrift lanes list`
    run: Callable[[LaneContext], LaneOutput]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fence: str | None = None  # the task fence it reads (coredrift: "wg-contract"; most: its name)
    external: bool = False
    # what the lane's result depends on besides the commits it reads: when False, a tree/graph
    # lane's result is reused while the head (and settings) are unchanged
    volatile: bool = False


class SettingsError(InvalidValue):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    if isinstance(default, list):
        return (
            isinstance(value, list) and all(isinstance(item, type(default[0])) for item in value)
            if default
            else isinstance(value, list)
        )
    if default is None:
        return True
    return isinstance(value, type(default))


def check_settings(lane: Lane, given: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """``lane.defaults`` overlaid with ``given``; :class:`SettingsError` for an unknown key or a value
    of another type than its default (``prefix`` goes before the key in the message)."""
    merged = dict(lane.defaults)
    for key, value in given.items():
        if key not in lane.defaults:
            known = ", ".join(sorted(lane.defaults)) or "none"
            raise SettingsError(f"{prefix}{key}", f"{lane.name} has no such setting (its settings: {known})")
        if not _same_type(lane.defaults[key], value):
            raise SettingsError(
                f"{prefix}{key}",
                f"is {_type_name(value)}; {lane.name} expects {_type_name(lane.defaults[key])}",
            )
        merged[key] = value
    return merged
