"""The `demo` runtime: a scripted coding agent (agents/demo_agent.py) that speaks Claude Code's
stream-json, so `speedrift demo` shows the whole loop without a model, a login or the network.

Job: build the agent's command line (this very Python interpreter running the stdlib-only script,
isolated with ``-I``, its pace passed as ``--pace``) and read its output. The output is read by
the Claude Code parser and judged by the Claude Code judge (agents/claude.py): one parser for one
format, so what the demo shows is exactly what a real Claude run would record.

The pace is ``SPEEDRIFT_DEMO_PACE`` in speedrift's own environment (a positive multiplier of the
agent's 10–60 s runs and of the demo feeder's interval; default 1). The agent never reads it
itself: its environment is the scrubbed allow-list every agent gets (agents/env.py).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from speedrift.agents.claude import ClaudeRuntime
from speedrift.agents.protocol import AgentEvent, EventKind, ParseState, RunOutcome, RunRequest
from speedrift.errors import InvalidValue

PACE_ENV = "SPEEDRIFT_DEMO_PACE"
MAX_PACE = 100.0
AGENT_SCRIPT = Path(__file__).with_name("demo_agent.py")
_CLAUDE = ClaudeRuntime()  # the parser and judge of the format the demo agent speaks


def demo_pace(environ: Mapping[str, str] | None = None) -> float:
    """``SPEEDRIFT_DEMO_PACE`` as a number (1.0 when unset); InvalidValue naming the fix otherwise."""
    raw = (os.environ if environ is None else environ).get(PACE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        pace = float(raw)
    except ValueError:
        pace = -1.0
    if not 0 < pace <= MAX_PACE:
        raise InvalidValue(
            f"{PACE_ENV}={raw!r} is not a pace: give a number above 0 and at most {MAX_PACE:g}",
            hint=f"e.g. {PACE_ENV}=0.2 runs the demo five times faster, {PACE_ENV}=2 twice as slowly",
        )
    return pace


class DemoRuntime:
    name = "demo"
    executable = sys.executable
    install_hint = (
        "the demo runtime runs speedrift's own Python interpreter and agents/demo_agent.py; "
        "reinstall speedrift"
    )

    def build_argv(self, request: RunRequest) -> list[str]:
        pace = demo_pace()
        return [self.executable, "-I", str(AGENT_SCRIPT), "--pace", f"{pace:g}"]

    def stdin_payload(self, request: RunRequest) -> bytes | None:
        return request.prompt.encode()

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        events = _CLAUDE.parse_line(line, state)
        # the Claude parser names its CLI when it starts; this one is the scripted demo agent
        return [
            dataclasses.replace(e, text="demo agent started") if e.kind is EventKind.STARTED else e
            for e in events
        ]

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        return _CLAUDE.judge(state, exit_code)
