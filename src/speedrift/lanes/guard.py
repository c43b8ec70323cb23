"""The one path from drift findings to tasks: deterministic ids, dedup, caps, a budget, a journal.

:func:`apply` takes one ``drift check``'s :class:`~speedrift.lanes.model.CheckReport` and does,
per lane and its policy mode (:class:`~speedrift.lanes.policy.LaneMode`), what its actionable
findings (warning, error, critical) call for — info findings are only recorded:

- ``observe``: record only (OBSERVED);
- ``advise``: one log line on the task the finding is about, once per fingerprint per task
  (LOGGED; EXISTING when the journal shows it was logged before);
- ``redirect`` (the default): a follow-up task ``drift-<lane>-<fingerprint[:12]>`` — refused as
  EXISTING when that id (any status) or a task holding the same fingerprint exists, as CAPPED when
  the lane has ``max_active_per_lane`` active follow-ups, as CEILING when the repo has
  ``global_ceiling`` active drift follow-ups, as BUDGET when the lane created
  ``max_creates_per_hour`` in the hour before ``now``; else CREATED;
- ``heal``: therapydrift's findings as ``redirect``, every other lane's as ``advise``;
- ``breaker``: as ``advise``, and when findings on a task were also found by the lane's previous run
  for the same task, one ``drift-breaker-<task>`` follow-up per task (through the same refusals).

A finding that is gone is *resolved*: for a lane that ran and judged (no error, not skipped) —
every follow-up of a tree or graph lane, and for a diff or task lane only those about
``report.task`` — an active follow-up it created whose fingerprint it no longer reports is
abandoned when it is open and unclaimed (RESOLVED), or annotated once when someone works on it
(ANNOTATED). Breaker follow-ups are never resolved by the guard: a person closes them.

Every decision is taken under the journal's lock, from the graph reloaded under the graph's lock
(one :meth:`GraphStore.mutate` per call), so two concurrent checks never both create a task or
overrun a cap. Every outcome — refusals included — and one line per lane run (its fingerprints,
which the breaker compares) is appended to ``.speedrift/lanes/guard.jsonl``; :func:`journal` reads
it back (a torn last line is skipped).

Invariant: nothing else in the lanes creates, logs to or closes a task; a follow-up's id depends
only on its finding's fingerprint, so a rerun with the same findings creates nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from speedrift import fsutil
from speedrift.errors import SpeedriftError
from speedrift.graph import ids, ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import (
    ABANDONED,
    BLOCKED,
    DONE,
    INCOMPLETE,
    OPEN,
    Task,
    speedrift_data,
    status_of,
    str_list,
)
from speedrift.graph.store import GraphStore
from speedrift.lanes import fences
from speedrift.lanes import followup_text as text
from speedrift.lanes.journal import LOCK_FILE, append, journal_path, read_records
from speedrift.lanes.model import (
    SEVERITY_RANK,
    CheckReport,
    LaneFinding,
    LaneResult,
    LaneScope,
    fingerprint_of,
)
from speedrift.lanes.policy import DriftPolicy, LaneMode
from speedrift.times import iso_utc, parse_time

DRIFT_TAG = "drift"
DRIFT_KEY = "drift"  # speedrift.drift on a follow-up: {"lane", "kind", "fingerprint", "subject", "file"}
BREAKER_KIND = "breaker"
HEALING_LANE = "therapydrift"  # the one lane whose findings create follow-ups in heal mode
CONTRACT_LANE, CONTRACT_FENCE = "coredrift", "wg-contract"  # auto_followups = false: advice only
BUDGET_WINDOW = timedelta(hours=1)
_CLOSED = frozenset({DONE, ABANDONED})
_ABANDONABLE = frozenset({OPEN, BLOCKED, INCOMPLETE})  # when unclaimed: nobody works on it
_WRITES = frozenset({"created", "logged", "resolved", "annotated"})


class GuardStatus(StrEnum):
    CREATED = "created"
    EXISTING = "existing"  # the follow-up exists (or the advice was logged before)
    CAPPED = "capped"  # the lane has max_active_per_lane active follow-ups
    CEILING = "ceiling"  # the repo has global_ceiling active drift follow-ups
    BUDGET = "budget"  # the lane created max_creates_per_hour in the last hour
    OBSERVED = "observed"  # recorded only (mode observe, an info finding, creation or logging off)
    LOGGED = "logged"  # advice logged to the task the finding is about
    RESOLVED = "resolved"  # the finding is gone: its open follow-up was abandoned
    ANNOTATED = "annotated"  # the finding is gone but its follow-up is being worked on: a log line
    ERROR = "error"  # the guard could not act (an invalid id, a graph it cannot write)


@dataclass(frozen=True, slots=True)
class GuardOutcome:
    lane: str
    kind: str
    fingerprint: str
    task_id: str  # the follow-up's id, or the task advice was logged to; "" when none
    status: GuardStatus
    detail: str
    at: str  # ISO-8601 UTC

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


# --- ids -------------------------------------------------------------------------------------------
def _id_part(text_value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text_value).strip("-_") or "lane"


def _bounded_id(value: str) -> str:
    if len(value) > ids.MAX_ID_LENGTH:
        digest = hashlib.sha256(value.encode()).hexdigest()[:10]
        value = f"{value[: ids.MAX_ID_LENGTH - 11].rstrip('.-_')}-{digest}"
    return ids.validate_id(value)


def followup_id(finding: LaneFinding) -> str:
    """``drift-<lane>-<fingerprint[:12]>``: the same finding always maps to the same task id."""
    return _bounded_id(f"drift-{_id_part(finding.lane)}-{finding.fingerprint[:12]}")


def breaker_id(subject: str) -> str:
    return _bounded_id(f"drift-breaker-{subject}")


# --- the graph's drift follow-ups -------------------------------------------------------------------
def drift_of(task: Task) -> dict[str, Any]:
    """``speedrift.drift`` of a follow-up the guard created ({} for any other task)."""
    data = speedrift_data(task).get(DRIFT_KEY)
    return data if isinstance(data, dict) else {}


def is_drift_followup(task: Task) -> bool:
    return bool(drift_of(task)) or DRIFT_TAG in str_list(task, "tags")


def is_active(task: Task) -> bool:
    return status_of(task) not in _CLOSED


def lane_of(task: Task) -> str | None:
    """The lane a drift follow-up belongs to (its drift data, else its tags), or None."""
    lane = drift_of(task).get("lane")
    return lane if isinstance(lane, str) else None


def _of_lane(task: Task, lane: str) -> bool:
    return lane_of(task) == lane or {DRIFT_TAG, lane} <= set(str_list(task, "tags"))


@dataclass
class _History:
    """What the journal says, kept up to date while one :func:`apply` decides."""

    created: dict[str, list[datetime]]  # lane -> when each of its follow-ups was created
    logged: set[tuple[str, str]]  # (task, fingerprint) advice already logged
    annotated: set[tuple[str, str]]  # (follow-up, fingerprint) already annotated as resolved
    runs: dict[tuple[str, str], set[str]]  # (lane, task) -> the fingerprints of its latest run

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> _History:
        history = cls(defaultdict(list), set(), set(), {})
        for record in records:
            if record.get("record") == "run":
                fingerprints = record.get("fingerprints")
                if isinstance(fingerprints, list):
                    key = (str(record.get("lane", "")), str(record.get("task", "")))
                    history.runs[key] = {str(f) for f in fingerprints}
                continue
            status, task, fingerprint = record.get("status"), record.get("task_id"), record.get("fingerprint")
            pair = (str(task), str(fingerprint))
            if status == GuardStatus.CREATED:
                at = parse_time(record.get("at"))
                if at is not None:
                    history.created[str(record.get("lane", ""))].append(at)
            elif status == GuardStatus.LOGGED:
                history.logged.add(pair)
            elif status == GuardStatus.ANNOTATED:
                history.annotated.add(pair)
        return history

    @staticmethod
    def kept(records: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """What a rotated journal must carry over for the guard to decide as before: each lane's
        latest run (the breaker), creations within the budget window, every advice logged and
        every resolution annotated (each is done once)."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        carried: list[dict[str, Any]] = []
        start = now - BUDGET_WINDOW
        for record in records:
            if record.get("record") == "run":
                latest[(str(record.get("lane", "")), str(record.get("task", "")))] = record
            elif record.get("status") in (GuardStatus.LOGGED, GuardStatus.ANNOTATED):
                carried.append(record)
            elif record.get("status") == GuardStatus.CREATED:
                at = parse_time(record.get("at"))
                if at is not None and at > start:
                    carried.append(record)
        return [*carried, *latest.values()]

    def created_within(self, lane: str, now: datetime) -> int:
        start = now - BUDGET_WINDOW
        return sum(1 for at in self.created[lane] if start < at <= now)


