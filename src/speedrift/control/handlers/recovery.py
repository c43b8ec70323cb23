"""``retry_failed``: the hub carries out recorded recovery decisions where no service does.

Job: a failed attempt's recovery decision is recorded on its task (fleet/recovery.py) by whatever
ran it. In a repo whose own service runs, the service carries it out; elsewhere — attempts the
hub dispatched, a person's ``speedrift run`` — this handler does, through the very function the
service calls (:func:`speedrift.fleet.followup.carry_out`), so the backoff, the attempt caps and
the retry halt are the same whoever started the attempt.

Invariants: it writes only the task graph (reopen, or mark a retry withheld), never a checkout;
it runs only where the repo's mode and lease allow (supervise or autonomous, re-checked right
before it runs like every action; observe never acts); and it leaves a repo with a running
service to that service, so a decision is never carried out by two supervisors at once.
"""

from __future__ import annotations

from speedrift.control.handlers.base import HandlerContext, HandlerFailed, HandlerResult, graph_store
from speedrift.control.handlers.graph import HUB_ACTOR
from speedrift.fleet import followup, service
from speedrift.fleet.config import ConfigError, load_config
from speedrift.register.actions import Action, RetryParams


def retry_failed(action: Action, ctx: HandlerContext) -> HandlerResult:
    """Reopen (after its backoff) or withhold each failed task named whose automatic recovery waits;
    reopen what a halt withheld once retries may run again."""
    store = graph_store(ctx.repo)
    running = service.running_pid(ctx.repo)
    if running is not None:
        return HandlerResult(
            "skipped",
            f"the repo's service (pid {running}) carries out its own recoveries",
            {"service": running},
        )
    try:
        config = load_config(ctx.repo)
    except ConfigError as error:
        raise HandlerFailed(f"cannot read the repo's speedrift.toml: {error.message}") from None
    scope = set(action.params_as(RetryParams).tasks) or None
    due = [t for t in followup.pending(store.load()) if scope is None or t in scope]
    done = [
        followup.carry_out(ctx.repo, store, config, task_id, actor=HUB_ACTOR, now=ctx.now())
        for task_id in due
    ]
    released = followup.release_withheld(ctx.repo, store, config, actor=HUB_ACTOR)
    acted = [d for d in done if d.outcome != "nothing"]
    parts = [f"{d.task_id}: {d.detail}" for d in acted]
    if released:
        parts.append(f"retries resumed: reopened {', '.join(released)}")
    evidence = {"followups": [d.as_dict() for d in done], "released": released}
    if not parts:
        return HandlerResult("skipped", "no automatic recovery was waiting any more", evidence)
    return HandlerResult("succeeded", "; ".join(parts), evidence)
