"""The central register: what the hub decided and did, queryable, in ``<hub>/register.db`` (SQLite).

WAL mode (readers never block the writer), ``synchronous=NORMAL``, a 10 s busy timeout and
``BEGIN IMMEDIATE`` for every write, so several processes (``hub up``, ``hub once``, the
dashboard, ``speedrift mode``) share one file safely. The schema is versioned
(``schema_version``) and migrated forward on open; docs/register.md documents every table.

Restart safety: an action is written as ``started`` (with the writer's pid and host) before its
handler runs and updated when it finishes. After a kill -9 the row stays ``started``;
:meth:`Register.interrupted_actions` finds those whose process is gone and
:meth:`Register.mark_interrupted` closes them as ``interrupted`` — a live hub's running actions
are never touched.

``[register] url = "postgresql://…"`` (or ``$SPEEDRIFT_REGISTER_URL``) is accepted but not yet
used: the register stays on SQLite in the hub directory and says so in :attr:`Register.notice`.
``sqlite:///path/to/file.db`` puts the SQLite file elsewhere.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from speedrift.errors import Refused, UsageError
from speedrift.fsutil import flocked
from speedrift.graph.codec import Graph
from speedrift.graph.model import TERMINAL, status_of
from speedrift.graph.store import repo_graph_file
from speedrift.hubdir import register_db_path
from speedrift.procs import pid_alive
from speedrift.redact import redact_url
from speedrift.register.actions import CORRECTIVE_KINDS, Action
from speedrift.register.record import ActionHistory, CycleRecord, Outcome, OutcomeStatus, PastAction
from speedrift.register.schema import MIGRATIONS, SCHEMA_VERSION, cycle_status, summary_view
from speedrift.serialize import dumps
from speedrift.times import now_utc, parse_time, sortable

BUSY_TIMEOUT_S = 10.0
# a corrective action that ended so has a task open in the repo's graph
OPENED_CORRECTIVE: frozenset[OutcomeStatus] = frozenset({"succeeded", "delegated"})


def _json(value: Any) -> str:
    return dumps(value).decode("utf-8")


def resolve_url(hub: Path, url: str | None) -> tuple[Path, str | None]:
    """The SQLite file to use and a notice when the URL asked for something not supported yet."""
    if not url:
        return register_db_path(hub), None
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        if not rest.startswith("/") or not rest.strip("/"):
            raise UsageError(
                f"register URL {url!r} has no absolute file path",
                hint="write sqlite:///absolute/path/register.db",
            )
        return Path("/" + rest.lstrip("/")), None  # sqlite:///abs and sqlite:////abs: the same file
    if url.startswith(("postgresql://", "postgres://")):
        db = register_db_path(hub)
        return db, (
            f"register URL {redact_url(url)} asks for PostgreSQL, which is not supported yet: "
            f"the register uses SQLite at {db} (same schema)"
        )
    raise UsageError(f"unsupported register URL {url!r}", hint="use sqlite:///path or postgresql://…")


def _storage_error(error: sqlite3.OperationalError, path: Path) -> OSError | None:
    """SQLite's words for a full disk or a read-only file, as the OSError every other write raises
    (the CLI and the hub treat those alike: one clear line, the transaction rolled back)."""
    text = str(error).lower()
    if "disk is full" in text:
        code = errno.ENOSPC
    elif "readonly database" in text or "read-only" in text:
        code = errno.EROFS
    else:
        return None
    return OSError(code, f"{os.strerror(code)} ({error})", str(path))


class Register:
    """One connection to the register; safe to share between threads (calls are serialized)."""

    def __init__(self, path: Path, notice: str | None = None) -> None:
        self.path = path
        self.notice = notice
        self.backend = "sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # Switching a new database to WAL takes an exclusive lock that SQLite does not wait for
        # (two processes opening a fresh register at once get "database is locked"): setting up
        # the file is serialized across processes; afterwards WAL handles concurrency itself.
        with flocked(path.with_name(path.name + ".setup.lock")):
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()

    @classmethod
    def open(cls, hub_dir: Path, url: str | None = None) -> Register:
        path, notice = resolve_url(hub_dir, url)
        return cls(path, notice)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Register:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One writing transaction: BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlock)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite may have rolled back already (a full disk)
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as error:
                refused = _storage_error(error, self.path)
                if refused is None:
                    raise
                raise refused from error

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, params))

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise Refused(
                    f"{self.path} has register schema {current}; this speedrift knows up to {SCHEMA_VERSION}",
                    hint="upgrade speedrift, or point $SPEEDRIFT_HUB_DIR at another directory",
                )
            for version, script in MIGRATIONS:
                if version <= current:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        return int(self._rows("SELECT MAX(version) FROM schema_version")[0][0])

    # ------------------------------------------------------------------ cycles
    def record_cycle(self, record: Mapping[str, Any] | CycleRecord) -> None:
        """Store a cycle record (the ledger's dict, or the :class:`CycleRecord` itself, which spares
        converting the whole record): one cycles row and one repo_health row per repo.

        Records without a ``cycle_id`` (recovery or operator entries) are ledger-only and ignored.
        Recording the same cycle twice replaces it.
        """
        if isinstance(record, CycleRecord):
            record = summary_view(record)
        cycle_id = record.get("cycle_id")
        if not isinstance(cycle_id, str) or not cycle_id:
            return
        executed = [o for o in record.get("executed") or () if isinstance(o, dict)]
        skipped = [s for s in record.get("skipped") or () if isinstance(s, dict)]
        by_rule: dict[str, int] = {}
        for item in skipped:
            rule = str(item.get("rule"))
            by_rule[rule] = by_rule.get(rule, 0) + 1
        summary = {
            "ecosystem": record.get("ecosystem"),
            "inputs": record.get("inputs") or {},
            "narrative": record.get("narrative") or "",
            "planned": len(record.get("planned") or ()),
            "executed": len(executed),
            "skipped": len(skipped),
            "skipped_by_rule": by_rule,
            "metrics": {
                key: metric.get("value")
                for key, metric in (record.get("metrics") or {}).items()
                if isinstance(metric, dict)
            },
            "hints": list(record.get("hints") or ()),
            "queues": {  # attention entries per queue (the entries themselves are in the ledger)
                str(queue.get("key")): queue.get("total")
                for queue in record.get("queues") or ()
                if isinstance(queue, dict)
            },
        }
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO cycles (cycle_id, generated_at, finished_at, plan_only, status, "
                "summary) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    cycle_id,
                    sortable(record.get("generated_at")) or "",
                    sortable(record.get("finished_at")),
                    1 if record.get("plan_only") else 0,
                    cycle_status(bool(record.get("plan_only")), executed),
                    _json(summary),
                ),
            )
            db.execute("DELETE FROM repo_health WHERE cycle_id = ?", (cycle_id,))
            db.executemany(
                "INSERT INTO repo_health (cycle_id, repo, score, tier, trend, activity, stall, reasons) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cycle_id,
                        str(repo.get("name")),
                        int(repo.get("score") or 0),
                        str(repo.get("tier")),
                        str(repo.get("trend")),
                        str(repo.get("activity")),
                        repo.get("stall"),
                        _json(repo.get("reasons") or []),
                    )
                    for repo in record.get("repos") or ()
                    if isinstance(repo, dict)
                ],
            )

    def cycles(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest cycles, newest first."""
        rows = self._rows("SELECT * FROM cycles ORDER BY generated_at DESC LIMIT ?", (limit,))
        return [
            {**dict(row), "plan_only": bool(row["plan_only"]), "summary": orjson.loads(row["summary"])}
            for row in rows
        ]

    def repo_history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """One repo's health over the newest cycles, newest first."""
        rows = self._rows(
            "SELECT h.*, c.generated_at FROM repo_health h JOIN cycles c USING (cycle_id) "
            "WHERE h.repo = ? ORDER BY c.generated_at DESC LIMIT ?",
            (name, limit),
        )
        return [{**dict(row), "reasons": orjson.loads(row["reasons"])} for row in rows]

    # ------------------------------------------------------------------ actions
    def action_started(self, action: Action, cycle_id: str, started_at: datetime) -> int:
        """Record that ``action`` is about to run (before its handler). Returns the row id."""
        with self._write() as db:
            cursor = db.execute(
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
            return int(cursor.lastrowid or 0)

    def action_finished(self, outcome: Outcome) -> None:
        """Close this process's started row for the action (or add a finished row if there is none).

        A corrective task the handler created or found is remembered as open (see
        :meth:`refresh_corrective`).
        """
        finished = sortable(outcome.finished_at or outcome.started_at)
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM actions WHERE action_id = ? AND status = 'started' AND pid = ? "
                "ORDER BY id DESC LIMIT 1",
                (outcome.action_id, os.getpid()),
            ).fetchone()
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

    def _unfinished(self) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM actions WHERE status = 'started' ORDER BY id")

    def interrupted_actions(self) -> list[dict[str, Any]]:
        """Started rows whose process is gone (killed mid-action): candidates for :meth:`mark_interrupted`."""
        host = socket.gethostname()
        found: list[dict[str, Any]] = []
        for row in self._unfinished():
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
        with self._write() as db:
            for row in stale:
                cursor = db.execute(
                    "UPDATE actions SET status = 'interrupted', finished_at = ?, detail = ? "
                    "WHERE action_id = ? AND status = 'started' AND pid IS ?",
                    (
                        sortable(now),
                        f"interrupted: the hub process {row['pid']} stopped while this action ran",
                        row["action_id"],
                        row["pid"],
                    ),
                )
                changed += cursor.rowcount
        return changed

    def actions(self, *, repo: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest action rows (optionally of one repo), newest first."""
        where, params = ("WHERE repo = ?", [repo]) if repo else ("", [])
        rows = self._rows(f"SELECT * FROM actions {where} ORDER BY id DESC LIMIT ?", (*params, limit))  # noqa: S608
        return [{**dict(r), "evidence": orjson.loads(r["evidence"]) if r["evidence"] else {}} for r in rows]

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
        with self._write() as db:
            return sum(
                db.execute(
                    "UPDATE corrective_tasks SET state = 'closed', closed_at = ? "
                    "WHERE repo = ? AND task_id = ? AND state = 'open'",
                    (sortable(now), repo, task_id),
                ).rowcount
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
        with self._write() as db:
            db.execute(
                "INSERT INTO mode_changes (repo, mode, owner, expires_at, actor, at, source, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (repo, mode, lease_owner, sortable(lease_expires_at), actor, sortable(at), source, reason),
            )

    def mode_changes(self, repo: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = ("WHERE repo = ?", [repo]) if repo else ("", [])
        rows = self._rows(f"SELECT * FROM mode_changes {where} ORDER BY id DESC LIMIT ?", (*params, limit))  # noqa: S608
        return [dict(row) for row in rows]

    def record_approval(self, *, action_id: str, repo: str, kind: str, actor: str, at: datetime) -> None:
        """An operator approved this action: the next cycle may run it on the operator's authority."""
        with self._write() as db:
            db.execute(
                "INSERT INTO approvals (action_id, repo, kind, actor, approved_at) VALUES (?, ?, ?, ?, ?)",
                (action_id, repo, kind, actor, sortable(at)),
            )

    def pending_approvals(self) -> list[str]:
        """Action ids approved and not yet run, oldest approval first."""
        rows = self._rows(
            "SELECT action_id, MIN(id) AS first FROM approvals WHERE consumed_at IS NULL "
            "GROUP BY action_id ORDER BY first"
        )
        return [row["action_id"] for row in rows]

    def pending_approvers(self) -> dict[str, str]:
        """Approved, not yet run action ids -> who approved them (the first approval's actor)."""
        rows = self._rows("SELECT action_id, actor FROM approvals WHERE consumed_at IS NULL ORDER BY id DESC")
        return {row["action_id"]: row["actor"] for row in rows}  # the oldest row wins (written last)

    def consume_approval(self, action_id: str, cycle_id: str, now: datetime | None = None) -> int:
        """The cycle that runs an approved action uses its approval up (all pending ones for that id)."""
        with self._write() as db:
            return db.execute(
                "UPDATE approvals SET consumed_at = ?, cycle_id = ? "
                "WHERE action_id = ? AND consumed_at IS NULL",
                (sortable(now or now_utc()), cycle_id, action_id),
            ).rowcount
