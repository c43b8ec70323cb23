"""The one scoring model: a repo's health 0–100 from ranked penalties, its tier, trend and stall.

A repo starts at 100; every problem the snapshot shows costs points from the one penalty table
(:data:`speedrift.control.assess.weights.WEIGHTS`: ``first`` for one unit, ``each`` for every
further unit, never more than ``cap``) and becomes a :class:`Reason` carrying those points. Pure:
the snapshot and ``now`` in, the health out.
"""

from __future__ import annotations

from datetime import datetime

from speedrift.control.assess.weights import (
    AGING_IN_PROGRESS_SECONDS,
    HEARTBEAT_STALE_SECONDS,
    MIN_ATTEMPTS_FOR_RATE,
    WEIGHTS,
)
from speedrift.register.record import (
    AUTOMATION_MODES,
    Activity,
    GraphState,
    Reason,
    RepoHealth,
    RepoSnapshot,
    TaskBrief,
    Tier,
    Trend,
)

HEALTHY_AT = 80  # score >= 80: healthy
WATCH_AT = 60  # 60 <= score < 80: watch; below: at-risk
IMPROVING_AT = 3  # delta >= +3: improving
WORSENING_AT = -2  # delta <= -2: worsening

STALL_SENTENCES = 2  # the stall explanation names at most the two largest stall reasons


def tier_of(value: float) -> Tier:
    if value >= HEALTHY_AT:
        return "healthy"
    if value >= WATCH_AT:
        return "watch"
    return "at-risk"


def trend_of(delta: float | None) -> Trend:
    if delta is None:
        return "new"
    if delta >= IMPROVING_AT:
        return "improving"
    if delta <= WORSENING_AT:
        return "worsening"
    return "flat"


def score_repo(snapshot: RepoSnapshot, previous: RepoHealth | None, now: datetime) -> RepoHealth:
    reasons = sorted(penalties(snapshot, now), key=lambda r: (-r.points, r.code))
    score = _clamp(100.0 - sum(r.points for r in reasons))
    delta = None if previous is None else score - previous.score
    activity = activity_of(snapshot, now)
    stall = None
    if activity == "stalled":
        stalls = [r.text for r in reasons if WEIGHTS[r.code].stall][:STALL_SENTENCES]
        stall = "; ".join(stalls) or "open work, but nothing runs"
    return RepoHealth(
        name=snapshot.name,
        score=score,
        tier=tier_of(score),
        trend=trend_of(delta),
        delta=delta,
        reasons=tuple(reasons),
        activity=activity,
        stall=stall,
    )


def _clamp(value: float) -> int:
    return int(max(0.0, min(100.0, value)) + 0.5)


# ---------------------------------------------------------------- penalties


def penalties(snapshot: RepoSnapshot, now: datetime) -> list[Reason]:
    """Every penalty the snapshot earns, unranked."""
    if not snapshot.exists:
        return [_reason("missing_repo", 1, f"repo path {snapshot.path} does not exist")]
    out: list[Reason] = []
    if snapshot.errors:
        more = f" (+{len(snapshot.errors) - 1} more)" if len(snapshot.errors) > 1 else ""
        out.append(
            _reason(
                "snapshot_errors", len(snapshot.errors), f"observation failed: {snapshot.errors[0]}{more}"
            )
        )
    for rule in (_graph_penalties, _attempt_penalties, _gate_penalties, _lane_penalties, _git_penalties):
        out.extend(rule(snapshot, now))
    return [r for r in out if r.points > 0]


