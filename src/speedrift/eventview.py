"""One readable rendering of an attempt's events, for every runtime: the CLI (`speedrift tail`) and
the dashboard (run detail, live) both show what :func:`render` makes of an ``events.jsonl`` line.

Each event becomes a :class:`EventLine`: a short kind label, a style the page colours by, and one
line a person reads — tool calls as ``Edit src/app.py (+3 −1)``, ``Bash: pytest -q``,
``Read README.md``, ``Write tests/test_x.py``; tool results short, marked when they failed; the
agent's words and thinking; usage; errors; the run's end with its outcome. The runtimes' parsers
(agents/claude.py, codex.py, opencode.py, shell.py) put on each event what this reads: ``tool``,
``path``, ``added``/``removed``, ``changes``, ``exit_code``, ``is_error``, ``status``.

Invariant: every text this returns is :func:`speedrift.termtext.printable` (one line for ``line``;
line breaks kept only in ``detail``) and bounded (:data:`LINE_LIMIT`, :data:`DETAIL_LIMIT`). It
reads events as written, and they were redacted on the way in (``records.append_event``), so it
shows no credential the agent printed; it adds none of its own. Pure: no clock, no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from speedrift import layout
from speedrift.records import Event
from speedrift.termtext import printable
from speedrift.textclip import cut_middle, one_line

LINE_LIMIT = 300  # characters of an event's one line
DETAIL_LIMIT = 2_000  # characters of its longer text, when it has more than the line shows
PATH_LIMIT = 120


class Style(StrEnum):
    """How a line looks: the page's badge colour, the CLI's label."""

    START = "start"
    SAID = "said"  # the agent's words
    THINKING = "thinking"
    TOOL = "tool"  # a tool call (Bash, Read, Grep …)
    EDIT = "edit"  # a tool call that changes a file (Edit, Write …)
    RESULT = "result"  # a tool's answer
    FAILED = "failed"  # a tool's answer that says it failed
    OUTPUT = "output"  # the shell runtime's stdout
    STDERR = "stderr"  # the shell runtime's stderr
    USAGE = "usage"
    ERROR = "error"
    RETRY = "retry"  # a provider retry notice (not the agent's doing)
    FINISHED = "finished"
    OTHER = "other"


# The file tools of each runtime, by the name they show (opencode's are lower case).
_EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit", "Patch", "Apply_patch"})
_PATH_TOOLS = frozenset({"Read", "Ls", "List", "LS"})
_CODEX_TOOLS = {"command_execution": "Bash", "web_search": "WebSearch", "mcp_tool_call": "MCP"}
_CODEX_CHANGE = {"add": "Write", "update": "Edit", "delete": "Delete"}


@dataclass(frozen=True)
class EventLine:
    ts: str | None
    kind: str  # the event's kind as written (started, message, tool_use …)
    style: Style
    line: str  # what a person reads, one line
    detail: str = ""  # the longer text, when the line cut it (line breaks kept)

    @property
    def label(self) -> str:
        return self.style.value

    def to_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "ts": self.ts,
            "kind": self.kind,
            "style": self.style.value,
            "line": self.line,
        }
        if self.detail:
            shown["detail"] = self.detail
        return shown


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _one(text: str, limit: int = LINE_LIMIT) -> str:
    return cut_middle(one_line(printable(text)), limit)


def _detail(text: str, line: str) -> str:
    """The full text (bounded, line breaks kept) when the one line does not already say it all."""
    full = printable(text.strip(), newlines=True)
    if not full or one_line(full) in line:
        return ""
    return full if len(full) <= DETAIL_LIMIT else full[:DETAIL_LIMIT] + "…"


def _path(value: str) -> str:
    """A file path an agent named, from its worktree's root when it is inside one."""
    return cut_middle(printable(layout.worktree_relative(value)), PATH_LIMIT)


def _tool_name(data: dict[str, Any]) -> str:
    name = _text(data.get("tool"))
    item = _text(data.get("item"))
    if not name and item in _CODEX_TOOLS:
        return _CODEX_TOOLS[item]
    if not name and item == "file_change":
        return "Edit"
    return name[:1].upper() + name[1:] if name else "tool"


def _counts(data: dict[str, Any]) -> str:
    added, removed = _int(data.get("added")), _int(data.get("removed"))
    if added is None and removed is None:
        return ""
    return f" (+{added or 0} −{removed or 0})"


def _codex_changes(data: dict[str, Any]) -> str:
    changes = [c for c in data.get("changes") or [] if isinstance(c, dict)]
    verbs: dict[str, list[str]] = {}
    for change in changes:
        verb = _CODEX_CHANGE.get(_text(change.get("kind")), "Edit")
        verbs.setdefault(verb, []).append(_path(_text(change.get("path"))))
    return "; ".join(f"{verb} {', '.join(paths)}" for verb, paths in verbs.items())


def _tool_call(event: Event) -> EventLine:
    data = event.data
    name = _tool_name(data)
    target = _text(data.get("path")) or event.text
    if data.get("progress") is True:
        return EventLine(event.ts, event.kind, Style.TOOL, _one(f"{event.text or name} still running"))
    if _text(data.get("item")) == "file_change" and data.get("changes"):
        return EventLine(event.ts, event.kind, Style.EDIT, _one(_codex_changes(data)))
    status = _text(data.get("status"))  # opencode: the call and its outcome come as one event
    failed = status == "error"
    suffix = f" — failed: {_one(_text(data.get('error')), 200)}" if failed else ""
    if name in _EDIT_TOOLS or name.capitalize() in _EDIT_TOOLS:
        line = f"{name} {_path(target)}{_counts(data)}" if target else name
        return EventLine(event.ts, event.kind, Style.FAILED if failed else Style.EDIT, _one(line + suffix))
    if name == "Bash":
        line = f"Bash: {event.text}" if event.text else "Bash"
    elif name in _PATH_TOOLS:
        line = f"{name} {_path(target)}" if target else name
    else:
        line = f"{name}: {event.text}" if event.text else name
    detail = _detail(_text(data.get("output")), "")
    style = Style.FAILED if failed else Style.TOOL
    return EventLine(event.ts, event.kind, style, _one(line + suffix), detail)


