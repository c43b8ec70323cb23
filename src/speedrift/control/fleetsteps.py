"""The hub's fleet-operations steps, run once per cycle (control/cycle.py calls :class:`FleetSteps`).

Order and authority: the standing agents' scheduler and the nightwatch run at the start of a
cycle, before the observer looks, so a run task created now is dispatched in this same cycle and
a pause set now holds it; compound review runs after the cycle's actions, on its own thread, so a
night's reviews (each may run a role agent for minutes) never hold up dispatch — one review pass
at a time, the next cycle skipping while one runs. Under ``plan_only`` the scheduler and compound
review do nothing (they would write to repos); the nightwatch still judges and records, and its
corrections write to a repo's graph only where the repo's mode grants automation (as every step
does: :meth:`~speedrift.fleetops.hubctx.HubContext.may_write`).

Invariant: a step that fails is recorded (``fleetops_error`` in the ledger, with the step and the
error) and never stops the cycle or another step; every record a step returns is appended to the
ledger, so each decision is on file.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from speedrift.control.controlfile import read_control
from speedrift.control.ecosystem.load import Ecosystem
from speedrift.errors import SpeedriftError
from speedrift.fleetops import agents_step, compound_step, nightwatch_step
from speedrift.fleetops.hubctx import HubContext
from speedrift.register.ledger import Ledger

Step = Callable[[HubContext], list[dict[str, Any]]]


class FleetSteps:
    def __init__(self, hub: Path, ecosystem_path: Path, ledger: Ledger, speedrift_argv: list[str]) -> None:
        self.hub = hub
        self.ecosystem_path = ecosystem_path
        self.ledger = ledger
        self.speedrift_argv = tuple(speedrift_argv)
        self._reviews: threading.Thread | None = None
        self.cancel = threading.Event()  # set when the hub stops: a running review's agent is stopped

    def context(self, ecosystem: Ecosystem, now: datetime) -> HubContext:
        return HubContext(
            hub=self.hub,
            ecosystem_path=self.ecosystem_path,
            repos={entry.name: entry.path for entry in ecosystem.repos},
            authority={entry.name: read_control(entry.path) for entry in ecosystem.repos},
            ops=ecosystem.ops,
            now=now,
            speedrift_argv=self.speedrift_argv,
        )

    def before(self, ecosystem: Ecosystem, now: datetime, *, plan_only: bool) -> None:
        """The scheduler (unless plan_only), then the nightwatch."""
        ctx = self.context(ecosystem, now)
        if not plan_only:
            self._run("agents", agents_step.hub_step, ctx)
        self._run("nightwatch", nightwatch_step.hub_step, ctx)

    def after(self, ecosystem: Ecosystem, now: datetime, *, plan_only: bool) -> None:
        """Start the due compound reviews on their own thread, unless a pass still runs."""
        if plan_only or not ecosystem.repos:  # a repo's speedrift.toml may turn its review on
            return
        if self._reviews is not None and self._reviews.is_alive():
            return
        ctx = self.context(ecosystem, now)
        step = functools.partial(compound_step.hub_step, cancel=self.cancel)
        self._reviews = threading.Thread(target=self._run, args=("compound_review", step, ctx), daemon=True)
        self._reviews.start()

    def wait(self, timeout: float | None = None) -> None:
        """Let a running review pass finish (``hub once`` waits before it exits)."""
        if self._reviews is not None:
            self._reviews.join(timeout)

    def stop(self, grace: float = 30.0) -> None:
        """The hub stops: a running review's role agent is stopped, and waited for up to ``grace``
        seconds (its slot stays fired; the next review starts after the last finished one)."""
        self.cancel.set()
        self.wait(grace)

    def _run(self, name: str, step: Step, ctx: HubContext) -> None:
        try:
            records = step(ctx)
        except (SpeedriftError, OSError, ValueError) as error:
            records = [{"kind": "fleetops_error", "generated_at": ctx.now, "step": name, "error": str(error)}]
        for record in records:
            self.ledger.append(record)
