"""Codex CLI (`codex exec --json`), written against codex-cli 0.169.0.

Job: build codex's command line and judge its stdout events (and its stderr tracing lines) into a
typed outcome; every provider fault comes out as its :class:`ProviderFault`, retries never as
progress or turns. Invariant: provider text is recorded escaped and never rejected.

Facts this module relies on (reference/agent-clis.md, and runs of the real CLI against the mock):
- the prompt goes on stdin (`-`); the default sandbox is read-only, where writes fail silently,
  so `workspace-write` is the default here. Its writable roots include ``/tmp`` and ``$TMPDIR``
  unless told otherwise: a worktree under /tmp lets the agent write its siblings (``../x``, an
  absolute /tmp path) — observed — so outside speedrift's sandbox both are excluded
  (``sandbox_workspace_write.exclude_slash_tmp`` / ``exclude_tmpdir_env_var``); the worktree
  stays writable. A patch refused for that shows on stdout as nothing at all, and on stderr as
  ``ERROR codex_core::tools::router: error=patch rejected: writing outside of the project…``;
- codex's own sandbox cannot start inside speedrift's (agents/sandbox.py): as root the kernel
  refuses to map uid 0 into its nested user namespace without CAP_SETFCAP, which speedrift's
  sandbox drops, and as any user it wants to make mount points under a read-only ``/tmp``; every
  write then fails with "Failed to write file" while the run still reports success. Inside
  speedrift's sandbox, which already confines writes to the worktree, ``workspace-write`` becomes
  ``danger-full-access`` (``read-only`` stays read-only);
- a run ends with `turn.completed` (usage, cumulative, `input_tokens` including cached ones) or
  `turn.failed` (no usage: the tokens of the calls before it reach stdout nowhere); there is no
  cost field and no max-turns option;
- `error` lines are either fatal (followed by `turn.failed`) or retry notices that can repeat
  forever: ``Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)``
  (codex then waits the retry-after, silently, however long), ``Reconnecting... waiting for
  network (Connection failed: error sending request)`` (no endpoint; backoff 3, 8, 13 s…),
  ``Reconnecting... 1/5 (stream disconnected before completion: UTF8 error…)`` (a broken stream,
  each retry re-emitting an empty `agent_message`), ``Reconnecting... 1/5 (We’re currently
  experiencing high demand…)`` (5xx). They are `retrying(...)`, never progress;
- usage-limit texts carry a local wall-clock reset time and no zone (U+2019 apostrophe), or
  "try again later" when the 429 named its reset only as ``resets_in_seconds``: that body is
  logged at no RUST_LOG level;
- stderr: with ``RUST_LOG`` = :data:`STDERR_FILTER` codex logs every HTTP answer
  (``codex_http_client::client: Request completed … status=429 … headers={…}`` — retry-after,
  ``x-codex-primary-reset-at``) or failure (``Request failed … is_connect=true``), and the token
  counts of every finished model call (``codex.sse_event event.kind=response.completed
  input_token_count=…``); unset, it logs only errors. The session hands stderr lines to
  :meth:`CodexRuntime.parse_stderr_line`;
- sessions: `thread.started` names the `thread_id`; `codex exec [OPTIONS] resume <SESSION_ID> -`
  continues that thread with the prompt read from stdin (the exec options stay before the
  subcommand). `--ephemeral` keeps no session file, so it is passed only when nothing may resume.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from speedrift.agents._common import (
    clip,
    data_text,
    fail,
    integer,
    judged,
    load_object,
    obj,
    provider_fault,
    retrying,
    seq,
    text,
)
from speedrift.agents.limits import (
    AUTH_TEXT,
    CODEX_USAGE_LIMIT,
    MALFORMED_TEXT,
    RATE_LIMIT_TEXT,
    TRANSIENT_TEXT,
    UNREACHABLE_TEXT,
    codex_reset,
    from_epoch,
    http_reset,
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

SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
# Outside speedrift's sandbox, codex's workspace-write may write only the worktree (see above).
NARROW_WRITABLE_ROOTS = (
    "-c",
    "sandbox_workspace_write.exclude_tmpdir_env_var=true",
    "-c",
    "sandbox_workspace_write.exclude_slash_tmp=true",
)
# What codex must log on stderr for its HTTP statuses, headers and per-call usage to be seen:
# one line per HTTP answer and a few per model call (no per-delta lines), errors as before.
STDERR_FILTER = "error,codex_http_client::client=debug,codex_otel.trace_safe=info"

_RECONNECT = re.compile(r"^Reconnecting\.\.\.")
# A retry notice for an HTTP 401/403 will not heal by retrying five more times.
_AUTH_RETRY = re.compile(r"unexpected status 40[13]\b")
_TIMEOUT = re.compile(r"idle timeout|timed? ?out\b", re.IGNORECASE)
_STATUS = re.compile(r"(?:unexpected status|last status:) (\d{3})\b")
_CHANGES_KEPT = 50  # files of one file_change item named in its event
_TOOL_ITEMS = ("command_execution", "file_change", "mcp_tool_call", "web_search", "collab_tool_call")

# stderr (tracing) lines, as 0.169 writes them
_HTTP_DONE = re.compile(
    r"codex_http_client::client: Request completed .*?\bstatus=(?P<status>\d{3})\b.*?"
    r"\bheaders=\{(?P<headers>.*)\}"
)
_HTTP_FAILED = re.compile(
    r"codex_http_client::client: Request failed .*?\bis_timeout=(?P<timeout>\w+) is_connect=(?P<connect>\w+)"
)
_HEADER = re.compile(r'"((?:[^"\\]|\\.)*)": "((?:[^"\\]|\\.)*)"')
_CALL_DONE = re.compile(r'event\.name="codex\.sse_event" event\.kind=response\.completed (?P<fields>.*)')
_COUNT = re.compile(r"\b(\w+_token_count)=(\d+)\b")
_REFUSED = re.compile(r"codex_core::tools::router: error=(?P<why>patch rejected: .*)")


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
            *(() if request.persist_session or request.resume_session else ("--ephemeral",)),
            "--sandbox",
            sandbox,
        ]
        if sandbox == "workspace-write":
            argv += NARROW_WRITABLE_ROOTS
        if request.model:
            argv += ["-m", request.model]
        if request.resume_session:  # `codex exec [OPTIONS] resume <SESSION_ID> [PROMPT]`
            argv += ["resume", request.resume_session]
        argv.append("-")  # read the prompt from stdin
        return argv

    def child_env(self) -> dict[str, str]:
        """What codex's environment needs for its stderr to carry the signals this runtime reads
        (:data:`STDERR_FILTER`); for the session to add to the agent's environment."""
        return {"RUST_LOG": STDERR_FILTER}

    def stdin_payload(self, request: RunRequest) -> bytes | None:
        return request.prompt.encode()

    def parse_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        event = load_object(line)
        if event is None:
            return []
        kind = text(event.get("type"))
        if kind == "thread.started":
            state.session_id = text(event.get("thread_id")) or state.session_id  # `exec resume` takes it
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
            state.extra["turn_usage"] = True
            state.final_seen = True
            state.retrying = None
            return [
                AgentEvent(EventKind.FINISHED, clip(state.final_text), {"tokens": state.usage.total_tokens})
            ]
        if kind == "turn.failed":
            message = text(obj(event.get("error")).get("message"))
            _terminal(message, state)
            state.final_seen = True
            return [AgentEvent(EventKind.FINISHED, data_text(message), {"failed": True})]
        return []

    def parse_stderr_line(self, line: str, state: ParseState) -> list[AgentEvent]:
        """codex's tracing on stderr: HTTP statuses and headers, connection failures, per-call
        usage, refused patches. None of it is progress: stdout says what the agent did."""
        if m := _HTTP_DONE.search(line):
            return _http_answer(int(m["status"]), dict(_HEADER.findall(m["headers"])), state)
        if m := _HTTP_FAILED.search(line):
            if state.error is None and (m["connect"] == "true" or m["timeout"] == "true"):
                fault = ProviderFault.UNREACHABLE if m["connect"] == "true" else ProviderFault.TRANSIENT
                why = "could not connect to the provider" if m["connect"] == "true" else "request timed out"
                retrying(state, fault, why)
                return [AgentEvent(EventKind.ERROR, why, {"retry": True, "source": "stderr"}, progress=False)]
            return []
        if m := _CALL_DONE.search(line):
            return _call_usage(dict(_COUNT.findall(m["fields"])), state)
        if m := _REFUSED.search(line):
            why = data_text(m["why"].strip(), 500)
            state.refused.append(f"apply_patch — {why}")
            return [AgentEvent(EventKind.ERROR, why, {"refused": True, "source": "stderr"}, progress=False)]
        return []

    def judge(self, state: ParseState, exit_code: int | None) -> RunOutcome:
        if state.reset_at is None and state.fault is ProviderFault.USAGE_LIMIT:
            state.reset_at = state.extra.get("usage_reset")
        if state.reset_at is None and state.fault is ProviderFault.RATE_LIMIT:
            state.reset_at = state.extra.get("rate_reset")
        return replace(judged(state, exit_code, finished=state.final_seen), session_id=state.session_id)


