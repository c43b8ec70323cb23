"""Agent event streams and the event log under hostile lines: every runtime's ``parse_line`` gives
events, its judge an outcome; whatever they produce is written to a UTF-8 event log and read back;
and the log reader takes any bytes at all."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from speedrift import layout, records
from speedrift.agents.choose import RUNTIME_NAMES, runtime_for
from speedrift.agents.protocol import AgentEvent, ParseState, RunOutcome
from tests.fuzz.support import FUZZ, deep_values, json_values, nasty_fragments, tried

TYPES = [
    "system", "assistant", "user", "result", "rate_limit_event", "tool_progress", "thread.started",
    "turn.completed", "turn.failed", "item.started", "item.completed", "error", "step_start",
    "step_finish", "text", "tool_use",
]  # fmt: skip
KEYS = [
    "type",
    "subtype",
    "message",
    "content",
    "usage",
    "result",
    "is_error",
    "error",
    "item",
    "part",
    "text",
]


@st.composite
def hostile_line(draw: st.DrawFn) -> str:
    """An event-shaped JSON line with a nasty value spliced in (a lone surrogate, NaN, a deep
    value, a NUL, a bidi override…), or plain garbage."""
    kind = draw(st.sampled_from(TYPES))
    key = draw(st.sampled_from(KEYS[1:]))
    value = draw(nasty_fragments | deep_values() | json_values.map(lambda v: json.dumps(v).encode()))
    raw = b'{"type":"' + kind.encode() + b'","' + key.encode() + b'":' + value + b"}"
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]  # cut off, as a killed agent leaves it
    return raw.decode("utf-8", draw(st.sampled_from(["replace", "surrogateescape"])))


lines = st.one_of(st.text(max_size=120), hostile_line())


def _events(name: str, stream: list[str]) -> tuple[list[AgentEvent], RunOutcome]:
    runtime = runtime_for(name)
    state = ParseState(now=datetime(2026, 11, 21, tzinfo=UTC))
    events: list[AgentEvent] = []
    for line in stream:
        out = runtime.parse_line(line, state)
        assert isinstance(out, list) and all(isinstance(e, AgentEvent) for e in out)
        events += out
    outcome = runtime.judge(state, 0)
    assert isinstance(outcome, RunOutcome)
    return events, outcome


@FUZZ
@given(st.lists(lines, max_size=8))
def test_every_runtime_parses_hostile_lines_and_its_events_survive_the_log(stream: list[str]) -> None:
    tried("agents: parse_line x4 runtimes + event log", len(RUNTIME_NAMES))
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        for name in RUNTIME_NAMES:
            events, _outcome = _events(name, stream)
            with records.open_event_log(run_dir) as log:
                for event in events:
                    records.append_event(
                        log, records.Event(kind=event.kind, text=event.text, data=event.data)
                    )
        data = layout.events_path(run_dir).read_bytes() if layout.events_path(run_dir).exists() else b""
        data.decode("utf-8")  # the log is always valid UTF-8
        read = list(records.read_events(run_dir))
        assert len(read) == data.count(b"\n")  # every line written reads back
        for logged in read:
            orjson.dumps(logged.data)  # and can be served as JSON


@FUZZ
@given(
    st.binary(max_size=400)
    | st.lists(
        hostile_line().map(lambda s: s.encode("utf-8", "surrogatepass")) | deep_values(), max_size=5
    ).map(b"\n".join)
)
def test_the_event_log_reader_takes_any_bytes(data: bytes) -> None:
    tried("records: event log reader")
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        layout.events_path(run_dir).write_bytes(data)
        events: list[Any] = list(records.read_events(run_dir))
        tail, _cut = records.tail_events(run_dir, 64)
        fresh, position = records.new_event_lines(run_dir, 0)
        assert position <= len(data) and all(isinstance(line, bytes) for line in fresh)
        for event in [*events, *tail, *map(records.parse_event, data.split(b"\n"))]:
            if event is not None:
                orjson.dumps({"kind": event.kind, "text": event.text, "data": event.data})
