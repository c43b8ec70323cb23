"""Runtime fallback (fleet/choosing.py): a task whose runtime is paused runs on the next runtime of
its order — the task's own ``speedrift.fallback``, else its agent's, else the repo's ``[routing]
fallback`` — recorded with the reason in its evidence, attempt.json and log; never silently. With
no order, or every runtime in it paused, the attempt is refused before its claim, naming them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift import pausestore
from speedrift.agents import preflight
from speedrift.fleet import choosing, followup, pauses
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.pipeline import RunOptions
from speedrift.graph import ops
from speedrift.pausestore import RuntimePause
from tests.agents.conftest import FAKES, stream
from tests.fleet.conftest import Workshop, claude_bin

NOW = datetime.now(UTC)
ORDER = ["claude:sonnet", "codex:gpt-5"]
# unsandboxed: the fake CLIs count their runs in a file beside the scenario
BASE: dict[str, Any] = {"sandbox": {"mode": "off"}, "env": {"allow": ["FAKE_AGENT_SCENARIO"]}}
NO_BACKOFF: dict[str, Any] = {"service": {"backoff_seconds": 0}}


def codex_bin(folder: Path) -> None:
    """A `codex` on PATH that answers the preflight as codex-cli 0.169.0 does (`--version`, `login
    status`) and runs the shared fake CLI (tests/agents/fakes) for an attempt."""
    script = folder / "codex"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  --version) echo "codex-cli 0.169.0"; exit 0;;\n'
        "  login) echo 'Logged in using an API key'; exit 0;;\n"
        "esac\n"
        f'exec "{sys.executable}" "{FAKES / "codex"}" "$@"\n'
    )
    script.chmod(0o755)


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake claude and codex on PATH; returns the scenario file (one list of steps per run)."""
    folder = claude_bin(tmp_path)
    codex_bin(folder)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    file = tmp_path / "scenario.json"
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(file))
    preflight.forget()
    return file


def lands(path: str = "hello.txt") -> list[dict[str, Any]]:
    return [{"do": "start"}, {"do": "edit", "path": path, "content": "hi\n"}, {"do": "finish"}]


def add(workshop: Workshop, task_id: str, **speedrift: Any) -> None:
    workshop.add(task_id)
    if speedrift:
        workshop.store.mutate(
            lambda g, now: ops.set_fields(g, task_id, speedrift=speedrift, now=now, actor="test")
        )


def pause(runtime: str, reason: str = "session limit") -> RuntimePause:
    held = RuntimePause(runtime, "usage_limit", reason, NOW, NOW + timedelta(hours=2), "", "test")
    pausestore.put(held, NOW)
    return held


def test_a_usage_limit_from_claudes_real_stream_moves_the_next_attempt_to_codex(
    workshop: Workshop, runs: Path
) -> None:
    """The issue's acceptance test: claude's recorded usage-limit stream pauses claude for the whole
    machine; the retry of the same task runs on codex, lands, and says so everywhere."""
    limited = [{"do": "emit", "lines": stream("claude_usage_limit.jsonl"), "exit": 1}]
    runs.write_text(json.dumps({"roles": {"developer": [limited, lands()]}}))
    add(workshop, "greet", fallback=ORDER)
    pipeline = workshop.pipeline(**BASE, **NO_BACKOFF)

    first = pipeline.run("greet", RunOptions())
    assert (first.status, first.failure) == ("failed", "usage_limit")
    assert first.evidence["runtime"] == "claude" and "fallback" not in first.evidence
    assert (
        first.evidence["routing"]["why"]
        == "no [routing] tiers: the first entry of the task's speedrift.fallback"
    )
    held = pauses.blocking_pause("claude")
    assert held is not None and held.cause == "usage_limit" and held.task == "greet"
    recovery = first.recovery or {}
    assert (recovery["recovery"], recovery["automatic"]) == ("retry", True)
    assert recovery["fallback_from"] == "claude:sonnet"
    assert "the next attempt moves down the fallback order" in recovery["note"]

    # the retry does not wait for claude's reset: it runs elsewhere
    carried = followup.carry_out(workshop.repo, workshop.store, pipeline.config, "greet", actor="test")
    assert carried.outcome == "reopened" and carried.ready_at is not None
    assert carried.ready_at < held.until  # type: ignore[operator]

    second = pipeline.run("greet", RunOptions())
    assert second.status == "done", second.reason
    assert second.evidence["runtime"] == "codex"
    fallback = second.evidence["fallback"]
    assert (fallback["from"], fallback["to"]) == ("claude:sonnet", "codex:gpt-5")
    assert fallback["reason"].startswith("claude is paused until") and "usage limit" in fallback["reason"]
    assert fallback["source"] == "the task's speedrift.fallback"
    assert (workshop.repo / "hello.txt").read_text() == "hi\n"
    attempt_json = json.loads((Path(str(second.run_dir)) / "attempt.json").read_text())
    assert attempt_json["runtime"] == "codex" and attempt_json["model"] == "gpt-5"
    assert attempt_json["fallback"]["to"] == "codex:gpt-5"
    entries: Any = workshop.task("greet")["log"]
    log = [entry["message"] for entry in entries]
    said = [m for m in log if m.startswith("Runtime fallback (the task's speedrift.fallback order)")]
    assert said and "claude:sonnet → codex:gpt-5: claude is paused until" in said[0]
    assert any(m.startswith("Runtime fallback: attempt 1 failed on claude:sonnet (usage_limit)") for m in log)


