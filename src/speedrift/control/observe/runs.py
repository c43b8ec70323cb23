"""What a repo's ``.speedrift/`` says about its runtime: service liveness, recent attempts, gate findings.

All read-only. Service liveness is judged without touching the service's lock: the kernel's
lock table (``/proc/locks``, read once per cycle) says whether the lock file's inode is held, so
an observation can never race a ``service start`` for the lock. Where that table is unavailable
a live pid plus a fresh heartbeat counts instead.

Attempts come from ``.speedrift/runs/<task>/<n>/attempt.json`` within :data:`RECENT_WINDOW`.
Gate findings say where they are: the target branch's come from the newest hub scan
(``.speedrift/scans/*.json``, at the commit it scanned) and the attempts that landed after it; an
attempt the gates blocked never counts against the target branch (its findings are listed under
the attempt while it is its task's newest and its worktree exists).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from speedrift import layout, records
from speedrift.failure_class import FailureClass
from speedrift.layout import read_record
from speedrift.procs import record_alive
from speedrift.records import FINISHED_STATES, AttemptState
from speedrift.register.record import AttemptFindings, AttemptStats, GateStats, ServiceState
from speedrift.times import parse_time

RECENT_WINDOW = timedelta(days=7)
HEARTBEAT_FRESH = timedelta(minutes=2)  # only used where /proc/locks cannot be read
SEVERITIES = ("critical", "high", "medium", "low")

LockTable = dict[tuple[int, int], int]  # (device, inode) -> pid holding a flock on it


def read_lock_table(path: Path = Path("/proc/locks")) -> LockTable | None:
    """Every FLOCK held on this machine, from the kernel; None when the table cannot be read."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    table: LockTable = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":  # "->" lines are waiters, not holders
            continue
        try:
            major, minor, inode = fields[5].split(":")
            device = os.makedev(int(major, 16), int(minor, 16))
            table[(device, int(inode))] = int(fields[4])
        except ValueError:
            continue
    return table


class LazyLockTable:
    """The kernel's lock table, read on first use: a cycle in which no repo has a service lock
    file (the common case for most of a fleet) never reads /proc/locks at all."""

    def __init__(self, path: Path = Path("/proc/locks")) -> None:
        self._path = path
        self._table: LockTable | None = None
        self._loaded = False

    def get(self, key: tuple[int, int]) -> int | None:
        if not self._loaded:  # a race between observer threads only reads the table twice
            self._table = read_lock_table(self._path)
            self._loaded = True
        return None if self._table is None else self._table.get(key)


Locks = LockTable | LazyLockTable


