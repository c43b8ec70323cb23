"""Claude Code (`claude -p --output-format stream-json --verbose`), written against 2.1.197.

Facts this module relies on (reference/agent-clis.md, and runs of the real CLI against
tests/agents/mock_provider.py, recorded in tests/agents/fixtures/streams/claude_*.jsonl):
- the prompt goes on stdin; `--verbose` is mandatory with stream-json;
- the last line of a finished run is `result`; API failures (auth, 429, 5xx) end with a `result`
  whose subtype says "success" while `is_error` is true, so the decision is made on `is_error`;
  the synthetic `assistant` line before it names the error (`error`: rate_limit, server_error …);
- only `result` has reliable token totals: `assistant` lines are per content block and carry the
  `message_start` usage snapshot, so they are counted once per message id as a live estimate and
  replaced by the totals at the end. Turns are the model's replies counted that way: the result's
  `num_turns` also counts the synthetic error message and the turn `--max-turns` refused;
- before each retry the CLI prints `system/api_retry` {attempt, max_retries, retry_delay_ms,
  error_status, error}; a connection error (refused, DNS, timeout) has `error_status` null and
  `error` "unknown". A 429's `retry_delay_ms` is max(retry-after, its own backoff), and a
  retry-after over 60 s is not retried at all: the run ends at once, with no delay printed. With an
  API key the CLI reads no rate-limit header into its output; with OAuth a 429 carrying
  `anthropic-ratelimit-unified-*` headers gives `rate_limit_event` (status "rejected", `resetsAt`
  epoch seconds) and no retry — a plan's usage limit when it names a `rateLimitType`, a plain rate
  limit ("not your usage limit") when it does not;
- a 401 is retried up to ten times before the result line arrives, a connection error for about
  three minutes (ten retries with backoff up to 32 s): the retry notices are `retrying`, never
  progress, so the session's retry window ends such a run with the fault's own verdict;
- refused tool calls come back as `tool_result` with `is_error` and a permission text, and are
  listed again in `result.permission_denials` [{tool_name, tool_use_id, tool_input}];
- sessions: `system/init` names the `session_id`; `--resume <session_id>` continues it with the
  prompt on stdin as the next user turn (its history is read from the session file under
  ``~/.claude/projects/<cwd with every non-alphanumeric character as '-'>/``), which exists only
  when the run was not given `--no-session-persistence` (kept only when a later run may resume).

Invariant: every provider failure is judged through `provider_fault` (a ProviderFault behind the
verdict) and every provider text is kept escaped (`data_text`), never raw.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from speedrift.agents._common import (
    MAX_TEXT,
    clip,
    data_text,
    fail,
    integer,
    judged,
    line_changes,
    line_count,
    load_object,
    number,
    obj,
    provider_fault,
    retrying,
    seq,
    text,
)
from speedrift.agents.limits import (
    CLAUDE_USAGE_LIMIT,
    MALFORMED_TEXT,
    RATE_LIMIT_TEXT,
    TRANSIENT_TEXT,
    UNREACHABLE_TEXT,
    claude_reset,
    from_epoch,
    reference_now,
)
from speedrift.agents.protocol import (
    AgentEvent,
    EventKind,
    FailureKind,
    ParseState,
    ProviderFault,
    RunOutcome,
    RunRequest,
)
from speedrift.errors import InvalidValue
from speedrift.termtext import printable

PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan")
_AUTH_ERRORS = ("authentication_failed", "oauth_org_not_allowed")
_TRANSIENT_ERRORS = ("overloaded", "server_error")
_AUTH_RETRIES_BEFORE_ABORT = 2  # one retry may be an OAuth refresh; a second 401 is a bad key
# 2.1.197's texts: "API Error: Request rejected (429) · …" (API key), "API Error: Server is
# temporarily limiting requests (not your usage limit) · …" (OAuth without a usage limit).
_NOT_USAGE_LIMIT = "not your usage limit"
# Tool results that say the call was refused, not that the tool failed (2.1.197's texts).
_REFUSAL_TEXT = re.compile(
    r"requested permissions to|haven't granted it yet|Permission to (?:use|edit) .* has been denied|"
    r"was blocked|don't ask mode",
    re.IGNORECASE | re.DOTALL,
)
_RETRIED_4XX = (408, 409, 429)  # the 4xx statuses the CLI's SDK retries: not the request's fault


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
        if request.resume_session:
            argv += ["--resume", request.resume_session]  # the new context comes on stdin
        elif not request.persist_session:
            argv.append("--no-session-persistence")  # nothing to resume later: nothing kept
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
            return _tool_results(event, state)
        if kind == "rate_limit_event":
            return _rate_limit(event, state)
        if kind == "result":
            return [_result(event, state)]
        if kind == "tool_progress":  # a long tool call is alive
            return [AgentEvent(EventKind.TOOL_USE, text(event.get("tool_name")), {"progress": True})]
        return []  # stream_event, hooks, notifications …: nothing we act on

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        return replace(judged(state, exit_code, finished=state.final_seen), session_id=state.session_id)


def _system(event: dict[str, Any], state: ParseState) -> list[AgentEvent]:
    subtype = text(event.get("subtype"))
    if subtype == "init":
        data = {"model": text(event.get("model")), "session_id": text(event.get("session_id"))}
        state.session_id = data["session_id"] or state.session_id  # what `--resume` takes
        return [AgentEvent(EventKind.STARTED, "claude started", data)]
    if subtype == "api_retry":
        return [_api_retry(event, state)]
    if subtype in ("task_started", "task_progress", "task_notification"):  # sub-agents working
        return [AgentEvent(EventKind.MESSAGE, subtype, {"subtype": subtype})]
    return []


def _api_retry(event: dict[str, Any], state: ParseState) -> AgentEvent:
    """One retry notice: not progress; the session's retry window judges a run stuck in them."""
    error = text(event.get("error"))
    status = integer(event.get("error_status")) or None
    attempt = integer(event.get("attempt"))
    delay_s = number(event.get("retry_delay_ms")) / 1000
    fault = retry_fault(error, status)
    http = f"HTTP {status}" if status else "no HTTP response"
    said = (
        f"API retry {attempt}/{integer(event.get('max_retries'))}: {error or 'error'} ({http}); "
        f"next attempt in {delay_s:.1f}s"
    )
    state.extra["last_retry"] = said
    reset_at = None
    if fault is ProviderFault.RATE_LIMIT and delay_s > 0:
        # The delay is the 429's retry-after (or the CLI's longer backoff): the provider's
        # nearest "not before", measured from the notice.
        reset_at = reference_now(state.now) + timedelta(seconds=delay_s)
        state.extra["rate_limit_wait_s"] = delay_s
    retrying(state, fault, said, reset_at=reset_at, status=status)
    if fault is ProviderFault.AUTH and attempt >= _AUTH_RETRIES_BEFORE_ABORT:
        provider_fault(state, ProviderFault.AUTH, f"authentication failed ({http}); claude kept retrying")
        state.abort = True
    data = {"attempt": attempt, "error": error, "status": status, "fault": fault.value, "delay_s": delay_s}
    return AgentEvent(EventKind.ERROR, said, data, progress=False)


