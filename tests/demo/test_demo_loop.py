"""The demo's own end-to-end test: `speedrift demo DIR` as a real process, the whole loop on its own.

Within a few minutes of starting, through the real pipeline (hub, workers, sandboxed scripted
agents, gates, merge queue, recovery, coordination): an attempt lands, an attempt fails a gate and
a later attempt of the same task lands, an agent's question reaches a person, and the hub writes a
corrective task; Ctrl-C then says where the state is.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from speedrift import layout, records
from speedrift.demo.ecosystem import AUTONOMOUS
from speedrift.graph.store import GraphStore
from tests.cli.support import base_env, git
from tests.waiting import wait_for

GATE_CLASSES = {"regression", "implementation_error"}


def _attempts(repo: Path) -> dict[str, dict[int, records.AttemptRecord]]:
    found: dict[str, dict[int, records.AttemptRecord]] = {}
    runs = layout.runs_dir(repo)
    if not runs.is_dir():
        return found
    for task_dir in runs.iterdir():
        for folder in task_dir.iterdir() if task_dir.is_dir() else []:
            record = records.read_attempt(folder) if folder.name.isdigit() else None
            if record is not None:
                found.setdefault(task_dir.name, {})[int(folder.name)] = record
    return found


def _landed(root: Path) -> bool:
    for name in AUTONOMOUS:
        for attempts in _attempts(root / name).values():
            if any(a.state == records.AttemptState.DONE for a in attempts.values()):
                return len(git(root / name, "log", "--oneline", "main").splitlines()) > 1
    return False


def _recovered(root: Path) -> bool:
    """A task whose attempt failed a gate and whose later attempt landed."""
    for name in AUTONOMOUS:
        for attempts in _attempts(root / name).values():
            failed = [n for n, a in attempts.items() if a.failure in GATE_CLASSES]
            if any(
                a.state == records.AttemptState.DONE and n > min(failed)
                for n, a in attempts.items()
                if failed
            ):
                return True
    return False


def _escalated(root: Path) -> bool:
    for name in AUTONOMOUS:
        for store in (layout.state_dir(root / name) / "coord").glob("*.jsonl"):
            for line in store.read_text().splitlines():
                if '"human_escalation"' in line and json.loads(line).get("kind") == "human_escalation":
                    return True
    return False


def _corrective(root: Path) -> bool:
    for name in AUTONOMOUS:
        tasks = GraphStore(root / name / ".workgraph").load().tasks.values()
        if any("corrective" in (t.get("tags") or []) for t in tasks):
            return True
    return False


@pytest.mark.slow
def test_the_demo_lands_fails_and_recovers_asks_a_person_and_writes_a_corrective_task_on_its_own(
    tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    env = base_env() | {"SPEEDRIFT_DEMO_PACE": "0.05"}
    argv = [sys.executable, "-m", "speedrift", "demo", str(root), "--port", "0", "--interval", "1"]
    child = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _landed(root), "an attempt to land on main", timeout=360, poll=1)
        wait_for(lambda: _recovered(root), "a gate failure recovered by a later attempt", timeout=360, poll=1)
        wait_for(lambda: _escalated(root), "a human escalation", timeout=360, poll=1)
        wait_for(lambda: _corrective(root), "a corrective task written by the hub", timeout=360, poll=1)
    finally:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    said = out.decode()

    assert child.returncode == 0, err.decode()
    for news in ("dispatched ", "landed ", "failed ", "escalated ", "corrective "):
        assert news in said, f"the terminal never said {news!r}:\n{said}"
    assert "Hub stopped. Its state stays: hub dir" in said
    assert f"The demo's repos stay in {root}" in said
