"""Garbage on stdout never crashes a parser or a judge (property tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speedrift.agents.choose import RUNTIME_NAMES, runtime_for
from speedrift.agents.protocol import AgentEvent, ParseState, RunOutcome
from tests.agents.conftest import STREAMS

# Event and field names the parsers look at, so that generated objects reach deep branches.
TYPES = [
    "system", "assistant", "user", "result", "rate_limit_event", "tool_progress", "thread.started",
    "turn.started", "turn.completed", "turn.failed", "item.started", "item.completed", "error",
    "step_start", "step_finish", "text", "reasoning", "tool_use",
]  # fmt: skip
KEYS = [
    "type", "subtype", "message", "content", "usage", "result", "is_error", "api_error_status",
    "errors", "error", "item", "part", "state", "tokens", "cache", "cost", "reason", "status",
    "rate_limit_info", "resetsAt", "attempt", "error_status", "id", "text", "statusCode", "data",
    "name", "responseHeaders", "responseBody", "total_cost_usd", "num_turns", "input_tokens",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [*TYPES, "success", "error_max_turns", "authentication_failed", "rejected", "stop", "tool-calls"]
    ),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6),
    ),
    max_leaves=30,
)
objects = st.builds(
    lambda kind, fields: {"type": kind} | fields,
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(KEYS[1:]), json_values, max_size=6),
)


def _dump(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


lines = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")),
    objects.map(_dump),
    json_values.map(_dump),
    objects.map(lambda o: _dump(o)[: len(_dump(o)) // 2]),  # truncated JSON
)


def _run(name: str, stream: list[str], exit_code: int | None) -> RunOutcome:
    runtime = runtime_for(name)
    state = ParseState(now=datetime(2026, 11, 21, tzinfo=UTC))
    for line in stream:
        events = runtime.parse_line(line, state)
        assert isinstance(events, list) and all(isinstance(e, AgentEvent) for e in events)
    outcome = runtime.judge(state, exit_code)
    assert isinstance(outcome, RunOutcome)
    assert outcome.success == (outcome.failure is None)
    return outcome


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(lines, max_size=10), exit_code=st.one_of(st.none(), st.integers(-64, 255)))
def test_parsers_survive_arbitrary_lines(stream: list[str], exit_code: int | None) -> None:
    for name in RUNTIME_NAMES:  # one generated stream feeds every parser: generation is the cost
        _run(name, stream, exit_code)


@pytest.mark.parametrize("name", ["claude", "codex", "opencode"])
@settings(max_examples=100, deadline=None)
@given(noise=st.lists(st.text(max_size=80).filter(lambda s: not s.lstrip().startswith("{")), max_size=6))
def test_non_json_lines_change_nothing(name: str, noise: list[str]) -> None:
    # Interleaving noise with a real success stream must leave its verdict and usage unchanged.
    stream = (STREAMS / f"{name}_success.jsonl").read_text().splitlines()
    clean = _run(name, stream, 0)
    noisy = _run(name, [*noise, *[x for line in stream for x in (line, *noise[:1])]], 0)
    assert clean.success and noisy.success
    assert noisy.usage == clean.usage
