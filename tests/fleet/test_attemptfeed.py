"""The attempt feed: a real attempt (the fake claude and codex CLIs speak their real event streams)
appends exactly one line to the machine-wide attempt log, with its tokens and what they cost —
reported by claude, priced for codex — how it ended, and its first event; an interrupted attempt
is recorded with what is known; an unwritable log never fails the attempt."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from speedrift import attemptlog, records, statehome
from speedrift.agents import preflight
from speedrift.agents.protocol import RunOutcome
from speedrift.attemptlog import CostSource
from speedrift.fleet import attemptfeed, budgetpub
from speedrift.fleet.attempt import Attempt
from speedrift.fleet.failures import FailureRecorder
from speedrift.fleet.opsconfig import FleetOps, Price
from speedrift.fleet.pipeline import RunOptions
from speedrift.graph import ops
from speedrift.repo.worktrees import Manifest
from tests.agents.conftest import FAKES
from tests.conftest import NOW
from tests.fleet.conftest import Workshop

FAKE_ENV = {"allow": ["FAKE_AGENT_SCENARIO"]}
UNSANDBOXED = {"mode": "off"}
EDITS: list[dict[str, Any]] = [
    {"do": "start"},
    {"do": "edit", "path": "app.py", "content": "print('v2')\n"},
    {"do": "finish", "text": "Changed it."},
]


def codex_bin(tmp_path: Path) -> Path:
    """A `codex` on PATH that answers the preflight (`--version`, `login status`) and runs the
    shared fake CLI for an attempt (its usage events carry tokens, never a cost)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    script = folder / "codex"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  --version) echo "codex-cli 0.169.0"; exit 0;;\n'
        '  login) echo "Logged in using an API key"; exit 0;;\n'
        "esac\n"
        f'exec "{sys.executable}" "{FAKES / "codex"}" "$@"\n'
    )
    script.chmod(0o755)
    return folder


@pytest.fixture
def codex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", f"{codex_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    file = tmp_path / "scenario.json"
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(file))
    preflight.forget()
    return file


def evidence_of(run_dir: str | None) -> dict[str, Any]:
    return dict(json.loads(Path(run_dir or "", "evidence.json").read_text()))


def test_a_claude_attempt_is_recorded_once_with_its_reported_cost_and_first_event(
    workshop: Workshop, scenario: Path
) -> None:
    scenario.write_text(json.dumps(EDITS))
    workshop.add("bump", model="claude:sonnet", tags=["agent:nightly", "docs"])
    result = workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED).run("bump", RunOptions())
    assert result.status == "done", result.reason
    [entry] = attemptlog.read()
    usage = evidence_of(result.run_dir)["usage"]
    assert (entry.repo, entry.task, entry.attempt, entry.status) == (
        budgetpub.repo_key(workshop.repo),
        "bump",
        1,
        "done",
    )
    assert (entry.runtime, entry.model, entry.agent, entry.failure) == ("claude", "sonnet", "nightly", None)
    assert (entry.input_tokens, entry.output_tokens) == (usage["input_tokens"], usage["output_tokens"])
    assert entry.output_tokens > 0
    assert entry.cost_source is CostSource.REPORTED and entry.cost_usd == usage["cost_usd"] > 0
    assert entry.first_event_s is not None and entry.first_event_s >= 0
    assert entry.duration_s == evidence_of(result.run_dir)["duration_s"]
    assert not (entry.stalled or entry.over_budget or entry.crashed)
    assert entry.gates_passed == len(evidence_of(result.run_dir)["gates"]) and entry.gates_failed == 0
    assert records.read_attempt(Path(result.run_dir or "")).raw[attemptfeed.FED_KEY] == ["done"]  # type: ignore[union-attr]


