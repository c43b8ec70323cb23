"""The shell runtime: a task's `exec` command, or a configured command that reads the prompt.

No model, no event format: every stdout line is a MESSAGE and the exit code is the verdict
(0 is success), which is what workgraph does for `exec` tasks. The `exec` string is the task
author's own shell command and goes to `/bin/sh -c` unchanged; speedrift never builds a shell
string itself.

Its output is all there is to follow, so stderr lines are events too (MESSAGE with
``data.stream = "stderr"``), recorded live as they arrive. Each line is cut at
:data:`~speedrift.agents._common.MAX_TEXT` characters, and an attempt records at most
:data:`EVENT_TEXT_CAP` characters of output as events: past that, one event says so and later
lines still count as progress but are not written (stderr stays in ``stderr.log``, capped).
Redaction happens where every event is written (``records.append_event``).
"""

from __future__ import annotations

import signal

from speedrift.agents._common import clip
from speedrift.agents.protocol import AgentEvent, EventKind, FailureKind, ParseState, RunOutcome, RunRequest
from speedrift.errors import InvalidValue

EVENT_TEXT_CAP = 1_000_000  # characters of output an attempt records as events (stdout and stderr)
_RECORDED = "event_chars"  # ParseState.extra: characters recorded so far
_CAPPED = "events_capped"  # ParseState.extra: the cap was reached (said once)


class ShellRuntime:
    name = "shell"
    executable = "/bin/sh"
    install_hint = "the shell runtime needs /bin/sh, or the program named in its `command` option on PATH"

    def build_argv(self, request: RunRequest) -> list[str]:
        if request.exec_command:
            return [self.executable, "-c", request.exec_command]
        command = request.options.get("command")
        if isinstance(command, list) and command and all(isinstance(a, str) and a for a in command):
            return list(command)
        raise InvalidValue(
            "the shell runtime needs the task's `exec` or a `command` option (a list of strings)"
        )

    def stdin_payload(self, request: RunRequest) -> bytes | None:
        # An `exec` task is a plain command: it gets no prompt (stdin is /dev/null).
        return None if request.exec_command else request.prompt.encode()

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        line = line.rstrip("\r\n")
        state.extra["lines"] = state.extra.get("lines", 0) + 1
        if line.strip():
            state.final_text = clip(line)
        return _capped(state, AgentEvent(EventKind.MESSAGE, clip(line)))

    def parse_stderr_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        line = line.rstrip("\r\n")
        return _capped(state, AgentEvent(EventKind.MESSAGE, clip(line), {"stream": "stderr"}))

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        if exit_code == 0:
            return RunOutcome(success=True, usage=state.usage, exit_code=0, final_text=state.final_text)
        if exit_code is None or exit_code < 0:
            cause = _signal_name(-exit_code) if exit_code is not None else "an unknown cause"
            kind, reason = FailureKind.CRASHED, f"the command was killed by {cause}"
        else:
            kind, reason = FailureKind.AGENT_ERROR, f"the command exited with code {exit_code}"
        return RunOutcome(
            success=False,
            failure=kind,
            reason=reason,
            usage=state.usage,
            exit_code=exit_code,
            final_text=state.final_text,
        )


def _capped(state: ParseState, event: AgentEvent) -> list[AgentEvent]:
    """``event`` while the attempt is under its total cap; past it, one notice, then the events
    unrecorded (they still count as progress: a busy command is not a stalled one)."""
    used = state.extra.get(_RECORDED, 0) + len(event.text)
    state.extra[_RECORDED] = used
    if used <= EVENT_TEXT_CAP:
        return [event]
    unrecorded = AgentEvent(event.kind, event.text, event.data, recorded=False)
    if state.extra.get(_CAPPED):
        return [unrecorded]
    state.extra[_CAPPED] = True
    notice = AgentEvent(
        EventKind.MESSAGE,
        f"[speedrift: output past {EVENT_TEXT_CAP:,} characters is not recorded as events; "
        "stderr.log keeps the start of stderr]",
        {"source": "speedrift", "capped": True},
    )
    return [notice, unrecorded]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
