"""The one table of penalties the scorer charges: each problem's points, unit and cap.

A repo starts at 100; every problem the snapshot shows costs ``first`` points for one unit,
``each`` for every further unit, never more than ``cap`` (score.py applies them). The weights are
chosen so the seed's cases land in the seed's tiers: a stopped service with ready work costs 42+
(at-risk < 60); aging in-progress work or a dependency problem costs 21–40 alone (watch 60–79);
a repo with a fresh heartbeat, progress and passing gates loses nothing (healthy >= 80).
docs/scoring-and-policy.md shows the same table (a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

AGING_IN_PROGRESS_SECONDS = 3 * 86400.0  # same threshold as the observer's stale_in_progress
HEARTBEAT_STALE_SECONDS = 600.0
MIN_ATTEMPTS_FOR_RATE = 3  # fewer recent attempts say nothing about a failure rate


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
    Weight(
        "lane_critical", 41, 8, 60, "finding",
        "critical drift-lane findings on the target branch (a failing test suite, a committed key)",
    ),
    Weight("lane_error", 21, 5, 35, "finding", "error drift-lane findings"),
    Weight("lane_warning", 2, 1, 8, "finding", "warning drift-lane findings"),
    Weight(
        "lane_broken", 6, 3, 12, "lane", "a drift lane could not judge (crashed, timed out, printed no JSON)"
    ),
    Weight("lane_policy_invalid", 10, 0, 10, "file", "the drift policy (drift-policy.toml) cannot be read"),
    Weight("stale_open", 4, 2, 14, "task", "open for 14+ days"),
    Weight("behind_upstream", 1, 1, 8, "commit", "commits on the upstream not in the local branch"),
    Weight("dirty_checkout", 2, 0.5, 6, "file", "tracked files with uncommitted changes"),
)  # fmt: skip
WEIGHTS: dict[str, Weight] = {w.code: w for w in _WEIGHT_LIST}


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