def _item(item: dict[str, Any], completed: bool, state: ParseState) -> list[AgentEvent]:
    itype = text(item.get("type"))
    data: dict[str, Any] = {"item": itype, "id": text(item.get("id"))}
    if itype == "agent_message":
        message = clip(text(item.get("text")))
        # A broken stream re-emits the message it had (often empty) before each retry: not progress.
        progress = bool(message) and message != state.final_text
        state.final_text = message or state.final_text
        return [AgentEvent(EventKind.MESSAGE, message, data, progress=progress)]
    if itype == "reasoning":
        return [AgentEvent(EventKind.MESSAGE, clip(text(item.get("text"))), data | {"thinking": True})]
    if itype == "error":  # non-fatal notices: model metadata fallbacks, transport fallbacks
        return [AgentEvent(EventKind.ERROR, data_text(text(item.get("message"))), data, progress=False)]
    if itype in _TOOL_ITEMS:
        data["status"] = text(item.get("status"))
        changes = [
            {"path": clip(text(c.get("path")), 500), "kind": text(c.get("kind"))}
            for c in map(obj, seq(item.get("changes"))[:_CHANGES_KEPT])
        ]
        if changes:
            data["changes"] = changes  # the files an edit touches, for whoever reads the log
        if completed and isinstance(item.get("exit_code"), int):
            data["exit_code"] = item["exit_code"]
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
    shown = data_text(message)
    if not _RECONNECT.match(message):
        _terminal(message, state)
        return AgentEvent(EventKind.ERROR, shown, {"fatal": True})
    state.extra["last_retry"] = data_text(message, 500)
    if _AUTH_RETRY.search(message):
        provider_fault(state, ProviderFault.AUTH, message)
        state.abort = True
        return AgentEvent(EventKind.ERROR, shown, {"retry": True}, progress=False)
    fault, status = _fault(message)
    fault = fault or ProviderFault.TRANSIENT  # a retry is the provider failing, whatever it says
    reset = state.extra.get("rate_reset") if fault is ProviderFault.RATE_LIMIT else None
    _retry(state, fault, message, reset, status)
    return AgentEvent(EventKind.ERROR, shown, {"retry": True, "fault": fault.value}, progress=False)