def _reason(code: str, units: float, text: str) -> Reason:
    return Reason(code=code, text=text, points=WEIGHTS[code].points(units))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def age_words(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return _plural(int(seconds // 86400), "day")
    if seconds >= 2 * 3600:
        return _plural(int(seconds // 3600), "hour")
    return _plural(max(1, int(seconds // 60)), "minute")


def aged_in_progress(snapshot: RepoSnapshot, now: datetime) -> list[TaskBrief]:
    """In-progress briefs aging at ``now`` (a reused snapshot's ages grow by the time since it was taken)."""
    graph = snapshot.graph
    if graph is None:
        return []
    elapsed = max(0.0, (now - snapshot.observed_at).total_seconds())
    waiting = {w.task for w in graph.approvals}  # gated work waiting for a person is not aging
    aged = [
        TaskBrief(t.id, t.title, t.status, t.age_seconds + elapsed, t.priority)
        for t in graph.in_progress
        if t.age_seconds is not None
        and t.age_seconds + elapsed >= AGING_IN_PROGRESS_SECONDS
        and t.id not in waiting
    ]
    return sorted(aged, key=lambda t: (-(t.age_seconds or 0.0), t.id))


def _graph_penalties(snapshot: RepoSnapshot, now: datetime) -> list[Reason]:
    graph = snapshot.graph
    if graph is None:
        if snapshot.errors:
            return []  # the error already explains it; do not guess that the graph is absent
        return [
            _reason(
                "no_graph", 1, "no task graph (.wg/ or .workgraph/): speedrift cannot see this repo's work"
            )
        ]
    out: list[Reason] = []
    if graph.problems:
        out.append(
            _reason(
                "graph_problems", graph.problems,
                f"{_plural(graph.problems, 'unreadable graph line')} (see `speedrift repair`)",
            )
        )  # fmt: skip
    out.extend(_service_penalties(snapshot))
    out.extend(_in_progress_penalties(snapshot, now))
    out.extend(_dependency_penalties(snapshot))
    out.extend(_human_penalties(snapshot))
    out.extend(_approval_penalties(snapshot))
    if graph.stale_open:
        out.append(
            _reason(
                "stale_open",
                graph.stale_open,
                f"{_plural(graph.stale_open, 'open task')} untouched for 14+ days",
            )
        )
    return out


def in_progress_count(snapshot: RepoSnapshot) -> int:
    graph = snapshot.graph
    if graph is None:
        return 0
    return max(graph.counts.get("in-progress", 0), len(graph.in_progress))


def _service_penalties(snapshot: RepoSnapshot) -> list[Reason]:
    graph, service = snapshot.graph, snapshot.service
    assert graph is not None
    ready = graph.ready_count
    if ready <= 0:
        return []
    if not service.running:
        if snapshot.control.mode not in AUTOMATION_MODES:  # observe or manual
            text = (
                f"{snapshot.control.mode} mode prevents automatic dispatch of {_plural(ready, 'ready task')}"
            )
            return [_reason("observe_mode_blocks_dispatch", ready, text)]
        wait = "waits" if ready == 1 else "wait"
        return [
            _reason(
                "service_down_with_ready_work",
                ready,
                f"service down while {_plural(ready, 'ready task')} {wait}",
            )
        ]
    age = service.heartbeat_age_seconds
    if age is not None and age > HEARTBEAT_STALE_SECONDS:
        wait = "waits" if ready == 1 else "wait"
        text = f"service heartbeat is {age_words(age)} old while {_plural(ready, 'ready task')} {wait}"
        return [_reason("service_heartbeat_stale", 1, text)]
    if service.active_agents == 0 and in_progress_count(snapshot) == 0:
        text = f"{_plural(ready, 'ready task')} not started (service running, no agent active)"
        return [_reason("ready_not_started", ready, text)]
    return []


def _live_agent(snapshot: RepoSnapshot) -> bool:
    return snapshot.service.running and snapshot.service.active_agents > 0


def _in_progress_penalties(snapshot: RepoSnapshot, now: datetime) -> list[Reason]:
    graph = snapshot.graph
    assert graph is not None
    out: list[Reason] = []
    aged = aged_in_progress(snapshot, now)
    aged_ids = {t.id for t in aged}
    aging = max(graph.stale_in_progress, len(aged))
    if aging:
        if aged:
            oldest = aged[0]
            lonely = oldest.id in graph.dead_claims or not _live_agent(snapshot)
            assert oldest.age_seconds is not None
            text = f"task {oldest.id} in progress for {age_words(oldest.age_seconds)}"
            text += " with no live agent" if lonely else ""
            text += f" (and {aging - 1} more aging)" if aging > 1 else ""
        else:
            text = f"{_plural(aging, 'task')} in progress for 3+ days"
        out.append(_reason("aging_in_progress", aging, text))
    dead = sorted(d for d in graph.dead_claims if d not in aged_ids)
    if dead:
        more = f" (and {len(dead) - 1} more)" if len(dead) > 1 else ""
        text = f"task {dead[0]} in progress with no live agent (its claimant exited){more}"
        out.append(_reason("dead_claims", len(dead), text))
    return out


def _peer_break_problems(graph: GraphState) -> dict[str, str]:
    """Each broken ``REPO:TASK`` blocker and what breaks it ("no repo shop-api in the ecosystem")."""
    return {blocker: problem for _task, blocker, problem in graph.peer_breaks}


def _dependency_penalties(snapshot: RepoSnapshot) -> list[Reason]:
    graph = snapshot.graph
    assert graph is not None
    out: list[Reason] = []
    missing = sorted(graph.missing_dependencies, key=lambda pair: (pair[1], pair[0]))
    if missing:
        blockers = sorted({blocker for _, blocker in missing})
        named = _peer_break_problems(graph)
        if len(blockers) == 1:
            needers = sorted({t for t, _ in missing})
            first = blockers[0]
            what = f"{first}: {named[first]}" if first in named else f"missing dependency {first}"
            text = f"blocked on {what} (needed by {', '.join(needers[:3])}"
            text += f" +{len(needers) - 3} more)" if len(needers) > 3 else ")"
        else:
            more = f" (+{len(blockers) - 3} more)" if len(blockers) > 3 else ""
            shown = ", ".join(f"{b} ({named[b]})" if b in named else b for b in blockers[:3])
            text = f"blocked on missing dependencies {shown}{more}"
        out.append(_reason("missing_dependencies", len(missing), text))
    if graph.failed_blockers:
        text = f"{_plural(graph.failed_blockers, 'open task')} blocked by a failed dependency"
        out.append(_reason("failed_blockers", graph.failed_blockers, text))
    if not out and graph.blocked > 0 and graph.ready_count == 0 and in_progress_count(snapshot) == 0:
        text = f"all {_plural(graph.blocked, 'open task')} wait on unfinished dependencies; nothing is ready"
        out.append(_reason("all_open_blocked", 1, text))
    return out


def _human_penalties(snapshot: RepoSnapshot) -> list[Reason]:
    """Tasks tagged needs-human cost points until a person answers (retry) or they are finished."""
    graph = snapshot.graph
    assert graph is not None
    count = max(graph.needs_human, len(graph.escalations))
    if not count:
        return []
    if graph.escalations:
        first = graph.escalations[0]
        why = f" ({first.failure_class})" if first.failure_class else ""
        text = f"task {first.task} waits on a human's answer{why}"
        text += f" (and {_plural(count - 1, 'more task')})" if count > 1 else ""
    else:
        text = f"{_plural(count, 'task')} wait on a human's answer"
    return [_reason("needs_human", count, text)]


def _approval_penalties(snapshot: RepoSnapshot) -> list[Reason]:
    """Tasks waiting at a human approval checkpoint (fleet/approval.py) cost a little.

    A waiting approval is not a failure: an oversight wave asks for it by design and the work
    passed its gates. So it costs far less than ``needs_human``: 3 points, 1 per further task, at
    most 6 — alone never enough to move a healthy repo out of its tier. It costs something rather
    than nothing because the work does not move until a person acts: a reason is what puts it in
    the human queue (ranked as urgent as a question: conditions.py ``APPROVAL_PRIORITY``) and what
    a stalled repo's stall sentence names. The task is not also charged as aging or a dead claim."""
    graph = snapshot.graph
    assert graph is not None
    count = max(graph.awaiting_approval, len(graph.approvals))
    if not count:
        return []
    if graph.approvals:
        text = graph.approvals[0].sentence()
        text += f" (and {_plural(count - 1, 'more task')})" if count > 1 else ""
    else:
        text = f"{_plural(count, 'task')} wait for a person's approval"
    return [_reason("awaiting_approval", count, text)]


def _attempt_penalties(snapshot: RepoSnapshot, now: datetime) -> list[Reason]:
    attempts = snapshot.attempts
    out: list[Reason] = []
    repeated = sorted(attempts.repeated_failures)
    if repeated:
        more = f" (and {_plural(len(repeated) - 1, 'more task')})" if len(repeated) > 1 else ""
        out.append(
            _reason(
                "repeated_failures", len(repeated), f"task {repeated[0]} failed at least twice in a row{more}"
            )
        )
    if attempts.recent >= MIN_ATTEMPTS_FOR_RATE and attempts.failed > 0:
        rate = attempts.failed / attempts.recent
        tenths = int(rate * 10 + 1e-9)
        if tenths:
            text = f"{round(rate * 100)}% of the last {attempts.recent} attempts failed"
            out.append(_reason("attempt_failure_rate", tenths, text))
    return out


def _gate_penalties(snapshot: RepoSnapshot, now: datetime) -> list[Reason]:
    """What the gates found on the target branch (control/observe/runs.py): findings of attempts
    the gates blocked are not in these counts, so they never cost the target branch anything."""
    gates = snapshot.gates
    at = f" on the target branch at {gates.commit[:12]}" if gates.commit else " on the target branch"
    out: list[Reason] = []
    if gates.secret_leaks:
        out.append(
            _reason(
                "secret_leaks",
                gates.secret_leaks,
                f"{_plural(gates.secret_leaks, 'secret leak')} found by the gates{at}",
            )
        )
    severities: tuple[tuple[str, int], ...] = (
        ("critical", gates.critical), ("high", gates.high), ("medium", gates.medium), ("low", gates.low),
    )  # fmt: skip
    for severity, count in severities:
        if count:
            out.append(
                _reason(f"gate_{severity}", count, f"{_plural(count, f'{severity} gate finding')}{at}")
            )
    if gates.last_status == "fail" and not (gates.secret_leaks or gates.critical or gates.high):
        out.append(_reason("gate_failed", 1, f"the latest gate run{at} failed"))
    return out


def _lane_penalties(snapshot: RepoSnapshot, now: datetime) -> list[Reason]:
    """What the drift lanes found on the target branch (info findings cost nothing), lanes that
    could not judge, and a drift policy that cannot be read."""
    lanes = snapshot.lanes
    if lanes.policy_error:
        return [_reason("lane_policy_invalid", 1, f"the drift policy cannot be read: {lanes.policy_error}")]
    out: list[Reason] = []
    for severity, count in (("critical", lanes.critical), ("error", lanes.error), ("warning", lanes.warning)):
        if count:
            named = sorted({f.lane for f in lanes.findings if f.severity == severity})
            by = f" ({', '.join(named)})" if named else ""
            out.append(
                _reason(f"lane_{severity}", count, f"{_plural(count, f'{severity} drift finding')}{by}")
            )
    broken = [run for run in lanes.runs if run.error]
    if broken:
        first = broken[0]
        more = f" (+{len(broken) - 1} more)" if len(broken) > 1 else ""
        out.append(
            _reason("lane_broken", len(broken), f"lane {first.lane} could not judge: {first.error}{more}")
        )
    return out


def _git_penalties(snapshot: RepoSnapshot, now: datetime) -> list[Reason]:
    git = snapshot.git
    if git is None:
        return []
    out: list[Reason] = []
    if git.behind:
        out.append(
            _reason(
                "behind_upstream",
                git.behind,
                f"{_plural(git.behind, 'commit')} behind {git.upstream or 'upstream'}",
            )
        )
    if git.dirty_files:
        out.append(
            _reason(
                "dirty_checkout", git.dirty_files, f"{_plural(git.dirty_files, 'uncommitted changed file')}"
            )
        )
    return out


# ---------------------------------------------------------------- activity


def activity_of(snapshot: RepoSnapshot, now: datetime) -> Activity:
    """missing | error | untracked | idle (no open work) | active (something runs) | stalled."""
    if not snapshot.exists:
        return "missing"
    if snapshot.errors:
        return "error"
    graph = snapshot.graph
    if graph is None:
        return "untracked"
    in_progress = in_progress_count(snapshot)
    # a task waiting to merge is in progress; one waiting to start is ready but not dispatchable
    starts = sum(1 for w in graph.approvals if w.checkpoint == "start")
    open_work = (
        graph.ready_count + in_progress + graph.blocked + graph.failed_blockers + graph.needs_human + starts
    )
    if open_work == 0 and not graph.missing_dependencies:
        return "idle"
    if _live_agent(snapshot):
        return "active"
    aging = max(graph.stale_in_progress, len(aged_in_progress(snapshot, now)))
    merges = sum(1 for w in graph.approvals if w.checkpoint == "merge")  # no worker until approved
    live_claims = in_progress - len(graph.dead_claims) - merges
    if live_claims > 0 and aging == 0:
        return "active"
    return "stalled"
