"""Helpers every runtime parser shares: tolerant JSON reading and outcome building.

Agent output is untrusted input. A line may be garbage, truncated, or valid JSON of the wrong
shape (`"usage": "lots"`), so parsers read fields only through these coercions, which return a
neutral value instead of raising.
"""

from __future__ import annotations

import difflib
import math
from datetime import datetime
from typing import Any

from speedrift import safejson
from speedrift.agents.protocol import (
    FAULT_KINDS,
    FailureKind,
    ParseState,
    ProviderFault,
    Retrying,
    RunOutcome,
)
from speedrift.termtext import printable

MAX_TEXT = 16_384  # event text kept per event; the raw stream is not ours to archive


def load_object(line: str) -> dict[str, Any] | None:
    """The JSON object on this line, or None for blank lines, noise, non-objects and JSON nested
    past 128 levels (speedrift/safejson.py). A lone surrogate escape in a string becomes U+FFFD
    rather than costing the line: an agent's final result must not vanish over one character."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = safejson.loads(line, replace_surrogates=True)
    except safejson.MalformedJson:
        return None
    return value if isinstance(value, dict) else None


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def clip(value: str, limit: int = MAX_TEXT) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


_DIFF_CHARS = 200_000  # past this, an edit's lines are counted, not diffed


def line_count(value: str) -> int:
    """The lines of a text (a final line without its newline counts)."""
    return value.count("\n") + (1 if value and not value.endswith("\n") else 0)


def line_changes(old: str, new: str) -> tuple[int, int]:
    """(added, removed): the lines an edit from ``old`` to ``new`` adds and removes, as a diff
    counts them (unchanged lines of context are not counted)."""
    if len(old) + len(new) > _DIFF_CHARS:
        return line_count(new), line_count(old)
    added = removed = 0
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            removed += i2 - i1
            added += j2 - j1
    return added, removed


def integer(value: Any) -> int:
    """A non-negative token count; anything else (bool, NaN, a string, negative) is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return max(0, min(int(value), 2**53))


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else 0.0


def data_text(value: str, limit: int = 2_000) -> str:
    """Text from a provider or an agent made safe to record anywhere: every control character,
    escape, NUL and bidi mark shown escaped (speedrift/termtext.py), never rejected — recording
    a failure must not fail over what the provider said. Line breaks are kept."""
    return clip(printable(value, newlines=True), limit)


def fail(state: ParseState, kind: FailureKind, reason: str) -> None:
    """Record the run's failure; the first decisive one wins (later noise does not replace it)."""
    if state.error is None:
        state.error = kind
        state.error_text = data_text(reason)


def provider_fault(
    state: ParseState, fault: ProviderFault, reason: str, *, reset_at: datetime | None = None
) -> None:
    """Record a provider fault as the run's failure (the verdict :data:`FAULT_KINDS` names), with
    its reset time when the provider gave one. The first decisive failure wins, as in `fail`."""
    if state.error is not None:
        return
    fail(state, FAULT_KINDS[fault], reason)
    state.fault = fault
    if reset_at is not None:
        state.reset_at = reset_at


def retrying(
    state: ParseState,
    fault: ProviderFault,
    reason: str,
    *,
    reset_at: datetime | None = None,
    status: int | None = None,
) -> None:
    """The CLI is retrying against the provider: not progress, not silence (session.py ends it
    after `Budgets.provider_retry_s` with this fault's verdict). A later reset time is kept when
    this notice names none (the 429 said when; the reconnect notice after it does not)."""
    before = state.retrying
    if reset_at is None and before is not None and before.fault is fault:
        reset_at = before.reset_at
    state.retrying = Retrying(fault, data_text(reason, 500), reset_at, status)


def judged(state: ParseState, exit_code: int | None, *, finished: bool) -> RunOutcome:
    """The common end of every `judge`: a recorded failure, else a finished run, else a crash.

    `finished` says whether the runtime saw its own end-of-run marker. Without one the run was
    interrupted or died, whatever the exit code: claude exits 0 on SIGINT without a result line.
    """
    common: dict[str, Any] = {
        "usage": state.usage,
        "exit_code": exit_code,
        "final_text": state.final_text,
        "refused": tuple(state.refused),
    }
    if state.error is not None:
        reason = state.error_text or state.error.value
        return RunOutcome(
            success=False,
            failure=state.error,
            reason=reason,
            reset_at=state.reset_at,
            fault=state.fault,
            **common,
        )
    if not finished:
        kind = FailureKind.INCOMPLETE if exit_code == 0 else FailureKind.CRASHED
        reason = f"the agent ended without its final event (exit code {exit_code})"
        return RunOutcome(success=False, failure=kind, reason=reason, **common)
    if exit_code not in (0, None):
        reason = f"the agent reported success but exited with code {exit_code}"
        return RunOutcome(success=False, failure=FailureKind.CRASHED, reason=reason, **common)
    return RunOutcome(success=True, **common)
