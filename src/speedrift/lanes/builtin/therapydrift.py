"""therapydrift: a task that keeps drifting needs a recovery plan, not one more follow-up.

For one task (or, without one, every open or in-progress task of the graph), with the task's
```` ```therapydrift ```` block over the policy:

- ``repeated_drift_signals``: the task's log holds at least ``min_signal_count`` drift lines —
  messages beginning ``drift:`` or ``<lane>:`` for a drift lane (``Coredrift: …``), case aside,
  except those beginning with one of ``ignore_signal_prefixes`` and therapydrift's own;
- ``unresolved_drift_followups``: unfinished tasks whose id begins with one of
  ``followup_prefixes`` and either names the task as a word of its id (``drift-scope-t1``, not
  ``drift-scope-t10``) or comes after it;
- ``missing_recovery_plan``: with ``require_recovery_plan``, repeated signals while the
  description has no ``## Recovery plan`` heading or ``Recovery plan:`` line and no
  ``drift-therapy-<task>`` task exists.

Loop safety, per task, in ``<state_dir>/state.json``: a run that reports a task actionable is an
*action*. While the last action is younger than ``cooldown_seconds``, or ``max_auto_actions_per_hour``
actions happened in the last hour, or fewer than ``min_new_signals`` signals arrived since the
last action, the findings are reported as ``info`` (recorded, not actionable) with the limit that
held them in their evidence. After ``circuit_breaker_after`` actions (0: never) the breaker opens:
``circuit_breaker_open`` (critical) asks a person, and the other findings stay ``info``. A task
found clean forgets its history (closing the breaker).

Invariant: time is ``ctx.now``; a finding's fingerprint is the same whether it was held or not.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from speedrift.graph.model import IN_PROGRESS, OPEN, TERMINAL, Task, after_of, status_of
from speedrift.lanes import fences
from speedrift.lanes.builtin._diffcommon import config_findings, overlay, shown, update_state
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.policy import DEFAULT_ORDER
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "therapydrift"
DEFAULTS: dict[str, Any] = {
    "min_signal_count": 2,
    "followup_prefixes": ["drift-", "coredrift-", "speedrift-fix-"],
    "require_recovery_plan": True,
    "ignore_signal_prefixes": [],
    "cooldown_seconds": 1800,
    "max_auto_actions_per_hour": 2,
    "min_new_signals": 1,
    "circuit_breaker_after": 6,
}
SIGNAL_PREFIXES = tuple(
    f"{lane}:" for lane in ("drift", "speedrift", "fixdrift", *DEFAULT_ORDER) if lane != NAME
)
_PLAN = re.compile(r"^\s*(?:#{1,6}\s*recovery plan\b|recovery plan\s*:)", re.IGNORECASE | re.MULTILINE)
HOUR = 3600.0


def run(ctx: LaneContext) -> LaneOutput:
    if ctx.task is not None:
        targets: list[tuple[Task, Any, str | None]] = [(ctx.task, ctx.fence, ctx.fence_error)]
    elif ctx.graph is not None:
        targets = [_with_fence(t) for t in ctx.graph.iter_tasks() if status_of(t) in (OPEN, IN_PROGRESS)]
    else:
        return LaneOutput([], "no task and no graph: nothing to judge")
    findings: list[LaneFinding] = []
    for task, fence, error in targets:
        subject = str(task["id"])
        cfg = overlay(LANE, ctx.settings, fence, error)
        if cfg.fenced and not cfg.usable:
            findings += config_findings(ctx, LANE, cfg, "invalid_therapy_config", subject=subject)
            continue
        found, signals = _judge(ctx, task, cfg.settings)
        findings += _gate(ctx, subject, cfg.settings, found, signals)
    return LaneOutput(findings, "" if findings else f"{len(targets)} task(s) judged")


def _with_fence(task: Task) -> tuple[Task, Any, str | None]:
    try:
        return task, fences.fence(task.get("description"), NAME), None
    except fences.FenceError as exc:
        return task, None, str(exc)


def signals_of(task: Task, ignore: Iterable[str]) -> list[str]:
    """The drift lines of the task's log, oldest first."""
    skip = tuple(p.lower() for p in ignore if p)
    found: list[str] = []
    for entry in task.get("log") or []:
        message = entry.get("message") if isinstance(entry, dict) else None
        if not isinstance(message, str):
            continue
        lower = message.lstrip().lower()
        if lower.startswith(SIGNAL_PREFIXES) and not (skip and lower.startswith(skip)):
            found.append(message.strip())
    return found


