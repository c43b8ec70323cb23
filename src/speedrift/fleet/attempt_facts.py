"""What the failure classifier looks at: the facts of one failed attempt, and the pure fold of an
attempt's event stream into the few numbers and lines the rules need (fleet/classify.py).

The caller (fleet/facts.py) gathers these from the run record; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from speedrift.agents.protocol import FailureKind
from speedrift.failure_class import FailureClass

MAX_LINES_KEPT = 400  # message lines kept for the text rule (the newest)

# Tools that change files, by the name each runtime reports (compared lower-cased).
EDIT_TOOLS = frozenset(
    {"edit", "write", "multiedit", "notebookedit", "str_replace_editor", "apply_patch", "patch", "create"}
)
EDIT_ITEMS = frozenset({"file_change"})  # codex reports file edits as items, not tools

# what the runtimes say when the context window ran out or compaction failed
CONTEXT_LIMIT = re.compile(
    r"prompt is too long|context[_ -]?length[_ -]?exceeded|maximum context length"
    r"|context[ _-]?(window|length|limit)[^.\n]{0,40}(exceed|exhaust|full|reached|too (long|large))"
    r"|(exceed|exhaust|reach)\w*[^.\n]{0,40}context[ _-]?(window|length|limit)"
    r"|(auto[- ]?)?compact(ion|ing)?[^.\n]{0,30}fail|input (is )?too long",
    re.I,
)


@dataclass(frozen=True)
class EventStats:
    """What the classifier needs from an attempt's event stream (see :func:`summarize_events`)."""

    tool_calls: int = 0
    edit_calls: int = 0
    last_edit_index: int | None = None  # position of the last edit among the tool calls
    context_messages: tuple[str, ...] = ()  # error/finish texts that say the context ran out
    message_lines: tuple[str, ...] = ()  # the agent's own message lines (the newest few hundred)


@dataclass(frozen=True)
class BudgetFacts:
    """Limits (None: none set) and what the attempt used."""

    wall_clock_s: float | None = None
    max_turns: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    duration_s: float = 0.0
    turns: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    cut_files: tuple[str, ...] = ()  # files a prompt builder cut to fit a context budget


@dataclass(frozen=True)
class AttemptFacts:
    # the runtime's verdict; None when the agent succeeded and a later step failed
    failure_kind: FailureKind | None = None
    reason: str = ""
    final_text: str = ""
    report_status: str | None = None  # the agent's report: "done" | "blocked" | None
    report_summary: str = ""
    report_concerns: tuple[str, ...] = ()
    events: EventStats = field(default_factory=EventStats)
    gates: tuple[Mapping[str, Any], ...] = ()  # evidence bundles (or SPEED-shaped gate_results)
    gate_failure_class: FailureClass | None = None  # the gate seam's own verdict class, if any
    merge_conflict: tuple[str, ...] | None = None  # conflicting files; None: no conflict
    env_bootstrap: str | None = None  # why the worktree or its environment could not be prepared
    shared_paths_modified: tuple[str, ...] = ()  # shared env paths (.venv …) the agent changed
    internal_error: str | None = None  # speedrift itself failed after the agent started
    files_changed: int | None = None  # files changed in the worktree; None: not known
    budget: BudgetFacts = field(default_factory=BudgetFacts)
    refused: tuple[str, ...] = ()  # tool calls the agent's CLI refused (RunOutcome.refused)


# --- events -----------------------------------------------------------------------------------------
def summarize_events(events: Iterable[Mapping[str, Any]]) -> EventStats:
    """Fold event records (as in ``events.jsonl``: kind, text, data) into :class:`EventStats`."""
    tool_calls = edits = 0
    last_edit: int | None = None
    seen_ids: set[str] = set()
    context: list[str] = []
    lines: list[str] = []
    for event in events:
        kind = event.get("kind")
        raw_text, raw_data = event.get("text"), event.get("data")
        text = raw_text if isinstance(raw_text, str) else ""
        data: Mapping[str, Any] = raw_data if isinstance(raw_data, Mapping) else {}
        if kind in ("tool_use", "tool_result"):
            call_id = str(data.get("id") or "")
            # one call shows up several times: claude's result, codex's started/completed,
            # opencode's status updates; a result without an id cannot be matched, so skip it
            if (call_id and call_id in seen_ids) or (kind == "tool_result" and not call_id):
                continue
            if call_id:
                seen_ids.add(call_id)
            tool_calls += 1
            if _is_edit(data):
                edits += 1
                last_edit = tool_calls - 1
        elif kind in ("error", "finished") and text and CONTEXT_LIMIT.search(text):
            context.append(text)
        elif kind == "message" and text and not data.get("thinking"):
            lines.extend(line for line in text.splitlines() if line.strip())
            if len(lines) > 2 * MAX_LINES_KEPT:
                del lines[:-MAX_LINES_KEPT]
    return EventStats(
        tool_calls=tool_calls,
        edit_calls=edits,
        last_edit_index=last_edit,
        context_messages=tuple(context[-5:]),
        message_lines=tuple(lines[-MAX_LINES_KEPT:]),
    )


def _is_edit(data: Mapping[str, Any]) -> bool:
    tool = str(data.get("tool") or "").lower()
    return tool in EDIT_TOOLS or str(data.get("item") or "") in EDIT_ITEMS