def test_the_repos_order_applies_when_the_task_has_none_and_the_service_dispatches_it(
    workshop: Workshop, runs: Path
) -> None:
    runs.write_text(json.dumps(lands("repo.txt")))
    pause("claude")
    add(workshop, "plain")
    config = {**BASE, "routing": {"fallback": ORDER}}
    task = workshop.task("plain")
    assert choosing.dispatch_runtime(task, RepoConfig.model_validate(config), NOW) == "codex"
    done = workshop.pipeline(**config).run("plain", RunOptions())
    assert done.status == "done", done.reason
    assert done.evidence["fallback"]["source"] == "the repo's [routing] fallback"
    assert done.evidence["runtime"] == "codex"


def test_the_tasks_order_wins_over_its_agents_and_the_agents_over_the_repos(workshop: Workshop) -> None:
    config = RepoConfig.model_validate({"routing": {"fallback": ["opencode:x/y"]}})
    add(workshop, "both", fallback=["codex:gpt-5"], agent={"name": "a", "fallback": ["shell"]})
    add(workshop, "agent", agent={"name": "a", "fallback": ["codex:o3"]})
    add(workshop, "repo")
    assert choosing.fallback_order(workshop.task("both"), config)[:2] == (
        ["codex:gpt-5"],
        "the task's speedrift.fallback",
    )
    assert choosing.fallback_order(workshop.task("agent"), config)[:2] == (
        ["codex:o3"],
        "its agent's speedrift.agent.fallback",
    )
    assert choosing.fallback_order(workshop.task("repo"), config)[:2] == (
        ["opencode:x/y"],
        "the repo's [routing] fallback",
    )


def test_a_mistyped_order_on_the_task_is_ignored_and_said(workshop: Workshop) -> None:
    config = RepoConfig.model_validate({"routing": {"fallback": ORDER}})
    add(workshop, "odd", fallback=["gemini:pro", 7, "codex:gpt-5"])
    entries, source, ignored = choosing.fallback_order(workshop.task("odd"), config)
    assert (entries, source) == (["codex:gpt-5"], "the task's speedrift.fallback")
    assert ignored == ["the task's speedrift.fallback: 'gemini:pro', 7 not runtime[:model]: ignored"]
    chosen = choosing.choose(workshop.task("odd"), config, now=NOW)
    assert chosen.records()["routing"]["ignored"] == ignored


def test_every_runtime_of_the_order_paused_refuses_before_the_claim_naming_each(
    workshop: Workshop, runs: Path
) -> None:
    pause("claude", "five-hour limit")
    pause("codex", "weekly limit")
    add(workshop, "stuck", fallback=ORDER)
    with pytest.raises(pauses.RuntimePaused) as refused:
        workshop.pipeline(**BASE).run("stuck", RunOptions())
    said = str(refused.value)
    assert "no runtime in the fallback order (the task's speedrift.fallback) can run now" in said
    assert "claude:sonnet — claude is paused until" in said and "five-hour limit" in said
    assert "codex:gpt-5 — codex is paused until" in said and "weekly limit" in said
    assert isinstance(refused.value, choosing.NoRuntime)
    assert refused.value.tried == ("claude:sonnet", "codex:gpt-5")
    task = workshop.task("stuck")
    assert task["status"] == "open" and "attempt" not in task.get("speedrift", {})  # type: ignore[operator]
    assert choosing.dispatch_runtime(task, RepoConfig.model_validate(BASE), NOW) is None


