"""The one scoring model: a repo's health 0–100 from ranked penalties, its tier, trend and stall.

A repo starts at 100; every problem the snapshot shows costs points from :data:`WEIGHTS`
(``first`` for one unit, ``each`` for every further unit, never more than ``cap``) and becomes a
:class:`Reason` carrying those points. The weights are chosen so the seed's cases land in the
seed's tiers: a stopped service with ready work costs 42+ (at-risk < 60); aging in-progress work
or a dependency problem costs 21–40 alone (watch 60–79); a repo with a fresh heartbeat, progress
and passing gates loses nothing (healthy >= 80). docs/scoring-and-policy.md shows the same table
(a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

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

AGING_IN_PROGRESS_SECONDS = 3 * 86400.0  # same threshold as the observer's stale_in_progress
HEARTBEAT_STALE_SECONDS = 600.0
MIN_ATTEMPTS_FOR_RATE = 3  # fewer recent attempts say nothing about a failure rate
STALL_SENTENCES = 2  # the stall explanation names at most the two largest stall reasons


@dataclass(frozen=True, slots=True)
class Weight:
    """One penalty: ``first`` points for one unit, ``each`` per further unit, at most ``cap``."""

    code: str
    first: float
    each: float
    cap: float
    unit: str
    when: str
    stall: bool = False  # explains why work is not moving (used for the stall sentence)

    def points(self, units: float) -> float:
        if units <= 0:
            return 0.0
        return min(self.cap, self.first + self.each * (units - 1))


_WEIGHT_LIST = (
    Weight("missing_repo", 100, 0, 100, "repo", "the registered path does not exist"),
    Weight("snapshot_errors", 25, 5, 35, "error", "observation failed in part (git timeout, bad file)"),
    Weight("no_graph", 25, 0, 25, "repo", "no .wg/ or .workgraph/ task graph: the hub cannot see the work"),
    Weight("graph_problems", 10, 2, 20, "line", "graph lines the parser could not read"),
    Weight(
        "service_down_with_ready_work", 42, 1, 50, "ready task",
        "no service runs while ready work waits (mode supervise/autonomous)", stall=True,
    ),
    Weight(
        "observe_mode_blocks_dispatch", 42, 1, 50, "ready task",
        "no service runs while ready work waits and mode observe/manual forbids the hub to dispatch",
        stall=True,
    ),
    Weight(
        "service_heartbeat_stale", 16, 0, 16, "service",
        f"the service runs but its heartbeat is older than {HEARTBEAT_STALE_SECONDS:g} s", stall=True,
    ),
    Weight(
        "ready_not_started", 10, 1, 16, "ready task",
        "the service runs with a fresh heartbeat but no agent and nothing in progress", stall=True,
    ),
    Weight(
        "aging_in_progress", 22, 4, 34, "task",
        f"in progress for {AGING_IN_PROGRESS_SECONDS / 86400:g}+ days", stall=True,
    ),
    Weight(
        "dead_claims", 22, 4, 34, "task",
        "in progress, claimed by a local process that is gone (not already counted as aging)", stall=True,
    ),
    Weight(
        "missing_dependencies", 22, 4, 34, "reference", "a task waits on a blocker id that does not exist",
        stall=True,
    ),
    Weight("failed_blockers", 22, 4, 34, "task", "an open task waits on a failed blocker", stall=True),
    Weight(
        "all_open_blocked", 21, 0, 21, "repo",
        "open work exists, all of it waiting on unfinished blockers, none ready or in progress "
        "(only when no missing/failed blocker explains it)", stall=True,
    ),
    Weight(
        "repeated_failures", 24, 6, 36, "task", "a task failed 2+ attempts in a row (failed loopback)",
        stall=True,
    ),
    Weight(
        "needs_human", 30, 5, 45, "task",
        "a task waits on a person's answer (tagged needs-human: the agent's question, a refused login, "
        "a missing tool, a secret to rotate) until it is retried or finished", stall=True,
    ),
    Weight(
        "awaiting_approval", 3, 1, 6, "task",
        "an oversight wave's task waits at a human approval checkpoint (its gated attempt to merge, "
        "a deploy task to start) until a person approves it", stall=True,
    ),
    Weight(
        "attempt_failure_rate", 2, 2, 20, "full 10 % failing",
        f"share of recent attempts that failed (from {MIN_ATTEMPTS_FOR_RATE} attempts)",
    ),
    Weight("secret_leaks", 45, 10, 60, "leak", "the gates found a secret"),
    Weight("gate_critical", 41, 8, 60, "finding", "critical gate findings"),
    Weight("gate_high", 21, 5, 35, "finding", "high gate findings"),
    Weight("gate_medium", 3, 2, 10, "finding", "medium gate findings"),
    Weight("gate_low", 1, 0.5, 4, "finding", "low gate findings"),
    Weight("gate_failed", 21, 0, 21, "run", "the latest gate run failed, no critical/high/secret finding"),
    Weight("stale_open", 4, 2, 14, "task", "open for 14+ days"),
    Weight("behind_upstream", 1, 1, 8, "commit", "commits on the upstream not in the local branch"),
    Weight("dirty_checkout", 2, 0.5, 6, "file", "tracked files with uncommitted changes"),
)  # fmt: skip
WEIGHTS: dict[str, Weight] = {w.code: w for w in _WEIGHT_LIST}


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
    for rule in (_graph_penalties, _attempt_penalties, _gate_penalties, _git_penalties):
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
    gates = snapshot.gates
    out: list[Reason] = []
    if gates.secret_leaks:
        out.append(
            _reason(
                "secret_leaks",
                gates.secret_leaks,
                f"{_plural(gates.secret_leaks, 'secret leak')} found by the gates",
            )
        )
    severities: tuple[tuple[str, int], ...] = (
        ("critical", gates.critical), ("high", gates.high), ("medium", gates.medium), ("low", gates.low),
    )  # fmt: skip
    for severity, count in severities:
        if count:
            out.append(_reason(f"gate_{severity}", count, f"{_plural(count, f'{severity} gate finding')}"))
    if gates.last_status == "fail" and not (gates.secret_leaks or gates.critical or gates.high):
        out.append(_reason("gate_failed", 1, "the latest gate run failed"))
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


# ---------------------------------------------------------------- the doc table


def weight_table_markdown() -> str:
    """The penalty table exactly as docs/scoring-and-policy.md shows it."""
    rows = [
        "| code | applies when | unit | first | each more | cap | stall |",
        "|---|---|---|---|---|---|---|",
    ]
    fmt: Callable[[float], str] = lambda v: f"{v:g}"  # noqa: E731
    for w in _WEIGHT_LIST:
        rows.append(
            f"| `{w.code}` | {w.when} | {w.unit} | {fmt(w.first)} | {fmt(w.each)} | {fmt(w.cap)} | "
            f"{'yes' if w.stall else ''} |"
        )
    return "\n".join(rows)