def _tool_result(event: Event) -> EventLine:
    data = event.data
    if "item" in data:  # codex: the call's completion (its summary again, and how it ended)
        exit_code = _int(data.get("exit_code"))
        status = _text(data.get("status"))
        failed = status in ("failed", "declined") or (exit_code is not None and exit_code != 0)
        if _text(data.get("item")) == "file_change" and data.get("changes"):
            what = _codex_changes(data)
        else:
            what = f"{_tool_name(data)}: {event.text}" if event.text else _tool_name(data)
        how = f"exit {exit_code}" if exit_code is not None else (status or "done")
        line = f"{'✗' if failed else '✓'} {what} — {how}"
        return EventLine(event.ts, event.kind, Style.FAILED if failed else Style.RESULT, _one(line))
    failed = data.get("is_error") is True
    text = event.text.strip()
    first = text.splitlines()[0] if text else ""
    more = len(text.splitlines()) - 1
    tool = _text(data.get("tool"))
    said = first or "(no output)"
    if failed and more > 0:  # a failure's conclusion is usually its last line (a test run's summary)
        said = f"{_one(first, LINE_LIMIT // 2)} … {text.splitlines()[-1].strip()}"
        more -= 1
    line = (f"{tool} " if tool else "") + ("failed: " if failed else "→ ") + said
    if more > 0:
        line = _one(line, LINE_LIMIT - 20) + f" (+{more} lines)"
    line = _one(line)
    return EventLine(
        event.ts, event.kind, Style.FAILED if failed else Style.RESULT, line, _detail(text, line)
    )


def _message(event: Event) -> EventLine:
    data = event.data
    if data.get("thinking") is True:
        style = Style.THINKING
    elif data.get("stream") == "stderr":
        style = Style.STDERR
    else:
        style = Style.SAID
    line = _one(event.text) or "(empty)"
    return EventLine(event.ts, event.kind, style, line, _detail(event.text, line))


def _error(event: Event) -> EventLine:
    data = event.data
    retry = data.get("retry") is True or ("attempt" in data and "delay_s" in data)
    if data.get("source") == "speedrift":
        prefix = "speedrift: "
    elif data.get("refused") is True:
        prefix = "refused: "
    else:
        prefix = ""
    line = _one(prefix + event.text)
    return EventLine(
        event.ts, event.kind, Style.RETRY if retry else Style.ERROR, line, _detail(event.text, line)
    )


def _usage(event: Event) -> EventLine:
    data = event.data
    parts = [event.text] if event.text else []
    tokens = _int(data.get("tokens"))
    if tokens is not None:
        parts.append(f"{tokens:,} tokens")
    cost = data.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost > 0:
        parts.append(f"${cost:.4f}")
    return EventLine(event.ts, event.kind, Style.USAGE, _one(" · ".join(parts) or "usage"))


def _finished(event: Event) -> EventLine:
    data = event.data
    failed = data.get("is_error") is True or data.get("failed") is True
    parts = ["failed" if failed else "finished"]
    subtype = _text(data.get("subtype"))
    if subtype and subtype != "success":
        parts.append(subtype)
    tokens = _int(data.get("tokens"))
    if tokens:
        parts.append(f"{tokens:,} tokens")
    cost = data.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost > 0:
        parts.append(f"${cost:.4f}")
    head = " · ".join(parts)
    line = _one(f"{head} — {event.text}" if event.text.strip() else head)
    style = Style.ERROR if failed else Style.FINISHED
    return EventLine(event.ts, event.kind, style, line, _detail(event.text, line))


def _started(event: Event) -> EventLine:
    model = _text(event.data.get("model"))
    line = event.text + (f" (model {model})" if model and model not in event.text else "")
    return EventLine(event.ts, event.kind, Style.START, _one(line))


def render(event: Event, runtime: str | None = None) -> EventLine:
    """What a person reads of one event. ``runtime`` (the attempt's, from ``attempt.json``) tells
    the shell's output lines from an agent's words; without it both read as words."""
    kind = event.kind
    if kind == "message" and runtime == "shell" and event.data.get("stream") != "stderr":
        if event.data.get("source") == "speedrift":
            return EventLine(event.ts, kind, Style.SAID, _one("speedrift: " + event.text))
        line = _one(event.text)
        return EventLine(event.ts, kind, Style.OUTPUT, line, _detail(event.text, line))
    if kind == "message":
        return _message(event)
    if kind == "tool_use":
        return _tool_call(event)
    if kind == "tool_result":
        return _tool_result(event)
    if kind == "error":
        return _error(event)
    if kind == "usage":
        return _usage(event)
    if kind == "finished":
        return _finished(event)
    if kind == "started":
        return _started(event)
    line = _one(event.text)
    return EventLine(event.ts, _one(kind, 40) or "?", Style.OTHER, line, _detail(event.text, line))


def terminal_line(shown: EventLine) -> str:
    """One event as the CLI prints it: its time (ISO 8601, UTC, to the millisecond), label, line."""
    return f"{_one(shown.ts or '?', 40)} {shown.label:<8} {shown.line}"
