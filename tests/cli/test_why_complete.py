"""`speedrift why` says in words every reason its ``--json`` carries (checked structurally: every
reason-bearing string of the JSON is in the text), and `why REPO:TASK` tells the task's whole history
across cycles — who started each attempt (a hub cycle and action, or `speedrift run`), what each
came to, the gates that failed, the recovery decided, what happens next and when — and names a
runtime that cannot run here with its fix. Real repos, real `speedrift run` workers, real hub cycles."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from speedrift.cli.why_task import SHOWN
from speedrift.control.controlfile import write_control
from speedrift.control.cycle import Hub
from speedrift.fleet import attempts, supervisor
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.procs import identity_alive
from speedrift.times import now_utc
from tests.cli.support import Cli
from tests.gitrepo import make_repo
from tests.waiting import wait_for

KEY = "AKIAZ7VQ3XK2PLM4RB6D"
FAST_GATES = '[gates]\nskip = ["sast", "sca", "lint", "types", "tests"]\n'
ACTING = """schema = 1

[policy]
plan_only = false
cooldown_seconds = { dispatch_ready = 0, retry_failed = 0 }
max_actions_per_repo_per_hour = 100

[repos.shop]
path = "shop"
"""
OBSERVING = 'schema = 1\n\n[repos.shop]\npath = "shop"\n'

# the JSON keys whose strings are reasons or conditions: each must be in the human output
REASON_KEYS = frozenset(
    {
        "answer", "reasons", "stall", "rule", "reason", "detail", "question", "message", "error",
        "sentence", "fix", "problem", "step", "who", "failure_class", "gates_failed", "blocking",
        "policy_error", "mode", "lease_owner", "action", "cycle_id",
    }
)  # fmt: skip


def reason_strings(value: Any, key: str | None = None) -> Iterator[str]:
    """Every string under a reason key of ``value`` (walked without recursion limits mattering)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from reason_strings(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from reason_strings(item, key)
    elif isinstance(value, str) and key in REASON_KEYS and value:
        yield value


def assert_complete(cli: Cli, *args: str) -> tuple[dict[str, Any], str]:
    """`why ARGS --json` and `why ARGS`: every reason string of the JSON is in the text."""
    answer = cli.json("why", *args)
    text = cli.ok("why", *args).stdout
    missing = [s for s in dict.fromkeys(reason_strings(answer)) if s not in text]
    assert not missing, f"in --json but not in the text: {missing}\n--- text:\n{text}"
    return answer, text


def add(repo: Path, task_id: str, command: str | None = None) -> None:
    spec = ops.NewTask(task_id, task_id=task_id, exec_command=command)
    GraphStore(repo / ".workgraph").mutate(lambda g, now: ops.add_task(g, spec, now=now, actor="test"))


def status(repo: Path, task_id: str) -> str:
    return str(GraphStore(repo / ".workgraph").load().tasks[task_id]["status"])


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Path]:
    repo = make_repo(
        tmp_path / "shop",
        {
            "README.md": "# shop\n",
            "speedrift.toml": FAST_GATES + "[service]\nmax_agents = 1\nbackoff_seconds = 600\n",
            ".gitignore": ".speedrift/\n",
        },
    )
    yield repo
    for entry in supervisor.live_attempts(repo):  # a worker left by a test that failed half-way
        if identity_alive(entry.identity) and entry.identity.pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(entry.identity.pid, signal.SIGKILL)


def ecosystem(tmp_path: Path, text: str = OBSERVING) -> Path:
    path = tmp_path / "ecosystem.toml"
    path.write_text(text)
    return path


