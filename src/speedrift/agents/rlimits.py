"""An agent's resource limits: rlimits set in its process between fork and exec. Pure but for
reading this process's own limits.

:func:`plan_rlimits` turns ``memory_mb`` (``RLIMIT_AS``: address space) and ``cpu_seconds``
(``RLIMIT_CPU``: SIGXCPU at the limit, SIGKILL :data:`CPU_GRACE_S` later) into a plan: checked and
clamped in the parent (a child cannot raise its hard limit, so setting them cannot fail), set in
the child by :meth:`RLimitPlan.preexec`. Every process the agent starts (bwrap's child, the CLI, its
tools) inherits them, each counted on its own: rlimits are per process. cgroups are not used.
Invariant: a limit the platform lacks is recorded as unavailable with the reason, never silently
dropped; :func:`limit_verdict` names the limit a failed run ended at.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

CPU_GRACE_S = 5  # RLIMIT_CPU's hard limit: SIGXCPU at cpu_seconds, SIGKILL this much CPU time later
HOW = "setrlimit in the agent's process before exec, inherited by each process it starts (per process)"
CGROUPS = "not used: rlimits only"
_OUT_OF_MEMORY = re.compile(
    r"MemoryError|cannot allocate memory|out of memory|bad_alloc|allocation failed|"
    r"failed to reserve|mmap failed|ENOMEM",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RLimitPlan:
    """The limits to set in the child (``settings``: (name, resource id, soft, hard)) and the record
    of what was applied and what could not be (``unavailable``: key → why)."""

    settings: tuple[tuple[str, int, int, int], ...] = ()
    applied: dict[str, int] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def preexec(self) -> Callable[[], None] | None:
        """What the child runs before exec (None: nothing to set). Everything it needs is bound
        here, in the parent: the child imports nothing and takes no lock another thread may hold."""
        if not self.settings:
            return None
        import resource

        setrlimit = resource.setrlimit
        limits = tuple((which, soft, hard) for _name, which, soft, hard in self.settings)

        def apply() -> None:
            for which, soft, hard in limits:
                # checked and clamped in the parent: lowering a limit does not fail
                with contextlib.suppress(OSError, ValueError):
                    setrlimit(which, (soft, hard))

        return apply

    def record(self, ignored: tuple[str, ...] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {
            "applied": dict(self.applied),
            "unavailable": dict(self.unavailable),
            "how": HOW,
            "cgroups": CGROUPS,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        if ignored:
            out["ignored"] = list(ignored)
        return out


def plan_rlimits(limits: Mapping[str, int]) -> RLimitPlan:
    """The plan for ``limits`` (``memory_mb``, ``cpu_seconds``): each clamped to this process's own
    hard limit (a child cannot raise it), or unavailable where the platform has no such rlimit."""
    wanted = {k: v for k, v in limits.items() if k in ("memory_mb", "cpu_seconds")}
    if not wanted:
        return RLimitPlan()
    try:
        import resource
    except ImportError:
        return RLimitPlan(unavailable={k: "no rlimits on this platform (no resource module)" for k in wanted})
    settings: list[tuple[str, int, int, int]] = []
    applied: dict[str, int] = {}
    unavailable: dict[str, str] = {}
    notes: list[str] = []
    names = {"memory_mb": "RLIMIT_AS", "cpu_seconds": "RLIMIT_CPU"}
    for key, value in wanted.items():
        which = getattr(resource, names[key], None)
        if which is None:
            unavailable[key] = f"{names[key]} is not available on this platform"
            continue
        soft = value * 1024 * 1024 if key == "memory_mb" else value
        hard = soft if key == "memory_mb" else value + CPU_GRACE_S
        try:
            _cur_soft, cur_hard = resource.getrlimit(which)
        except (OSError, ValueError) as exc:
            unavailable[key] = f"{names[key]} could not be read: {exc}"
            continue
        if cur_hard != resource.RLIM_INFINITY and hard > cur_hard:
            hard = cur_hard
            if soft > cur_hard:
                soft = cur_hard
                notes.append(f"{key} lowered to this process's own hard limit ({names[key]} = {cur_hard})")
        settings.append((key, which, soft, hard))
        applied[key] = soft // (1024 * 1024) if key == "memory_mb" else soft
    return RLimitPlan(tuple(settings), applied, unavailable, tuple(notes))


def limit_verdict(
    plan: RLimitPlan | None, exit_code: int | None, texts: tuple[str, ...], duration_s: float
) -> str | None:
    """Why a failed run ended at one of its rlimits (None: nothing says it did). ``exit_code`` is
    the agent's own (a signal as -N); ``texts``: its last stderr line and final words."""
    if plan is None or not plan.applied:
        return None
    cpu = plan.applied.get("cpu_seconds")
    if cpu is not None and exit_code == -signal.SIGXCPU:
        return (
            f"the CPU-time limit of {cpu}s (speedrift.agent.limits.cpu_seconds, RLIMIT_CPU) was reached: "
            "the agent was killed by SIGXCPU"
        )
    hard = (cpu or 0) + CPU_GRACE_S
    if cpu is not None and exit_code == -signal.SIGKILL and duration_s * (os.cpu_count() or 1) >= hard:
        # SIGXCPU was handled or ignored, and the kernel's SIGKILL came at the hard limit
        return (
            f"the CPU-time limit of {cpu}s (speedrift.agent.limits.cpu_seconds, RLIMIT_CPU) was reached: "
            f"the agent was killed by SIGKILL at the hard limit of {hard}s"
        )
    memory = plan.applied.get("memory_mb")
    said = next((t for t in texts if t and _OUT_OF_MEMORY.search(t)), None)
    if memory is not None and said is not None:
        return (
            f"the memory limit of {memory} MB (speedrift.agent.limits.memory_mb, RLIMIT_AS) was reached: "
            f"{said.strip()[:300]}"
        )
    return None
