"""Repo-plane hooks: the repo's own executables that speedrift runs at fixed points of an attempt.

Not git's hooks (those are fleet/hookpolicy.py, ``[git] hooks``). The events (:class:`HookEvent`):
``task-claimed`` (the attempt's worktree is ready), ``session-start`` (an agent session is about to
start), ``task-completing`` (the gates and any review passed, before the merge queue: a non-zero
exit, a timeout or a hook that cannot run VETOES landing as ``hook_rejected``), ``task-done``,
``task-failed`` (with the class) and ``agent-error`` (the agent's own run failed). Declared in
``speedrift.toml`` ``[hooks]`` (committed) and as executables in the main checkout's
``.speedrift/hooks/<event>`` or ``.speedrift/hooks/<event>.d/*`` (this machine's own), in that
order. Each gets the event as JSON on stdin, runs in the attempt's worktree with the agent's
scrubbed environment (agents/env.py) and sandbox (agents/sandbox.py, no agent CLI state; the
worktree read-only but for the events before the agent runs), within ``[hooks] timeout_s`` (its
whole process group killed then, procs.py). Its result (exit code, redacted output tail, duration,
timed_out) goes to the attempt's record and evidence (``hooks``).

Invariants: a program is resolved against the main checkout, never the worktree, so an agent
cannot rewrite the check that judges its work; only ``task-completing`` can block, and it blocks
on anything but a clean exit 0 (fail closed); a notification hook's failure is recorded, never
raised.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from speedrift import layout, records, redact
from speedrift.agents import env as agent_env
from speedrift.agents import sandbox
from speedrift.failure_class import FailureClass
from speedrift.fleet import attempts
from speedrift.fleet.attempt import Attempt, worker_actor
from speedrift.fleet.config import HOOK_EVENTS, RepoConfig
from speedrift.gates.verdict import GateBlocked, GateVerdict
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.procs import ProcessTimeout
from speedrift.procs import run as run_process
from speedrift.repo import git, worktrees
from speedrift.textclip import clip
from speedrift.times import format_time, now_utc

HOOKS_DIR = "hooks"  # under the main checkout's .speedrift/
RECORD_KEY = "hooks"  # in attempt.json and evidence.json
MAX_RECORDED = 100  # hook runs kept per attempt
GATE_NAME = "hooks"  # the gate-like result a veto fails with (fleet/classify.py reads it)
GRACE_S = 2.0  # SIGTERM, then SIGKILL this much later


class HookEvent(StrEnum):
    SESSION_START = "session-start"
    TASK_CLAIMED = "task-claimed"
    TASK_COMPLETING = "task-completing"
    TASK_DONE = "task-done"
    TASK_FAILED = "task-failed"
    AGENT_ERROR = "agent-error"


assert tuple(HookEvent) == HOOK_EVENTS  # one vocabulary: the config's keys are the events
WRITABLE = frozenset({HookEvent.SESSION_START, HookEvent.TASK_CLAIMED})  # may prepare the worktree


class Host(Protocol):
    """What a hook run needs of the pipeline (fleet/pipeline.py, fleet/merging.py provide it)."""

    repo: Path
    store: GraphStore
    config: RepoConfig


@dataclass(frozen=True)
class Declared:
    """One declared hook: its event, argv, and where it was declared."""

    event: HookEvent
    argv: tuple[str, ...]
    source: str  # "speedrift.toml [hooks] task-done #1" | ".speedrift/hooks/task-done"

    def to_dict(self) -> dict[str, Any]:
        return {"event": str(self.event), "command": shlex.join(self.argv), "source": self.source}


@dataclass
class HookRun:
    """One hook's run as recorded."""

    event: HookEvent
    command: str
    source: str
    exit_code: int | None = None
    output: str = ""  # the tail of stdout then stderr, redacted
    duration_s: float = 0.0
    timed_out: bool = False
    error: str | None = None  # could not run: why
    at: str = field(default_factory=lambda: format_time(now_utc()))

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def describe(self) -> str:
        if self.error is not None:
            return f"could not run: {self.error}"
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s"
        return f"exit {self.exit_code}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": str(self.event),
            "command": self.command,
            "source": self.source,
            "exit_code": self.exit_code,
            "ok": self.ok,
            "timed_out": self.timed_out,
            "duration_s": round(self.duration_s, 3),
            "output": self.output,
            **({"error": self.error} if self.error is not None else {}),
            "at": self.at,
        }


class HookRejected(GateBlocked):
    """A ``task-completing`` hook vetoed landing: a gate-like verdict classed ``hook_rejected``."""

    def __init__(self, verdict: GateVerdict, reason: str, run: HookRun) -> None:
        super().__init__(verdict)
        self.message = reason
        self.args = (reason,)
        self.run = run


