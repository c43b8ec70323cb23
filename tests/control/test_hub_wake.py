"""Register changes wake the sleeping hub and the dashboard (PostgreSQL LISTEN/NOTIFY), instead of
polling. The changes come from other real processes, as an operator's CLI or another hub would make
them; a change that gives a cycle nothing new (another hub renewing its leases) wakes nobody."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from speedrift.control.cycle import Hub
from speedrift.control.daemon import RegisterWake, _wait, register_wake
from speedrift.web.refresh import Refresher
from speedrift.web.server import wire
from tests.control.hubfleet import ecosystem, shared_repos

# another process writing to the register: argv[1] the URL, argv[2] what to do
WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from speedrift.register.store import Register

url, what = sys.argv[1], sys.argv[2]
now = datetime.now(UTC)
with Register.open(Path("/nonexistent"), url=url) as register:
    if what == "approve":
        register.record_approval(action_id="alpha:dispatch_ready", repo="alpha", kind="dispatch_ready",
                                 actor="ann", at=now)
    elif what == "renew":
        for _ in range(3):
            register.acquire_leases("other-hub", ["alpha"], datetime.now(UTC), timedelta(minutes=5))
    elif what == "release":
        register.release_leases("other-hub")
"""


@pytest.fixture(autouse=True)
def _own_hub_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPEEDRIFT_HUB_DIR", "SPEEDRIFT_HUB_ID", "SPEEDRIFT_REGISTER_URL"):
        monkeypatch.delenv(name, raising=False)


def _write(url: str, what: str) -> None:
    subprocess.run([sys.executable, "-c", WRITER, url, what], check=True, timeout=120)


class Sleeper:
    """The hub's sleep between cycles (daemon._wait) in a thread, for ``interval`` seconds."""

    def __init__(self, hub: Hub, interval: float) -> None:
        self.stop = threading.Event()
        self.woke = threading.Event()
        hub.register.wait_for_change(0.01)  # listening before anything below is written
        wake = RegisterWake(hub)
        self.thread = threading.Thread(target=self._sleep, args=(hub, interval, wake))
        self.started = time.monotonic()
        self.slept = 0.0
        self.thread.start()

    def _sleep(self, hub: Hub, interval: float, wake: RegisterWake) -> None:
        _wait(hub.ecosystem, interval, self.stop, wake)
        self.slept = time.monotonic() - self.started
        self.woke.set()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def test_an_approval_recorded_by_another_process_wakes_the_sleeping_hub_at_once(
    tmp_path: Path, pg_url: str
) -> None:
    hub = Hub(ecosystem(tmp_path / "hub", shared_repos(tmp_path / "repos", ("alpha",)), pg_url))
    sleeper = Sleeper(hub, interval=3600)
    try:
        _write(pg_url, "approve")
        woke = sleeper.woke.wait(timeout=120)
    finally:
        sleeper.finish()

    assert woke  # before anything stopped it: the register woke it, an hour early
    assert hub.register.pending_approvals() == ["alpha:dispatch_ready"]


def test_another_hub_renewing_its_leases_wakes_nobody_but_releasing_one_does(
    tmp_path: Path, pg_url: str
) -> None:
    hub = Hub(ecosystem(tmp_path / "hub", shared_repos(tmp_path / "repos", ("alpha",)), pg_url))
    _write(pg_url, "renew")  # the other hub holds alpha
    sleeper = Sleeper(hub, interval=3600)
    try:
        _write(pg_url, "renew")  # three renewals, three notifications
        renewed_woke = sleeper.woke.wait(timeout=2)
        _write(pg_url, "release")  # alpha is free to take: worth a cycle now
        released_woke = sleeper.woke.wait(timeout=120)
    finally:
        sleeper.finish()

    assert not renewed_woke
    assert released_woke  # before anything stopped it


def test_on_sqlite_the_hub_sleeps_its_interval_without_listening(tmp_path: Path, pg_url: str) -> None:
    hub = Hub(ecosystem(tmp_path / "hub", shared_repos(tmp_path / "repos", ("alpha",))))
    shared = Hub(ecosystem(tmp_path / "shared", shared_repos(tmp_path / "more", ("beta",)), pg_url))

    assert str(hub.register.backend) == "sqlite" and register_wake(hub) is None
    assert isinstance(register_wake(shared), RegisterWake)  # PostgreSQL: the sleep listens


def test_the_standalone_dashboard_looks_again_at_once_when_another_process_changes_the_register(
    tmp_path: Path, pg_url: str
) -> None:
    eco = ecosystem(tmp_path / "hub", shared_repos(tmp_path / "repos", ("alpha",)), pg_url)
    wiring = wire(eco, "127.0.0.1", 0, state=None, standalone=True, refresh_interval=3600)
    _watcher, refresher = wiring.services
    assert isinstance(refresher, Refresher)

    def shown() -> str:
        return str((wiring.state.status()["overview"] or {}).get("cycle_id") or "")

    refresher.start()
    try:
        deadline = time.monotonic() + 120
        while not shown().startswith("view-") and time.monotonic() < deadline:
            time.sleep(0.1)
        first = shown()
        assert first.startswith("view-")  # computed once; the next is due in an hour
        while shown() == first and time.monotonic() < deadline:
            _write(pg_url, "approve")  # until one lands while the refresher listens
            for _ in range(50):
                if shown() != first:
                    break
                time.sleep(0.1)
    finally:
        refresher.stop()

    assert shown() != first and shown().startswith("view-")