def test_without_an_order_a_paused_runtime_is_refused_as_it_always_was(
    workshop: Workshop, runs: Path
) -> None:
    pause("claude")
    add(workshop, "alone")
    with pytest.raises(pauses.RuntimePaused) as refused:
        workshop.pipeline(**BASE).run("alone", RunOptions())
    assert not isinstance(refused.value, choosing.NoRuntime)
    assert str(refused.value).startswith("claude is paused until")


def test_a_runtime_failing_its_preflight_is_paused_and_passed_over(
    workshop: Workshop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = claude_bin(tmp_path, logged_in=False)
    codex_bin(folder)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin:/bin")
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(lands("pre.txt")))
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", str(scenario))
    preflight.forget()
    add(workshop, "pre", fallback=ORDER)
    done = workshop.pipeline(**BASE).run("pre", RunOptions())
    assert done.status == "done", done.reason
    assert done.evidence["fallback"]["reason"].startswith("claude is paused until a human lifts it")
    held = pauses.blocking_pause("claude")
    assert held is not None and held.cause == "preflight"


def test_a_provider_fault_moves_the_next_attempt_down_the_order_without_a_pause(
    workshop: Workshop, runs: Path
) -> None:
    """A 5xx pauses nothing, yet the retry runs on the next runtime (speedrift.fallback_skip); the
    attempt after one that did not fault goes back to the top of the order."""
    overloaded = [{"do": "emit", "lines": stream("claude_server_error.jsonl"), "exit": 1}]  # HTTP 500
    runs.write_text(json.dumps({"roles": {"developer": [overloaded, lands("five.txt")]}}))
    add(workshop, "flaky", fallback=ORDER)
    pipeline = workshop.pipeline(**BASE, **NO_BACKOFF)
    first = pipeline.run("flaky", RunOptions())
    assert first.status == "failed" and first.evidence["provider_fault"] is not None, first.evidence
    assert pauses.blocking_pause("claude") is None
    assert (first.recovery or {})["fallback_from"] == "claude:sonnet"
    followup.carry_out(workshop.repo, workshop.store, pipeline.config, "flaky", actor="test")
    second = pipeline.run("flaky", RunOptions())
    assert second.status == "done", second.reason
    assert second.evidence["fallback"]["reason"].startswith("attempt 1 failed on it:")
    assert second.evidence["runtime"] == "codex"


def test_the_skip_chain_ends_at_an_attempt_that_did_not_fault() -> None:
    failures = [{"attempt": 1, "class": "transient_infra"}, {"attempt": 2, "class": "implementation_error"}]
    skip = [{"attempt": 1, "entry": "claude:sonnet", "reason": "503"}]
    task: dict[str, Any] = {
        "id": "t",
        "speedrift": {"attempt": 2, "failures": failures, "fallback_skip": skip},
    }
    assert choosing.skipped(task) == []
    task["speedrift"]["attempt"] = 1
    task["speedrift"]["failures"] = failures[:1]
    assert [e["entry"] for e in choosing.skipped(task)] == ["claude:sonnet"]


def test_a_routed_task_escalates_by_routing_and_recovery_writes_no_model(workshop: Workshop) -> None:
    """One escalation mechanism per case: a routed attempt that ran out of budget climbs its
    routing tier on the retry; recovery's escalate_model leaves the task's model alone."""
    from speedrift.failure_class import FailureClass
    from speedrift.fleet import recovery
    from speedrift.fleet.classify import Classification

    config = RepoConfig.model_validate(
        {"routing": {"tiers": {"standard": "claude:sonnet", "strong": "claude:opus"}}}
    )
    add(workshop, "big")
    task = workshop.task("big")
    found = Classification(FailureClass.EXCEEDED_CAPACITY, ["token budget"], "budget-hit")
    routed = recovery.decide(
        found, task=task, attempt=1, runtime="claude", current_model="sonnet", config=config, tier="standard"
    )
    assert (routed.recovery, routed.automatic, routed.model) == ("escalate_model", True, None)
    assert "routing climbs from the standard to the strong tier (claude:opus)" in (routed.note or "")
    after = dict(task, speedrift={"failures": [{"attempt": 1, "class": "exceeded_capacity"}]})
    assert choosing.route_task(after, config).tier == "strong"
    top = recovery.decide(
        found, task=task, attempt=2, runtime="claude", current_model="opus", config=config, tier="strong"
    )
    assert top.recovery == "replan"
    explicit = recovery.decide(
        found, task=task, attempt=1, runtime="claude", current_model="sonnet", config=config, tier=None
    )
    assert explicit.model == "claude:opus"  # [recovery] model_tiers, written on the task as before
    usage = dict(task, speedrift={"failures": [{"attempt": 1, "class": "usage_limit"}]})
    assert choosing.route_task(usage, config).tier == "standard"  # a provider's limit climbs nothing


