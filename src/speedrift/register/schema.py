"""The register's SQLite schema (with its migrations) and how a cycle record becomes rows.

docs/register.md documents every table; a migration is appended here, never edited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from speedrift.register.record import CycleRecord

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE cycles (
            cycle_id     TEXT PRIMARY KEY,
            generated_at TEXT NOT NULL,
            finished_at  TEXT,
            plan_only    INTEGER NOT NULL,
            status       TEXT NOT NULL,
            summary      TEXT NOT NULL
        );
        CREATE INDEX cycles_generated ON cycles (generated_at);
        CREATE TABLE repo_health (
            cycle_id TEXT NOT NULL,
            repo     TEXT NOT NULL,
            score    INTEGER NOT NULL,
            tier     TEXT NOT NULL,
            trend    TEXT NOT NULL,
            activity TEXT NOT NULL,
            stall    TEXT,
            reasons  TEXT NOT NULL,
            PRIMARY KEY (cycle_id, repo)
        );
        CREATE INDEX repo_health_repo ON repo_health (repo, cycle_id);
        CREATE TABLE actions (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            action_id   TEXT NOT NULL,
            cycle_id    TEXT NOT NULL,
            repo        TEXT NOT NULL,
            kind        TEXT NOT NULL,
            status      TEXT NOT NULL CHECK (status IN
                        ('started', 'succeeded', 'failed', 'refused', 'delegated', 'interrupted', 'skipped')),
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            detail      TEXT,
            evidence    TEXT,
            pid         INTEGER,
            host        TEXT
        );
        CREATE INDEX actions_started_at ON actions (started_at);
        CREATE INDEX actions_action ON actions (action_id, id);
        CREATE INDEX actions_unfinished ON actions (status) WHERE status = 'started';
        CREATE TABLE corrective_tasks (
            repo       TEXT NOT NULL,
            task_id    TEXT NOT NULL,
            created_at TEXT NOT NULL,
            action_id  TEXT,
            state      TEXT NOT NULL CHECK (state IN ('open', 'closed')),
            closed_at  TEXT,
            PRIMARY KEY (repo, task_id)
        );
        CREATE TABLE mode_changes (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            repo       TEXT NOT NULL,
            mode       TEXT NOT NULL,
            owner      TEXT,
            expires_at TEXT,
            actor      TEXT NOT NULL,
            at         TEXT NOT NULL,
            source     TEXT NOT NULL,
            reason     TEXT
        );
        CREATE INDEX mode_changes_repo ON mode_changes (repo, at);
        CREATE TABLE approvals (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            action_id   TEXT NOT NULL,
            repo        TEXT NOT NULL,
            kind        TEXT NOT NULL,
            actor       TEXT NOT NULL,
            approved_at TEXT NOT NULL,
            consumed_at TEXT,
            cycle_id    TEXT
        );
        CREATE INDEX approvals_pending ON approvals (action_id) WHERE consumed_at IS NULL;
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def summary_view(record: CycleRecord) -> dict[str, Any]:
    """The parts of a cycle record the register stores, in the ledger dict's shape."""
    return {
        "cycle_id": record.cycle_id,
        "generated_at": record.generated_at,
        "finished_at": record.finished_at,
        "plan_only": record.plan_only,
        "ecosystem": record.ecosystem,
        "inputs": record.inputs,
        "narrative": record.narrative,
        "planned": record.planned,
        "executed": [{"status": outcome.status} for outcome in record.executed],
        "skipped": [{"rule": skipped.rule} for skipped in record.skipped],
        "metrics": {key: {"value": metric.value} for key, metric in record.metrics.items()},
        "hints": record.hints,
        "queues": [{"key": queue.key, "total": queue.total} for queue in record.queues],
        "repos": [
            {
                "name": r.name,
                "score": r.score,
                "tier": r.tier,
                "trend": r.trend,
                "activity": r.activity,
                "stall": r.stall,
                "reasons": r.reasons,
            }
            for r in record.repos
        ],
    }


def cycle_status(plan_only: bool, executed: Sequence[Mapping[str, Any]]) -> str:
    """plan_only | noop | executed | partial_failed | failed — the cycle's one-word result."""
    if plan_only and not executed:
        return "plan_only"
    if not executed:
        return "noop"
    failed = sum(1 for o in executed if o.get("status") == "failed")
    if failed == 0:
        return "executed"
    return "failed" if failed == len(executed) else "partial_failed"