def _pid_file(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# --- service --------------------------------------------------------------------------------------
def service_state(
    repo: Path, graph_dir: Path | None, locks: Locks | None, now: datetime, *, state_dir: bool = True
) -> ServiceState:
    """speedrift's own service (``.speedrift/service/``), else a live ``wg service``.

    ``state_dir=False`` (the caller saw no ``.speedrift/``) skips the speedrift files.
    """
    present = state_dir and os.path.isdir(layout.service_dir(repo))
    started_by_hub = present and layout.started_by_hub_path(repo).exists()
    heartbeat = records.read_heartbeat(repo) if present else None
    beat_at = heartbeat.at_time if heartbeat else None
    age = max(0.0, (now - beat_at).total_seconds()) if beat_at else None
    pid = _pid_file(layout.service_pid_path(repo)) if present else None
    running = False
    if present:
        try:
            info: os.stat_result | None = os.stat(layout.service_lock_path(repo))
        except OSError:
            info = None
        if info is not None and locks is not None:
            holder = locks.get((info.st_dev, info.st_ino))
            running = holder is not None
            pid = pid or holder
        if not running and pid is not None and record_alive({"pid": pid}):  # a zombie is not running
            running = age is not None and age <= HEARTBEAT_FRESH.total_seconds()
    if running:
        return ServiceState(
            running=True,
            kind="speedrift",
            pid=pid,
            heartbeat_age_seconds=age,
            active_agents=len(heartbeat.running) if heartbeat else 0,
            started_by_hub=started_by_hub,
        )
    wg = _wg_service(graph_dir, now)
    if wg is not None:
        return wg
    return ServiceState(
        running=False,
        kind="speedrift" if heartbeat is not None or started_by_hub else None,
        heartbeat_age_seconds=age,
        started_by_hub=started_by_hub,
    )


def _wg_service(graph_dir: Path | None, now: datetime) -> ServiceState | None:
    if graph_dir is None:
        return None
    state_file = graph_dir / "service" / "state.json"
    try:
        mtime = state_file.stat().st_mtime
    except OSError:
        return None
    wg_state = read_record(state_file)
    wg_pid = wg_state.get("pid") if wg_state else None
    if not isinstance(wg_pid, int) or not record_alive({"pid": wg_pid}):  # a zombie is not a service
        return None
    return ServiceState(
        running=True, kind="wg", pid=wg_pid, heartbeat_age_seconds=max(0.0, now.timestamp() - mtime)
    )


# --- attempts -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Attempt:
    task: str
    number: int
    state: str
    failure: str | None
    at: datetime | None
    folder: Path


def _numbered(folder: Path) -> list[Path]:
    try:
        return sorted(
            (p for p in folder.iterdir() if p.name.isdigit() and p.is_dir()),
            key=lambda p: int(p.name),
            reverse=True,
        )
    except OSError:
        return []


def _attempts(repo: Path, since: datetime) -> dict[str, list[_Attempt]]:
    """Per task (run-dir name), its attempts newest first: all inside the window, and at least two."""
    runs = layout.runs_dir(repo)
    try:
        task_dirs = [p for p in runs.iterdir() if p.is_dir()]
    except OSError:
        return {}
    found: dict[str, list[_Attempt]] = {}
    for task_dir in task_dirs:
        rows: list[_Attempt] = []
        for folder in _numbered(task_dir):
            record = records.read_attempt(folder) or records.AttemptRecord({})
            at = record.last_change
            if len(rows) >= 2 and (at is None or at < since):
                break
            rows.append(
                _Attempt(
                    task=task_dir.name,
                    number=int(folder.name),
                    state=record.state_text,
                    failure=record.failure,
                    at=at,
                    folder=folder,
                )
            )
        if rows:
            found[task_dir.name] = rows
    return found


def attempt_stats(found: dict[str, list[_Attempt]], since: datetime) -> AttemptStats:
    recent = succeeded = failed = 0
    classes: dict[str, int] = {}
    repeated: list[str] = []
    last: datetime | None = None
    for rows in found.values():
        for row in rows:
            if row.at is None or row.at < since:
                continue
            recent += 1
            if row.state == AttemptState.DONE:
                succeeded += 1
            elif row.state == AttemptState.FAILED:
                failed += 1
                kind = row.failure or "unknown"
                classes[kind] = classes.get(kind, 0) + 1
            if row.state in FINISHED_STATES and (last is None or row.at > last):
                last = row.at
        finished = [row for row in rows if row.state in FINISHED_STATES]
        if len(finished) >= 2 and finished[0].state == finished[1].state == AttemptState.FAILED:
            evidence = records.read_evidence(finished[0].folder)
            repeated.append((evidence.task if evidence else None) or finished[0].task)
    return AttemptStats(
        recent=recent,
        succeeded=succeeded,
        failed=failed,
        failure_classes=dict(sorted(classes.items())),
        repeated_failures=tuple(sorted(repeated)),
        last_finished_at=last,
    )


# --- gates ----------------------------------------------------------------------------------------
def _bundles(evidence: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Evidence bundles inside an attempt's evidence.json or a scan file (the gates plane's shape)."""
    if isinstance(evidence.get("results"), list):
        yield evidence
    nested = evidence.get("bundle")
    if isinstance(nested, dict) and isinstance(nested.get("results"), list):
        yield nested
    for gate in evidence.get("gates") or ():
        if isinstance(gate, dict) and isinstance(gate.get("results"), list):
            yield gate


def _newest_scan(repo: Path) -> dict[str, Any] | None:
    folder = layout.scans_dir(repo)
    try:
        names = sorted(p.name for p in folder.iterdir() if p.suffix == ".json")
    except OSError:
        return None
    return read_record(folder / names[-1]) if names else None


@dataclass
class _Tally:
    """Findings counted from evidence bundles."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    leaks: int = 0
    newest: tuple[str, str] | None = None  # (created_at, status) of the newest bundle

    def add(self, evidence: dict[str, Any], *, only_new: bool) -> None:
        """``only_new``: count only the findings new in that attempt's diff."""
        for bundle in _bundles(evidence):
            statuses: set[str] = set()
            for result in bundle["results"]:
                if not isinstance(result, dict):
                    continue
                status = str(result.get("status", ""))
                statuses.add(status)
                findings = [f for f in result.get("findings") or () if isinstance(f, dict)]
                if only_new:
                    findings = [f for f in findings if f.get("new", True) is not False]
                for finding in findings:
                    severity = finding.get("severity", "medium")
                    if severity in self.counts:
                        self.counts[severity] += 1
                if result.get("failure_class") == FailureClass.SECRET_LEAK and status == "fail":
                    self.leaks += max(1, len(findings))
            overall = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
            created = str(bundle.get("created_at") or "")
            if self.newest is None or created >= self.newest[0]:
                self.newest = (created, overall)


def _worktree_gone(evidence: dict[str, Any]) -> bool:
    kept = evidence.get("worktree")
    return isinstance(kept, str) and bool(kept) and not os.path.isdir(kept)


def _blocking(evidence: dict[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for gate in evidence.get("gates") or ():
        if isinstance(gate, dict) and gate.get("passed") is False:
            names += [str(n) for n in gate.get("blocking") or () if str(n) not in names]
    return tuple(names)


def _blocked(row: _Attempt, evidence: dict[str, Any]) -> AttemptFindings | None:
    """An attempt that did not land, as information: None when it found nothing or its worktree is gone."""
    if _worktree_gone(evidence):
        return None
    tally = _Tally()
    tally.add(evidence, only_new=True)
    blocking = _blocking(evidence)
    if not (blocking or tally.leaks or any(tally.counts.values())):
        return None
    return AttemptFindings(
        task=str(evidence.get("task") or row.task),
        attempt=row.number,
        critical=tally.counts["critical"],
        high=tally.counts["high"],
        medium=tally.counts["medium"],
        low=tally.counts["low"],
        secret_leaks=tally.leaks,
        blocking=blocking,
        state=row.state,
    )


def gate_stats(repo: Path, found: dict[str, list[_Attempt]], since: datetime) -> GateStats:
    """Findings where they are. The target branch's: the newest hub scan of it, plus attempts that
    landed on it after that scan (a scan at a newer commit supersedes what landed before it). An
    attempt the gates blocked (failed or waiting, nothing landed) never counts there: while it is
    its task's newest attempt and its worktree exists, its findings are listed under it."""
    scan = _newest_scan(repo)
    scanned_at = parse_time(str(scan.get("created_at") or "")) if scan else None
    target = _Tally()
    commit: str | None = None
    source: str | None = None
    if scan:
        target.add(scan, only_new=False)
        located = scan.get("scan")
        tip = located.get("tip") if isinstance(located, dict) else None
        commit, source = (str(tip) if tip else None), "scan"
    blocked: list[AttemptFindings] = []
    landed_at: datetime | None = None
    for rows in found.values():
        latest = rows[0]
        if latest.at is None or latest.at < since:
            continue
        recorded = records.read_evidence(latest.folder)
        if recorded is None or not recorded.raw:
            continue
        evidence = recorded.raw
        if latest.state == AttemptState.DONE and evidence.get("landed_commit"):
            if scanned_at is not None and latest.at <= scanned_at:
                continue  # the scan judged the branch after this landed
            target.add(evidence, only_new=True)
            if landed_at is None or latest.at > landed_at:
                landed_at = latest.at
                commit, source = str(evidence["landed_commit"]), "landed attempt"
        elif latest.state in (AttemptState.FAILED, AttemptState.WAITING):
            entry = _blocked(latest, evidence)
            if entry is not None:
                blocked.append(entry)
    last: Literal["pass", "warn", "fail", "none"] = "none"
    if target.newest is not None:
        last = "fail" if target.newest[1] == "fail" else "warn" if target.newest[1] == "warn" else "pass"
    return GateStats(
        critical=target.counts["critical"],
        high=target.counts["high"],
        medium=target.counts["medium"],
        low=target.counts["low"],
        secret_leaks=target.leaks,
        last_status=last,
        commit=commit,
        source=source,
        blocked_attempts=tuple(sorted(blocked, key=lambda b: (b.task, b.attempt))),
    )


def runs_state(repo: Path, now: datetime) -> tuple[AttemptStats, GateStats]:
    since = now - RECENT_WINDOW
    found = _attempts(repo, since)
    return attempt_stats(found, since), gate_stats(repo, found, since)