def retry_fault(error: str, status: int | None) -> ProviderFault:
    """What a `system/api_retry` notice says is wrong, from its `error` enum and HTTP status."""
    if error in _AUTH_ERRORS or status in (401, 403):
        return ProviderFault.AUTH
    if error == "rate_limit" or status == 429:
        return ProviderFault.RATE_LIMIT
    if error == "billing_error":
        return ProviderFault.USAGE_LIMIT
    if status is None:  # no HTTP response: the connection itself failed (refused, DNS, timeout)
        return ProviderFault.UNREACHABLE
    return ProviderFault.TRANSIENT  # 5xx, overloaded, 408/409: the CLI retries what may pass


def _assistant(event: dict[str, Any], state: ParseState) -> list[AgentEvent]:
    message = obj(event.get("message"))
    blocks = seq(message.get("content"))
    error = text(event.get("error"))
    if error:  # the synthetic message that precedes an API-error result
        state.extra["assistant_error"] = error
        said = " ".join(text(obj(b).get("text")) for b in blocks).strip()
        return [
            AgentEvent(EventKind.ERROR, data_text(said or error, MAX_TEXT), {"error": error}, progress=False)
        ]
    _count_message(message, event.get("parent_tool_use_id") is None, state)
    state.extra.pop("rate_limit_wait_s", None)  # the model answered: earlier 429 waits are over
    calls: dict[str, tuple[str, str]] = state.extra.setdefault("tool_calls", {})
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
            arguments = obj(block.get("input"))
            target = _tool_summary(arguments)
            data = {"tool": name, "id": text(block.get("id"))} | edit_facts(name, arguments)
            calls[data["id"]] = (name, target)
            events.append(AgentEvent(EventKind.TOOL_USE, clip(target, 500), data))
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