def _retry(
    state: ParseState, fault: ProviderFault, reason: str, reset: datetime | None, status: int | None
) -> None:
    """Record a retry from either stream. stdout's notice and stderr's HTTP line for the same retry
    arrive in either order: the notice's words are kept, with the status the other one adds."""
    before = state.retrying
    if before is not None and before.fault is fault:
        status = status or before.status
        if reason.startswith("HTTP ") and before.reason.startswith("Reconnecting"):
            reason = before.reason
    if status is not None and str(status) not in reason:
        reason = f"{reason} [HTTP {status}]"
    retrying(state, fault, reason, reset_at=reset, status=status)


def _terminal(message: str, state: ParseState) -> None:
    """A fatal error (`error` then `turn.failed`, same text): the run's verdict."""
    state.retrying = None  # codex has given up retrying
    fault, _ = _fault(message)
    if fault is None:
        fail(state, FailureKind.AGENT_ERROR, message or "codex reported an error")
        return
    reset: datetime | None = None
    if fault is ProviderFault.USAGE_LIMIT:
        reset = codex_reset(message, state.now, state.tz) or state.extra.get("usage_reset")
    elif fault is ProviderFault.RATE_LIMIT:
        reset = state.extra.get("rate_reset")
    provider_fault(state, fault, message, reset_at=reset)


