"""Claude Code (`claude -p --output-format stream-json --verbose`), written against 2.1.197.

Facts this module relies on (reference/agent-clis.md):
- the prompt goes on stdin; `--verbose` is mandatory with stream-json;
- the last line of a finished run is `result`; API failures (auth, 429, 5xx) end with a `result`
  whose subtype says "success" while `is_error` is true, so the decision is made on `is_error`;
- only `result` has reliable totals: `assistant` lines are per content block and carry the
  `message_start` usage snapshot, so they are counted once per message id as a live estimate and
  replaced by the totals at the end;
- a 401 is retried up to ten times (`system/api_retry`) before the result line arrives.
"""

from __future__ import annotations

from typing import Any

from speedrift.agents._common import clip, fail, integer, judged, load_object, number, obj, seq, text
from speedrift.agents.limits import CLAUDE_USAGE_LIMIT, TRANSIENT_TEXT, claude_reset, from_epoch
from speedrift.agents.protocol import AgentEvent, EventKind, FailureKind, ParseState, RunOutcome, RunRequest
from speedrift.errors import InvalidValue

PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan")
_AUTH_ERRORS = ("authentication_failed", "oauth_org_not_allowed")
_TRANSIENT_ERRORS = ("rate_limit", "overloaded", "server_error")
_AUTH_RETRIES_BEFORE_ABORT = 2  # one retry may be an OAuth refresh; a second 401 is a bad key


class ClaudeRuntime:
    name = "claude"
    executable = "claude"
    install_hint = "install Claude Code: npm install -g @anthropic-ai/claude-code"

    def build_argv(self, request: RunRequest) -> list[str]:
        options = request.options
        mode = options.get("permission_mode", "acceptEdits")
        if mode not in PERMISSION_MODES:
            raise InvalidValue(
                f"claude permission_mode must be one of {', '.join(PERMISSION_MODES)}, not {mode!r}"
            )
        argv = [self.executable, "-p", "--output-format", "stream-json", "--verbose"]
        if request.model:
            argv += ["--model", request.model]
        argv += ["--permission-mode", mode]
        tools = options.get("allowed_tools", [])
        if isinstance(tools, str):
            tools = [tools]
        if not isinstance(tools, list) or not all(isinstance(t, str) and t for t in tools):
            raise InvalidValue("claude allowed_tools must be a list of tool names")
        if tools:
            argv += ["--allowedTools", ",".join(tools)]  # one argument: the flag is variadic
        budgets = request.budgets
        if budgets.max_turns:
            argv += ["--max-turns", str(budgets.max_turns)]  # works, though absent from --help
        if budgets.max_cost_usd:
            argv += ["--max-budget-usd", f"{budgets.max_cost_usd:g}"]
        argv.append("--no-session-persistence")
        return argv

    def stdin_payload(self, request: RunRequest) -> bytes | None:
        return request.prompt.encode()

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        event = load_object(line)
        if event is None:
            return []
        kind = text(event.get("type"))
        if kind == "system":
            return _system(event, state)
        if kind == "assistant":
            return _assistant(event, state)
        if kind == "user":
            return _tool_results(event)
        if kind == "rate_limit_event":
            return _rate_limit(event, state)
        if kind == "result":
            return [_result(event, state)]
        if kind == "tool_progress":  # a long tool call is alive
            return [AgentEvent(EventKind.TOOL_USE, text(event.get("tool_name")), {"progress": True})]
        return []  # stream_event, hooks, notifications …: nothing we act on

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        return judged(state, exit_code, finished=state.final_seen)


def _system(event: dict[str, Any], state: ParseState) -> list[AgentEvent]:
    subtype = text(event.get("subtype"))
    if subtype == "init":
        data = {"model": text(event.get("model")), "session_id": text(event.get("session_id"))}
        return [AgentEvent(EventKind.STARTED, "claude started", data)]
    if subtype == "api_retry":
        # Retrying is not progress: a run stuck in retries must still trip the stall budget.
        error = text(event.get("error"))
        status = integer(event.get("error_status")) or None
        attempt = integer(event.get("attempt"))
        state.extra["last_retry"] = f"API retry {attempt}: {error or 'error'} (status {status})"
        if (error in _AUTH_ERRORS or status in (401, 403)) and attempt >= _AUTH_RETRIES_BEFORE_ABORT:
            fail(state, FailureKind.AUTH, f"authentication failed (HTTP {status}); claude kept retrying")
            state.abort = True
        retry = {"attempt": attempt, "error": error, "status": status}
        return [AgentEvent(EventKind.ERROR, state.extra["last_retry"], retry, progress=False)]
    if subtype in ("task_started", "task_progress", "task_notification"):  # sub-agents working
        return [AgentEvent(EventKind.MESSAGE, subtype, {"subtype": subtype})]
    return []