def judged(result: LaneResult) -> bool:
    """Whether the lane ran and judged: its findings (none included) are what it sees now."""
    return result.error is None and result.skipped is None


# --- applying a report ------------------------------------------------------------------------------
def apply(
    repo: Path,
    report: CheckReport,
    policy: DriftPolicy,
    *,
    now: datetime,
    actor: str = "speedrift-lanes",
    write_log: bool = True,
    create: bool = True,
    resolve: bool = True,
    scopes: Mapping[str, LaneScope] | None = None,
) -> tuple[GuardOutcome, ...]:
    """Turn ``report``'s findings into follow-ups, advice and resolutions under ``policy``; every
    outcome is returned and journaled. ``create=False``: nothing is created (what would be is
    OBSERVED); ``write_log=False``: no advice is logged; ``resolve=False``: nothing is resolved.
    ``scopes``: each lane's scope (a lane missing from it is taken as a diff lane)."""
    path = journal_path(repo)
    with fsutil.flocked(path.with_name(LOCK_FILE)):
        history = _History.of(read_records(path))
        decider = _Decider(
            report, policy, history, now, actor, write_log=write_log, create=create, resolve=resolve
        )
        decider.scopes = scopes or {}
        store = GraphStore.of_repo(repo)
        failure: str | None = None
        if store is None:
            failure = f"no task graph in {repo} (run `speedrift init`)"
        else:
            try:
                store.mutate(decider.build, actor=actor, now=now)
            except (SpeedriftError, OSError) as exc:
                failure = f"the task graph was not changed: {exc}"
        if failure is not None:
            if not decider.ran:
                decider.build(Graph(), now)
            decider.failed(failure)
        records: list[dict[str, Any]] = [
            {"record": "outcome", **o.to_json(), "head": report.head} for o in decider.outcomes
        ]
        records += decider.runs
        append(path, records, keep=lambda kept: _History.kept(kept, now))
    return tuple(decider.outcomes)