def test_add_and_edit_set_the_tasks_order_and_refuse_a_bad_entry(workshop: Workshop) -> None:
    def speedrift(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "speedrift", *argv],
            cwd=workshop.repo, env=dict(os.environ), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    added = speedrift("add", "Ordered", "--id", "ordered", "--fallback", "claude:sonnet, codex:gpt-5")
    assert added.returncode == 0, added.stderr
    assert workshop.task("ordered")["speedrift"] == {"fallback": ["claude:sonnet", "codex:gpt-5"]}
    bad = speedrift("edit", "ordered", "--fallback", "claude:sonnet,gemini:pro")
    assert bad.returncode != 0 and "'gemini:pro': each entry is runtime[:model]" in bad.stderr
    assert workshop.task("ordered")["speedrift"] == {"fallback": ["claude:sonnet", "codex:gpt-5"]}
    cleared = speedrift("edit", "ordered", "--fallback", "")
    assert cleared.returncode == 0, cleared.stderr
    assert "fallback" not in workshop.task("ordered").get("speedrift", {})  # type: ignore[operator]


def test_which_failures_move_down_the_order_and_which_do_not(workshop: Workshop) -> None:
    from speedrift.failure_class import FailureClass
    from speedrift.fleet import recovery
    from speedrift.fleet.classify import Classification

    config = RepoConfig.model_validate({})
    add(workshop, "ordered", fallback=ORDER)
    add(workshop, "same", fallback=["claude:sonnet", "claude:opus"])
    add(workshop, "none")

    def decide(task_id: str, cls: FailureClass, fault: str | None = None) -> recovery.Decision:
        found = Classification(cls, ["x"], "rule")
        task = workshop.task(task_id)
        return recovery.decide(
            found, task=task, attempt=1, runtime="claude", current_model="sonnet", config=config,
            provider_fault=fault,
        )  # fmt: skip

    refused = decide("ordered", FailureClass.AUTH_FAILURE)
    assert (refused.recovery, refused.automatic, refused.fallback_from) == ("retry", True, "claude:sonnet")
    assert "(the task's speedrift.fallback: claude:sonnet → codex:gpt-5)" in (refused.note or "")
    # the whole runtime is paused: another model on it is nowhere to go
    assert decide("same", FailureClass.USAGE_LIMIT).recovery == "pause_runtime"
    assert decide("same", FailureClass.TRANSIENT_INFRA, "transient").fallback_from == "claude:sonnet"
    assert decide("none", FailureClass.USAGE_LIMIT).recovery == "pause_runtime"  # no order: as before
    assert decide("none", FailureClass.AUTH_FAILURE).recovery == "escalate_human"
    own = decide("ordered", FailureClass.IMPLEMENTATION_ERROR)  # the agent's own failure stays put
    assert own.fallback_from is None and own.recovery == "retry_with_diagnosis"
    crash = decide("ordered", FailureClass.TRANSIENT_INFRA)  # a crash, no provider fault: same runtime
    assert crash.fallback_from is None


def test_a_standing_agents_tier_or_bare_runtime_routes_its_run(workshop: Workshop) -> None:
    config = RepoConfig.model_validate(
        {"routing": {"tiers": {"cheap": "codex:o4-mini", "strong": "claude:opus"}}}
    )
    add(workshop, "tiered", agent={"name": "a", "model": "strong"})
    add(workshop, "bare", agent={"name": "b", "model": "codex"})
    add(workshop, "role", agent={"name": "c", "role": "architect"})
    tiered = choosing.route_task(workshop.task("tiered"), config)
    assert (tiered.runtime, tiered.model, tiered.tier) == ("claude", "opus", "strong")
    bare = choosing.route_task(workshop.task("bare"), config)
    assert (bare.runtime, bare.model, bare.why) == ("codex", None, "explicit: the task's model codex")
    ruled = RepoConfig.model_validate(
        {"routing": {"tiers": {"cheap": "codex:o4-mini"}, "rules": [{"tier": "cheap", "role": "architect"}]}}
    )
    assert choosing.route_task(workshop.task("role"), ruled).why.startswith("routing rule 1 (role architect)")