def edit_facts(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """What a file tool's call changes, for the event log: ``path`` and, for an edit or a write,
    the lines it adds and removes (``added``, ``removed``). Empty for other tools."""
    path = text(arguments.get("file_path")) or text(arguments.get("notebook_path"))
    if not path:
        return {}
    facts: dict[str, Any] = {"path": clip(path, 500)}
    if tool == "Write":
        facts["added"], facts["removed"] = line_count(text(arguments.get("content"))), 0
    elif tool == "Edit":
        facts["added"], facts["removed"] = line_changes(
            text(arguments.get("old_string")), text(arguments.get("new_string"))
        )
    elif tool == "MultiEdit":
        added = removed = 0
        for edit in map(obj, seq(arguments.get("edits"))):
            plus, minus = line_changes(text(edit.get("old_string")), text(edit.get("new_string")))
            added, removed = added + plus, removed + minus
        facts["added"], facts["removed"] = added, removed
    return facts


def _tool_results(event: dict[str, Any], state: ParseState) -> list[AgentEvent]:
    events = []
    for block in map(obj, seq(obj(event.get("message")).get("content"))):
        if text(block.get("type")) != "tool_result":
            continue
        content = block.get("content")
        said = (
            content if isinstance(content, str) else " ".join(text(obj(c).get("text")) for c in seq(content))
        )
        tool_id = text(block.get("tool_use_id"))
        is_error = block.get("is_error") is True
        if is_error and _REFUSAL_TEXT.search(said):
            name, target = state.extra.get("tool_calls", {}).get(tool_id, ("", ""))
            _refused(state, tool_id, name, target, said)
        data = {"id": tool_id, "is_error": is_error}
        if name := state.extra.get("tool_calls", {}).get(tool_id, ("", ""))[0]:
            data["tool"] = name  # which call this answers, for whoever reads the log
        events.append(AgentEvent(EventKind.TOOL_RESULT, clip(said, 2_000), data))
    return events


def _refused(state: ParseState, tool_id: str, tool: str, target: str, why: str) -> None:
    """Record a refused tool call once ("tool: target — why"), however many times it is told."""
    seen: set[str] = state.extra.setdefault("refused_ids", set())
    if tool_id and tool_id in seen:
        return
    seen.add(tool_id)
    entry = f"{tool or 'tool'}: {target or '?'} — {why.strip() or 'permission denied'}"
    state.refused.append(clip(printable(entry), 500))


def _permission_denials(event: dict[str, Any], state: ParseState) -> None:
    for denial in map(obj, seq(event.get("permission_denials"))):
        tool_id = text(denial.get("tool_use_id"))
        target = _tool_summary(obj(denial.get("tool_input")))
        _refused(state, tool_id, text(denial.get("tool_name")), target, "permission denied")


def _rate_limit(event: dict[str, Any], state: ParseState) -> list[AgentEvent]:
    info = obj(event.get("rate_limit_info"))
    status = text(info.get("status"))
    limit = text(info.get("rateLimitType"))
    resets = from_epoch(info.get("resetsAt"))  # epoch seconds in 2.1 (the code multiplies by 1000)
    data = {"status": status, "type": limit, "resets_at": resets.isoformat() if resets else None}
    if status == "rejected":
        # With a limit type it is the plan's usage limit; without one (OAuth, a 429 that is "not
        # your usage limit") a plain rate limit. The result's text has the last word.
        state.extra["rate_limit_rejected"] = limit or "unnamed"
        if resets is not None:
            state.extra["rate_limit_reset"] = resets
        what = f"usage limit reached ({limit})" if limit else "rate limited"
        return [AgentEvent(EventKind.ERROR, what, data, progress=False)]
    return [AgentEvent(EventKind.MESSAGE, f"rate limit status {status} ({limit})", data, progress=False)]


def _result(event: dict[str, Any], state: ParseState) -> AgentEvent:
    state.final_seen = True
    usage = obj(event.get("usage"))
    state.usage.input_tokens = integer(usage.get("input_tokens"))
    state.usage.output_tokens = integer(usage.get("output_tokens"))
    state.usage.cache_read_tokens = integer(usage.get("cache_read_input_tokens"))
    state.usage.cache_write_tokens = integer(usage.get("cache_creation_input_tokens"))
    state.usage.cost_usd = number(event.get("total_cost_usd"))
    if not state.extra.get("message_ids") and "assistant_error" not in state.extra:
        state.usage.turns = integer(event.get("num_turns"))  # no reply lines seen: its count
    _permission_denials(event, state)
    subtype = text(event.get("subtype"))
    said = text(event.get("result")) or "; ".join(text(e) for e in seq(event.get("errors")))
    state.final_text = data_text(said, MAX_TEXT)
    is_error = event.get("is_error") is True or (subtype not in ("", "success"))
    if is_error:
        _classify(event, subtype, said, state)
    data = {"subtype": subtype, "is_error": is_error, "cost_usd": state.usage.cost_usd}
    return AgentEvent(EventKind.FINISHED, state.final_text, data)


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
        provider_fault(state, ProviderFault.AUTH, said)
    elif _usage_limited(error, said, state):
        reset = state.extra.get("rate_limit_reset") or claude_reset(said, state.now, state.tz)
        provider_fault(state, ProviderFault.USAGE_LIMIT, said, reset_at=reset)
    elif error == "rate_limit" or status == 429 or (status is None and RATE_LIMIT_TEXT.search(said)):
        provider_fault(state, ProviderFault.RATE_LIMIT, said, reset_at=_rate_limit_reset(state))
    elif status is not None and 400 <= status < 500 and status not in _RETRIED_4XX:
        # The provider refused this request (400 invalid_request, 404 model …): no retry cures it
        # and it is not the provider failing, so it is the run's error, whatever the text says.
        fail(state, FailureKind.AGENT_ERROR, said or f"the provider refused the request (HTTP {status})")
    elif MALFORMED_TEXT.search(said):
        provider_fault(state, ProviderFault.MALFORMED_STREAM, said)
    elif status is None and UNREACHABLE_TEXT.search(said):
        provider_fault(state, ProviderFault.UNREACHABLE, said)
    elif (
        error in _TRANSIENT_ERRORS
        or (status or 0) >= 500
        or status in _RETRIED_4XX
        or TRANSIENT_TEXT.search(said)
    ):
        provider_fault(state, ProviderFault.TRANSIENT, said)
    else:
        fail(state, FailureKind.AGENT_ERROR, said or subtype or "claude reported an error")


def _usage_limited(error: str, said: str, state: ParseState) -> bool:
    """The plan's quota, not a throttle: the CLI's usage-limit texts, a billing error, or a
    rejected `rate_limit_event` naming a limit type that the text does not call a rate limit."""
    if error == "billing_error" or CLAUDE_USAGE_LIMIT.search(said):
        return True
    rejected = state.extra.get("rate_limit_rejected")
    return rejected not in (None, "unnamed") and _NOT_USAGE_LIMIT not in said


def _rate_limit_reset(state: ParseState) -> datetime | None:
    """When a 429 said it would take requests again: the `rate_limit_event` epoch (OAuth: the
    unified-reset header, to the second) or else the last retry's wait (the retry-after, or the
    CLI's longer backoff), counted from this final refusal. None: nothing said when."""
    reset: datetime | None = state.extra.get("rate_limit_reset")
    if reset is not None:
        return reset
    wait_s = state.extra.get("rate_limit_wait_s")
    if isinstance(wait_s, float) and wait_s > 0:
        return reference_now(state.now) + timedelta(seconds=wait_s)
    return None
