"""One agent run: spawn what the runtime builds, stream its events, enforce budgets, judge.

The session owns the child's process group (`procs.popen_group`: its own session) from spawn to
the end of the run: every way out (natural exit, budget kill, stall, cancel, an exception in a
callback) passes through `procs.end_group`, so nothing the agent started outlives the run.

Given a sandbox policy, the runtime's argv is prefixed with bubblewrap's (agents/sandbox.py) and
the group's leader is bwrap: ending the group ends the sandbox and everything in it, and the
sandbox's private HOME and TMPDIR are removed when the run ends.

Verdicts: a run that ends by itself, or that its runtime asked to stop (`ParseState.abort`), is
judged by the runtime from its events. A run speedrift stopped is judged by why it was stopped
(BUDGET, STALL, MAX_TURNS, CRASHED "cancelled", or the provider fault it kept retrying on).

Clocks: the stall clock starts at the agent's first event (or when `Budgets.startup_s` has
passed without one) and restarts at every progress event. While the runtime reports the CLI
retrying against the provider (`ParseState.retrying`), the retry window `provider_retry_s`
replaces the stall window: retry notices are neither progress nor silence, and a run that only
retries ends with the fault's own verdict and reset time, whatever `stall_s` says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO

from speedrift import layout, procs, records, redact
from speedrift.agents import _proc, rlimits, sandbox
from speedrift.agents._common import data_text
from speedrift.agents.protocol import (
    CANCELLED,
    FAULT_KINDS,
    AgentEvent,
    Budgets,
    ChildEnv,
    EventKind,
    FailureKind,
    ParseState,
    ProviderFault,
    RunOutcome,
    RunRequest,
    Runtime,
    StderrEvents,
)
from speedrift.agents.result import default_result_file

_TICK_S = 0.1  # how often budgets and `cancel` are looked at while the agent is quiet
_FINAL_READ_S = 5.0  # after the group is gone, how long to wait for the pipes to close


@dataclasses.dataclass(frozen=True)
class Stop:
    """Why speedrift ended a run itself."""

    kind: FailureKind
    reason: str
    fault: ProviderFault | None = None
    reset_at: datetime | None = None


def run_session(
    runtime: Runtime,
    request: RunRequest,
    *,
    env: Mapping[str, str],
    run_dir: Path,
    cancel: threading.Event | None = None,
    on_event: Callable[[AgentEvent], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_start: Callable[[int], None] | None = None,
    sandboxed: sandbox.Policy | None = None,
    limits: rlimits.RLimitPlan | None = None,
) -> RunOutcome:
    """Run `runtime` on `request` in its own process group; never raises for agent failures.
    ``on_start`` is told the agent's process group id as soon as it runs (it is its leader's pid).
    ``sandboxed``: run it inside that bubblewrap sandbox (agents/sandbox.py; the group's leader is
    then bwrap), whose private HOME and TMPDIR are removed when the run ends. ``limits``: rlimits
    set in the leader before exec (inherited inside the sandbox); a failed run that ended at one
    of them is a BUDGET verdict naming the limit."""
    started = clock()
    if sandboxed is not None:
        request = dataclasses.replace(request, sandboxed=True)
    try:
        argv = runtime.build_argv(request)
    except ValueError as exc:
        return RunOutcome(success=False, failure=FailureKind.CONFIG, reason=str(exc))
    child_env = dict(env)
    if isinstance(runtime, ChildEnv):
        child_env = runtime.child_env() | child_env
    # The CLIs print reset times as local wall-clock text; pin the zone so it can be read back.
    tz = child_env.setdefault("TZ", "UTC")
    if sandboxed is None:
        # A private TMPDIR inside the attempt's run dir: a CLI's own sandbox (codex's
        # workspace-write) treats $TMPDIR as writable, so the machine's one must not be it. In
        # speedrift's sandbox the TMPDIR is private already (agents/sandbox.py).
        private_tmp = run_dir / "tmp"
        child_env["TMPDIR"] = str(private_tmp)
    result_file = request.result_file or default_result_file(request.cwd)
    child_env["SPEEDRIFT_RESULT"] = str(result_file)
    executable = shutil.which(argv[0], path=child_env.get("PATH", os.defpath))
    if executable is None:
        reason = f"{argv[0]} is not installed (not found on the agent's PATH): {runtime.install_hint}"
        return RunOutcome(success=False, failure=FailureKind.NOT_INSTALLED, reason=reason)
    if not request.cwd.is_dir():
        reason = f"the working directory {request.cwd} does not exist"
        return RunOutcome(success=False, failure=FailureKind.CRASHED, reason=reason)
    run_dir.mkdir(parents=True, exist_ok=True)
    if sandboxed is None:
        private_tmp.mkdir(exist_ok=True)
    _prepare_files(request, result_file)
    not_hidden: tuple[str, ...] = ()
    if sandboxed is not None:
        try:
            wrapped = sandbox.wrap(sandboxed, argv, child_env, request.cwd)
            argv, child_env, not_hidden = wrapped.argv, wrapped.env, wrapped.not_hidden
        except OSError as exc:
            sandbox.discard(sandboxed)
            reason = f"could not prepare the agent's sandbox: {exc.strerror or exc}"
            return RunOutcome(
                success=False, failure=FailureKind.CRASHED, reason=reason, result_file=result_file
            )
        executable = sandboxed.bwrap  # the group's leader; the runtime's argv follows its options
    payload = runtime.stdin_payload(request)
    state = ParseState(tz=tz)
    with records.open_event_log(run_dir) as log, _discarded_after(sandboxed):
        if not_hidden:  # said where the run is read: a path the user asked hidden stayed visible
            said = "the sandbox left visible what [sandbox] hide names: " + "; ".join(not_hidden)
            records.append_event(
                log, records.Event(EventKind.ERROR.value, said, data={"source": "speedrift"})
            )
        try:
            # its own process group (we signal the whole group); pipes, as the events stream
            proc = procs.popen_group(
                argv,
                executable=executable,
                cwd=request.cwd,
                env=child_env,
                stdin=subprocess.PIPE if payload is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=limits.preexec() if limits is not None else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            reason = f"could not start {argv[0]}: {getattr(exc, 'strerror', None) or exc}"
            return RunOutcome(
                success=False, failure=FailureKind.CRASHED, reason=reason, result_file=result_file
            )
        if on_start is not None:
            with contextlib.suppress(OSError):  # bookkeeping: never leaves the agent unsupervised
                on_start(proc.pid)
        run = _Run(runtime, request.budgets, proc, state, log, on_event, cancel, clock, started)
        run.sandboxed = sandboxed is not None
        run.limits = limits
        outcome = run.supervise(payload, layout.stderr_path(run_dir))
    if sandboxed is None:
        shutil.rmtree(private_tmp, ignore_errors=True)
    redact.redact_file(layout.stderr_path(run_dir))  # written raw while the agent ran
    return dataclasses.replace(outcome, duration_s=max(0.0, clock() - started), result_file=result_file)


@contextlib.contextmanager
def _discarded_after(sandboxed: sandbox.Policy | None) -> Iterator[None]:
    """The sandbox's private HOME and TMPDIR go when the run ends (its group is ended by then)."""
    try:
        yield
    finally:
        if sandboxed is not None:
            sandbox.discard(sandboxed)


