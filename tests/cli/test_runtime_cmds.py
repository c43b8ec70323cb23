"""Runtime pauses and the executor preflight as a user meets them: `speedrift pauses`,
`speedrift resume-runtime`, `[policy] auto_resume`, the hub's plan and `speedrift why`, and
`speedrift doctor`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from speedrift import pausestore, times
from speedrift.agents import sandbox
from speedrift.demo import ecosystem as demo
from speedrift.fleet import pauses
from speedrift.pausestore import RuntimePause
from tests.cli.support import Cli


def _now() -> datetime:
    return datetime.now(UTC)


def usage_pause(runtime: str = "claude", *, until: datetime | None = None) -> RuntimePause:
    now = _now()
    return RuntimePause(
        runtime, "usage_limit", "You've hit your session limit", now - timedelta(hours=2),
        until or now + timedelta(hours=1), "", "speedrift@test:1", reset_at=until,
    )  # fmt: skip


def preflight_pause(runtime: str) -> RuntimePause:
    return RuntimePause(
        runtime, "preflight", f"{runtime} is not installed (not found on the agent's PATH)", _now(), None,
        "install it", "speedrift@test:1", needs_human=True,
    )  # fmt: skip


@pytest.fixture
def eco(tmp_path: Path) -> Path:
    demo.build(tmp_path / "eco")
    return tmp_path / "eco"


def _set_policy(eco: Path, line: str) -> None:
    path = eco / "ecosystem.toml"
    path.write_text(path.read_text().replace("[policy]\n", f"[policy]\n{line}\n"))


def test_pauses_lists_each_pause_with_its_fix_and_how_to_lift_it(cli: Cli) -> None:
    assert cli.ok("pauses").stdout.strip() == "No agent runtime is paused."
    pausestore.put(usage_pause(), _now())
    pausestore.put(preflight_pause("codex"), _now())
    listing = cli.json("pauses")
    assert [(p["runtime"], p["cause"], p["blocking"]) for p in listing["pauses"]] == [
        ("claude", "usage_limit", True),
        ("codex", "preflight", True),
    ]
    assert listing["pauses"][0]["sentence"].startswith("claude is paused until ")
    assert listing["pauses"][1]["needs_human"] and listing["pauses"][1]["fix"] == "install it"
    assert listing["auto_resume"] is True
    text = cli.ok("pauses").stdout
    assert "codex is paused until a human lifts it" in text and "fix: install it" in text
    assert "lift it now: speedrift resume-runtime codex" in text
    assert cli.json("resume-runtime", "--list") == listing


def test_resume_runtime_lifts_the_pause_for_every_supervisor(cli: Cli) -> None:
    pausestore.put(preflight_pause("claude"), _now())
    report = cli.json("resume-runtime", "claude")
    assert report["runtime"] == "claude" and [p["cause"] for p in report["lifted"]] == ["preflight"]
    assert pauses.blocking_pause("claude") is None
    assert cli.ok("resume-runtime", "claude").stdout.strip() == "claude was not paused."
    lifted = cli.json("pauses", "--all")["lifted"]
    assert lifted[0]["runtime"] == "claude" and "resume-runtime" in lifted[0]["lifted_by"]
    assert cli.fails(2, "resume-runtime", "gemini").returncode == 2  # not a runtime speedrift runs


def test_auto_resume_false_keeps_a_pause_past_its_reset_until_a_human_lifts_it(eco: Path) -> None:
    _set_policy(eco, "auto_resume = false")
    cli = Cli(eco)
    cli.ok("hub", "once", "--plan")  # the hub publishes its policy to every supervisor on the machine
    book = pausestore.read()
    assert book.auto_resume is False and "the hub of" in (book.auto_resume_source or "")
    reset = _now() - timedelta(minutes=5)  # the provider's reset time has passed
    pausestore.put(usage_pause(until=reset), _now())
    held = pauses.blocking_pause("claude")
    assert held is not None and held.sentence(_now()).startswith("claude is paused until a human lifts it")
    assert "auto_resume = false" in cli.json("pauses")["pauses"][0]["sentence"]
    cli.ok("resume-runtime", "claude")
    assert pauses.blocking_pause("claude") is None
    path = eco / "ecosystem.toml"
    path.write_text(path.read_text().replace("auto_resume = false", "auto_resume = true"))
    cli.ok("hub", "once", "--plan")
    assert pausestore.read().auto_resume is True


def test_the_hub_holds_a_paused_runtimes_dispatch_and_why_says_so(eco: Path) -> None:
    cli = Cli(eco)
    pausestore.put(preflight_pause("demo"), _now())  # factory's tasks run on the demo runtime
    record = cli.json("hub", "once", "--plan")
    [held] = [s for s in record["skipped"] if s["action"]["id"] == "factory:dispatch_ready"]
    assert "held by runtime_paused: demo is paused until a human lifts it" in held["reason"]
    [pause] = record["pauses"]  # the escalation: in the cycle record, with its fix
    assert (pause["runtime"], pause["needs_human"], pause["fix"]) == ("demo", True, "install it")

    repo = cli.json("why", "factory")
    assert [p["runtime"] for p in repo["paused"]] == ["demo"]
    assert "demo is paused until a human lifts it (`speedrift resume-runtime demo`)" in repo["answer"]
    task = held["action"]["params"]["tasks"][0]
    answer = cli.json("why", f"factory:{task}")
    assert answer["answer"].startswith(f"{task} is ready, but demo is paused until a human lifts it")
    text = cli.ok("why", f"factory:{task}").stdout
    assert "fix: install it" in text and "lift it now: speedrift resume-runtime demo" in text

    cli.ok("resume-runtime", "demo")
    record = cli.json("hub", "once", "--plan")
    assert record["pauses"] == []
    assert all("runtime_paused" not in s["reason"] for s in record["skipped"])


def test_a_usage_limit_pause_shows_its_reset_time_in_why(eco: Path) -> None:
    cli = Cli(eco)
    until = (_now() + timedelta(hours=3)).replace(second=0, microsecond=0)
    pausestore.put(usage_pause("demo", until=until), _now())
    cli.ok("hub", "once", "--plan")
    answer = cli.json("why", "factory")["answer"]
    assert f"demo is paused until {times.clock_words(until, _now())}" in answer
    assert "usage limit: You've hit your session limit" in answer


# --------------------------------------------------------------------------------------- doctor


def fake_bin(tmp_path: Path) -> Path:
    """A directory with a `claude` that answers the preflight like Claude Code 2.1.197."""
    folder = tmp_path / "fakebin"
    folder.mkdir()
    claude = folder / "claude"
    status = json.dumps({"loggedIn": True, "authMethod": "api_key", "apiKeySource": "ANTHROPIC_API_KEY"})
    claude.write_text(
        f'#!/bin/sh\ncase "$1" in\n  --version) echo "2.1.197 (Claude Code)";;\n'
        f"  auth) echo '{status}';;\n  *) exit 3;;\nesac\n"
    )
    claude.chmod(0o755)
    return folder


def test_doctor_reports_every_runtime_and_tool_and_fails_while_a_needed_runtime_is_missing(
    cli: Cli, repo: Path, tmp_path: Path
) -> None:
    cli.ok("add", "Needs claude", "--id", "a", "--model", "claude:sonnet")
    cli.ok("add", "Needs codex", "--id", "b", "--model", "codex:gpt-5.5")
    tools = tmp_path / "no-tools"
    tools.mkdir()
    env = {"PATH": f"{fake_bin(tmp_path)}:/usr/bin:/bin", "SPEEDRIFT_GATE_PATH": str(tools)}
    result = cli.fails(1, "doctor", "--json", env=env)
    report = result.json()
    assert set(report) == {"ready", "checked_at", "runtimes", "tools", "repos", "pauses", "sandbox"}
    assert report["ready"] is False
    runtimes = {r["runtime"]: r for r in report["runtimes"]}
    assert list(runtimes) == ["claude", "codex", "opencode", "shell", "demo"]
    claude, codex = runtimes["claude"], runtimes["codex"]
    assert (claude["status"], claude["version"], claude["auth"]) == ("ready", "2.1.197 (Claude Code)", "ok")
    assert claude["needed_by"] == [repo.name] and claude["path"].endswith("fakebin/claude")
    assert (codex["status"], codex["installed"], codex["needed"]) == ("not_installed", "failed", True)
    assert codex["fix"] == "install the Codex CLI: npm install -g @openai/codex"
    assert runtimes["opencode"]["needed"] is False and runtimes["shell"]["status"] == "ready"
    tool_rows = {t["tool"]: t for t in report["tools"]}
    assert {"ruff", "mypy", "pytest", "semgrep", "detect-secrets", "pip-audit", "eslint", "tsc", "npm",
            "go", "cargo", "make"} <= set(tool_rows)  # fmt: skip
    assert tool_rows["ruff"]["status"] == "missing" and "pip install ruff" in tool_rows["ruff"]["fix"]
    [mine] = report["repos"]
    assert mine["needs"] == {"runtimes": ["claude", "codex"], "tools": []}
    assert any("codex is not installed" in p for p in mine["problems"])
    text = cli.fails(1, "doctor", env=env).stdout
    assert "not ready" in text and "npm install -g @openai/codex" in text

    cli.ok("abandon", "b")  # nothing needs codex any more
    assert cli.json("doctor", env=env)["ready"] is True
    pausestore.put(preflight_pause("claude"), _now())  # a pause only a human lifts: not ready
    paused = cli.fails(1, "doctor", "--json", env=env).json()
    assert any("claude is paused until a human lifts it" in p for p in paused["repos"][0]["problems"])


def test_doctor_says_whether_agents_run_sandboxed_and_how_to_fix_it(
    cli: Cli, repo: Path, tmp_path: Path, path_without_bwrap: str
) -> None:
    tools = tmp_path / "no-tools"
    tools.mkdir()
    env = {"PATH": path_without_bwrap, "SPEEDRIFT_GATE_PATH": str(tools)}
    cli.ok("add", "A shell task", "--id", "a", "--exec", "true")
    report = cli.json("doctor", env=env)  # auto: runs unsandboxed, and says so
    assert report["sandbox"] == {
        "usable": False,
        "bwrap": None,
        "why": "bwrap (bubblewrap) is not installed",
        "fix": sandbox.FIX,
    }
    [mine] = report["repos"]
    assert mine["ready"] is True and mine["sandbox"]["used"] is False and mine["sandbox"]["mode"] == "auto"
    text = cli.ok("doctor", env=env).stdout
    assert "Agent sandbox: NOT available" in text and "apt-get install bubblewrap" in text
    assert f"{repo.name}: agents NOT sandboxed: bwrap (bubblewrap) is not installed" in text
    (repo / "speedrift.toml").write_text('[sandbox]\nmode = "required"\n')
    required = cli.fails(1, "doctor", "--json", env=env).json()
    assert any(
        "must be sandboxed" in p and "apt-get install bubblewrap" in p
        for p in required["repos"][0]["problems"]
    )


def test_doctor_outside_any_repo_requires_nothing(tmp_path: Path) -> None:
    where = tmp_path / "empty"
    where.mkdir()
    tools = tmp_path / "no-tools"
    tools.mkdir()
    env = {"PATH": "/usr/bin:/bin", "SPEEDRIFT_GATE_PATH": str(tools)}
    report = Cli(where).json("doctor", env=env)
    assert report["ready"] is True and report["repos"] == []
    assert {r["runtime"]: r["status"] for r in report["runtimes"]}["claude"] == "not_installed"