_What = tuple[str, str, str]  # what an outcome is about: (lane, kind, fingerprint)


def _about(finding: LaneFinding) -> _What:
    return finding.lane, finding.kind, finding.fingerprint


@dataclass
class _Decider:
    """One :func:`apply`'s decisions, taken in :meth:`build` from the graph reloaded under its lock."""

    report: CheckReport
    policy: DriftPolicy
    history: _History
    now: datetime
    actor: str
    write_log: bool
    create: bool
    resolve: bool
    scopes: Mapping[str, LaneScope] = field(default_factory=dict)
    outcomes: list[GuardOutcome] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # one journal line per lane run
    ran: bool = False
    work: Graph = field(default_factory=Graph)  # the graph as this call's changes leave it
    mutation: ops.Mutation = field(default_factory=ops.Mutation)
    by_fingerprint: dict[str, str] = field(default_factory=dict)  # a follow-up's fingerprint -> its id

    # -- bookkeeping
    def _outcome(self, what: _What, task_id: str, status: GuardStatus, detail: str) -> None:
        self.outcomes.append(GuardOutcome(*what, task_id, status, detail, iso_utc(self.now)))

    def _merge(self, sub: ops.Mutation) -> None:
        for task in sub.tasks:
            self.work.tasks[task["id"]] = task
            self._index(task)
        self.mutation.tasks += sub.tasks
        self.mutation.records += sub.records
        self.mutation.warnings += sub.warnings

    def _index(self, task: Task) -> None:
        fingerprint = drift_of(task).get("fingerprint")
        if isinstance(fingerprint, str):
            self.by_fingerprint.setdefault(fingerprint, task["id"])

    def failed(self, why: str) -> None:
        """The graph was not written: nothing that would have changed it happened."""
        self.outcomes = [
            replace(o, status=GuardStatus.ERROR, detail=f"{o.status}: {why}") if o.status in _WRITES else o
            for o in self.outcomes
        ]

    def mode(self, lane: str) -> LaneMode:
        known = self.policy.lanes.get(lane)
        return known.mode if known is not None else self.policy.mode

    # -- the decisions
    def build(self, graph: Graph, _now: datetime) -> ops.Mutation:
        self.ran = True
        self.work = Graph()
        self.work.tasks = dict(graph.tasks)  # decisions see what this call already added
        self.mutation, self.by_fingerprint, self.outcomes, self.runs = ops.Mutation(), {}, [], []
        for task in graph.tasks.values():
            self._index(task)
        for result in self.report.results:
            if not judged(result):
                continue  # a lane that could not judge (or did not run) neither creates nor resolves
            self._lane(result)
            fingerprints = sorted({f.fingerprint for f in result.findings})
            self.runs.append(
                {"record": "run", "lane": result.lane, "task": self.report.task or ""}
                | {"head": self.report.head, "at": iso_utc(self.now), "fingerprints": fingerprints}
            )
        if self.resolve:
            for result in self.report.results:
                if judged(result):
                    self._resolve(result)
        return self.mutation

    def _lane(self, result: LaneResult) -> None:
        mode = self.mode(result.lane)
        for finding in result.findings:
            if not finding.actionable:
                self._observe(finding, f"{finding.severity}: not actionable, recorded only")
            elif mode is LaneMode.OBSERVE:
                self._observe(finding, "mode observe: recorded only")
            elif SEVERITY_RANK[finding.severity] < SEVERITY_RANK[self.policy.guard.min_severity]:
                self._advise(finding)  # below [guard] min_severity: advice, not a task
            elif self._contract_declines(finding):
                self._advise(finding)  # the task's wg-contract says auto_followups = false
            elif mode is LaneMode.REDIRECT or (mode is LaneMode.HEAL and result.lane == HEALING_LANE):
                self._followup(finding)
            else:  # advise, breaker, and heal for every lane but therapydrift
                self._advise(finding)
        if mode is LaneMode.BREAKER:
            self._breaker(result)

    def _contract_declines(self, finding: LaneFinding) -> bool:
        """Whether the task a coredrift finding is about declines automatic follow-ups: its
        ``wg-contract`` sets ``auto_followups = false`` (the finding is then advice on the task)."""
        task = self.work.tasks.get(finding.subject) if finding.lane == CONTRACT_LANE else None
        if task is None:
            return False
        try:
            contract = fences.fence(task.get("description"), CONTRACT_FENCE) or {}
        except fences.FenceError:
            return False  # coredrift reports the broken contract itself
        return contract.get("auto_followups") is False

    def _observe(self, finding: LaneFinding, detail: str, task_id: str = "") -> None:
        self._outcome(_about(finding), task_id, GuardStatus.OBSERVED, detail)

    def _advise(self, finding: LaneFinding) -> None:
        subject, what = finding.subject, _about(finding)
        if not self.write_log:
            return self._observe(finding, "logging is off: recorded only", subject)
        if not subject:
            return self._observe(finding, "about the repository, not a task: nothing to log to")
        if subject not in self.work.tasks:
            return self._observe(finding, f"task {subject} is not in the graph: nothing to log to", subject)
        if (subject, finding.fingerprint) in self.history.logged:
            return self._outcome(what, subject, GuardStatus.EXISTING, f"already logged to {subject}")
        try:
            sub = ops.log_message(self.work, subject, text.advice(finding), now=self.now, actor=self.actor)
        except (SpeedriftError, ValueError) as exc:
            return self._outcome(what, subject, GuardStatus.ERROR, str(exc))
        self._merge(sub)
        self.history.logged.add((subject, finding.fingerprint))
        self._outcome(what, subject, GuardStatus.LOGGED, f"advice logged to {subject}")

    def _refusal(self, lane: str) -> tuple[GuardStatus, str] | None:
        """Why the guard creates nothing more for ``lane`` now (a cap, the ceiling, the budget)."""
        guard = self.policy.guard
        active = [t for t in self.work.tasks.values() if is_active(t) and is_drift_followup(t)]
        mine = sum(1 for t in active if _of_lane(t, lane))
        if mine >= guard.max_active_per_lane:
            why = f"{lane} has {mine} active follow-ups (max_active_per_lane = {guard.max_active_per_lane})"
            return GuardStatus.CAPPED, why
        if len(active) >= guard.global_ceiling:
            why = f"the repo has {len(active)} active drift follow-ups"
            why += f" (global_ceiling = {guard.global_ceiling})"
            return GuardStatus.CEILING, why
        made = self.history.created_within(lane, self.now)
        if made >= guard.max_creates_per_hour:
            why = f"{lane} created {made} follow-ups in the last hour"
            why += f" (max_creates_per_hour = {guard.max_creates_per_hour})"
            return GuardStatus.BUDGET, why
        return None

    def _existing(self, task_id: str, fingerprint: str) -> str | None:
        if task_id in self.work.tasks:
            return f"{task_id} exists ({status_of(self.work.tasks[task_id])})"
        other_id = self.by_fingerprint.get(fingerprint)
        if other_id is not None and other_id in self.work.tasks:
            return f"{other_id} ({status_of(self.work.tasks[other_id])}) holds the same finding"
        return None

    def _create(self, what: _What, task_id: str, spec: ops.NewTask, drift: dict[str, Any]) -> None:
        """Create ``spec`` unless it exists or the guard refuses; one outcome either way."""
        lane = what[0]
        existing = self._existing(task_id, what[2])
        if existing is not None:
            return self._outcome(what, task_id, GuardStatus.EXISTING, existing)
        if not self.create:
            return self._outcome(
                what, task_id, GuardStatus.OBSERVED, f"follow-ups are off: would create {task_id}"
            )
        refused = self._refusal(lane)
        if refused is not None:
            return self._outcome(what, task_id, *refused)
        try:
            sub = ops.add_task(self.work, spec, now=self.now, actor=self.actor)
            ops.set_fields(
                self.work, task_id, speedrift={DRIFT_KEY: drift}, now=self.now, actor=self.actor, within=sub
            )
        except (SpeedriftError, ValueError) as exc:
            return self._outcome(what, task_id, GuardStatus.ERROR, str(exc))
        self._merge(sub)
        self.history.created[lane].append(self.now)
        after = f" after {spec.after[0]}" if spec.after else ""
        self._outcome(what, task_id, GuardStatus.CREATED, f"created {task_id}{after}")

    def _followup(self, finding: LaneFinding) -> None:
        try:
            task_id = followup_id(finding)
        except SpeedriftError as exc:
            return self._outcome(_about(finding), "", GuardStatus.ERROR, str(exc))
        subject_exists = bool(finding.subject) and finding.subject in self.work.tasks
        scope = list(finding.fix_scope)
        spec = ops.NewTask(
            text.title(finding),
            task_id=task_id,
            description=text.description(finding, scope, subject_exists),
            after=[finding.subject] if subject_exists else [],
            tags=list(dict.fromkeys([DRIFT_TAG, finding.lane, finding.kind])),
            touch=scope,
        )
        drift = {"lane": finding.lane, "kind": finding.kind, "fingerprint": finding.fingerprint}
        drift |= {"subject": finding.subject, "file": finding.file}
        self._create(_about(finding), task_id, spec, drift)

    def _breaker(self, result: LaneResult) -> None:
        """One ``drift-breaker-<task>`` per task whose actionable findings the lane's previous run
        (for the same task) also reported."""
        previous = self.history.runs.get((result.lane, self.report.task or ""), set())
        persisting: dict[str, list[LaneFinding]] = defaultdict(list)
        for finding in result.actionable:
            if finding.fingerprint in previous:
                persisting[finding.subject or self.report.task or ""].append(finding)
        for subject, findings in persisting.items():
            what = (result.lane, BREAKER_KIND, fingerprint_of(result.lane, BREAKER_KIND, subject, "", ""))
            if not subject or subject not in self.work.tasks:
                why = f"{len(findings)} finding(s) persisted, but not on a task in the graph: no breaker"
                self._outcome(what, "", GuardStatus.OBSERVED, why)
                continue
            try:
                task_id = breaker_id(subject)
            except SpeedriftError as exc:
                self._outcome(what, "", GuardStatus.ERROR, str(exc))
                continue
            stuck = LaneFinding(result.lane, BREAKER_KIND, f"task {subject} keeps drifting (circuit breaker)")
            spec = ops.NewTask(
                text.title(stuck),
                task_id=task_id,
                description=text.breaker_description(subject, result.lane, findings),
                after=[subject],
                tags=[DRIFT_TAG, result.lane, BREAKER_KIND],
            )
            drift = {"lane": result.lane, "kind": BREAKER_KIND, "fingerprint": what[2]}
            self._create(what, task_id, spec, drift | {"subject": subject, "file": ""})

    def _resolve(self, result: LaneResult) -> None:
        lane = result.lane
        whole = self.scopes.get(lane, LaneScope.DIFF) in (LaneScope.TREE, LaneScope.GRAPH)
        if not whole and not self.report.task:
            return  # a diff or task lane judged no task: it says nothing about any follow-up
        current = {f.fingerprint for f in result.findings}
        head = self.report.head[:12]
        for task_id, task in list(self.work.tasks.items()):
            drift = drift_of(task)
            fingerprint = drift.get("fingerprint")
            if drift.get("lane") != lane or drift.get("kind") == BREAKER_KIND or not is_active(task):
                continue
            if not isinstance(fingerprint, str) or fingerprint in current:
                continue
            if not whole and drift.get("subject") != self.report.task:
                continue
            what = (lane, str(drift.get("kind", "")), fingerprint)
            try:
                if status_of(task) in _ABANDONABLE and not task.get("assigned"):
                    reason = f"resolved: {lane} no longer finds it at {head}"
                    self._merge(
                        ops.abandon(self.work, task_id, reason=reason, now=self.now, actor=self.actor)
                    )
                    self._outcome(what, task_id, GuardStatus.RESOLVED, reason)
                elif (task_id, fingerprint) not in self.history.annotated:
                    note = f"{lane} no longer finds this at {head}: the drift may be resolved;"
                    note += " finish or drop this task accordingly"
                    self._merge(ops.log_message(self.work, task_id, note, now=self.now, actor=self.actor))
                    self.history.annotated.add((task_id, fingerprint))
                    self._outcome(what, task_id, GuardStatus.ANNOTATED, note)
            except (SpeedriftError, ValueError) as exc:
                self._outcome(what, task_id, GuardStatus.ERROR, str(exc))
