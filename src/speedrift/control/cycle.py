"""One control cycle: observe -> prioritize -> plan -> (policy) -> execute -> record.

The stages are the pure core (score, metrics, edges, plan, policy, attention queues, narrative)
between two thin edges (the observer, the handlers); this module only wires them and keeps the
state one cycle hands to the next (previous health and metrics for trends, since when each
attention entry waits, the observer's incremental cache).

Restart safety: every action is written to the register as *started* before its handler runs
and *finished* after. A hub killed in between leaves a started row; the next :class:`Hub`
marks it ``interrupted`` and records that in a ledger entry before its first cycle, so nothing
is lost, and the policy's dedup/cooldown (fed by the register) keeps it from running twice.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import hubdir, pausestore
from speedrift.control.assess.judgement import RepoMemo, assess, build_record, with_prompts
from speedrift.control.assess.queues import carried_since, carried_since_plain
from speedrift.control.ecosystem.load import Ecosystem, load_ecosystem
from speedrift.control.fleetsteps import FleetSteps
from speedrift.control.handlers.dispatch import HandlerContext, execute
from speedrift.control.observe.observer import Observer
from speedrift.control.plan.policy import cut_after_hard_stop
from speedrift.fleet import budgetpub, supervisor
from speedrift.pausestore import RuntimePause
from speedrift.register.actions import Action, ActionKind
from speedrift.register.ledger import Ledger
from speedrift.register.record import CycleRecord, Metric, Outcome, OutcomeStatus, Plan, RepoHealth, Skipped
from speedrift.register.sqlite import Register
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
    ) -> None:
        self.ecosystem_path = ecosystem_path.resolve()
        self.ecosystem: Ecosystem = load_ecosystem(self.ecosystem_path)
        self.hub = hubdir.hub_dir(self.ecosystem_path)
        self.clock = clock
        self.speedrift_argv = speedrift_argv or [sys.executable, "-m", "speedrift"]
        self.register = Register.open(self.hub, url=self.ecosystem.register_url)
        self.ledger = Ledger(self.hub)
        self.observer = Observer(self.ecosystem)
        self.previous: CycleRecord | None = None
        self.warm_workers = False  # `hub up` keeps a warm worker for its dispatches (handlers/warm.py)
        self.previous_health: dict[str, RepoHealth] = {}
        self.previous_metrics: dict[str, Metric] | None = None
        self._memo: dict[str, RepoMemo] = {}
        self._approved_by: dict[str, str] = {}  # this cycle's approved action ids -> approver
        self._queue_since = self._recorded_queue_since()
        # standing agents, the nightwatch, compound review (control/fleetsteps.py)
        self.fleet = FleetSteps(self.hub, self.ecosystem_path, self.ledger, self.speedrift_argv)
        self._recover_interrupted()

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
        """Re-read ecosystem.toml (between cycles) and keep the observer's cache when repos are unchanged."""
        fresh = load_ecosystem(self.ecosystem_path)
        if fresh.repos != self.ecosystem.repos:
            self.observer = Observer(fresh)
            self._memo = {}
        self.ecosystem = fresh

    # ------------------------------------------------------------------ the cycle

    def cycle(self, *, execute_actions: bool = True) -> CycleRecord:
        now = self.clock()
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
        # corrective tasks finished in their repos free their slots before the policy counts them
        self.register.refresh_corrective({e.name: e.path for e in self.observer.entries}, now)
        history = self.register.history(now, HISTORY_WINDOW)
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
        self._approved_by = {}
        plan = self._with_approvals(assessment.plan, cycle_id)
        outcomes, stopped = self._execute(plan.allowed, cycle_id)
        skipped = (*plan.skipped, *stopped)
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
        self.ledger.append(record)
        self.register.record_cycle(record)
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

    def _with_approvals(self, plan: Plan, cycle_id: str) -> Plan:
        """An operator's approval carries the operator's authority: the approved action runs even when
        plan_only, mode or budget held it back — but never past the handlers' own refusals."""
        approvers = self.register.pending_approvers()
        approved = set(approvers)
        if not approved:
            return plan
        promoted = [s.action for s in plan.skipped if s.action.id in approved]
        if not promoted:
            return plan
        for action in promoted:
            self.register.consume_approval(action.id, cycle_id)
            self._approved_by[action.id] = approvers[action.id]
        keep = tuple(s for s in plan.skipped if s.action.id not in approved)
        return Plan(allowed=tuple(promoted) + plan.allowed, skipped=keep)

    def _execute(self, allowed: tuple[Action, ...], cycle_id: str) -> tuple[list[Outcome], list[Skipped]]:
        outcomes: list[Outcome] = []
        by_name = {entry.name: entry for entry in self.observer.entries}
        for index, action in enumerate(allowed):
            entry = by_name.get(action.repo)
            if entry is None:
                continue
            started_at = self.clock()
            self.register.action_started(action, cycle_id, started_at)
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
            )
            outcome = execute(action, context)
            self.register.action_finished(outcome)
            outcomes.append(outcome)
            if (
                outcome.status == "failed"
                and self.ecosystem.policy.hard_stop_on_failed_verification
                and action.kind not in HARD_STOP_EXEMPT
            ):
                return outcomes, cut_after_hard_stop(allowed[index + 1 :], action)
        return outcomes, []


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
    for outcome in outcomes:
        if outcome.status in HINTED:
            hints.append(f"{outcome.action_id} {outcome.status}: {outcome.detail}")
    return tuple(hints)


def run_once(ecosystem_path: Path, *, execute_actions: bool = True) -> dict[str, Any]:
    """`speedrift hub once`: one cycle, recorded, returned as a dict (prompts included)."""
    hub = Hub(ecosystem_path)
    if hub.register.notice:
        print(f"speedrift hub: {hub.register.notice}", file=sys.stderr)
    record = hub.cycle(execute_actions=execute_actions)
    hub.fleet.wait()  # a compound review this cycle started finishes before the command returns
    return cycle_to_dict(with_prompts(record))
