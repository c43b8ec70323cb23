"""A wave's validation commands, run by speedrift itself on the integrated commit — never taken
from an agent's word (wave-orchestration's weak point: a test gate that never ran, completion
scraped from a log).

Each command of the wave and of its tasks (plans/closure.py :func:`required_validation`) runs
with ``sh -c`` in a throwaway detached checkout of the commit, with the repo's environment
injected as a task's worktree gets it (``[worktree] share``, ``.worktreeinclude``), in its own
process group under a deadline, with no credential of this process (as the gates run the repo's
code). Each result is appended to ``.speedrift/plans/wave-<n>/validation.jsonl`` (command,
commit, exit code, seconds, the redacted tail of its output; an ad-hoc run's is in its run
directory, plans/spec.py ``state_dir``) and posted as an ``evidence`` record in the wave's
coordination scope.

Invariant: a result names the commit it ran on; closure counts only results on the commit it
judges, so a later landing makes every earlier result stale rather than wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil, redact, safejson, secret_patterns
from speedrift.coord.records import Actor, Author, Draft, Kind
from speedrift.coord.store import CoordStore
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.roles.runner import owned_checkout
from speedrift.gates import tools
from speedrift.plans.closure import CommandResult
from speedrift.plans.spec import WaveKey, scope_of, state_dir
from speedrift.repo import envshare
from speedrift.textclip import cut_middle
from speedrift.times import iso_utc, stamp

DEFAULT_TIMEOUT_S = 1800.0
OUTPUT_TAIL = 4000
TIMED_OUT = 124  # the exit code recorded for a command killed at its deadline (as timeout(1))
NOT_STARTED = 127  # the exit code recorded for a command that could not be started


def results_path(repo: Path, wave: WaveKey) -> Path:
    return state_dir(repo, wave) / "validation.jsonl"


@dataclass(frozen=True)
class Ran:
    result: CommandResult
    seconds: float
    output: str

    def as_dict(self, at: datetime) -> dict[str, Any]:
        return {
            "command": self.result.command,
            "commit": self.result.commit,
            "exit_code": self.result.exit_code,
            "seconds": round(self.seconds, 3),
            "output": self.output,
            "at": iso_utc(at),
        }


def recorded(repo: Path, wave: WaveKey) -> list[CommandResult]:
    """Every validation result recorded for ``wave``, oldest first (a torn last line is skipped)."""
    path = results_path(repo, wave)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    found: list[CommandResult] = []
    for line in raw.splitlines():
        try:
            item = safejson.loads(line)
            found.append(CommandResult(str(item["command"]), str(item["commit"]), int(item["exit_code"])))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def run_commands(
    repo: Path,
    config: RepoConfig,
    wave: WaveKey,
    commands: Sequence[str],
    commit: str,
    *,
    now: Callable[[], datetime],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    say: Callable[[str], None] = lambda _line: None,
) -> list[CommandResult]:
    """Run ``commands`` on ``commit`` (see the module docstring); their results, in order."""
    if not commands:
        return []
    record_dir = state_dir(repo, wave) / f"validation-{stamp(now())}"
    store = CoordStore.for_scope(repo, scope_of(wave))
    results: list[CommandResult] = []
    results_path(repo, wave).parent.mkdir(parents=True, exist_ok=True)
    with owned_checkout(repo, record_dir, commit) as checkout:
        envshare.inject(repo, checkout, list(config.worktrees.share))
        env = _environment(repo, checkout)
        for command in commands:
            say(f"validation: {command}")
            ran = _run(command, checkout, env, commit, timeout_s)
            moment = now()
            fsutil.append_synced(results_path(repo, wave), orjson.dumps(ran.as_dict(moment)) + b"\n")
            verdict = "passed" if ran.result.exit_code == 0 else f"failed (exit {ran.result.exit_code})"
            store.post(
                Draft(
                    Kind.EVIDENCE,
                    f"validation {verdict}: {command}",
                    Author(Actor.SPEEDRIFT, name="plan run"),
                    detail=ran.output,
                    data={"validation": ran.as_dict(moment) | {"output": ""}},
                ),
                now=moment,
            )
            say(f"validation: {verdict} in {ran.seconds:.1f}s")
            results.append(ran.result)
    return results


def _environment(repo: Path, checkout: Path) -> dict[str, str]:
    """This process's environment without credentials, the repo's tools first on PATH."""
    env = {key: value for key, value in os.environ.items() if not secret_patterns.is_secret_name(key)}
    local = [str(root / sub) for root in (checkout, repo) for sub in (".venv/bin", "node_modules/.bin")]
    env["PATH"] = os.pathsep.join([*local, env.get("PATH", os.defpath)])
    return env


def _run(command: str, checkout: Path, env: dict[str, str], commit: str, timeout_s: float) -> Ran:
    try:
        done = tools.run(["sh", "-c", command], cwd=checkout, env=env, timeout=timeout_s, what=command)
    except tools.GateTimeout:
        return Ran(CommandResult(command, commit, TIMED_OUT), timeout_s, f"timed out after {timeout_s:.0f}s")
    except tools.ToolNotRunnable as error:
        return Ran(CommandResult(command, commit, NOT_STARTED), 0.0, error.message)
    output = redact.redact_text(cut_middle((done.text + done.err).strip(), OUTPUT_TAIL))
    return Ran(CommandResult(command, commit, done.returncode), done.seconds, output)
