"""Keeping cards, metrics and queues fresh beside the graph watcher.

Always: follow ``ecosystem.toml`` (repos added or removed reach the page and the watcher).
Standalone (``speedrift dashboard`` without a hub in the process):

- a hub is running for this ecosystem -> follow its ledger: each new cycle record is published
  as soon as it is appended (a stat per second);
- no hub -> observe and score the repos ourselves every ``interval`` seconds, with the same pure
  stages the hub uses, and publish the result. Nothing is executed and nothing is recorded:
  the dashboard reads, the hub decides.

With a PostgreSQL register (standalone) the pause between passes is spent listening to it
(``Register.wait_for_change``): a cycle, an action, an approval or a mode change recorded by any
hub or operator wakes the refresher, which looks again at once (and, with no hub here, recomputes
at once instead of at the next interval). On SQLite the pause is a plain sleep, as before.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import hubdir, pausestore
from speedrift.times import now_utc, short_stamp
from speedrift.web.live import DashboardState
from speedrift.web.views import RepoInfo
from speedrift.web.watch import GraphWatcher

log = logging.getLogger("speedrift.web")
HISTORY_WINDOW = timedelta(hours=24)
# the register tables whose change is worth looking again at once (PostgreSQL)
REFRESH_TABLES = frozenset({"cycles", "actions", "approvals", "mode_changes"})


def repo_infos(ecosystem: Any) -> list[RepoInfo]:
    """Registry entries (control.registry.RepoEntry) as the dashboard's RepoInfo."""
    return [
        RepoInfo(
            name=entry.name,
            path=str(entry.path),
            tags=tuple(entry.tags),
            role=entry.role,
            depends_on=tuple(entry.depends_on),
            lifecycle=entry.lifecycle,
        )
        for entry in ecosystem.repos
    ]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def latest_cycles(hub: Path, last: int) -> list[dict[str, Any]]:
    """The newest cycle records of the ledger, oldest first (other entries skipped)."""
    from speedrift.register.ledger import Ledger

    records: list[dict[str, Any]] = Ledger(hub).read(last=last)
    return [r for r in records if r.get("cycle_id") and not r.get("kind")]


