"""The standing agents' durable state (fleetops/state.py): a round trip through the file, a corrupt
file named with its fix, and concurrent writers that never lose each other's change."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift import hubdir
from speedrift.fleetops.state import DriftLevel, FleetState, Pause, StateError, StateStore

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_a_state_written_is_read_back_whole_by_a_new_store(tmp_path: Path) -> None:
    def change(state: FleetState) -> None:
        agent = state.agent("sentinel")
        agent.last_slot = NOW - timedelta(hours=1)
        agent.remember_run("app:agent-sentinel-202611201100", NOW)
        agent.restarts = [NOW - timedelta(minutes=5)]
        agent.exited_at = NOW - timedelta(minutes=2)
        agent.drift.level = DriftLevel.SEVERE
        agent.drift.score = 0.45
        agent.concurrency = 1
        agent.pause = Pause(since=NOW, by="operator:ada", reason="noisy", until=NOW + timedelta(hours=2))
        state.slots["nightwatch"] = NOW

    StateStore(tmp_path).update(change)
    again = StateStore(tmp_path).read()

    agent = again.agents["sentinel"]
    assert agent.last_slot == NOW - timedelta(hours=1)
    assert agent.runs == ["app:agent-sentinel-202611201100"] and agent.last_run_at == NOW
    assert agent.restarts == [NOW - timedelta(minutes=5)]
    assert agent.exited_at == NOW - timedelta(minutes=2)
    assert agent.drift.level is DriftLevel.SEVERE and agent.drift.score == 0.45
    assert agent.concurrency == 1
    assert agent.pause is not None and agent.pause.by == "operator:ada" and agent.paused(NOW)
    assert not agent.paused(NOW + timedelta(hours=3))  # the pause lapses at its until
    assert again.slots["nightwatch"] == NOW


def test_a_missing_state_file_is_an_empty_state(tmp_path: Path) -> None:
    assert StateStore(tmp_path).read().agents == {}


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 99, "agents": {}}', b"[]"])
def test_a_corrupt_state_file_is_an_error_naming_the_file_and_the_fix(tmp_path: Path, content: bytes) -> None:
    path = hubdir.agents_state_path(tmp_path)
    path.write_bytes(content)

    with pytest.raises(StateError) as raised:
        StateStore(tmp_path).read()

    assert str(path) in raised.value.message
    assert raised.value.hint is not None and "move it aside" in raised.value.hint
    with pytest.raises(StateError):  # a writer never replaces it with a blank state either
        StateStore(tmp_path).update(lambda state: None)
    assert path.read_bytes() == content


WRITER = """
import sys
from pathlib import Path
from datetime import UTC, datetime
from speedrift.fleetops.state import StateStore

hub, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for n in range(count):
    StateStore(hub).update(lambda s: s.slots.__setitem__(f"{who}-{n}", datetime(2026, 1, 1, tzinfo=UTC)))
"""


def test_concurrent_writers_in_separate_processes_lose_no_change(tmp_path: Path) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w{i}", "25"]) for i in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]

    slots = StateStore(tmp_path).read().slots

    assert set(slots) == {f"w{i}-{n}" for i in range(4) for n in range(25)}