def _prepare_files(request: RunRequest, result_file: Path) -> None:
    if not request.prompt_file.exists():  # the pipeline normally writes it; opencode needs it
        request.prompt_file.parent.mkdir(parents=True, exist_ok=True)
        request.prompt_file.write_text(request.prompt, encoding="utf-8")
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.unlink(missing_ok=True)  # a stale report must not speak for this attempt


@dataclasses.dataclass
class _Run:
    runtime: Runtime
    budgets: Budgets
    proc: subprocess.Popen[bytes]
    state: ParseState
    log: IO[str]
    on_event: Callable[[AgentEvent], None] | None
    cancel: threading.Event | None
    clock: Callable[[], float]
    started: float
    stdout_closed: bool = False
    stderr_lines: queue.SimpleQueue[bytes] | None = None  # a runtime whose stderr is events: its lines
    sandboxed: bool = False  # the leader is bwrap: a signal death inside reaches us as 128 + N
    events_seen: bool = False  # the agent said anything at all (the start-up grace is over)
    retry_since: float | None = None  # when the current run of provider retries began
    limits: rlimits.RLimitPlan | None = None  # the rlimits set in the agent (agents/rlimits.py)

    def supervise(self, payload: bytes | None, stderr_path: Path) -> RunOutcome:
        proc = self.proc
        assert proc.stdout is not None and proc.stderr is not None
        lines: queue.Queue[bytes | None] = queue.Queue(maxsize=4096)  # backpressure on floods
        if isinstance(self.runtime, StderrEvents):
            self.stderr_lines = queue.SimpleQueue()
        sink = _proc.StderrSink(stderr_path, lines=self.stderr_lines)
        readers = [
            _proc.start_thread(_proc.pump_lines, proc.stdout, lines),
            _proc.start_thread(sink.pump, proc.stderr),
        ]
        if payload is not None and proc.stdin is not None:
            _proc.start_thread(_proc.feed_stdin, proc.stdin, payload)
        stop: Stop | None = None
        try:
            stop = self._watch(lines)
        finally:
            procs.end_group(proc, self.budgets.kill_grace_s)
            self._drain(lines, readers)
        if stop is not None:
            self._record(
                AgentEvent(
                    EventKind.ERROR, f"speedrift stopped the agent: {stop.reason}", {"source": "speedrift"}
                )
            )
        return self._verdict(stop, self._exit_code(proc.returncode), sink.last_line())

    def _exit_code(self, code: int | None) -> int | None:
        """The agent's own exit status. bwrap reports a sandboxed command killed by signal N as exit
        code 128 + N (as a shell does); it is read back as -N, as for an unsandboxed one."""
        if self.sandboxed and code is not None and 128 < code <= 128 + 64:
            return -(code - 128)
        return code

    def _watch(self, lines: queue.Queue[bytes | None]) -> Stop | None:
        """Consume events until the agent exits or must be stopped (then say why).

        Once the agent itself has exited, whatever it wrote is already in the pipe: `_drain`
        reads it after the group is ended, so a helper that inherited stdout cannot hold the
        run open.
        """
        # Until the first event the stall clock waits out the start-up grace.
        last_progress = self.started + self.budgets.startup_s
        while True:
            if self._stderr_events():  # recorded live, as they arrive (within a tick)
                last_progress = self._progressed()
            stop = self._limits(self.clock(), last_progress)
            if stop is not None:
                return stop
            if self.proc.poll() is not None:
                return None
            if self.stdout_closed:  # nothing more can arrive: wait on the process, not the pipe
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=_TICK_S)
                continue
            try:
                raw = lines.get(timeout=_TICK_S)
            except queue.Empty:
                continue
            if raw is None:  # end of stdout: the agent is exiting, which poll() will see
                self.stdout_closed = True
                continue
            if self._handle(raw):
                last_progress = self._progressed()
            elif self.events_seen:  # the first event of any kind ends the start-up grace
                last_progress = min(last_progress, self.clock())
            if self.state.abort:
                return None  # the runtime has its verdict; `end_group` stops the agent
            stop = self._budget()
            if stop is not None:
                return stop

    def _progressed(self) -> float:
        """The agent made progress now: the stall clock restarts and any retrying is over."""
        self.state.retrying = None
        self.retry_since = None
        return self.clock()

    def _limits(self, now: float, last_progress: float) -> Stop | None:
        budgets = self.budgets
        if self.cancel is not None and self.cancel.is_set():
            return Stop(FailureKind.CRASHED, CANCELLED)
        retry = self.state.retrying
        if now - self.started >= budgets.wall_clock_s:
            used = f"wall-clock budget of {budgets.wall_clock_s:g}s used up"
            if retry is not None:  # spent waiting on the provider: its fault, not the task's size
                why = f"{used} while the agent retried against the provider ({retry.fault.value})"
                why += f": {retry.reason}"
                return Stop(FAULT_KINDS[retry.fault], why, retry.fault, retry.reset_at)
            return Stop(FailureKind.BUDGET, used)
        if retry is not None:
            if self.retry_since is None:
                self.retry_since = now
            if now - self.retry_since >= budgets.provider_retry_s:
                why = (
                    f"the provider kept failing for {budgets.provider_retry_s:g}s while the agent "
                    f"retried ({retry.fault.value}): {retry.reason}"
                )
                return Stop(FAULT_KINDS[retry.fault], why, retry.fault, retry.reset_at)
            return None  # retrying is not silence: the retry window rules, not the stall window
        if now - last_progress >= budgets.stall_s:
            window = (
                f"no progress for {budgets.stall_s:g}s"
                if self.events_seen
                else f"no first event within {budgets.startup_s + budgets.stall_s:g}s "
                f"(start-up grace {budgets.startup_s:g}s + stall window {budgets.stall_s:g}s)"
            )
            last = self.state.extra.get("last_retry")
            return Stop(FailureKind.STALL, window + (f" (last: {data_text(last, 500)})" if last else ""))
        return None

    def _budget(self) -> Stop | None:
        """Turn, token and cost budgets, counted from events while the run is still going."""
        usage, budgets = self.state.usage, self.budgets
        if self.state.final_seen:
            return None  # the run is over: stopping it now would only discard finished work
        if budgets.max_turns is not None and usage.turns > budgets.max_turns:
            return Stop(
                FailureKind.MAX_TURNS, f"turn budget of {budgets.max_turns} exceeded ({usage.turns} turns)"
            )
        if budgets.max_tokens is not None and usage.total_tokens > budgets.max_tokens:
            return Stop(
                FailureKind.BUDGET, f"token budget of {budgets.max_tokens} exceeded ({usage.total_tokens})"
            )
        if budgets.max_cost_usd is not None and usage.cost_usd > budgets.max_cost_usd:
            return Stop(
                FailureKind.BUDGET,
                f"cost budget of ${budgets.max_cost_usd:g} exceeded (${usage.cost_usd:.4f})",
            )
        return None

    def _stderr_events(self) -> bool:
        """Record the stderr lines that have arrived; True when one of them was progress."""
        if self.stderr_lines is None:
            return False
        progress = False
        while True:
            try:
                raw = self.stderr_lines.get_nowait()
            except queue.Empty:
                return progress
            progress = self._handle(raw, stderr=True) or progress

    def _handle(self, raw: bytes, *, stderr: bool = False) -> bool:
        """Parse one stdout (or stderr) line and record its events; True when one was progress."""
        line = raw.decode("utf-8", "replace")
        runtime = self.runtime
        try:
            if stderr and isinstance(runtime, StderrEvents):
                events = runtime.parse_stderr_line(line, self.state)
            else:
                events = runtime.parse_line(line, self.state)
        except Exception as exc:  # a parser bug must not leave an agent unsupervised
            events = [
                AgentEvent(EventKind.ERROR, f"parser error: {exc!r}", {"source": "speedrift"}, progress=False)
            ]
        for event in events:
            self._record(event)
        if events:
            self.events_seen = True
        return any(event.progress for event in events)

    def _record(self, event: AgentEvent) -> None:
        if not event.recorded:  # past the runtime's output cap: counted, not written
            return
        # redacted on the way out: the event log never carries a credential the agent printed
        records.append_event(
            self.log,
            records.Event(event.kind.value, event.text, data=event.data, progress=event.progress),
        )
        if self.on_event is not None:
            self.on_event(event)

    def _drain(self, lines: queue.Queue[bytes | None], readers: list[threading.Thread]) -> None:
        """Parse what the agent wrote before it went, so the log and the verdict miss nothing."""
        deadline = time.monotonic() + _FINAL_READ_S
        while not self.stdout_closed and time.monotonic() < deadline:
            try:
                raw = lines.get(timeout=_TICK_S)
            except queue.Empty:
                if not readers[0].is_alive():
                    break
                continue
            if raw is None:
                break
            self._handle(raw)
        readers[1].join(timeout=max(0.0, deadline - time.monotonic()))
        self._stderr_events()

    def _verdict(self, stop: Stop | None, exit_code: int | None, stderr_line: str) -> RunOutcome:
        state = self.state
        if stop is None:
            outcome = self.runtime.judge(state, exit_code)
        else:
            outcome = RunOutcome(
                success=False,
                failure=stop.kind,
                reason=stop.reason,
                usage=state.usage,
                exit_code=exit_code,
                final_text=state.final_text,
                fault=stop.fault,
                reset_at=stop.reset_at,
                refused=tuple(state.refused),
            )
        hit = None if stop is not None or outcome.success else self._limit_hit(exit_code, stderr_line)
        if hit is not None:
            return dataclasses.replace(outcome, failure=FailureKind.BUDGET, reason=hit)
        if outcome.failure is FailureKind.CRASHED and stop is None and stderr_line:
            stderr_line = redact.redact_text(stderr_line)
            outcome = dataclasses.replace(outcome, reason=f"{outcome.reason}; stderr: {stderr_line}")
        return outcome

    def _limit_hit(self, exit_code: int | None, stderr_line: str) -> str | None:
        """The rlimit a failed run ended at, in words (None: none did, as far as can be told)."""
        texts = (redact.redact_text(stderr_line), self.state.final_text, self.state.error_text)
        return rlimits.limit_verdict(self.limits, exit_code, texts, self.clock() - self.started)
