"""Codex CLI (`codex exec --json`), written against codex-cli 0.169.0.

Facts this module relies on (reference/agent-clis.md):
- the prompt goes on stdin (`-`); the default sandbox is read-only, where writes fail silently,
  so `workspace-write` is the default here;
- codex's own sandbox cannot start inside speedrift's (agents/sandbox.py): as root the kernel
  refuses to map uid 0 into its nested user namespace without CAP_SETFCAP, which speedrift's
  sandbox drops, and as any user it wants to make mount points under a read-only ``/tmp``; every
  write then fails with "Failed to write file" while the run still reports success. Inside
  speedrift's sandbox, which already confines writes to the worktree, ``workspace-write`` becomes
  ``danger-full-access`` (``read-only`` stays read-only);
- a run ends with `turn.completed` (usage, cumulative, `input_tokens` including cached ones) or
  `turn.failed`; there is no cost field and no max-turns option;
- `error` lines are either fatal (followed by `turn.failed`) or retry notices
  (`Reconnecting... 2/5 (…)`, `Reconnecting... waiting for network (…)`) that can repeat forever:
  those are not progress, so the stall budget still ends a run stuck offline;
- usage-limit texts carry a local wall-clock reset time and no zone (U+2019 apostrophe in 0.169).
"""

from __future__ import annotations

import re
from typing import Any

from speedrift.agents._common import clip, fail, integer, judged, load_object, obj, seq, text
from speedrift.agents.limits import AUTH_TEXT, CODEX_USAGE_LIMIT, TRANSIENT_TEXT, codex_reset
from speedrift.agents.protocol import AgentEvent, EventKind, FailureKind, ParseState, RunOutcome, RunRequest
from speedrift.errors import InvalidValue

SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
_RECONNECT = re.compile(r"^Reconnecting\.\.\.")
# A retry notice for an HTTP 401/403 will not heal by retrying five more times.
_AUTH_RETRY = re.compile(r"unexpected status 40[13]\b")
_TOOL_ITEMS = ("command_execution", "file_change", "mcp_tool_call", "web_search", "collab_tool_call")


class CodexRuntime:
    name = "codex"
    executable = "codex"
    install_hint = "install the Codex CLI: npm install -g @openai/codex"

    def build_argv(self, request: RunRequest) -> list[str]:
        sandbox = request.options.get("sandbox", "workspace-write")
        if sandbox not in SANDBOXES:
            raise InvalidValue(f"codex sandbox must be one of {', '.join(SANDBOXES)}, not {sandbox!r}")
        if request.sandboxed and sandbox == "workspace-write":
            sandbox = "danger-full-access"  # speedrift's sandbox confines it; codex's cannot nest there
        argv = [
            self.executable,
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--ephemeral",
            "--sandbox",
            sandbox,
        ]
        if request.model:
            argv += ["-m", request.model]
        argv.append("-")  # read the prompt from stdin
        return argv

    def stdin_payload(self, request: RunRequest) -> bytes | None:
        return request.prompt.encode()

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        event = load_object(line)
        if event is None:
            return []
        kind = text(event.get("type"))
        if kind == "thread.started":
            return [
                AgentEvent(EventKind.STARTED, "codex started", {"thread_id": text(event.get("thread_id"))})
            ]
        if kind == "turn.started":
            state.usage.turns = max(state.usage.turns, 1)
            return [AgentEvent(EventKind.STARTED, "turn started")]
        if kind in ("item.started", "item.updated", "item.completed"):
            return _item(obj(event.get("item")), kind == "item.completed", state)
        if kind == "error":
            return [_error(text(event.get("message")), state)]
        if kind == "turn.completed":
            _usage(obj(event.get("usage")), state)
            state.final_seen = True
            return [
                AgentEvent(EventKind.FINISHED, clip(state.final_text), {"tokens": state.usage.total_tokens})
            ]
        if kind == "turn.failed":
            message = text(obj(event.get("error")).get("message"))
            _classify(message, state)
            state.final_seen = True
            return [AgentEvent(EventKind.FINISHED, clip(message), {"failed": True})]
        return []

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        return judged(state, exit_code, finished=state.final_seen)


def _item(item: dict[str, Any], completed: bool, state: ParseState) -> list[AgentEvent]:
    itype = text(item.get("type"))
    data = {"item": itype, "id": text(item.get("id"))}
    if itype == "agent_message":
        state.final_text = clip(text(item.get("text")))
        return [AgentEvent(EventKind.MESSAGE, state.final_text, data)]
    if itype == "reasoning":
        return [AgentEvent(EventKind.MESSAGE, clip(text(item.get("text"))), data | {"thinking": True})]
    if itype == "error":  # non-fatal notices: model metadata fallbacks, transport fallbacks
        return [AgentEvent(EventKind.ERROR, clip(text(item.get("message"))), data, progress=False)]
    if itype in _TOOL_ITEMS:
        data["status"] = text(item.get("status"))
        if not completed:
            return [AgentEvent(EventKind.TOOL_USE, _summary(item), data)]
        # No model-step count reaches the stream: each finished tool call stands for one step.
        state.usage.turns += 1
        return [AgentEvent(EventKind.TOOL_RESULT, _summary(item), data)]
    if itype == "todo_list":
        return [AgentEvent(EventKind.MESSAGE, "plan updated", data)]
    return []


def _summary(item: dict[str, Any]) -> str:
    if "command" in item:
        return clip(text(item.get("command")), 500)
    paths = [text(obj(c).get("path")) for c in seq(item.get("changes"))]
    if paths:
        return clip(", ".join(paths), 500)
    return clip(text(item.get("tool")) or text(item.get("query")), 500)


def _error(message: str, state: ParseState) -> AgentEvent:
    if _RECONNECT.match(message):
        state.extra["last_retry"] = clip(message, 500)
        if _AUTH_RETRY.search(message):
            fail(state, FailureKind.AUTH, message)
            state.abort = True
        return AgentEvent(EventKind.ERROR, clip(message), {"retry": True}, progress=False)
    _classify(message, state)
    return AgentEvent(EventKind.ERROR, clip(message), {"fatal": True})


def _classify(message: str, state: ParseState) -> None:
    if CODEX_USAGE_LIMIT.search(message):
        state.reset_at = state.reset_at or codex_reset(message, state.now, state.tz)
        fail(state, FailureKind.USAGE_LIMIT, message)
    elif AUTH_TEXT.search(message):
        fail(state, FailureKind.AUTH, message)
    elif TRANSIENT_TEXT.search(message):
        fail(state, FailureKind.TRANSIENT, message)
    else:
        fail(state, FailureKind.AGENT_ERROR, message or "codex reported an error")


def _usage(usage: dict[str, Any], state: ParseState) -> None:
    # Cumulative for the run, so assigned rather than added; input includes the cached part.
    cached = integer(usage.get("cached_input_tokens"))
    state.usage.input_tokens = max(0, integer(usage.get("input_tokens")) - cached)
    state.usage.cache_read_tokens = cached
    state.usage.cache_write_tokens = integer(usage.get("cache_write_input_tokens"))
    state.usage.output_tokens = integer(usage.get("output_tokens"))
