"""The shell runtime's output as events: stdout and stderr lines, recorded live while the command runs,
capped per line and in total, redacted like every event.

A live test holds its command at a FIFO: the command prints, writes a marker file, then blocks
until the test opens the FIFO — so the events are read while it certainly still runs, with no
sleep deciding anything.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from speedrift import records
from speedrift.agents import shell as shell_module
from speedrift.agents._common import MAX_TEXT
from speedrift.agents.choose import runtime_for
from speedrift.agents.protocol import RunOutcome, RunRequest
from speedrift.agents.session import run_session
from tests.agents.conftest import FakeAgents
from tests.waiting import release, wait_for

Make = Callable[..., RunRequest]
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"  # built, so no literal secret is in this file
AWS_KEY = "AKIA" + "Q3EXAMPLE7KEY2TE"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(marker, fifo): the command writes the marker once it has printed, then waits on the fifo."""
    fifo = tmp_path / "hold.fifo"
    os.mkfifo(fifo)
    yield tmp_path / "printed", fifo
    release(fifo)


def texts(run_dir: Path) -> list[tuple[str, str | None]]:
    return [(e.text, e.data.get("stream")) for e in records.read_events(run_dir)]


def test_stdout_and_stderr_lines_are_events_while_the_command_runs(
    make_request: Make, run_dir: Path, fakes: FakeAgents, gate: tuple[Path, Path]
) -> None:
    marker, fifo = gate
    command = f"echo building; echo 'warning: slow' >&2; : > '{marker}'; read x < '{fifo}'; echo finished"
    outcome: list[RunOutcome] = []
    runner = threading.Thread(
        target=lambda: outcome.append(
            run_session(
                runtime_for("shell"), make_request(exec_command=command), env=fakes.env(), run_dir=run_dir
            )
        )
    )
    runner.start()
    try:
        wait_for(marker.exists, "the command to print")
        wait_for(lambda: len(texts(run_dir)) >= 2, "both lines in events.jsonl")
        assert runner.is_alive()  # still blocked on the fifo: these were written live
        assert sorted(texts(run_dir)) == [("building", None), ("warning: slow", "stderr")]
        assert all(e.ts and e.ts.endswith("Z") for e in records.read_events(run_dir))  # one schema
    finally:
        release(fifo)
        runner.join(timeout=60)
    assert outcome and outcome[0].success
    assert texts(run_dir)[-1] == ("finished", None)


def test_a_secret_printed_by_a_shell_agent_is_redacted_in_its_events(
    make_request: Make, run_dir: Path, fakes: FakeAgents
) -> None:
    command = f"echo 'token={GITHUB}'; echo 'export AWS_ACCESS_KEY_ID={AWS_KEY}' >&2"
    request = make_request(exec_command=command)
    assert run_session(runtime_for("shell"), request, env=fakes.env(), run_dir=run_dir).success
    written = (run_dir / "events.jsonl").read_text()
    assert GITHUB not in written and AWS_KEY not in written
    assert "[REDACTED:github-token]" in written and "[REDACTED:aws-access-key]" in written


def test_a_long_line_is_cut_to_one_events_size(make_request: Make, run_dir: Path, fakes: FakeAgents) -> None:
    command = "head -c 100000 /dev/zero | tr '\\0' e >&2; echo >&2; head -c 100000 /dev/zero | tr '\\0' o"
    outcome = run_session(
        runtime_for("shell"), make_request(exec_command=command), env=fakes.env(), run_dir=run_dir
    )
    assert outcome.success
    cut = MAX_TEXT + 1  # the text kept, and "…" saying it was cut
    assert sorted((len(text), text[-1], stream or "stdout") for text, stream in texts(run_dir)) == [
        (cut, "…", "stderr"),
        (cut, "…", "stdout"),
    ]


def test_the_output_recorded_as_events_is_capped_in_total(
    make_request: Make, run_dir: Path, fakes: FakeAgents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shell_module, "EVENT_TEXT_CAP", 2_000)
    command = 'i=0; while [ $i -lt 500 ]; do echo "line $i of a flood"; i=$((i+1)); done'
    outcome = run_session(
        runtime_for("shell"), make_request(exec_command=command), env=fakes.env(), run_dir=run_dir
    )
    assert outcome.success and outcome.final_text == "line 499 of a flood"  # the verdict saw every line
    events = list(records.read_events(run_dir))
    notices = [e for e in events if e.data.get("capped")]
    assert len(notices) == 1 and "not recorded as events" in notices[0].text
    assert events[-1] is notices[0]  # nothing is written past the cap
    assert sum(len(e.text) for e in events[:-1]) <= 2_000
    assert events[0].text == "line 0 of a flood"