def test_a_repos_reasons_mode_and_blocked_attempt_findings_are_all_in_the_words(
    shop: Path, tmp_path: Path
) -> None:
    path = ecosystem(tmp_path)
    add(shop, "leaky", f"printf 'AWS_KEY = \"{KEY}\"\\n' > config.py")
    add(shop, "later", "true")
    Cli(shop).fails(1, "run", "leaky")
    Hub(path).cycle()
    cli = Cli(tmp_path)
    answer, text = assert_complete(cli, "shop", "--ecosystem", str(path))
    assert answer["reasons"] and answer["mode"] == "observe"
    [blocked] = answer["findings"]["blocked_attempts"]
    assert (blocked["task"], blocked["attempt"], blocked["landed"]) == ("leaky", 1, False)
    assert "findings in leaky attempt 1 (failed, not landed)" in text and "blocked by secrets" in text
    assert answer["findings"]["target_branch"]["secret_leaks"] == 0  # nothing landed on main
    for reason in answer["reasons"]:
        assert f"    - {reason}" in text


def test_a_task_blocked_by_the_secret_gate_tells_its_attempt_the_gate_and_the_human_it_waits_on(
    shop: Path, tmp_path: Path
) -> None:
    path = ecosystem(tmp_path)
    add(shop, "leaky", f"printf 'AWS_KEY = \"{KEY}\"\\n' > config.py")
    Cli(shop).fails(1, "run", "leaky")
    Hub(path).cycle()
    answer, text = assert_complete(Cli(tmp_path), "shop:leaky", "--ecosystem", str(path))
    [attempt] = answer["history"]["attempts"]
    assert (attempt["n"], attempt["state"], attempt["failure_class"]) == (1, "failed", "secret_leak")
    assert attempt["gates_failed"] == ["secrets"] and attempt["started_by"]["by"] == "run"
    assert attempt["recovery"]["recovery"] == "escalate_human"
    assert "gates that failed: secrets" in text and "started by `speedrift run`" in text
    assert "speedrift retry leaky --context" in text


def test_a_task_the_hub_dispatched_names_the_cycle_and_action_after_later_cycles(
    shop: Path, tmp_path: Path
) -> None:
    path = ecosystem(tmp_path, ACTING)
    write_control(
        shop, "autonomous", owner="t", lease_ttl=timedelta(hours=1), actor="t", reason="t", now=now_utc()
    )
    add(shop, "ok", "echo ok > ok.txt")
    hub = Hub(path)
    first = hub.cycle()
    assert any("ok" in (o.evidence.get("pids") or {}) for o in first.executed), first.executed
    wait_for(lambda: status(shop, "ok") == "done", "the dispatched attempt to land")
    hub.cycle()  # the dispatching cycle is no longer the last
    hub.cycle()
    answer, text = assert_complete(Cli(tmp_path), "shop:ok", "--ecosystem", str(path))
    [attempt] = answer["history"]["attempts"]
    assert attempt["state"] == "done" and attempt["landed_commit"]
    started = attempt["started_by"]
    assert (started["by"], started["cycle_id"], started["action"]) == (
        "hub",
        first.cycle_id,
        "shop:dispatch_ready",
    )
    assert f"started by the hub: cycle {first.cycle_id}, action shop:dispatch_ready" in text
    assert answer["history"]["actions"][0]["cycle_id"] == first.cycle_id


def test_a_failed_task_says_what_happens_next_when_and_who_does_it(shop: Path, tmp_path: Path) -> None:
    path = ecosystem(tmp_path)
    add(shop, "crashes", "kill -9 $$")
    Cli(shop).fails(1, "run", "crashes")
    Hub(path).cycle()
    answer, text = assert_complete(Cli(tmp_path), "shop:crashes", "--ecosystem", str(path))
    [attempt] = answer["history"]["attempts"]
    assert attempt["recovery"]["automatic"] is True and attempt["recovery"]["delay_seconds"] == 600
    assert "after 600 s" in attempt["recovery"]["sentence"]
    step = answer["next"]
    assert step["at"] and step["by"] == "nobody" and "speedrift retry crashes" in step["who"]
    assert f"  next: {step['step']} at {step['at']}; by {step['who']}" in text