def test_a_codex_attempt_is_priced_from_the_repos_price_table_before_the_ecosystems(
    workshop: Workshop, codex: Path
) -> None:
    codex.write_text(json.dumps(EDITS))
    eco = FleetOps(prices={"codex": Price(input_per_mtok=100, output_per_mtok=100)})
    budgetpub.publish_budgets(workshop.repo.parent / "ecosystem.toml", [workshop.repo], eco)
    workshop.add("bump", model="codex:gpt-5")
    prices = {"codex:gpt-5": {"input_per_mtok": 1.25, "output_per_mtok": 10, "cache_read_per_mtok": 0.125}}
    pipeline = workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED, prices=prices)
    result = pipeline.run("bump", RunOptions())
    assert result.status == "done", result.reason
    [entry] = attemptlog.read()
    usage = evidence_of(result.run_dir)["usage"]
    assert usage["cost_usd"] == 0 and usage["input_tokens"] > 0  # codex reports tokens only
    expected = (
        usage["input_tokens"] * 1.25 + usage["output_tokens"] * 10 + usage["cache_read_tokens"] * 0.125
    ) / 1_000_000
    assert entry.cost_source is CostSource.PRICED and entry.cost_usd == pytest.approx(expected)
    assert (entry.runtime, entry.model) == ("codex", "gpt-5")


def test_a_codex_attempt_without_its_price_is_priced_by_the_ecosystems_or_not_at_all(
    workshop: Workshop, codex: Path
) -> None:
    codex.write_text(json.dumps(EDITS))
    workshop.add("one", model="codex:gpt-5")
    assert workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED).run("one", RunOptions()).status == "done"
    eco = FleetOps(prices={"codex": Price(input_per_mtok=2, output_per_mtok=8)})
    budgetpub.publish_budgets(workshop.repo.parent / "ecosystem.toml", [workshop.repo], eco)
    workshop.add("two", model="codex:gpt-5")
    codex.write_text(
        json.dumps([{**step, "content": "print('v3')\n"} if "content" in step else step for step in EDITS])
    )
    assert workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED).run("two", RunOptions()).status == "done"
    unpriced, priced = attemptlog.read()
    assert (unpriced.task, unpriced.cost_source, unpriced.cost_usd) == ("one", CostSource.NONE, 0.0)
    assert unpriced.input_tokens > 0
    assert (priced.task, priced.cost_source) == ("two", CostSource.PRICED) and priced.cost_usd > 0


def test_a_failed_attempt_is_recorded_with_its_class_a_crash_marked_and_a_cancel_not(
    workshop: Workshop, scenario: Path
) -> None:
    scenario.write_text(json.dumps([{"do": "start"}, {"do": "usage_limit", "reset_in_s": 3600}]))
    workshop.add("limited", model="claude:sonnet")
    result = workshop.pipeline(env=FAKE_ENV, sandbox=UNSANDBOXED).run("limited", RunOptions())
    assert (result.status, result.failure) == ("failed", "usage_limit")
    workshop.add("dies", exec_command="kill -9 $$")  # the command killed by a signal: a crash
    assert workshop.pipeline().run("dies", RunOptions()).status == "failed"
    workshop.add("stopped", exec_command="sleep 30")
    cancel = threading.Event()
    options = RunOptions(cancel=cancel, on_claimed=lambda _n: cancel.set())  # `speedrift cancel`
    assert workshop.pipeline().run("stopped", options).status == "failed"
    limited, died, stopped = attemptlog.read()
    assert (limited.status, limited.failure, limited.crashed) == ("failed", "usage_limit", False)
    assert limited.tokens > 0  # what the run used before the limit
    assert (died.task, died.status, died.runtime, died.crashed) == ("dies", "failed", "shell", True)
    assert (stopped.task, stopped.status, stopped.crashed) == ("stopped", "cancelled", False)


def test_an_attempt_an_exception_interrupted_is_recorded_with_what_is_known(workshop: Workshop) -> None:
    workshop.add("cut", model="codex:gpt-5", tags=["agent:night"])
    pipeline = workshop.pipeline()
    workshop.store.mutate(lambda g, now: ops.claim(g, "cut", now=now, actor="test"))
    run_dir = workshop.repo / ".speedrift" / "runs" / "cut" / "1"
    run_dir.mkdir(parents=True)
    records.update_attempt(run_dir, {"runtime": "codex", "model": "gpt-5", "state": "running"})
    recorder = FailureRecorder(workshop.repo, workshop.store, pipeline.config, "test")
    recorder.crashed(task_id="cut", attempt=1, run_dir=run_dir, reason="boom", bootstrapped=True)
    recorder.crashed(
        task_id="cut", attempt=1, run_dir=run_dir, reason="boom", bootstrapped=True
    )  # no longer in progress
    [entry] = attemptlog.read()
    assert (entry.task, entry.attempt, entry.status, entry.runtime, entry.model) == (
        "cut",
        1,
        "failed",
        "codex",
        "gpt-5",
    )
    assert entry.agent == "night" and entry.failure and entry.tokens == 0
    assert entry.cost_source is CostSource.NONE and entry.duration_s >= 0
    assert entry.machine is None  # its attempt.json named no machine


