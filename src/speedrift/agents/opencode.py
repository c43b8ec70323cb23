"""OpenCode (`opencode run --format json`), written against opencode 1.18.33.

Facts this module relies on (reference/agent-clis.md):
- the prompt must not be in argv, so it is attached as a file (`--file`) with a short message;
  `--file` is a yargs array option that swallows the positionals after it, hence the `--`;
- there is no terminal event: a run succeeded when its last `step_finish` has reason "stop".
  `run` auto-rejects permission prompts and then exits 0 after a step that ended with reason
  "tool-calls": that run stopped unfinished (INCOMPLETE), whatever the exit code says;
- usage and cost are per step: summed over `step_finish` lines; `tokens.input` excludes cache
  reads;
- retries are silent; only the last failure reaches the stream as an `error` line whose
  `APIError` data carries the status, the raw response headers and body (the reset time of a
  usage limit lives there).
"""

from __future__ import annotations

from typing import Any

from speedrift import safejson
from speedrift.agents._common import clip, fail, integer, judged, load_object, number, obj, text
from speedrift.agents.limits import AUTH_TEXT, TRANSIENT_TEXT, http_reset, reference_now, reset_in
from speedrift.agents.protocol import AgentEvent, EventKind, FailureKind, ParseState, RunOutcome, RunRequest
from speedrift.errors import InvalidValue

MESSAGE = "Follow the instructions in the attached task file."
_REJECTED = "rejected permission"
_USAGE_LIMIT_TYPES = ("usage_limit_reached", "insufficient_quota")
_LONG_WAIT_S = 60  # a 429 resetting later than this is a usage limit, not a burst rate limit


class OpenCodeRuntime:
    name = "opencode"
    executable = "opencode"
    install_hint = "install OpenCode: npm install -g opencode-ai"

    def build_argv(self, request: RunRequest) -> list[str]:
        argv = [self.executable, "run", "--format", "json"]
        if request.model:
            argv += ["-m", request.model]  # provider/model
        agent = request.options.get("agent")
        if agent is not None:
            if not isinstance(agent, str) or not agent or agent.startswith("-"):
                raise InvalidValue("opencode agent must be an agent name")
            argv += ["--agent", agent]
        return [*argv, "--file", str(request.prompt_file), "--", MESSAGE]

    def stdin_payload(self, request: RunRequest) -> bytes | None:
        return None

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        event = load_object(line)
        if event is None:
            return []
        kind = text(event.get("type"))
        part = obj(event.get("part"))
        if kind == "step_start":
            state.usage.turns += 1
            state.final_seen = False  # another step began: the previous "stop" was not the end
            return [AgentEvent(EventKind.STARTED, f"step {state.usage.turns}", {"step": state.usage.turns})]
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

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        reason = state.extra.get("last_reason")
        if state.error is None and reason == "tool-calls" and exit_code == 0:
            rejected = state.extra.get("rejected", 0)
            why = f"; {rejected} tool call(s) were auto-rejected for lack of permission" if rejected else ""
            fail(state, FailureKind.INCOMPLETE, f"opencode stopped after a step that expected more{why}")
        elif state.error is None and reason not in (None, "stop", "tool-calls"):
            fail(state, FailureKind.AGENT_ERROR, f"opencode's last step ended with reason {reason!r}")
        return judged(state, exit_code, finished=state.final_seen)


def _tool(part: dict[str, Any], state: ParseState) -> AgentEvent:
    status = obj(part.get("state"))
    tool = text(part.get("tool"))
    data = {"tool": tool, "id": text(part.get("callID")), "status": text(status.get("status"))}
    summary = obj(status.get("input")).get("filePath") or obj(status.get("input")).get("command")
    if data["status"] == "error":
        error = text(status.get("error"))
        if _REJECTED in error:
            state.extra["rejected"] = state.extra.get("rejected", 0) + 1
        data["error"] = clip(error, 500)
    return AgentEvent(EventKind.TOOL_USE, clip(text(summary), 500), data)


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
    state.final_seen = reason == "stop"
    data = {"reason": reason, "tokens": state.usage.total_tokens, "cost_usd": state.usage.cost_usd}
    return AgentEvent(EventKind.USAGE, f"step finished: {reason}", data)


def _error(error: dict[str, Any], state: ParseState) -> AgentEvent:
    name = text(error.get("name"))
    data = obj(error.get("data"))
    message = text(data.get("message")) or name or "opencode reported an error"
    status = integer(data.get("statusCode"))
    if name == "ProviderAuthError" or status in (401, 403):
        fail(state, FailureKind.AUTH, message)
    elif status == 429 or "usage limit" in message.lower():
        _limit(data, message, state)
    elif (
        status >= 500
        or data.get("isRetryable") is True
        or (name == "APIError" and TRANSIENT_TEXT.search(message))
    ):
        fail(state, FailureKind.TRANSIENT, message)
    elif name == "UnknownError" and AUTH_TEXT.search(message):
        fail(state, FailureKind.AUTH, message)
    else:
        fail(state, FailureKind.AGENT_ERROR, f"{name}: {message}" if name else message)
    return AgentEvent(EventKind.ERROR, clip(message), {"name": name, "status": status or None})


def _limit(data: dict[str, Any], message: str, state: ParseState) -> None:
    """A 429 after opencode's own retries: a usage limit when it says so or resets far off."""
    try:
        body = safejson.loads(text(data.get("responseBody")) or "null", replace_surrogates=True)
    except safejson.MalformedJson:
        body = None
    reset = http_reset(obj(data.get("responseHeaders")), body, state.now) or reset_in(message, state.now)
    kind = text(obj(obj(body).get("error")).get("type")) or text(obj(body).get("type"))
    far = reset is not None and (reset - reference_now(state.now)).total_seconds() >= _LONG_WAIT_S
    if kind in _USAGE_LIMIT_TYPES or "usage limit" in message.lower() or far:
        state.reset_at = reset
        fail(state, FailureKind.USAGE_LIMIT, message)
    else:
        fail(state, FailureKind.TRANSIENT, message)
