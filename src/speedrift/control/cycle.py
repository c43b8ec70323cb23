"""One control cycle: observe -> prioritize -> plan -> (policy) -> execute -> record.

The stages are the pure core (score, metrics, edges, plan, policy, attention queues, narrative)
between two thin edges (the observer, the handlers); this module only wires them and keeps the
state one cycle hands to the next (previous health and metrics for trends, since when each
attention entry waits, the observer's incremental cache).

Restart safety: every action is written to the register as *started* before its handler runs
and *finished* after. A hub killed in between leaves a started row; the next :class:`Hub`
marks it ``interrupted`` and records that in a ledger entry before its first cycle, so nothing
is lost, and the policy's dedup/cooldown (fed by the register) keeps it from running twice.

Several hubs, one register: right before executing, the hub leases the ecosystem's repos
(control/hublease.py) and acts only in those it holds. The register unreachable: the cycle still
observes, scores and writes the ledger, executes nothing, and the register is caught up the first
cycle it answers again (control/registergap.py). Neither ever fails the cycle.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from speedrift import hubdir, pausestore
from speedrift.control.assess.judgement import RepoMemo, assess, build_record, with_prompts
from speedrift.control.assess.queues import carried_since, carried_since_plain
from speedrift.control.ecosystem.load import Ecosystem, load_ecosystem
from speedrift.control.fleetsteps import FleetSteps
from speedrift.control.handlers.dispatch import HandlerContext, execute
from speedrift.control.hublease import (
    DEFAULT_LEASE_TTL,
    HubRule,
    Leased,
    hold_all,
    hub_identity,
    lease_reason,
    repos_to_lease,
    split_by_lease,
)
from speedrift.control.observe.observer import Observer
from speedrift.control.plan.policy import cut_after_hard_stop
from speedrift.control.registergap import RegisterGap
from speedrift.fleet import budgetpub, supervisor
from speedrift.pausestore import RuntimePause
from speedrift.register.actions import Action, ActionKind
from speedrift.register.ledger import Ledger
from speedrift.register.record import (
    ActionHistory,
    CycleRecord,
    Metric,
    Outcome,
    OutcomeStatus,
    Plan,
    RepoHealth,
    Skipped,
)
from speedrift.register.store import Register, RegisterUnavailable
from speedrift.serialize import cycle_to_dict
from speedrift.times import now_utc, short_stamp

HISTORY_WINDOW = timedelta(hours=24)
LEDGER_LOOKBACK = 8  # ledger lines searched at start for the newest cycle (operator entries interleave)
# a failed dispatch says little about the repo (the next cycle re-observes); a run of the drift
# lanes fails when one lane could not judge (its error is the repo's finding, scored and queued),
# which says nothing about other repos; every other failed action means a verification failed,
# and the cycle stops there
HARD_STOP_EXEMPT = frozenset({ActionKind.DISPATCH_READY, ActionKind.RUN_LANES})
HINTED: frozenset[OutcomeStatus] = frozenset({"failed", "refused"})  # outcomes the next-cycle hints name
T = TypeVar("T")


def new_cycle_id(now: datetime) -> str:
    return f"c-{short_stamp(now)}-{secrets.token_hex(3)}"


class Hub:
    """The control plane's state across cycles for one ecosystem.toml."""

    def __init__(
        self,
        ecosystem_path: Path,
        *,
        clock: Callable[[], datetime] = now_utc,
        speedrift_argv: list[str] | None = None,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
    ) -> None:
        self.ecosystem_path = ecosystem_path.resolve()
        self.ecosystem: Ecosystem = load_ecosystem(self.ecosystem_path)
        self.hub = hubdir.hub_dir(self.ecosystem_path)
        self.hub_id = hub_identity(self.hub)  # whose leases these are (control/hublease.py)
        self.lease_ttl = lease_ttl  # `hub up` sets it from its interval (hublease.lease_ttl_for)
        self.clock = clock
        self.speedrift_argv = speedrift_argv or [sys.executable, "-m", "speedrift"]
        self.register = Register.open(self.hub, url=self.ecosystem.register_url)
        self.ledger = Ledger(self.hub)
        self.gap = RegisterGap(self.hub, self.hub_id, self.ledger)  # a register outage (registergap.py)
        self.observer = Observer(self.ecosystem)
        self.previous: CycleRecord | None = None
        self.warm_workers = False  # `hub up` keeps a warm worker for its dispatches (handlers/warm.py)
        self.previous_health: dict[str, RepoHealth] = {}
        self.previous_metrics: dict[str, Metric] | None = None
        self._memo: dict[str, RepoMemo] = {}
        self._approved_by: dict[str, str] = {}  # this cycle's approved action ids -> approver
        self._leased: Leased | None = None  # the leases this cycle confirmed (None: it took none)
        self._now = clock()  # the running cycle's start: a gap found in it begins there
        self._queue_since = self._recorded_queue_since()
        # standing agents, the nightwatch, compound review (control/fleetsteps.py)
        self.fleet = FleetSteps(self.hub, self.ecosystem_path, self.ledger, self.speedrift_argv)
        if not self.gap.open:  # else deferred until the register answers (RegisterGap.close)
            try:
                self._recover_interrupted()
            except RegisterUnavailable as error:
                self.gap.lost(self._now, error)

    def _recorded_queue_since(self) -> dict[str, datetime]:
        """Since when each attention entry waits, as the newest recorded cycle says: a restarted hub
        keeps the waiting times it showed before (queues.carried_since carries them on from here)."""
        for line in reversed(self.ledger.read(last=LEDGER_LOOKBACK)):
            if line.get("cycle_id") and not line.get("kind"):
                return carried_since_plain(line)
        return {}

    # ------------------------------------------------------------------ restart safety

    def _recover_interrupted(self) -> None:
        interrupted = self.register.interrupted_actions()
        if not interrupted:
            return
        now = self.clock()
        self.register.mark_interrupted([row["action_id"] for row in interrupted], now)
        self.ledger.append(
            {
                "kind": "recovery",
                "generated_at": now,
                "interrupted": interrupted,
                "detail": "the hub stopped while these actions ran; marked interrupted, not retried "
                "before their cooldown",
            }
        )

    def reload(self) -> None:
        """Re-read ecosystem.toml (between cycles) and keep the observer's cache when repos are unchanged.
        Repos taken out of the file are no longer leased by this hub."""
        fresh = load_ecosystem(self.ecosystem_path)
        if fresh.repos != self.ecosystem.repos:
            self.observer = Observer(fresh)
            self._memo = {}
            gone = {e.name for e in self.ecosystem.repos} - {e.name for e in fresh.repos}
            if gone:
                self.release_leases(sorted(gone))
        self.ecosystem = fresh

    # ------------------------------------------------------------------ the register, fail-safe

    def _ask(self, call: Callable[[], T], fallback: T) -> T:
        """``call()`` on the register, or ``fallback`` while it cannot be reached (the gap is noted)."""
        if self.gap.open:
            return fallback
        try:
            return call()
        except RegisterUnavailable as error:
            self.gap.lost(self._now, error)
            return fallback

    def _reconnect(self, now: datetime) -> None:
        """In a gap: catch the register up if it answers again (registergap.py); else stay in it."""
        if not self.gap.open:
            return
        with contextlib.suppress(RegisterUnavailable):  # still unreachable: this cycle observes only
            self.gap.close(self.register, now, self._recover_interrupted)

    @property
    def leased(self) -> Leased | None:
        """The leases the last cycle confirmed (None: it took none)."""
        return self._leased

    def release_leases(self, repos: Sequence[str] | None = None) -> int:
        """Give up this hub's leases (all, or those of ``repos``); best effort: 0 when unreachable."""
        try:
            return self.register.release_leases(self.hub_id, repos)
        except RegisterUnavailable:
            return 0

    # ------------------------------------------------------------------ the cycle

    def cycle(self, *, execute_actions: bool = True) -> CycleRecord:
        now = self.clock()
        self._now = now
        cycle_id = new_cycle_id(now)
        policy = self.ecosystem.policy
        if not execute_actions:  # `hub once --plan`: this cycle runs under plan_only whatever the file says
            policy = policy.model_copy(update={"plan_only": True})
        # every supervisor on the machine counts the ecosystem's cap on agents (fleet/supervisor.py)
        supervisor.publish_ecosystem_limit(self.ecosystem.policy.max_agents, str(self.ecosystem_path))
        # …and its money settings: every supervisor's budget admission reads them (fleet/budgetpub.py)
        budgetpub.publish_budgets(
            self.ecosystem_path, [e.path for e in self.observer.entries], self.ecosystem.ops
        )
        # the standing agents' runs due now are created (and the nightwatch's pauses set) before
        # the observer looks, so this cycle dispatches and holds them
        self.fleet.before(self.ecosystem, now, plan_only=policy.plan_only)
        self._reconnect(now)  # a register back after a gap is caught up before anything reads it
        # corrective tasks finished in their repos free their slots before the policy counts them
        paths = {e.name: e.path for e in self.observer.entries}
        self._ask(lambda: self.register.refresh_corrective(paths, now), 0)
        # unreachable: an empty history is safe, nothing executes in a gap
        history = self._ask(lambda: self.register.history(now, HISTORY_WINDOW), ActionHistory())
        pauses = self._runtime_pauses(now)
        assessment = assess(
            self.ecosystem,
            self.observer,
            policy,
            history,
            self.previous_health,
            self.previous_metrics,
            now,
            self._memo,
            with_prompts=False,  # presentation adds them: assess.with_prompts
            pauses=pauses,
        )
        plan = self._with_approvals(assessment.plan)
        allowed, unleased = self._lease(plan.allowed, plan_only=policy.plan_only)
        outcomes, stopped = self._execute(allowed, cycle_id)
        skipped = (*plan.skipped, *unleased, *stopped)
        record = build_record(
            assessment,
            cycle_id=cycle_id,
            finished_at=self.clock(),
            plan_only=policy.plan_only,
            ecosystem=self.ecosystem,
            previous_health=self.previous_health,
            skipped=skipped,
            outcomes=outcomes,
            hints=_hints(skipped, outcomes),
            queue_since=self._queue_since,
        )
        self.ledger.append(record)  # local: written whether or not the register answers
        self._ask(lambda: self.register.record_cycle(record), None)  # in a gap: copied when it is back
        self.fleet.after(self.ecosystem, now, plan_only=policy.plan_only)
        self.previous = record
        self._queue_since = carried_since(record.queues)
        self.previous_health = assessment.healths
        self.previous_metrics = assessment.metrics
        self._memo = assessment.memo
        return record

    def _runtime_pauses(self, now: datetime) -> list[RuntimePause]:
        """Publish ``[policy] auto_resume`` to every supervisor on the machine, then read the
        runtime pauses the plan must respect (pausestore.py; an unreadable store holds nothing)."""
        pausestore.set_auto_resume(self.ecosystem.policy.auto_resume, f"the hub of {self.ecosystem_path}")
        try:
            return pausestore.active(now)
        except OSError:
            return []

    def _with_approvals(self, plan: Plan) -> Plan:
        """An operator's approval carries the operator's authority: the approved action runs even when
        plan_only, mode or budget held it back — but never past the handlers' own refusals, nor in a
        repo another hub holds. The approval is used up only when the action is about to run
        (:meth:`_execute`), so one held back (lease, register, hard stop) stays approved."""
        self._approved_by = {}
        approvers: dict[str, str] = self._ask(self.register.pending_approvers, {})
        if not approvers:
            return plan
        promoted = [s.action for s in plan.skipped if s.action.id in approvers]
        if not promoted:
            return plan
        self._approved_by = {action.id: approvers[action.id] for action in promoted}
        keep = tuple(s for s in plan.skipped if s.action.id not in approvers)
        return Plan(allowed=tuple(promoted) + plan.allowed, skipped=keep)

    def _lease(
        self, allowed: tuple[Action, ...], *, plan_only: bool
    ) -> tuple[tuple[Action, ...], tuple[Skipped, ...]]:
        """Lease the repos this cycle may act in (hublease.py); the actions elsewhere are held back."""
        self._leased = None
        repos = repos_to_lease([e.name for e in self.ecosystem.repos], allowed, plan_only=plan_only)
        if not repos and not allowed:
            return (), ()  # a plan-only cycle with nothing approved takes no lease
        if self.gap.open:
            return (), hold_all(allowed, self.gap.detail)
        at = self.clock()
        try:
            grant = self.register.acquire_leases(self.hub_id, repos, at, self.lease_ttl)
        except RegisterUnavailable as error:
            self.gap.lost(self._now, error)
            return (), hold_all(allowed, self.gap.detail)
        self._leased = Leased.of(grant, repos, at, self.lease_ttl)
        return split_by_lease(allowed, self._leased, at)

    def _renew(self, at: datetime) -> None:
        """Half the lease went by during this cycle's actions: renew the repos still held."""
        leased = self._leased
        if leased is None or not leased.held:
            return
        try:
            grant = self.register.acquire_leases(self.hub_id, sorted(leased.held), at, self.lease_ttl)
        except RegisterUnavailable as error:
            self.gap.lost(self._now, error)
            return
        self._leased = Leased.of(grant, leased.held, at, self.lease_ttl)

    def _execute(self, allowed: tuple[Action, ...], cycle_id: str) -> tuple[list[Outcome], list[Skipped]]:
        outcomes: list[Outcome] = []
        held: list[Skipped] = []
        by_name = {entry.name: entry for entry in self.observer.entries}
        for index, action in enumerate(allowed):
            entry = by_name.get(action.repo)
            if entry is None:
                continue
            started_at = self.clock()
            if self._leased is not None and self._leased.due_for_renewal(started_at):
                self._renew(started_at)
            if self.gap.open or self._leased is None:
                return outcomes, [*held, *hold_all(allowed[index:], self.gap.detail or "no lease taken")]
            if not self._leased.holds(action.repo, started_at):
                reason = lease_reason(
                    action.repo,
                    self._leased.others.get(action.repo),
                    started_at,
                    ran_out=self._leased.expires_at,
                )
                held.append(Skipped(action, HubRule.HUB_LEASE.value, reason))
                continue
            try:
                self.register.action_started(action, cycle_id, started_at)
                if action.id in self._approved_by:  # used up by the cycle that runs it, only then
                    self.register.consume_approval(action.id, cycle_id, started_at)
            except RegisterUnavailable as error:  # nothing runs unless its start is recorded
                self.gap.lost(self._now, error)
                return outcomes, [*held, *hold_all(allowed[index:], self.gap.detail)]
            context = HandlerContext(
                repo=entry.path,
                entry=entry,
                now=self.clock,
                speedrift_argv=self.speedrift_argv,
                log_dir=hubdir.logs_dir(self.hub),
                cycle_id=cycle_id,
                approved_by=self._approved_by.get(action.id),
                max_agents=self.ecosystem.policy.max_agents,
                warm_workers=self.warm_workers,
                ecosystem_path=self.ecosystem_path,
                executor=self.ecosystem.executor,  # handed to the processes it starts
            )
            outcome = execute(action, context)
            try:
                self.register.action_finished(outcome)
            except RegisterUnavailable as error:  # it ran: its end is recorded when the register is back
                self.gap.lost(self._now, error)
                self.gap.unfinished(outcome)
            outcomes.append(outcome)
            if (
                outcome.status == "failed"
                and self.ecosystem.policy.hard_stop_on_failed_verification
                and action.kind not in HARD_STOP_EXEMPT
            ):
                return outcomes, [*held, *cut_after_hard_stop(allowed[index + 1 :], action)]
        return outcomes, held