# --- what is declared ---------------------------------------------------------------------------
def hooks_dir(repo: Path) -> Path:
    return layout.state_dir(repo) / HOOKS_DIR


def declared(repo: Path, config: RepoConfig, event: HookEvent | None = None) -> list[Declared]:
    """The hooks for ``event`` (None: every event), in the order they run: ``[hooks]`` first, then
    ``.speedrift/hooks/<event>``, then ``.speedrift/hooks/<event>.d/*`` by name."""
    found: list[Declared] = []
    for each in [event] if event is not None else list(HookEvent):
        for index, argv in enumerate(config.hooks.commands(each), start=1):
            found.append(Declared(each, tuple(argv), f"speedrift.toml [hooks] {each} #{index}"))
        single = hooks_dir(repo) / str(each)
        if single.is_file():
            found.append(Declared(each, (str(single),), f"{layout.STATE_DIR}/{HOOKS_DIR}/{each}"))
        folder = hooks_dir(repo) / f"{each}.d"
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.is_file() and not entry.name.startswith("."):
                    where = f"{layout.STATE_DIR}/{HOOKS_DIR}/{each}.d/{entry.name}"
                    found.append(Declared(each, (str(entry),), where))
    return found


def resolve_program(repo: Path, program: str, path: str) -> str:
    """The absolute program to run: a path with a slash is the main checkout's (never the
    worktree's), a bare name is looked up on the hook's PATH. ValueError naming the fix."""
    if "/" in program:
        candidate = Path(program) if os.path.isabs(program) else repo / program
        if not candidate.is_file():
            raise ValueError(f"{program} does not exist in {repo} (hooks run the main checkout's files)")
        if not os.access(candidate, os.X_OK):
            raise ValueError(f"{candidate} is not executable (chmod +x it)")
        return str(candidate.resolve())
    found = shutil.which(program, path=path)
    if found is None:
        raise ValueError(f"{program} is not on the hook's PATH (name it by path, or add it to PATH)")
    return found


