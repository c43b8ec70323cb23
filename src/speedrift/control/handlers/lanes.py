"""The ``run_lanes`` handler: ``speedrift drift check`` on the target branch, follow-ups through the
lane guard, and the outcome — every follow-up created and every one the guard refused — in the
ledger.

The lanes run in a child process bounded by the hub's scan timeout (a lane that hangs or crashes
cannot take the hub down with it), judging the commit the plan named: tree and graph lanes the
target's tip, diff lanes the range from the head they last judged to that tip. The child writes
``.speedrift/lanes/latest.json`` (the next observation reads it) and creates follow-ups only
through the guard (``--create-followups``), whose caps, budget and dedup hold whoever calls it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from speedrift.control.handlers.base import HandlerContext, HandlerFailed, HandlerResult, run_bounded, tail
from speedrift.register.actions import Action, LaneParams
from speedrift.register.record import OutcomeStatus

SHOWN = 5  # follow-up ids named in the outcome's detail per status


def run_lanes(action: Action, ctx: HandlerContext) -> HandlerResult:
    params = action.params_as(LaneParams)
    argv = [
        *ctx.speedrift_argv,
        "drift",
        "check",
        "--repo",
        str(ctx.repo),
        "--head",
        params.head,
        "--json",
        "--create-followups",
        "--write-log",
    ]
    if params.base is not None and params.base != params.head:
        argv += ["--base", params.base, "--tip", params.head]
    for lane in params.lanes:
        argv += ["--lane", lane]
    done = run_bounded(argv, cwd=ctx.repo, env=ctx.process_env(), timeout=ctx.scan_timeout_s)
    try:
        data = orjson.loads(done.stdout)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("report"), dict):
        raise HandlerFailed(
            f"`speedrift drift check` exited {done.returncode} without its JSON report: "
            f"{tail(done.stderr or done.stdout, 600)}",
            exit_code=done.returncode,
        )
    report: dict[str, Any] = data["report"]
    guard = [o for o in data.get("guard") or () if isinstance(o, dict)]
    lanes = [lane for lane in report.get("lanes") or () if isinstance(lane, dict)]
    severities = Counter(
        str(f.get("severity")) for lane in lanes for f in lane.get("findings") or () if isinstance(f, dict)
    )
    errors = {str(lane.get("lane")): str(lane.get("error")) for lane in lanes if lane.get("error")}
    statuses: dict[str, list[str]] = {}
    for outcome in guard:
        statuses.setdefault(str(outcome.get("status")), []).append(str(outcome.get("task_id") or ""))
    where = f"{action.repo}@{params.head[:12]}"
    found = ", ".join(f"{n} {s}" for s, n in sorted(severities.items())) or "nothing"
    parts = [f"lanes judged {where} ({params.trigger}): {found}"]
    for status in sorted(statuses):
        ids = [i for i in statuses[status] if i]
        named = f": {', '.join(ids[:SHOWN])}{' …' if len(ids) > SHOWN else ''}" if ids else ""
        parts.append(f"{len(statuses[status])} {status}{named}")
    if errors:
        parts.append(f"lane errors: {', '.join(f'{k} ({v})' for k, v in errors.items())}")
    evidence = {
        "head": report.get("head"),
        "base": report.get("base"),
        "exit_code": report.get("exit_code"),
        "findings": dict(severities),
        "lane_errors": errors,
        "guard": guard,
    }
    # a lane that could not judge is not a pass: the outcome fails so the policy's hard stop and
    # the ledger see it; findings alone are the lanes doing their job
    result: OutcomeStatus = "failed" if errors else "succeeded"
    return HandlerResult(result, "; ".join(parts), evidence)