def _hints(skipped: Sequence[Skipped], outcomes: Sequence[Outcome]) -> tuple[str, ...]:
    hints: list[str] = []
    rules: dict[str, int] = {}
    for skipped_action in skipped:
        rules[skipped_action.rule] = rules.get(skipped_action.rule, 0) + 1
    if rules.get("plan_only"):
        hints.append(
            f"{rules['plan_only']} action(s) held by plan_only; set [policy] plan_only = false to execute"
        )
    if rules.get("lease"):
        hints.append(
            f"{rules['lease']} action(s) held by an expired or missing lease: renew with `speedrift mode`"
        )
    if count := rules.get(HubRule.HUB_LEASE):
        hints.append(
            f"{count} action(s) held: another hub holds their repo's lease (`speedrift hub status` shows "
            "which); this hub takes a repo over when that lease runs out"
        )
    if count := rules.get(HubRule.REGISTER_UNAVAILABLE):
        hints.append(
            f"{count} action(s) held: the register cannot be reached, so the hub executes nothing; "
            "it catches up and resumes once the register answers"
        )
    for outcome in outcomes:
        if outcome.status in HINTED:
            hints.append(f"{outcome.action_id} {outcome.status}: {outcome.detail}")
    return tuple(hints)


def run_once(ecosystem_path: Path, *, execute_actions: bool = True) -> dict[str, Any]:
    """`speedrift hub once`: one cycle, recorded, returned as a dict (prompts included). The leases the
    cycle took are given back after it, unless `hub up` runs for the same hub (same id: its leases)."""
    from speedrift.control.daemon import running_hub  # same layer; daemon imports this module

    hub = Hub(ecosystem_path)
    try:
        record = hub.cycle(execute_actions=execute_actions)
        hub.fleet.wait()  # a compound review this cycle started finishes before the command returns
    finally:
        if hub.leased is not None and running_hub(hub.hub) is None:
            hub.release_leases()
        with contextlib.suppress(RegisterUnavailable):
            hub.register.close()
    return cycle_to_dict(with_prompts(record))
