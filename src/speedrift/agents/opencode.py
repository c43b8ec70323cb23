"""OpenCode (`opencode run --format json`), written against opencode 1.18.33.

Job: build opencode's command line and judge its run from its JSON events (stdout) and the error
lines of its own log (stderr). Invariant: a provider's failure is always a provider fault (with
its reset time when the provider gave one), never the agent's error; a retry is never a turn.

Facts this module relies on (reference/agent-clis.md, and runs against the mock provider):
- the prompt must not be in argv, so it is attached as a file (`--file`) with a short message;
  `--file` is a yargs array option that swallows the positionals after it, hence the `--`;
- there is no terminal event: a run succeeded when its last `step_finish` has reason "stop".
  `run` auto-rejects permission prompts and then exits 0 after a step that ended with reason
  "tool-calls": that run stopped unfinished (INCOMPLETE), whatever the exit code says;
- usage and cost are per step: summed over `step_finish` lines; `tokens.input` excludes cache
  reads;
- retries are silent on stdout: only the last failure reaches it, as an `error` line whose
  `APIError` data carries the status, the raw response headers and body (the reset time of a
  usage or rate limit lives there). A retried step shows only as another `step_start` of the
  same `messageID` (when the failed attempt had begun to stream), never a new turn;
- every failed model call is logged as one stderr line `level=ERROR … message="stream error" …
  small=false … error.error="AI_APICallError: <the provider's message>"` when run with
  `--print-logs --log-level ERROR` (the least verbose level that carries it; a healthy run logs
  nothing). That line names neither the HTTP status nor the retry-after wait: opencode honours
  `retry-after` with no cap (a 429 saying 3600 s sleeps an hour), so these lines are what makes
  such a wait a provider retry (`retrying`) instead of silence. `small=true` lines are the title
  side call, not the agent's loop;
- sessions: every event names its `sessionID` ("ses_…"); `run --session <id>` continues that
  session (kept in opencode's data dir, ``$XDG_DATA_HOME/opencode``) with the new message.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from speedrift import safejson
from speedrift.agents._common import (
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
    text,
)
from speedrift.agents.limits import (
    AUTH_TEXT,
    MALFORMED_TEXT,
    RATE_LIMIT_TEXT,
    TRANSIENT_TEXT,
    UNREACHABLE_TEXT,
    http_reset,
    reference_now,
    said_reset,
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

MESSAGE = "Follow the instructions in the attached task file."
LOG_FLAGS = ("--print-logs", "--log-level", "ERROR")  # failed model calls, on stderr, and no more
_REJECTED = "rejected permission"
_USAGE_LIMIT_TYPES = ("usage_limit_reached", "insufficient_quota")
_LONG_WAIT_S = 60  # a 429 resetting later than this is a usage limit, not a burst rate limit

# The texts of opencode's and the AI SDK's errors, by the fault they mean.
_USAGE_TEXT = re.compile(r"usage limit|insufficient_quota|exceeded your current quota|quota exceeded", re.I)

# One logfmt field of opencode's log line: key=value or key="JSON-escaped value".
_LOG_FIELD = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')
_STREAM_ERROR = 'message="stream error"'


class OpenCodeRuntime:
    name = "opencode"
    executable = "opencode"
    install_hint = "install OpenCode: npm install -g opencode-ai"

    def build_argv(self, request: RunRequest) -> list[str]:
        argv = [self.executable, "run", "--format", "json", *LOG_FLAGS]
        if request.model:
            argv += ["-m", request.model]  # provider/model
        agent = request.options.get("agent")
        if agent is not None:
            if not isinstance(agent, str) or not agent or agent.startswith("-"):
                raise InvalidValue("opencode agent must be an agent name")
            argv += ["--agent", agent]
        if request.resume_session:
            argv += ["--session", request.resume_session]
        return [*argv, "--file", str(request.prompt_file), "--", MESSAGE]

    def stdin_payload(self, request: RunRequest) -> bytes | None:
        return None

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        event = load_object(line)
        if event is None:
            return []
        kind = text(event.get("type"))
        part = obj(event.get("part"))
        state.session_id = text(event.get("sessionID")) or state.session_id  # `run --session` takes it
        if kind == "step_start":
            return [_step_start(part, state)]
        if kind == "text":
            state.final_text = clip(text(part.get("text")))
            return [AgentEvent(EventKind.MESSAGE, state.final_text)]
        if kind == "reasoning":
            return [AgentEvent(EventKind.MESSAGE, clip(text(part.get("text"))), {"thinking": True})]
        if kind == "tool_use":
            return [_tool(part, state)]
        if kind == "step_finish":
            return [_step_finish(part, state)]
        if kind == "error":
            return [_error(obj(event.get("error")), state)]
        return []

    def parse_stderr_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        """A failed model call in opencode's log: opencode is retrying it (or about to report it
        on stdout, which then decides). Never progress; every other stderr line is no event."""
        if _STREAM_ERROR not in line:
            return []
        fields = log_fields(line)
        if fields.get("small") == "true":  # the session-title side call, not the agent's loop
            return []
        name, message = _split_error(fields.get("error.error", ""))
        fault = retry_fault(name, message)
        at = _log_time(fields.get("timestamp", ""), state)
        reset = said_reset(message, at)
        status = 429 if fault in (ProviderFault.RATE_LIMIT, ProviderFault.USAGE_LIMIT) else None
        said = message or name or "a model call failed"
        retrying(state, fault, said, reset_at=reset, status=status)
        state.extra["last_retry"] = said
        data = {"retry": True, "source": "stderr", "fault": fault.value, "name": name}
        return [AgentEvent(EventKind.ERROR, data_text(said, 500), data, progress=False)]

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        reason = state.extra.get("last_reason")
        if state.error is None and reason == "tool-calls" and exit_code == 0:
            rejected = len(state.refused)
            why = f"; {rejected} tool call(s) were auto-rejected for lack of permission" if rejected else ""
            fail(state, FailureKind.INCOMPLETE, f"opencode stopped after a step that expected more{why}")
        elif state.error is None and reason not in (None, "stop", "tool-calls"):
            fail(state, FailureKind.AGENT_ERROR, f"opencode's last step ended with reason {reason!r}")
        return replace(judged(state, exit_code, finished=state.final_seen), session_id=state.session_id)


def _step_start(part: dict[str, Any], state: ParseState) -> AgentEvent:
    """A model call began. The same message's step again, before that step finished, is
    opencode retrying the call: not a turn, not progress (the retry window rules)."""
    state.final_seen = False  # another step began: the previous "stop" was not the end
    message_id = text(part.get("messageID"))
    if message_id and message_id == state.extra.get("open_step"):
        data = {"step": state.usage.turns, "retry": True}
        return AgentEvent(EventKind.STARTED, f"step {state.usage.turns} retried", data, progress=False)
    state.usage.turns += 1
    state.extra["open_step"] = message_id
    return AgentEvent(EventKind.STARTED, f"step {state.usage.turns}", {"step": state.usage.turns})


def _tool(part: dict[str, Any], state: ParseState) -> AgentEvent:
    status = obj(part.get("state"))
    tool = text(part.get("tool"))
    data: dict[str, Any] = {
        "tool": tool,
        "id": text(part.get("callID")),
        "status": text(status.get("status")),
    }
    args = obj(status.get("input"))
    summary = text(args.get("filePath")) or text(args.get("command")) or text(args.get("pattern"))
    if path := text(args.get("filePath")):
        data["path"] = clip(path, 500)  # which file, and for an edit or a write its lines
        if tool == "write":
            data["added"], data["removed"] = line_count(text(args.get("content"))), 0
        elif tool == "edit":
            data["added"], data["removed"] = line_changes(
                text(args.get("oldString")), text(args.get("newString"))
            )
    if data["status"] == "error":
        error = text(status.get("error"))
        if _REJECTED in error:
            state.refused.append(data_text(f"{tool}: {summary or '?'} — {error}", 500))
        data["error"] = data_text(error, 500)
    elif data["status"] == "completed" and (output := text(status.get("output"))):
        data["output"] = data_text(output, 500)  # what the tool answered, short
    return AgentEvent(EventKind.TOOL_USE, clip(summary, 500), data)


def _step_finish(part: dict[str, Any], state: ParseState) -> AgentEvent:
    tokens = obj(part.get("tokens"))
    cache = obj(tokens.get("cache"))
    state.usage.input_tokens += integer(tokens.get("input"))
    state.usage.output_tokens += integer(tokens.get("output"))
    state.usage.cache_read_tokens += integer(cache.get("read"))
    state.usage.cache_write_tokens += integer(cache.get("write"))
    state.usage.cost_usd += number(part.get("cost"))
    reason = text(part.get("reason"))
    state.extra["last_reason"] = reason
    state.extra["open_step"] = None
    state.final_seen = reason == "stop"
    data = {"reason": reason, "tokens": state.usage.total_tokens, "cost_usd": state.usage.cost_usd}
    return AgentEvent(EventKind.USAGE, f"step finished: {reason}", data)


def _error(error: dict[str, Any], state: ParseState) -> AgentEvent:
    name = text(error.get("name"))
    data = obj(error.get("data"))
    message = text(data.get("message")) or name or "opencode reported an error"
    status = integer(data.get("statusCode"))
    if name == "ProviderAuthError" or status in (401, 403):
        provider_fault(state, ProviderFault.AUTH, message)
    elif status == 429 or _USAGE_TEXT.search(message):
        _limit(data, message, state)
    elif status >= 500:
        provider_fault(state, ProviderFault.TRANSIENT, message)
    elif not status and MALFORMED_TEXT.search(message):
        provider_fault(state, ProviderFault.MALFORMED_STREAM, f"{name}: {message}" if name else message)
    elif not status and UNREACHABLE_TEXT.search(message):
        provider_fault(state, ProviderFault.UNREACHABLE, message)
    elif data.get("isRetryable") is True or (name == "APIError" and TRANSIENT_TEXT.search(message)):
        provider_fault(state, ProviderFault.TRANSIENT, message)
    elif name == "UnknownError" and AUTH_TEXT.search(message):
        provider_fault(state, ProviderFault.AUTH, message)
    else:
        fail(state, FailureKind.AGENT_ERROR, f"{name}: {message}" if name else message)
    return AgentEvent(EventKind.ERROR, data_text(message), {"name": name, "status": status or None})


def _limit(data: dict[str, Any], message: str, state: ParseState) -> None:
    """A 429 after opencode's own retries: a usage limit when it says so or resets far off, else
    a rate limit, each with the reset its headers, body or text name."""
    try:
        body = safejson.loads(text(data.get("responseBody")) or "null", replace_surrogates=True)
    except safejson.MalformedJson:
        body = None
    # the headers and body first; else the wait the message names (said_reset reads both forms)
    reset = http_reset(obj(data.get("responseHeaders")), body, state.now) or said_reset(
        message, reference_now(state.now)
    )
    kind = text(obj(obj(body).get("error")).get("type")) or text(obj(body).get("type"))
    far = reset is not None and (reset - reference_now(state.now)).total_seconds() >= _LONG_WAIT_S
    if kind in _USAGE_LIMIT_TYPES or _USAGE_TEXT.search(message) or far:
        provider_fault(state, ProviderFault.USAGE_LIMIT, message, reset_at=reset)
    else:
        provider_fault(state, ProviderFault.RATE_LIMIT, message, reset_at=reset)


def log_fields(line: str) -> dict[str, str]:
    """The fields of one opencode log line (logfmt; quoted values are JSON strings)."""
    fields: dict[str, str] = {}
    for key, raw in _LOG_FIELD.findall(line):
        value = raw
        if raw.startswith('"'):
            try:
                decoded = safejson.loads(raw, replace_surrogates=True)
            except safejson.MalformedJson:
                decoded = raw[1:-1]
            value = decoded if isinstance(decoded, str) else raw
        fields.setdefault(key, value)
    return fields


def _split_error(error: str) -> tuple[str, str]:
    """("AI_APICallError", "the provider's message") from the logged error."""
    m = re.match(r"(AI_\w+|\w*Error): ", error)
    return (m.group(1), error[m.end() :]) if m else ("", error)


def retry_fault(name: str, message: str) -> ProviderFault:
    """What a failed model call that opencode retries says of the provider."""
    if "JSONParse" in name or "TypeValidation" in name or MALFORMED_TEXT.search(message):
        return ProviderFault.MALFORMED_STREAM
    if _USAGE_TEXT.search(message):
        return ProviderFault.USAGE_LIMIT
    if RATE_LIMIT_TEXT.search(message):
        return ProviderFault.RATE_LIMIT
    if UNREACHABLE_TEXT.search(message):
        return ProviderFault.UNREACHABLE
    if AUTH_TEXT.search(message) and not TRANSIENT_TEXT.search(message):
        return ProviderFault.AUTH
    return ProviderFault.TRANSIENT


def _log_time(stamp: str, state: ParseState) -> datetime:
    """When opencode logged the line (its own UTC timestamp), else now: the wait counts from it."""
    try:
        logged = datetime.fromisoformat(stamp)
    except ValueError:
        return reference_now(state.now)
    return logged if logged.tzinfo is not None else reference_now(state.now)