def test_a_runtime_whose_cli_is_not_installed_is_named_with_both_fixes(shop: Path, tmp_path: Path) -> None:
    (shop / "speedrift.toml").write_text(
        'default_runtime = "shell"\n'
        + FAST_GATES
        + '[runtimes.shell]\ncommand = ["speedrift-no-such-agent"]\n'
    )
    path = ecosystem(tmp_path)
    add(shop, "needs-agent")
    Hub(path).cycle()
    answer, text = assert_complete(Cli(tmp_path), "shop:needs-agent", "--ecosystem", str(path))
    runtime = answer["history"]["runtime"]
    assert runtime["runtime"] == "shell" and runtime["status"] == "not_installed"
    assert "speedrift-no-such-agent is not installed" in answer["answer"]
    assert "default_runtime" in runtime["fix"] and "model" in runtime["fix"]
    assert "runtime shell cannot run here" in text and "speedrift doctor" in text


def test_a_long_history_shows_the_newest_attempts_with_a_count_and_all_shows_every_one(
    shop: Path, tmp_path: Path
) -> None:
    path = ecosystem(tmp_path)
    add(shop, "flaky", "true")
    total = SHOWN + 3
    for n in range(1, total + 1):  # run records as the pipeline writes them (fleet/attempts.py)
        folder = attempts.run_dir(shop, "flaky", n)
        attempts.write_attempt(
            folder,
            {"state": "failed", "runtime": "shell", "failure": "transient_infra", "reason": f"crash {n}"},
        )
    Hub(path).cycle()
    cli = Cli(tmp_path)
    answer, text = assert_complete(cli, "shop:flaky", "--ecosystem", str(path))
    history = answer["history"]
    assert history["attempts_total"] == total and history["attempts_hidden"] == 3
    assert [a["n"] for a in history["attempts"]] == list(range(4, total + 1))
    assert f"{total} attempt(s) (the newest {SHOWN}; `--all` lists every one)" in text
    assert "reason: crash 3\n" not in text and "reason: crash 4\n" in text
    every, text = assert_complete(cli, "shop:flaky", "--all", "--ecosystem", str(path))
    assert [a["n"] for a in every["history"]["attempts"]] == list(range(1, total + 1))
    assert "reason: crash 1\n" in text


def test_a_ready_task_the_hub_holds_by_a_rule_says_the_rule_as_what_happens_next(
    shop: Path, tmp_path: Path
) -> None:
    path = ecosystem(tmp_path, ACTING)  # the hub may act, but the repo is in observe mode
    add(shop, "waiting", "true")
    held = Hub(path).cycle()
    [skipped] = [s for s in held.skipped if s.action.kind == "dispatch_ready"]
    answer, text = assert_complete(Cli(tmp_path), "shop:waiting", "--ecosystem", str(path))
    hold = answer["history"]["last_hold"]
    assert (hold["rule"], hold["cycle_id"]) == ("mode", held.cycle_id) == (skipped.rule, held.cycle_id)
    assert answer["next"]["step"].startswith(f"the hub holds it by mode (cycle {held.cycle_id})")
    assert "no attempt yet" in text


def test_a_running_attempt_is_what_happens_next_with_who_started_it(shop: Path, tmp_path: Path) -> None:
    path = ecosystem(tmp_path, ACTING)
    write_control(
        shop, "autonomous", owner="t", lease_ttl=timedelta(hours=1), actor="t", reason="t", now=now_utc()
    )
    gate = tmp_path / "go"
    add(shop, "slow", f"while [ ! -f {gate} ]; do sleep 0.1; done; echo done > slow.txt")
    hub = Hub(path)
    first = hub.cycle()
    try:
        wait_for(lambda: status(shop, "slow") == "in-progress", "the dispatched attempt to start")
        wait_for(
            lambda: (shop / ".speedrift" / "runs" / "slow" / "1" / "attempt.json").exists(), "its run record"
        )
        answer, text = assert_complete(Cli(tmp_path), "shop:slow", "--ecosystem", str(path))
        step = answer["next"]
        assert step["step"].startswith("attempt 1 is running since") and step["by"] == "hub"
        assert f"cycle {first.cycle_id}" in step["who"] and "still running" in text
    finally:
        gate.touch()
    wait_for(lambda: status(shop, "slow") == "done", "the attempt to land")
