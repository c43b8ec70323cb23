"""Helpers shared by the runtime tests."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from speedrift.agents.protocol import AgentEvent, ParseState, RunOutcome, Runtime


def feed(
    runtime: Runtime, lines: Iterable[str], *, now: datetime | None = None
) -> tuple[list[AgentEvent], ParseState]:
    """Parse `lines` as the session would and return every event and the final state."""
    state = ParseState(now=now)
    events: list[AgentEvent] = []
    for line in lines:
        events += runtime.parse_line(line, state)
    return events, state


def judge_stream(
    runtime: Runtime, lines: Iterable[str], exit_code: int | None, *, now: datetime | None = None
) -> RunOutcome:
    return runtime.judge(feed(runtime, lines, now=now)[1], exit_code)


_FLAG = re.compile(r"^--?[A-Za-z]")


def flags(argv: list[str]) -> list[str]:
    """The option names in an argv (values and positionals left out)."""
    return [arg.split("=", 1)[0] for arg in argv[1:] if _FLAG.match(arg)]


def documented(flag: str, help_text: str) -> bool:
    """Whether `flag` is spelled out in a captured --help text as an option of its own."""
    return re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=<\[]|$)", help_text, re.MULTILINE) is not None