# --- the event's description -------------------------------------------------------------------
def payload(
    repo: Path,
    attempt: Attempt,
    event: HookEvent,
    *,
    title: str = "",
    tip: str | None = None,
    verdicts: Sequence[GateVerdict] = (),
    failure_class: FailureClass | str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The JSON a hook reads on stdin."""
    worktree = attempt.worktree
    if tip is None and worktree.is_dir():
        tip = git.rev_parse(worktree, "HEAD")
    return {
        "event": str(event),
        "repo": str(repo),
        "repo_name": repo.name,
        "task": attempt.task_id,
        "title": title,
        "attempt": attempt.number,
        "runtime": attempt.runtime,
        "branch": attempt.branch,
        "target_branch": attempt.target_branch,
        "base_commit": attempt.base_commit,
        "tip": tip,
        "worktree": str(worktree),
        "run_dir": str(attempt.run_dir),
        "failure_class": str(failure_class) if failure_class is not None else None,
        "reason": redact.recordable(reason) if reason else None,
        "gates": [{"passed": v.passed, "summary": redact.recordable(v.summary)} for v in verdicts],
        "at": format_time(now_utc()),
    }


# --- running one ----------------------------------------------------------------------------------
def hook_env(store: GraphStore, config: RepoConfig, attempt: Attempt, event: HookEvent) -> dict[str, str]:
    """The agent's scrubbed environment (the same allow-list and passed secrets) plus the event."""
    return agent_env.agent_env(
        {
            "SPEEDRIFT_TASK_ID": attempt.task_id,
            "SPEEDRIFT_ATTEMPT": str(attempt.number),
            "SPEEDRIFT_HOOK_EVENT": str(event),
            "WG_DIR": str(store.directory),
            "WG_TASK_ID": attempt.task_id,
        },
        allow=config.env.allow,
        passthrough_secrets=config.env.secrets,
    )


def _policy(repo: Path, config: RepoConfig, attempt: Attempt, event: HookEvent) -> sandbox.Policy | None:
    """The sandbox a hook runs in: the attempt's decision (decided afresh for a landing resumed in
    another process), as the agent's (pipeline ``_sandbox_policy``) but with no agent CLI's state,
    its own private HOME and TMPDIR, and the worktree read-only once the agent may have run."""
    decision = attempt.sandbox or sandbox.decide(config.sandbox.mode, network=config.sandbox.network)
    sandbox.require(config.sandbox.mode, decision)
    if not decision.used or decision.bwrap is None:
        return None
    return sandbox.Policy(
        decision.bwrap,
        worktree=attempt.worktree,
        run_dir=attempt.run_dir / HOOKS_DIR,
        git_common_dir=git.common_dir(repo),
        network=decision.network,
        runtime="shell",
        hide=config.sandbox.hidden(),
        read_only=event not in WRITABLE,
    )


def run_one(
    repo: Path,
    config: RepoConfig,
    hook: Declared,
    data: Mapping[str, Any],
    *,
    cwd: Path,
    env: Mapping[str, str],
    policy: sandbox.Policy | None,
) -> HookRun:
    """Run one hook: ``data`` as JSON on stdin, in ``cwd``, within ``[hooks] timeout_s``. Never
    raises for the hook's doing: a hook that cannot start is a run with ``error``."""
    ran = HookRun(hook.event, shlex.join(hook.argv), hook.source)
    limit, tail = config.hooks.timeout_s, config.hooks.output_tail
    started = time.monotonic()
    try:
        argv = [resolve_program(repo, hook.argv[0], env.get("PATH", os.defpath)), *hook.argv[1:]]
        run_env: Mapping[str, str] = env
        if policy is not None:
            wrapped = sandbox.wrap(policy, argv, env, cwd)
            argv, run_env = wrapped.argv, wrapped.env
        stdin = json.dumps(dict(data), sort_keys=True).encode("utf-8") + b"\n"
        try:
            done = run_process(
                argv, cwd=cwd, env=run_env, input=stdin, timeout=limit, grace_s=GRACE_S, end_group=True
            )
            ran.exit_code, out, err = done.returncode, done.stdout, done.stderr
        except ProcessTimeout as late:
            ran.timed_out, out, err = True, late.stdout, late.stderr
    except (ValueError, OSError) as error:
        ran.error = redact.recordable(str(error) if isinstance(error, ValueError) else f"{error}")
        out = err = b""
    finally:
        ran.duration_s = time.monotonic() - started
        if policy is not None:
            sandbox.discard(policy)
    text = (out + err).decode("utf-8", "replace")
    ran.output = redact.recordable(text[-tail:]) if text else ""
    return ran


# --- the fixed points -------------------------------------------------------------------------------
def fire(
    host: Host,
    attempt: Attempt,
    event: HookEvent,
    *,
    title: str = "",
    tip: str | None = None,
    verdicts: Sequence[GateVerdict] = (),
    failure_class: FailureClass | str | None = None,
    reason: str | None = None,
) -> list[HookRun]:
    """Run ``event``'s hooks for ``attempt`` and record them (attempt.json and, once written, the
    evidence — done and failed attempts get every hook of the attempt there even with none for
    this event). Never raises for a hook: the caller decides what a failed one means."""
    hooks = declared(host.repo, host.config, event)
    runs: list[HookRun] = []
    if hooks:
        if not title:  # read only when a hook will run
            task = host.store.load().get(attempt.task_id)
            title = str(task.get("title", "")) if task is not None else ""
        data = payload(
            host.repo,
            attempt,
            event,
            title=title,
            tip=tip,
            verdicts=verdicts,
            failure_class=failure_class,
            reason=reason,
        )
        env = hook_env(host.store, host.config, attempt, event)
        cwd = attempt.worktree if attempt.worktree.is_dir() else host.repo
        for hook in hooks:
            try:
                policy = _policy(host.repo, host.config, attempt, event)
            except sandbox.SandboxUnavailable as refused:
                runs.append(HookRun(event, shlex.join(hook.argv), hook.source, error=refused.message))
                continue
            runs.append(run_one(host.repo, host.config, hook, data, cwd=cwd, env=env, policy=policy))
    if runs or event in (HookEvent.TASK_DONE, HookEvent.TASK_FAILED):
        record(attempt.run_dir, runs)
    return runs


def completing(
    host: Host, attempt: Attempt, task: Mapping[str, Any], tip: str, verdicts: list[GateVerdict]
) -> None:
    """``task-completing``: after the gates (and any review) passed on ``tip``, before landing. The
    first hook that fails appends a failing ``hooks`` verdict to ``verdicts`` (the classifier reads
    it as ``hook_rejected``), says so in the task's log and raises :class:`HookRejected`."""
    title = str(task.get("title", attempt.task_id))
    runs = fire(host, attempt, HookEvent.TASK_COMPLETING, title=title, tip=tip, verdicts=verdicts)
    vetoed = next((run for run in runs if not run.ok), None)
    if vetoed is None:
        return
    said = clip(vetoed.output.strip(), 1500) if vetoed.output.strip() else "(no output)"
    reason = f"the task-completing hook {vetoed.command} vetoed landing ({vetoed.describe()}): {said}"
    result = {
        "gate": GATE_NAME,
        "status": "fail",
        "failure_class": FailureClass.HOOK_REJECTED.value,
        "reason": reason,
        "findings": [],
        "hook": vetoed.to_dict(),
    }
    evidence = {"tip": tip, "results": [result], "blocking": [GATE_NAME]}
    verdicts.append(GateVerdict(False, f"hook: {reason}", evidence, failure_class=FailureClass.HOOK_REJECTED))
    actor = worker_actor()
    line = clip(
        f"Landing vetoed by the task-completing hook {vetoed.command} ({vetoed.describe()}): {said}", 900
    )
    host.store.mutate(
        lambda g, now: ops.log_message(g, attempt.task_id, line, now=now, actor=actor), actor=actor
    )
    raise HookRejected(verdicts[-1], reason, vetoed)


def failed(
    host: Host, attempt: Attempt, failure_class: FailureClass | None, reason: str, agent_failed: bool
) -> None:
    """Once a failure is recorded (its class decided): ``agent-error`` when the agent's own run
    failed (the developer's, or a reviewer's), then ``task-failed`` for every failed attempt."""
    if agent_failed:
        fire(host, attempt, HookEvent.AGENT_ERROR, failure_class=failure_class, reason=reason)
    fire(host, attempt, HookEvent.TASK_FAILED, failure_class=failure_class, reason=reason)


# --- the record ---------------------------------------------------------------------------------------
def recorded(run_dir: Path) -> list[dict[str, Any]]:
    """The attempt's hook runs so far (attempt.json ``hooks``)."""
    record = records.read_attempt(run_dir)
    listed = record.raw.get(RECORD_KEY) if record is not None else None
    return [entry for entry in listed if isinstance(entry, dict)] if isinstance(listed, list) else []


def record(run_dir: Path, runs: Sequence[HookRun]) -> None:
    """Append ``runs`` to the attempt's record; the evidence, once written, gets the whole list."""
    every = [*recorded(run_dir), *(run.to_dict() for run in runs)][-MAX_RECORDED:]
    if runs:
        attempts.write_attempt(run_dir, {RECORD_KEY: every})
    written = records.read_evidence(run_dir)
    if written is not None and every and written.raw.get(RECORD_KEY) != every:
        attempts.write_evidence(run_dir, {**written.raw, RECORD_KEY: every})


# --- by hand: `speedrift hooks test` ------------------------------------------------------------------
@dataclass
class DryRun:
    """A hook event tried by hand: the JSON sent and each hook's result (nothing recorded)."""

    event: HookEvent
    sent: dict[str, Any]
    runs: list[HookRun]

    def to_dict(self) -> dict[str, Any]:
        return {"event": str(self.event), "sent": self.sent, "runs": [run.to_dict() for run in self.runs]}


def dry_run(
    repo: Path, store: GraphStore, config: RepoConfig, event: HookEvent, task_id: str | None
) -> DryRun:
    """Run ``event``'s hooks on a synthetic event for ``task_id`` (default ``hooks-test``): in the
    main checkout, which the sandbox keeps read-only (a scratch directory is the one writable
    place, as for an external lane), with the attempt's environment. Records nothing."""
    task = store.load().get(task_id) if task_id else None
    head = git.rev_parse(repo, "HEAD") or ""
    branch = git.default_branch(repo) or "HEAD"
    scratch = Path(tempfile.mkdtemp(prefix="speedrift-hooks-test-"))
    try:
        manifest = worktrees.Manifest(
            task_id or "hooks-test",
            0,
            branch,
            str(repo),
            head,
            config.target_branch or branch,
            os.getpid(),
            format_time(now_utc()),
        )
        attempt = Attempt(
            manifest.task_id, 0, scratch / "run", manifest, config.default_runtime, None, time.monotonic()
        )
        sent = payload(
            repo,
            attempt,
            event,
            title=str(task.get("title", "")) if task is not None else "(a synthetic event)",
            failure_class=FailureClass.IMPLEMENTATION_ERROR if event is HookEvent.TASK_FAILED else None,
            reason="a synthetic event from `speedrift hooks test`"
            if event is HookEvent.TASK_FAILED
            else None,
        )
        env = hook_env(store, config, attempt, event)
        runs: list[HookRun] = []
        for hook in declared(repo, config, event):
            decision = sandbox.decide(config.sandbox.mode, network=config.sandbox.network)
            try:
                sandbox.require(config.sandbox.mode, decision)
            except sandbox.SandboxUnavailable as refused:
                runs.append(HookRun(event, shlex.join(hook.argv), hook.source, error=refused.message))
                continue
            policy = None
            if decision.used and decision.bwrap is not None:
                (scratch / "work").mkdir(exist_ok=True)
                policy = sandbox.Policy(
                    decision.bwrap,
                    worktree=scratch / "work",
                    run_dir=scratch,
                    network=decision.network,
                    runtime="shell",
                    hide=config.sandbox.hidden(),
                )
            runs.append(run_one(repo, config, hook, sent, cwd=repo, env=env, policy=policy))
        return DryRun(event, sent, runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
