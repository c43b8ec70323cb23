"""The central register: what the hub decided and did, queryable — in SQLite or PostgreSQL.

:meth:`Register.open` picks the backend from the register URL: none (the default) or
``sqlite:///abs/path.db`` → SQLite (register/sqlite.py: a WAL file in the hub directory, or that
file); ``postgresql://…`` / ``postgres://…`` → PostgreSQL (register/postgres.py, needs the
``scale`` extra). Both hold the same schema (register/schema.py, one migration list), run the same
SQL (register/db.py translates it) and pass the same test suite; docs/register.md documents every
table and what happens when the PostgreSQL server cannot be reached (:class:`RegisterUnavailable`).

Restart safety: an action is written as ``started`` (with the writer's pid and host) before its
handler runs and updated when it finishes. After a kill -9 the row stays ``started``;
:meth:`Register.interrupted_actions` finds those whose process is gone and
:meth:`Register.mark_interrupted` closes them as ``interrupted`` — a live hub's running actions
are never touched. Every write is one transaction: applied whole or not at all.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from speedrift.errors import UsageError
from speedrift.graph.codec import Graph
from speedrift.graph.model import TERMINAL, status_of
from speedrift.graph.store import repo_graph_file
from speedrift.hubdir import register_db_path
from speedrift.procs import pid_alive
from speedrift.redact import redact_url
from speedrift.register import leases as lease_rows
from speedrift.register.actions import CORRECTIVE_KINDS, Action
from speedrift.register.db import Backend, RegisterBackend, RegisterUnavailable, Row, upsert_sql
from speedrift.register.leases import LeaseGrant, LeaseRow
from speedrift.register.record import ActionHistory, CycleRecord, Outcome, OutcomeStatus, PastAction
from speedrift.register.schema import CYCLE_COLUMNS, cycle_rows, migrate, summary_view
from speedrift.serialize import dumps
from speedrift.times import now_utc, parse_time, sortable

__all__ = ["LeaseGrant", "LeaseRow", "Register", "RegisterBackend", "RegisterUnavailable", "resolve_url"]

# a corrective action that ended so has a task open in the repo's graph
OPENED_CORRECTIVE: frozenset[OutcomeStatus] = frozenset({"succeeded", "delegated"})
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _json(value: Any) -> str:
    return dumps(value).decode("utf-8")


@dataclass(frozen=True)
class Target:
    """Where a register URL points: a SQLite file, or a PostgreSQL URL."""

    backend: RegisterBackend
    path: Path | None = None
    url: str | None = None


def resolve_url(hub: Path, url: str | None) -> Target:
    """The backend and database a register URL names (None: ``<hub>/register.db``)."""
    if not url:
        return Target(RegisterBackend.SQLITE, path=register_db_path(hub))
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        if not rest.startswith("/") or not rest.strip("/"):
            raise UsageError(
                f"register URL {url!r} has no absolute file path",
                hint="write sqlite:///absolute/path/register.db",
            )
        # sqlite:///abs and sqlite:////abs: the same file
        return Target(RegisterBackend.SQLITE, path=Path("/" + rest.lstrip("/")))
    if url.startswith(POSTGRES_SCHEMES):
        return Target(RegisterBackend.POSTGRESQL, url=url)
    raise UsageError(
        f"unsupported register URL {redact_url(url)!r}", hint="use sqlite:///path or postgresql://…"
    )


class Register:
    """One connection to the register; safe to share between threads (calls are serialized)."""

    def __init__(self, db: Backend, path: Path | None = None) -> None:
        self._db = db
        self.backend: RegisterBackend = db.kind
        self.where: str = db.where
        self.path = path  # the SQLite file (None on PostgreSQL)

    @classmethod
    def open(cls, hub_dir: Path, url: str | None = None) -> Register:
        """The register a URL names (see :func:`resolve_url`). SQLite opens (and migrates) the file
        now; PostgreSQL connects on the first call, so an unreachable server never stops the open."""
        target = resolve_url(hub_dir, url)
        if target.backend is RegisterBackend.POSTGRESQL:
            from speedrift.register.postgres import PostgresBackend

            assert target.url is not None
            return cls(PostgresBackend(target.url, migrate))
        from speedrift.register.sqlite import SqliteBackend

        assert target.path is not None
        return cls(SqliteBackend(target.path, migrate), path=target.path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Register:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._db.read(sql, params)

    def schema_version(self) -> int:
        return int(self._rows("SELECT MAX(version) AS version FROM schema_version")[0]["version"])

    def wait_for_change(self, timeout: float, tables: Collection[str] | None = None) -> bool:
        """True as soon as another process commits a change to one of ``tables`` (None: any table)
        within ``timeout`` seconds, else False. A change committed since the previous call counts.
        SQLite cannot tell tables apart (any change counts). Never raises for a lost PostgreSQL
        server: it waits out the timeout, returns False and listens again on the next call."""
        return self._db.wait_for_change(timeout, tables)

    # ------------------------------------------------------------------ cycles
    def record_cycle(self, record: Mapping[str, Any] | CycleRecord) -> None:
        """Store a cycle record (the ledger's dict, or the :class:`CycleRecord` itself, which spares
        converting the whole record): one cycles row and one repo_health row per repo.

        Records without a ``cycle_id`` (recovery or operator entries) are ledger-only and ignored.
        Recording the same cycle twice replaces it.
        """
        if isinstance(record, CycleRecord):
            record = summary_view(record)
        rows = cycle_rows(record)
        if rows is None:
            return
        cycle, health = rows
        with self._db.write() as db:
            db.execute(upsert_sql("cycles", ("cycle_id",), CYCLE_COLUMNS), cycle)
            db.execute("DELETE FROM repo_health WHERE cycle_id = ?", (cycle[0],))
            db.executemany(
                "INSERT INTO repo_health (cycle_id, repo, score, tier, trend, activity, stall, reasons) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                health,
            )

    def cycles(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest cycles, newest first."""
        rows = self._rows("SELECT * FROM cycles ORDER BY generated_at DESC LIMIT ?", (limit,))
        return [
            {**row, "plan_only": bool(row["plan_only"]), "summary": orjson.loads(row["summary"])}
            for row in rows
        ]

    def repo_history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """One repo's health over the newest cycles, newest first."""
        rows = self._rows(
            "SELECT h.*, c.generated_at FROM repo_health h JOIN cycles c USING (cycle_id) "
            "WHERE h.repo = ? ORDER BY c.generated_at DESC LIMIT ?",
            (name, limit),
        )
        return [{**row, "reasons": orjson.loads(row["reasons"])} for row in rows]

    # ------------------------------------------------------------------ actions
    def action_started(self, action: Action, cycle_id: str, started_at: datetime) -> int:
        """Record that ``action`` is about to run (before its handler). Returns the row id."""
        with self._db.write() as db:
            return db.insert_id(
                "INSERT INTO actions (action_id, cycle_id, repo, kind, status, started_at, detail, pid, "
                "host) VALUES (?, ?, ?, ?, 'started', ?, ?, ?, ?)",
                (
                    action.id,
                    cycle_id,
                    action.repo,
                    action.kind,
                    sortable(started_at),
                    action.reason,
                    os.getpid(),
                    socket.gethostname(),
                ),
            )

    def action_finished(self, outcome: Outcome) -> None:
        """Close this process's started row for the action (or add a finished row if there is none).

        A corrective task the handler created or found is remembered as open (see
        :meth:`refresh_corrective`).
        """
        finished = sortable(outcome.finished_at or outcome.started_at)
        with self._db.write() as db:
            row = db.one(
                "SELECT id FROM actions WHERE action_id = ? AND status = 'started' AND pid = ? "
                "ORDER BY id DESC LIMIT 1",
                (outcome.action_id, os.getpid()),
            )
            values = (outcome.status, finished, outcome.detail, _json(outcome.evidence))
            if row is not None:
                db.execute(
                    "UPDATE actions SET status = ?, finished_at = ?, detail = ?, evidence = ? WHERE id = ?",
                    (*values, row["id"]),
                )
            else:
                db.execute(
                    "INSERT INTO actions (action_id, cycle_id, repo, kind, status, started_at, finished_at, "
                    "detail, evidence, pid, host) VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        outcome.action_id,
                        outcome.repo,
                        outcome.kind,
                        outcome.status,
                        sortable(outcome.started_at),
                        finished,
                        outcome.detail,
                        _json(outcome.evidence),
                        os.getpid(),
                        socket.gethostname(),
                    ),
                )
            task = outcome.evidence.get("task")
            if outcome.kind in CORRECTIVE_KINDS and outcome.status in OPENED_CORRECTIVE and task:
                db.execute(
                    "INSERT INTO corrective_tasks (repo, task_id, created_at, action_id, state) "
                    "VALUES (?, ?, ?, ?, 'open') ON CONFLICT (repo, task_id) DO UPDATE SET state = 'open', "
                    "closed_at = NULL WHERE excluded.created_at > corrective_tasks.created_at",
                    (outcome.repo, str(task), finished, outcome.action_id),
                )

    def interrupted_actions(self) -> list[dict[str, Any]]:
        """Started rows whose process is gone (killed mid-action): candidates for :meth:`mark_interrupted`."""
        host = socket.gethostname()
        found: list[dict[str, Any]] = []
        for row in self._rows("SELECT * FROM actions WHERE status = 'started' ORDER BY id"):
            if row["host"] == host and pid_alive(row["pid"]) and row["pid"] != os.getpid():
                continue  # another live hub process is running it right now
            if row["host"] not in (None, host):
                continue  # another machine's hub: it decides for itself
            found.append(
                {
                    "action_id": row["action_id"],
                    "cycle_id": row["cycle_id"],
                    "repo": row["repo"],
                    "kind": row["kind"],
                    "started_at": row["started_at"],
                    "pid": row["pid"],
                }
            )
        return found

    def mark_interrupted(self, action_ids: Sequence[str], now: datetime) -> int:
        """Close the interrupted rows of these actions as ``interrupted``. Returns how many rows changed."""
        wanted = set(action_ids)
        stale = [r for r in self.interrupted_actions() if r["action_id"] in wanted]
        if not stale:
            return 0
        changed = 0
        with self._db.write() as db:
            for row in stale:
                changed += db.execute(
                    "UPDATE actions SET status = 'interrupted', finished_at = ?, detail = ? "
                    "WHERE action_id = ? AND status = 'started' AND pid IS ?",
                    (
                        sortable(now),
                        f"interrupted: the hub process {row['pid']} stopped while this action ran",
                        row["action_id"],
                        row["pid"],
                    ),
                )
        return changed

    def actions(self, *, repo: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest action rows (optionally of one repo), newest first."""
        where, params = ("WHERE repo = ?", [repo]) if repo else ("", [])
        rows = self._rows(f"SELECT * FROM actions {where} ORDER BY id DESC LIMIT ?", (*params, limit))  # noqa: S608
        return [{**r, "evidence": orjson.loads(r["evidence"]) if r["evidence"] else {}} for r in rows]

    def history(self, now: datetime, window: timedelta) -> ActionHistory:
        """What the policy needs: actions started within ``window`` (and any still unfinished), and the
        corrective tasks believed open."""
        rows = self._rows(
            "SELECT action_id, repo, kind, started_at, status FROM actions "
            "WHERE started_at >= ? OR status = 'started' ORDER BY started_at, id",
            (sortable(now - window),),
        )
        executions = tuple(
            PastAction(
                action_id=row["action_id"],
                repo=row["repo"],
                kind=row["kind"],
                started_at=parse_time(row["started_at"]) or now,
                status=row["status"],
            )
            for row in rows
        )
        return ActionHistory(executions=executions, open_corrective=self.open_corrective())

    # ------------------------------------------------------------------ corrective tasks
    def open_corrective(self) -> dict[str, tuple[str, ...]]:
        """Corrective tasks believed open, per repo."""
        found: dict[str, list[str]] = {}
        for row in self._rows(
            "SELECT repo, task_id FROM corrective_tasks WHERE state = 'open' ORDER BY task_id"
        ):
            found.setdefault(row["repo"], []).append(row["task_id"])
        return {repo: tuple(ids) for repo, ids in found.items()}

    def close_corrective(self, repo: str, task_ids: Sequence[str], now: datetime) -> int:
        """Mark corrective tasks closed (done, abandoned or gone from the graph)."""
        if not task_ids:
            return 0
        with self._db.write() as db:
            return sum(
                db.execute(
                    "UPDATE corrective_tasks SET state = 'closed', closed_at = ? "
                    "WHERE repo = ? AND task_id = ? AND state = 'open'",
                    (sortable(now), repo, task_id),
                )
                for task_id in task_ids
            )

    def refresh_corrective(self, repo_paths: Mapping[str, Path], now: datetime) -> int:
        """Close every open corrective task whose graph says it is finished or that no longer exists.

        Reads each repo's graph read-only (no lock, nothing written in the repo). Repos without a
        readable graph are left as they are. Returns how many tasks were closed.
        """
        closed = 0
        for repo, task_ids in self.open_corrective().items():
            folder = repo_paths.get(repo)
            path = repo_graph_file(folder) if folder is not None else None
            if path is None:
                continue
            try:
                graph = Graph.from_bytes(path.read_bytes())
            except OSError:
                continue
            finished = [t for t in task_ids if (task := graph.get(t)) is None or status_of(task) in TERMINAL]
            closed += self.close_corrective(repo, finished, now)
        return closed

    # ------------------------------------------------------------------ operators
    def record_mode_change(
        self,
        *,
        repo: str,
        mode: str,
        actor: str,
        at: datetime,
        source: str = "cli",
        lease_owner: str | None = None,
        lease_expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> None:
        with self._db.write() as db:
            db.execute(
                "INSERT INTO mode_changes (repo, mode, owner, expires_at, actor, at, source, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (repo, mode, lease_owner, sortable(lease_expires_at), actor, sortable(at), source, reason),
            )

    def mode_changes(self, repo: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = ("WHERE repo = ?", [repo]) if repo else ("", [])
        return self._rows(f"SELECT * FROM mode_changes {where} ORDER BY id DESC LIMIT ?", (*params, limit))  # noqa: S608

    def record_approval(self, *, action_id: str, repo: str, kind: str, actor: str, at: datetime) -> None:
        """An operator approved this action: the next cycle may run it on the operator's authority."""
        with self._db.write() as db:
            db.execute(
                "INSERT INTO approvals (action_id, repo, kind, actor, approved_at) VALUES (?, ?, ?, ?, ?)",
                (action_id, repo, kind, actor, sortable(at)),
            )

    def pending_approvals(self) -> list[str]:
        """Action ids approved and not yet run, oldest approval first."""
        rows = self._rows(
            "SELECT action_id, MIN(id) AS first_id FROM approvals WHERE consumed_at IS NULL "
            "GROUP BY action_id ORDER BY first_id"
        )
        return [row["action_id"] for row in rows]

    def pending_approvers(self) -> dict[str, str]:
        """Approved, not yet run action ids -> who approved them (the first approval's actor)."""
        rows = self._rows("SELECT action_id, actor FROM approvals WHERE consumed_at IS NULL ORDER BY id DESC")
        return {row["action_id"]: row["actor"] for row in rows}  # the oldest row wins (written last)

    def consume_approval(self, action_id: str, cycle_id: str, now: datetime | None = None) -> int:
        """The cycle that runs an approved action uses its approval up (all pending ones for that id)."""
        with self._db.write() as db:
            return db.execute(
                "UPDATE approvals SET consumed_at = ?, cycle_id = ? "
                "WHERE action_id = ? AND consumed_at IS NULL",
                (sortable(now or now_utc()), cycle_id, action_id),
            )

    # ------------------------------------------------------------------ hubs sharing the register
    def acquire_leases(self, hub_id: str, repos: Sequence[str], now: datetime, ttl: timedelta) -> LeaseGrant:
        """Take or renew ``hub_id``'s leases on ``repos`` in one transaction (register/leases.py):
        every row that is this hub's or expired is held until ``now + ttl``; renewing keeps
        ``acquired_at``. ``others``: the asked-for repos another hub holds."""
        with self._db.write() as db:
            return lease_rows.acquire(db, hub_id, repos, now, ttl, socket.gethostname(), os.getpid())

    def release_leases(self, hub_id: str, repos: Sequence[str] | None = None) -> int:
        """Give up ``hub_id``'s leases (all of them, or those on ``repos``). Returns how many."""
        with self._db.write() as db:
            return lease_rows.release(db, hub_id, repos)

    def leases(self) -> list[LeaseRow]:
        """Every lease row (live or expired), by repo."""
        return [LeaseRow.of(row) for row in self._rows("SELECT * FROM repo_leases ORDER BY repo")]

    def record_gap(
        self, hub_id: str, began_at: datetime, ended_at: datetime, cycles_backfilled: int, detail: str
    ) -> None:
        """A stretch of time during which ``hub_id`` could not reach the register."""
        with self._db.write() as db:
            db.execute(
                "INSERT INTO register_gaps (hub, began_at, ended_at, cycles_backfilled, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                (hub_id, sortable(began_at), sortable(ended_at), cycles_backfilled, detail),
            )

    def gaps(self, limit: int = 20) -> list[dict[str, Any]]:
        """The recorded register gaps, newest first."""
        return self._rows("SELECT * FROM register_gaps ORDER BY id DESC LIMIT ?", (limit,))