def _judge(ctx: LaneContext, task: Task, settings: dict[str, Any]) -> tuple[list[LaneFinding], int]:
    task_id = str(task["id"])
    signals = signals_of(task, settings["ignore_signal_prefixes"])
    repeated = len(signals) >= max(1, settings["min_signal_count"])
    findings: list[LaneFinding] = []
    if repeated:
        findings.append(
            _finding(
                task_id,
                "repeated_drift_signals",
                f"task {task_id} has drifted {len(signals)} times"
                f" (min_signal_count = {settings['min_signal_count']})",
                tuple(s[:160] for s in signals[-5:]),
                f"run a recovery cycle for {task_id}: re-read its objective, narrow its scope,"
                " split the hardening out",
            )
        )
    tasks = list(ctx.graph.iter_tasks()) if ctx.graph is not None else []
    word = re.compile(rf"(?:^|-){re.escape(task_id)}(?:$|-)")
    open_followups = sorted(
        str(t["id"])
        for t in tasks
        if t["id"] != task_id
        and status_of(t) not in TERMINAL
        and any(
            t["id"].startswith(p) and (word.search(t["id"][len(p) :]) or task_id in after_of(t))
            for p in settings["followup_prefixes"]
        )
    )
    if open_followups:
        findings.append(
            _finding(
                task_id,
                "unresolved_drift_followups",
                f"task {task_id} has {len(open_followups)} unfinished drift follow-up(s)",
                (f"open: {shown(open_followups)}",),
                "finish or re-scope the open drift follow-ups before adding new scope to this task",
            )
        )
    therapy = f"drift-therapy-{task_id}"
    planned = _PLAN.search(str(task.get("description") or "")) or any(
        t["id"] == therapy and status_of(t) != "abandoned" for t in tasks
    )
    if settings["require_recovery_plan"] and repeated and not planned:
        findings.append(
            _finding(
                task_id,
                "missing_recovery_plan",
                f"task {task_id} keeps drifting and has no recovery plan",
                (f"{len(signals)} drift signals", f"no '## Recovery plan' section and no {therapy} task"),
                f"add a '## Recovery plan' section to {task_id}'s description (what to stop, what to redo,"
                " how to "
                f"verify), or create {therapy}",
            )
        )
    return findings, len(signals)


def _finding(task_id: str, kind: str, message: str, evidence: tuple[str, ...], fix: str) -> LaneFinding:
    return LaneFinding(
        lane=NAME,
        kind=kind,
        message=message,
        severity=Severity.WARNING,
        subject=task_id,
        evidence=evidence,
        fix=fix,
    )


def _gate(
    ctx: LaneContext, task_id: str, settings: dict[str, Any], found: list[LaneFinding], signals: int
) -> list[LaneFinding]:
    """The findings as they may act now: held ones as info, and the breaker when it is open."""
    if ctx.state_dir is None:
        return found
    now = ctx.now.timestamp()
    verdict: dict[str, Any] = {}

    def decide(state: dict[str, Any]) -> bool:
        tasks = state.get("tasks")
        if not isinstance(tasks, dict):
            tasks = state["tasks"] = {}
        entry = tasks.get(task_id)
        if not found:
            return tasks.pop(task_id, None) is not None
        entry = entry if isinstance(entry, dict) else {}
        actions = [a for a in entry.get("actions", []) if isinstance(a, int | float) and now - a < HOUR]
        total = entry.get("total", 0) if isinstance(entry.get("total"), int) else 0
        last = entry.get("last")
        since = now - last if isinstance(last, int | float) else None
        new = signals - entry.get("signals", 0) if isinstance(entry.get("signals"), int) else signals
        breaker = settings["circuit_breaker_after"]
        if breaker > 0 and total >= breaker:
            verdict.update(held=f"circuit breaker open after {total} actions", breaker=total)
        elif since is not None and since < settings["cooldown_seconds"]:
            verdict["held"] = (
                f"cooldown: last action {since:.0f}s ago (cooldown_seconds = {settings['cooldown_seconds']})"
            )
        elif len(actions) >= settings["max_auto_actions_per_hour"]:
            verdict["held"] = (
                f"hourly budget: {len(actions)} action(s) in the last hour "
                f"(max_auto_actions_per_hour = {settings['max_auto_actions_per_hour']})"
            )
        elif since is not None and new < settings["min_new_signals"]:
            verdict["held"] = (
                f"{max(new, 0)} new signal(s) since the last action"
                f" (min_new_signals = {settings['min_new_signals']})"
            )
        if "held" in verdict:
            return False
        tasks[task_id] = {"actions": [*actions, now], "total": total + 1, "last": now, "signals": signals}
        return True

    update_state(ctx.state_dir, decide)
    held = verdict.get("held")
    if held is None:
        return found
    out = [
        dataclasses.replace(f, severity=Severity.INFO, evidence=(*f.evidence, f"held: {held}")) for f in found
    ]
    if "breaker" in verdict:
        out.append(
            LaneFinding(
                lane=NAME,
                kind="circuit_breaker_open",
                message=(
                    f"task {task_id} drifted through {verdict['breaker']} corrective actions:"
                    " a person must decide"
                ),
                severity=Severity.CRITICAL,
                subject=task_id,
                evidence=(
                    f"{verdict['breaker']} actions"
                    f" (circuit_breaker_after = {settings['circuit_breaker_after']})",
                ),
                fix=(
                    f"stop automatic fixes for {task_id}: a person reviews it, rewrites or splits it, "
                    "or abandons it; a clean run closes the breaker"
                ),
            )
        )
    return out


LANE = Lane(
    name=NAME,
    scope=LaneScope.TASK,
    summary="tasks that keep drifting: repeated signals, open follow-ups, no recovery plan",
    run=run,
    defaults=DEFAULTS,
    fence=NAME,
    volatile=True,
)
