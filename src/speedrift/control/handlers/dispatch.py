"""The execute step: run one planned action through its deterministic, bounded handler.

:func:`execute` never raises for anything an action can run into: every refusal comes back as
``Outcome(status="refused", evidence={"rule": ...})`` and every failure as ``failed`` with the
reason, so the cycle always has a record to write. Before any handler runs, the action itself is
checked (:func:`~speedrift.control.authority.refuse_gate_bypass`) and the repo's mode and lease
are re-read and re-checked (:func:`~speedrift.control.authority.guard_action`) — the plan may be
seconds old, and a lease that expired since then means no authority.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import datetime
from typing import Any

from speedrift.control.authority import AuthorityRefused, guard_action, refuse_gate_bypass
from speedrift.control.handlers.base import HandlerContext, HandlerFailed, HandlerResult
from speedrift.control.handlers.git import prepare_upstream_packet, run_gate_scan, sync_upstream
from speedrift.control.handlers.graph import (
    emit_corrective_task,
    repair_dependencies,
    verify_in_progress,
)
from speedrift.control.handlers.lanes import run_lanes
from speedrift.control.handlers.procs import dispatch_ready, restart_service
from speedrift.control.handlers.recovery import retry_failed
from speedrift.errors import SpeedriftError
from speedrift.procs import ProcessTimeout
from speedrift.register.actions import Action, ActionKind
from speedrift.register.record import Outcome, OutcomeStatus

__all__ = ["HANDLERS", "HandlerContext", "authorise", "execute"]

Handler = Callable[[Action, HandlerContext], HandlerResult]

HANDLERS: dict[ActionKind, Handler] = {
    ActionKind.RESTART_SERVICE: restart_service,
    ActionKind.DISPATCH_READY: dispatch_ready,
    ActionKind.RUN_GATE_SCAN: run_gate_scan,
    ActionKind.REPAIR_DEPENDENCIES: repair_dependencies,
    ActionKind.VERIFY_IN_PROGRESS: verify_in_progress,
    ActionKind.SYNC_UPSTREAM: sync_upstream,
    ActionKind.PREPARE_UPSTREAM_PACKET: prepare_upstream_packet,
    ActionKind.EMIT_CORRECTIVE_TASK: emit_corrective_task,
    ActionKind.RETRY_FAILED: retry_failed,
    ActionKind.RUN_LANES: run_lanes,
}


def authorise(action: Action, ctx: HandlerContext, now: datetime) -> str:
    """Raise AuthorityRefused unless ``action`` may run in ``ctx.repo`` now; returns the basis."""
    if action.repo != ctx.entry.name:
        raise AuthorityRefused(
            f"{action.id} is for repo {action.repo!r}, but the context is {ctx.entry.name!r}",
            rule="not_allowed",
        )
    refuse_gate_bypass(action)
    if ctx.approved_by:
        return f"approved by {ctx.approved_by}"
    try:
        control = ctx.read_control(ctx.repo)
    except Exception as error:  # fail-closed: an unreadable control state grants nothing
        raise AuthorityRefused(f"{action.id}: control state unavailable: {error}", rule="lease") from None
    return guard_action(action, control, now)


def execute(action: Action, ctx: HandlerContext) -> Outcome:
    """Authorise, then run the action's handler. Never raises for a refusal or a failure."""
    started = ctx.now()
    status: OutcomeStatus
    evidence: dict[str, Any]
    try:
        basis = authorise(action, ctx, started)
        result = HANDLERS[action.kind](action, ctx)
        status, detail, evidence = result.status, result.detail, {"authority": basis, **result.evidence}
    except AuthorityRefused as refusal:
        status, detail, evidence = "refused", str(refusal), {"rule": refusal.rule}
    except HandlerFailed as failure:
        status, detail, evidence = "failed", failure.detail, dict(failure.evidence)
    except (subprocess.TimeoutExpired, ProcessTimeout) as timeout:  # git (HubGit) past its timeout
        status, detail, evidence = "failed", f"timed out after {timeout.timeout:g}s", {}
    except SpeedriftError as error:
        status, detail, evidence = "failed", str(error), {"error": type(error).__name__}
    except Exception as error:  # a handler bug must not take the cycle down; it is recorded instead
        status, detail, evidence = "failed", f"internal error: {type(error).__name__}: {error}", {}
    return Outcome(
        action_id=action.id,
        repo=action.repo,
        kind=action.kind,
        status=status,
        detail=detail,
        started_at=started,
        finished_at=ctx.now(),
        evidence=evidence,
    )
