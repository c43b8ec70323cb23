"""What the hub can do: the action kinds, each kind's typed params, and the planned :class:`Action`.

One kind per handler; an action's params are of the one type its kind carries
(:data:`PARAMS_TYPES`), which the authority checks before any handler runs. Serialized as the
action's ``params`` object (field names are its keys, in field order), so a field is never
optional: a kind whose params differ in shape has one type per shape (the corrective tasks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar


class ActionKind(StrEnum):
    """What a planned action does; the value is what the ledger, the register and the API carry."""

    RESTART_SERVICE = "restart_service"  # a speedrift service the repo runs is down while ready work waits
    DISPATCH_READY = "dispatch_ready"  # start bounded workers (`speedrift run`) for ready tasks
    RUN_GATE_SCAN = "run_gate_scan"  # run the gates / secret scan on the target branch
    REPAIR_DEPENDENCIES = "repair_dependencies"  # missing or failed blockers: delegated to a corrective task
    VERIFY_IN_PROGRESS = "verify_in_progress"  # in-progress tasks whose claimant is dead or aging: re-check
    SYNC_UPSTREAM = "sync_upstream"  # `git fetch` only; never merges, rebases or pushes
    PREPARE_UPSTREAM_PACKET = "prepare_upstream_packet"  # dry-run contribution packet (markdown), never a PR
    EMIT_CORRECTIVE_TASK = "emit_corrective_task"  # write a follow-up task into the repo graph (the loopback)
    RETRY_FAILED = "retry_failed"  # carry out failed tasks' recorded automatic recovery (no service does)
    RUN_LANES = "run_lanes"  # run the drift lanes on the target branch; follow-ups only through their guard


# every kind, in definition order; a tuple so that any string can be tested against it
ACTION_KINDS: tuple[ActionKind, ...] = tuple(ActionKind)
# the kinds whose outcome is a corrective task in the repo's graph (the policy caps them; the
# register remembers the tasks they opened)
CORRECTIVE_KINDS: frozenset[ActionKind] = frozenset(
    {ActionKind.EMIT_CORRECTIVE_TASK, ActionKind.REPAIR_DEPENDENCIES}
)


# Each kind's params: what the plan tells its handler. Serialized as the action's ``params`` object
# (field names are its keys, in field order), so a field is never optional: a kind whose params
# differ in shape has one type per shape (the corrective tasks).


@dataclass(frozen=True, slots=True)
class NoParams:
    """restart_service, run_gate_scan, sync_upstream, prepare_upstream_packet: the repo's entry and
    its git state say the rest. Serialized as ``{}``."""


@dataclass(frozen=True, slots=True)
class DispatchParams:
    """dispatch_ready: start workers for up to ``max`` of ``tasks``."""

    tasks: tuple[str, ...]  # ready task ids, in dispatch order
    max: int  # workers started at most (the handler caps it further)

    def __post_init__(self) -> None:
        if self.max < 1:
            raise ValueError(f"dispatch max must be >= 1, not {self.max}")


@dataclass(frozen=True, slots=True)
class VerifyParams:
    """verify_in_progress: the in-progress tasks to check (``tasks`` = ``dead`` ∪ ``aging``)."""

    tasks: tuple[str, ...]
    dead: tuple[str, ...]  # claimed by a local process that is gone
    aging: tuple[str, ...]  # in progress for 3+ days


@dataclass(frozen=True, slots=True)
class RetryParams:
    """retry_failed: failed tasks whose recorded recovery is an automatic retry nobody carried out."""

    tasks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RepairParams:
    """repair_dependencies: the broken chain, delegated to a corrective task."""

    missing: tuple[tuple[str, str], ...]  # (task, missing blocker)
    failed_blockers: int  # open tasks behind a failed blocker
    corrective_kind: str  # the corrective task's kind tag
    title: str  # the corrective task's title


@dataclass(frozen=True, slots=True)
class CorrectiveParams:
    """emit_corrective_task about the repo as a whole (e.g. stale open work)."""

    corrective_kind: str
    title: str


@dataclass(frozen=True, slots=True)
class TaskCorrectiveParams:
    """emit_corrective_task about named tasks (e.g. one that keeps failing)."""

    tasks: tuple[str, ...]
    corrective_kind: str
    title: str


@dataclass(frozen=True, slots=True)
class LaneParams:
    """run_lanes: which lanes, on which commit, over which range, and why now."""

    lanes: tuple[str, ...]  # empty: every lane the repo's drift policy runs
    head: str  # the target branch's tip the tree lanes judge
    base: str | None  # the last head the lanes judged (the range the diff lanes read); None: first run
    trigger: str  # target_change | cron | first_run (lanes.policy.Trigger values, plus first_run)


ActionParams = (
    NoParams
    | DispatchParams
    | VerifyParams
    | RepairParams
    | CorrectiveParams
    | TaskCorrectiveParams
    | RetryParams
    | LaneParams
)
NO_PARAMS = NoParams()
# the params each kind carries; the authority refuses an action whose params are not of its kind's type
PARAMS_TYPES: dict[ActionKind, tuple[type[ActionParams], ...]] = {
    ActionKind.RESTART_SERVICE: (NoParams,),
    ActionKind.DISPATCH_READY: (DispatchParams,),
    ActionKind.RUN_GATE_SCAN: (NoParams,),
    ActionKind.REPAIR_DEPENDENCIES: (RepairParams,),
    ActionKind.VERIFY_IN_PROGRESS: (VerifyParams,),
    ActionKind.SYNC_UPSTREAM: (NoParams,),
    ActionKind.PREPARE_UPSTREAM_PACKET: (NoParams,),
    ActionKind.EMIT_CORRECTIVE_TASK: (CorrectiveParams, TaskCorrectiveParams),
    ActionKind.RETRY_FAILED: (RetryParams,),
    ActionKind.RUN_LANES: (LaneParams,),
}
_P = TypeVar(
    "_P",
    NoParams,
    DispatchParams,
    VerifyParams,
    RepairParams,
    CorrectiveParams,
    TaskCorrectiveParams,
    RetryParams,
    LaneParams,
)


@dataclass(frozen=True, slots=True)
class Action:
    id: str  # deterministic: "<repo>:<kind>" or "<repo>:<kind>:<subject>"
    repo: str
    kind: ActionKind
    priority: int  # 0..100, higher first
    reason: str
    subject: str | None = None  # task id, path, ... the action is about
    params: ActionParams = NO_PARAMS  # of a type in PARAMS_TYPES[kind]
    prompts: dict[str, str] = field(default_factory=dict)  # {"claude": ..., "codex": ...}

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task ids the params name (dispatch, verify, retry and task correctives), else none."""
        params = self.params
        if isinstance(params, DispatchParams | VerifyParams | TaskCorrectiveParams | RetryParams):
            return params.tasks
        return ()

    def params_as(self, expected: type[_P]) -> _P:
        """The params as the one type the caller's kind carries. The authority refuses an action
        whose params do not fit its kind before any handler runs, so a mismatch here is a bug."""
        params = self.params
        if not isinstance(params, expected):
            raise TypeError(f"{self.id}: params are {type(params).__name__}, not {expected.__name__}")
        return params
