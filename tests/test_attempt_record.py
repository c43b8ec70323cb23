"""attempt.json's writes (speedrift/records.py): every write is atomic; an attempt's end state is
also fsynced (it survives a power loss), what it records on its way is not, and a marker that must
not repeat after a crash can ask for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speedrift import records


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The file descriptors fsynced (files and directories), in order; each is still fsynced."""
    seen: list[int] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_progress_is_written_atomically_without_fsync(tmp_path: Path, fsynced: list[int]) -> None:
    records.update_attempt(tmp_path, {"state": "running", "runtime": "shell"})
    records.update_attempt(tmp_path, {"machine": "here", "agent_pgid": 4242})
    assert fsynced == []
    record = records.read_attempt(tmp_path)
    assert record is not None and record.raw["machine"] == "here" and record.runtime == "shell"
    assert [p.name for p in tmp_path.iterdir()] == ["attempt.json"]  # no temp file left


@pytest.mark.parametrize("state", ["done", "failed", "waiting", "merge-pending"])
def test_an_attempts_end_state_is_fsynced_with_its_directory(
    tmp_path: Path, fsynced: list[int], state: str
) -> None:
    records.update_attempt(tmp_path, {"state": "running"})
    records.update_attempt(tmp_path, {"state": state, "reason": "why"})
    assert len(fsynced) == 2  # the file, then the directory holding the rename
    record = records.read_attempt(tmp_path)
    assert record is not None and record.state_text == state


def test_a_marker_asks_for_durability_itself(tmp_path: Path, fsynced: list[int]) -> None:
    records.update_attempt(tmp_path, {"fed": ["done"]}, durable=True)
    assert len(fsynced) == 2