def test_an_interrupted_attempt_names_the_machine_its_attempt_record_names(workshop: Workshop) -> None:
    workshop.add("away", exec_command="true")
    pipeline = workshop.pipeline()
    workshop.store.mutate(lambda g, now: ops.claim(g, "away", now=now, actor="test"))
    run_dir = workshop.repo / ".speedrift" / "runs" / "away" / "1"
    run_dir.mkdir(parents=True)
    machine = {"executor": "dask", "worker": "tcp://127.0.0.1:40555", "host": "worker-box"}
    records.update_attempt(run_dir, {"runtime": "shell", "state": "running", "machine": machine})
    recorder = FailureRecorder(workshop.repo, workshop.store, pipeline.config, "test")
    recorder.crashed(task_id="away", attempt=1, run_dir=run_dir, reason="worker died", bootstrapped=True)
    [entry] = attemptlog.read()
    assert (entry.task, entry.machine) == ("away", "tcp://127.0.0.1:40555")


def test_a_finished_attempt_names_the_worker_its_evidence_names_else_the_host(workshop: Workshop) -> None:
    workshop.add("here", exec_command="echo here > here.txt")
    result = workshop.pipeline().run("here", RunOptions())
    assert result.status == "done"
    [entry] = attemptlog.read()
    evidence = evidence_of(result.run_dir)
    assert entry.machine == attemptlog.machine_label(evidence.get("machine"))  # whatever the executor wrote
    attempt = Attempt(
        task_id="here",
        number=2,
        run_dir=Path(result.run_dir or ""),
        manifest=Manifest("here", 2, "b", "/w", "abc", "main", os.getpid(), "2026-11-20T12:00:00Z"),
        runtime="shell",
        model=None,
        started=0.0,
    )

    def line(machine: dict[str, Any]) -> attemptlog.AttemptEntry:
        return attemptfeed.entry_for(
            workshop.repo, attempt, RunOutcome(success=True), {"machine": machine}, status="done",
            failure=None, task=None, prices=[], at=NOW, first_event=None,
        )  # fmt: skip

    assert line({"executor": "dask", "worker": "tcp://127.0.0.1:41000", "host": "w1"}).machine == (
        "tcp://127.0.0.1:41000"
    )
    assert line({"executor": "local", "worker": None, "host": "hub-box"}).machine == "hub-box"


def test_the_same_attempt_and_status_is_never_appended_twice(workshop: Workshop) -> None:
    workshop.add("twice", exec_command="echo twice > twice.txt")
    result = workshop.pipeline().run("twice", RunOptions())
    assert result.status == "done"
    run_dir = Path(result.run_dir or "")
    [entry] = attemptlog.read()
    attemptfeed._append_once(entry, run_dir)  # a resumed or recovered landing reaching done again
    assert len(attemptlog.read()) == 1
    attemptfeed._append_once(entry.__class__(**{**entry.__dict__, "status": "waiting"}), run_dir)
    assert [e.status for e in attemptlog.read()] == ["done", "waiting"]


def test_an_unwritable_attempt_log_never_fails_the_attempt(
    workshop: Workshop, capfd: pytest.CaptureFixture[str]
) -> None:
    statehome.attempt_log_path().mkdir(parents=True)  # a directory where the log should be
    workshop.add("lands", exec_command="echo ok > ok.txt")
    result = workshop.pipeline().run("lands", RunOptions())
    assert result.status == "done" and (workshop.repo / "ok.txt").read_text() == "ok\n"
    assert "is not in the attempt log" in capfd.readouterr().err