class Refresher:
    def __init__(
        self,
        state: DashboardState,
        ecosystem_path: Path,
        watcher: GraphWatcher,
        *,
        standalone: bool,
        interval: float = 30.0,
        poll: float = 1.0,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.state = state
        self.ecosystem_path = ecosystem_path
        self.hub = hubdir.hub_dir(ecosystem_path)
        self.watcher = watcher
        self.standalone = standalone
        self.interval = interval
        self.poll = poll
        self.clock = clock
        self._registry_stamp = _stamp(ecosystem_path)
        self._ledger_stamp: tuple[int, int, int] | None = None
        self._last_compute = float("-inf")
        self._observer: Any = None
        self._previous_health: dict[str, Any] = {}
        self._previous_metrics: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._register: Any = None  # a PostgreSQL register, open for the refresher's life (run..stop)

    # ------------------------------------------------------------------ one pass

    def tick(self) -> None:
        self._follow_registry()
        if not self.standalone:
            return
        if self._hub_running():
            self._follow_ledger()
        elif time.monotonic() - self._last_compute >= self.interval:
            self._last_compute = time.monotonic()
            self.compute_and_publish()

    def _hub_running(self) -> bool:
        from speedrift.control.daemon import running_hub

        return running_hub(self.hub) is not None

    def _follow_registry(self) -> None:
        stamp = _stamp(self.ecosystem_path)
        if stamp == self._registry_stamp:
            return
        self._registry_stamp = stamp
        from speedrift.control.ecosystem.load import load_ecosystem

        try:
            ecosystem = load_ecosystem(self.ecosystem_path)
        except Exception as exc:  # a half-edited file: keep showing the last good registry
            log.warning("ecosystem.toml not reloaded: %s", exc)
            return
        infos = repo_infos(ecosystem)
        self.state.set_repos(infos, plan_only=ecosystem.policy.plan_only)
        self.watcher.set_repos(infos)
        self._observer = None  # the observer's cache is per registry

    def _follow_ledger(self) -> None:
        from speedrift.hubdir import cycles_path

        stamp = _stamp(cycles_path(self.hub))
        if stamp == self._ledger_stamp:
            return
        self._ledger_stamp = stamp
        cycles = latest_cycles(self.hub, 5)
        if cycles:
            self.state.publish_cycle(cycles[-1])

    def compute_and_publish(self) -> dict[str, Any]:
        record = self.compute()
        self.state.publish_cycle(record)
        return record

    def compute(self) -> dict[str, Any]:
        """Observe, score, measure, plan, queue and narrate; nothing is executed or recorded."""
        from speedrift.control.assess.judgement import assess, build_record
        from speedrift.control.assess.queues import carried_since_plain
        from speedrift.control.cycle import HISTORY_WINDOW
        from speedrift.control.ecosystem.load import load_ecosystem
        from speedrift.control.observe.observer import Observer
        from speedrift.register.record import ActionHistory
        from speedrift.register.store import Register, RegisterUnavailable
        from speedrift.serialize import cycle_to_dict

        ecosystem = load_ecosystem(self.ecosystem_path)
        if self._observer is None:
            self._observer = Observer(ecosystem)
        now = self.clock()
        try:
            if self._register is not None:
                history = self._register.history(now, HISTORY_WINDOW)
            else:
                with Register.open(self.hub, url=ecosystem.register_url) as register:
                    history = register.history(now, HISTORY_WINDOW)
        except RegisterUnavailable:  # the view still observes and scores; nothing is executed anyway
            history = ActionHistory()
        assessment = assess(
            ecosystem,
            self._observer,
            ecosystem.policy,
            history,
            self._previous_health,
            self._previous_metrics,
            now,
            pauses=pausestore.active(now),  # read only: the hub alone publishes auto_resume
        )
        record = build_record(
            assessment,
            cycle_id=f"view-{short_stamp(now)}-{secrets.token_hex(3)}",
            finished_at=self.clock(),
            plan_only=ecosystem.policy.plan_only,
            ecosystem=ecosystem,
            previous_health=self._previous_health,
            skipped=assessment.plan.skipped,
            hints=("computed by the dashboard (no hub running): nothing was executed or recorded",),
            # the attention entries on show keep how long they have waited
            queue_since=carried_since_plain(self.state.latest_cycle()),
        )
        self._previous_health = assessment.healths
        self._previous_metrics = assessment.metrics
        return cycle_to_dict(record)

    # ------------------------------------------------------------------ thread

    def run(self) -> None:
        if self.standalone and self._register is None:
            self._register = self._open_postgres()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a failed observe must not end the live view; the next pass retries
                log.exception("dashboard refresh failed")
            if self._pause():
                self._last_compute = float("-inf")  # with no hub here: recompute at once

    def _open_postgres(self) -> Any:
        """The ecosystem's register when it is PostgreSQL (None otherwise, or when unreadable)."""
        from speedrift.control.ecosystem.load import load_ecosystem
        from speedrift.register.store import Register, RegisterBackend, resolve_url

        try:
            url = load_ecosystem(self.ecosystem_path).register_url
            if resolve_url(self.hub, url).backend is not RegisterBackend.POSTGRESQL:
                return None
            return Register.open(self.hub, url=url)  # connects on first use: never blocks here
        except Exception as exc:  # a broken ecosystem.toml or a missing extra: sleep as on SQLite
            log.warning("the dashboard will not listen to the register: %s", exc)
            return None

    def _pause(self) -> bool:
        """Until the next pass: listen to a PostgreSQL register for up to ``poll`` seconds, else sleep.
        True when the register announced a change."""
        register = self._register
        if register is None:
            self._stop.wait(self.poll)
            return False
        from speedrift.register.store import RegisterUnavailable

        try:
            return bool(register.wait_for_change(self.poll, tables=REFRESH_TABLES))
        except RegisterUnavailable:
            self._stop.wait(self.poll)
            return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="speedrift-dashboard-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        register, self._register = self._register, None
        if register is not None:
            try:
                register.close()
            except Exception:  # closing a lost connection: nothing left to release
                log.debug("register close failed", exc_info=True)