def _assistant(event: dict[str, Any], state: ParseState) -> list[AgentEvent]:
    message = obj(event.get("message"))
    blocks = seq(message.get("content"))
    error = text(event.get("error"))
    if error:  # the synthetic message that precedes an API-error result
        state.extra["assistant_error"] = error
        said = " ".join(text(obj(b).get("text")) for b in blocks).strip()
        return [AgentEvent(EventKind.ERROR, clip(said or error), {"error": error}, progress=False)]
    _count_message(message, event.get("parent_tool_use_id") is None, state)
    events: list[AgentEvent] = []
    for block in map(obj, blocks):
        btype = text(block.get("type"))
        if btype == "text":
            events.append(AgentEvent(EventKind.MESSAGE, clip(text(block.get("text")))))
        elif btype == "thinking":
            events.append(
                AgentEvent(EventKind.MESSAGE, clip(text(block.get("thinking"))), {"thinking": True})
            )
        elif btype == "tool_use":
            name = text(block.get("name"))
            data = {"tool": name, "id": text(block.get("id"))}
            events.append(
                AgentEvent(EventKind.TOOL_USE, clip(_tool_summary(obj(block.get("input"))), 500), data)
            )
    return events


def _count_message(message: dict[str, Any], main_thread: bool, state: ParseState) -> None:
    """Live turn and token estimates, once per API message (a message spans several lines)."""
    seen: set[str] = state.extra.setdefault("message_ids", set())
    message_id = text(message.get("id"))
    if not message_id or message_id in seen:
        return
    seen.add(message_id)
    if main_thread:
        state.usage.turns += 1
    usage = obj(message.get("usage"))
    state.usage.input_tokens += integer(usage.get("input_tokens"))
    state.usage.output_tokens += integer(usage.get("output_tokens"))
    state.usage.cache_read_tokens += integer(usage.get("cache_read_input_tokens"))
    state.usage.cache_write_tokens += integer(usage.get("cache_creation_input_tokens"))


def _tool_summary(arguments: dict[str, Any]) -> str:
    for key in ("file_path", "command", "pattern", "path", "url", "description"):
        if isinstance(arguments.get(key), str):
            return str(arguments[key])
    return ""


def _tool_results(event: dict[str, Any]) -> list[AgentEvent]:
    events = []
    for block in map(obj, seq(obj(event.get("message")).get("content"))):
        if text(block.get("type")) != "tool_result":
            continue
        content = block.get("content")
        said = (
            content if isinstance(content, str) else " ".join(text(obj(c).get("text")) for c in seq(content))
        )
        data = {"id": text(block.get("tool_use_id")), "is_error": block.get("is_error") is True}
        events.append(AgentEvent(EventKind.TOOL_RESULT, clip(said, 2_000), data))
    return events


def _rate_limit(event: dict[str, Any], state: ParseState) -> list[AgentEvent]:
    info = obj(event.get("rate_limit_info"))
    status = text(info.get("status"))
    limit = text(info.get("rateLimitType"))
    resets = from_epoch(info.get("resetsAt"))  # epoch seconds in 2.1 (the code multiplies by 1000)
    data = {"status": status, "type": limit, "resets_at": resets.isoformat() if resets else None}
    if status == "rejected":
        state.extra["rate_limit_rejected"] = True
        state.reset_at = resets or state.reset_at
        return [AgentEvent(EventKind.ERROR, f"usage limit reached ({limit})", data, progress=False)]
    return [AgentEvent(EventKind.MESSAGE, f"rate limit status {status} ({limit})", data, progress=False)]


def _result(event: dict[str, Any], state: ParseState) -> AgentEvent:
    state.final_seen = True
    usage = obj(event.get("usage"))
    state.usage.input_tokens = integer(usage.get("input_tokens"))
    state.usage.output_tokens = integer(usage.get("output_tokens"))
    state.usage.cache_read_tokens = integer(usage.get("cache_read_input_tokens"))
    state.usage.cache_write_tokens = integer(usage.get("cache_creation_input_tokens"))
    state.usage.cost_usd = number(event.get("total_cost_usd"))
    state.usage.turns = integer(event.get("num_turns")) or state.usage.turns
    subtype = text(event.get("subtype"))
    said = text(event.get("result")) or "; ".join(text(e) for e in seq(event.get("errors")))
    state.final_text = clip(said)
    is_error = event.get("is_error") is True or (subtype not in ("", "success"))
    if is_error:
        _classify(event, subtype, said, state)
    data = {"subtype": subtype, "is_error": is_error, "cost_usd": state.usage.cost_usd}
    return AgentEvent(EventKind.FINISHED, clip(said), data)


def _classify(event: dict[str, Any], subtype: str, said: str, state: ParseState) -> None:
    status = integer(event.get("api_error_status")) or None
    error = state.extra.get("assistant_error", "")
    if subtype == "error_max_turns" or text(event.get("terminal_reason")) == "max_turns":
        fail(state, FailureKind.MAX_TURNS, said or "maximum number of turns reached")
    elif subtype == "error_max_budget_usd":
        fail(state, FailureKind.BUDGET, said or "maximum budget reached")
    elif (
        error in _AUTH_ERRORS or status in (401, 403) or said.startswith(("Not logged in", "Invalid API key"))
    ):
        fail(state, FailureKind.AUTH, said)
    elif (
        state.extra.get("rate_limit_rejected") or error == "billing_error" or CLAUDE_USAGE_LIMIT.search(said)
    ):
        state.reset_at = state.reset_at or claude_reset(said, state.now, state.tz)
        fail(state, FailureKind.USAGE_LIMIT, said)
    elif error in _TRANSIENT_ERRORS or status == 429 or (status or 0) >= 500 or TRANSIENT_TEXT.search(said):
        fail(state, FailureKind.TRANSIENT, said)
    else:
        fail(state, FailureKind.AGENT_ERROR, said or subtype or "claude reported an error")