def _fault(message: str) -> tuple[ProviderFault | None, int | None]:
    """The provider fault a codex error text names (None: not the provider's), and its status."""
    m = _STATUS.search(message)
    status = int(m.group(1)) if m else None
    if CODEX_USAGE_LIMIT.search(message):
        return ProviderFault.USAGE_LIMIT, status
    if _AUTH_RETRY.search(message) or AUTH_TEXT.search(message):
        return ProviderFault.AUTH, status
    if RATE_LIMIT_TEXT.search(message):
        return ProviderFault.RATE_LIMIT, 429
    if UNREACHABLE_TEXT.search(message):
        return ProviderFault.UNREACHABLE, status
    if _TIMEOUT.search(message):
        return ProviderFault.TRANSIENT, status
    if MALFORMED_TEXT.search(message):
        return ProviderFault.MALFORMED_STREAM, status
    if TRANSIENT_TEXT.search(message):
        return ProviderFault.TRANSIENT, status
    return None, status


def _http_answer(status: int, headers: dict[str, str], state: ParseState) -> list[AgentEvent]:
    """One HTTP answer codex logged. A 429 tells when to come back (its retry-after for a rate
    limit; the exhausted x-codex window's reset for a usage limit); a 5xx is a retry coming."""
    data: dict[str, Any] = {"status": status, "source": "stderr"}
    if status == 429:
        rate = http_reset(headers, {}, state.now)
        usage = _window_reset(headers)
        state.extra["rate_reset"], state.extra["usage_reset"] = rate, usage
        if state.error is None:
            _retry(state, ProviderFault.RATE_LIMIT, "HTTP 429 Too Many Requests", rate, 429)
        elif state.fault is ProviderFault.USAGE_LIMIT and state.reset_at is None:
            state.reset_at = usage  # the terminal line was read first
        when = rate.isoformat() if rate is not None else "not said"
        return [AgentEvent(EventKind.ERROR, f"provider answered HTTP 429 (retry after: {when})", data, False)]
    if status >= 500:
        if state.error is None:
            _retry(state, ProviderFault.TRANSIENT, f"HTTP {status}", None, status)
        return [AgentEvent(EventKind.ERROR, f"provider answered HTTP {status}", data, progress=False)]
    return []


def _window_reset(headers: dict[str, str]) -> datetime | None:
    """When codex's exhausted usage window (x-codex-primary/secondary-*) resets: the latest of the
    windows at 100 %, else of all that name a reset."""
    resets: list[tuple[bool, datetime]] = []
    for window in ("primary", "secondary"):
        when = from_epoch(_number(headers.get(f"x-codex-{window}-reset-at")))
        if when is not None:
            used = _number(headers.get(f"x-codex-{window}-used-percent"))
            resets.append((used >= 100, when))
    full = [when for exhausted, when in resets if exhausted]
    return max(full or [when for _, when in resets], default=None)


def _number(value: str | None) -> float:
    try:
        return float(value or "")
    except ValueError:
        return 0.0


def _call_usage(counts: dict[str, str], state: ParseState) -> list[AgentEvent]:
    """One model call's tokens. Summed into the usage until `turn.completed` gives the run's own
    total, so a run that fails after some calls still counts what they used."""
    calls = state.extra.setdefault("calls", {"input": 0, "cached": 0, "write": 0, "output": 0})
    calls["input"] += integer(int(counts.get("input_token_count", "0")))
    calls["cached"] += integer(int(counts.get("cached_token_count", "0")))
    calls["write"] += integer(int(counts.get("cache_write_token_count", "0")))
    calls["output"] += integer(int(counts.get("output_token_count", "0")))
    if not state.extra.get("turn_usage"):
        state.usage.input_tokens = max(0, calls["input"] - calls["cached"])
        state.usage.cache_read_tokens = calls["cached"]
        state.usage.cache_write_tokens = calls["write"]
        state.usage.output_tokens = calls["output"]
    tokens = int(counts.get("input_token_count", "0")) + int(counts.get("output_token_count", "0"))
    return [AgentEvent(EventKind.USAGE, "model call finished", {"tokens": tokens, "source": "stderr"}, False)]


def _usage(usage: dict[str, Any], state: ParseState) -> None:
    # Cumulative for the run, so assigned rather than added; input includes the cached part.
    cached = integer(usage.get("cached_input_tokens"))
    state.usage.input_tokens = max(0, integer(usage.get("input_tokens")) - cached)
    state.usage.cache_read_tokens = cached
    state.usage.cache_write_tokens = integer(usage.get("cache_write_input_tokens"))
    state.usage.output_tokens = integer(usage.get("output_tokens"))
