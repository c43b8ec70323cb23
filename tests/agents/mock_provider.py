"""A scripted mock of the three model APIs the real agent CLIs call, on 127.0.0.1 (stdlib only).

One server answers all three wire formats, dispatched on the path suffix as the reference
(agent-clis.md, last section) describes: `…/messages` (Anthropic Messages SSE, claude),
`…/responses` (OpenAI Responses SSE, codex) and `…/chat/completions` (chat-completions SSE,
opencode). The script position is worked out from the request itself (how many tool results the
conversation already holds), never from request order: claude and opencode fire a title side call
concurrently with the first real call. Requests that offer no tools are such side calls and get
plain text.

A :class:`Script` is provider-neutral: steps name a tool (`write`, `edit`, `read`) and the mock
translates each into the calling CLI's own tool and argument names.

Faults (``Script.fail``) are each provider's own error responses, as real providers send them:
``auth`` (401), ``usage_limit`` (429 with the plan's reset), ``usage_limit_in`` (a 429 naming its
reset only as ``resets_in_seconds``), ``rate_limit`` (429 with ``retry-after``), ``server_error``
(500), ``hostile`` (400 whose message holds ANSI escapes, BEL and NUL) and ``malformed`` (a 200
whose stream starts well and turns to garbage). ``fail_calls`` limits a fault to the first N agent
calls; :func:`closed_port_url` is an endpoint nothing listens on.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.agents.mock_faults import failure

# Per agent call: 1000 prompt tokens of which 200 cached, 30 output. Distinct numbers let tests
# check that usage is summed (opencode), taken as a run total (claude) or cumulative (codex).
PROMPT_TOKENS = 1000
CACHED_TOKENS = 200
OUTPUT_TOKENS = 30


@dataclass
class Step:
    tool: str  # "write" | "edit" | "read"
    path: str
    content: str = ""  # write
    old: str = ""  # edit
    new: str = ""  # edit


@dataclass
class Script:
    steps: list[Step] = field(default_factory=list)
    final_text: str = "Done."
    fail: str | None = None  # see the module docstring for the faults
    reset_at: int = 0  # epoch seconds, for fail="usage_limit" / "usage_limit_in"
    retry_after: int = 30  # seconds, for fail="rate_limit" (the retry-after header)
    fail_calls: int | None = None  # fail only the first N agent calls (None: all of them)
    stall: bool = False  # send the SSE headers, then nothing
    loop: Step | None = None  # answer every agent call with this tool call (max turns)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class MockProvider:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MockProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases stalled handlers
        self._server.shutdown()
        self._server.server_close()

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def failing(self) -> bool:
        """Whether this agent call gets the script's fault (counted under the lock)."""
        with self._lock:
            if self.script.fail is None:
                return False
            if self.script.fail_calls is None:
                return True
            self._failed = getattr(self, "_failed", 0) + 1
            return self._failed <= self.script.fail_calls

    def agent_calls(self) -> list[Seen]:
        """Requests that offered tools: the agent loop, not side calls."""
        with self._lock:
            return [r for r in self.requests if r.body.get("tools")]


def closed_port_url() -> str:
    """A 127.0.0.1 URL on a port nothing listens on (bound, then closed): connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def mock_provider(script: Script) -> Iterator[MockProvider]:
    provider = MockProvider(script).start()
    try:
        yield provider
    finally:
        provider.stop()


# --- the HTTP side -----------------------------------------------------------------------------


def _handler_for(provider: MockProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
            pass

        def do_HEAD(self) -> None:  # claude's pre-connect; any status is fine
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            provider.record(Seen("GET", self.path, dict(self.headers), {}))
            self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            path = self.path.split("?", 1)[0]
            provider.record(Seen("POST", path, dict(self.headers), body))
            if path.endswith("/count_tokens"):
                self._json(200, {"input_tokens": 10})
            elif path.endswith("/messages"):
                self._answer("anthropic", body)
            elif path.endswith("/responses"):
                self._answer("responses", body)
            elif path.endswith("/chat/completions"):
                self._answer("chat", body)
            else:
                self._json(404, {"error": {"message": f"no route {path}"}})

        def _answer(self, api: str, body: dict[str, Any]) -> None:
            script = provider.script
            if not body.get("tools"):  # a side call (session title): plain text, no script
                title = '{"title":"Mock task"}' if api == "anthropic" else "Mock task"
                self._sse(_text_frames(api, title))
                return
            if provider.failing():
                assert script.fail is not None
                if script.fail == "malformed":
                    self._malformed(api)
                    return
                status, headers, payload = failure(api, script.fail, script.reset_at, script.retry_after)
                self._json(status, payload, headers)
                return
            if script.stall:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.flush()
                provider._stop.wait(120)
                return
            done = _tool_results(api, body)
            if script.loop is not None:
                self._sse(_tool_frames(api, script.loop, done, body))
            elif done < len(script.steps):
                self._sse(_tool_frames(api, script.steps[done], done, body))
            else:
                self._sse(_text_frames(api, script.final_text))

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _malformed(self, api: str) -> None:
            """A 200 stream whose first event is valid, then bytes that are no protocol, then EOF."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            first = _text_frames(api, "")[0]
            if isinstance(first, dict):
                event = f"event: {first['type']}\n" if "type" in first and api == "anthropic" else ""
                self.wfile.write(f"{event}data: {json.dumps(first)}\n\n".encode())
            self.wfile.write(b'data: {"type": \x00\xff\xfe garbage <html>502</html>\n\n\x00\x01')
            self.wfile.flush()
            self.close_connection = True

        def _sse(self, frames: list[dict[str, Any] | str]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for frame in frames:
                if isinstance(frame, str):  # the chat API's literal terminator
                    self.wfile.write(f"data: {frame}\n\n".encode())
                else:
                    event = f"event: {frame['type']}\n" if "type" in frame else ""
                    self.wfile.write(f"{event}data: {json.dumps(frame)}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


def _tool_results(api: str, body: dict[str, Any]) -> int:
    """How many tool results the conversation holds: the stateless script position."""
    if api == "anthropic":
        return sum(
            1
            for message in body.get("messages", [])
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        )
    if api == "responses":
        kinds = ("function_call_output", "custom_tool_call_output")
        return sum(
            1 for item in body.get("input", []) if isinstance(item, dict) and item.get("type") in kinds
        )
    return sum(1 for message in body.get("messages", []) if message.get("role") == "tool")


# --- SSE frames per wire format ------------------------------------------------------------------


def _anthropic_message(blocks: list[dict[str, Any]], stop_reason: str) -> list[dict[str, Any] | str]:
    start_usage: dict[str, Any] = {
        "input_tokens": PROMPT_TOKENS - CACHED_TOKENS,
        "cache_read_input_tokens": CACHED_TOKENS,
        "cache_creation_input_tokens": 0,
        "output_tokens": 1,
    }
    message: dict[str, Any] = {
        "id": f"msg_{time.monotonic_ns()}",
        "type": "message",
        "role": "assistant",
        "model": "mock",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    frames: list[dict[str, Any] | str] = [{"type": "message_start", "message": message}]
    for index, (start, delta) in enumerate(_anthropic_blocks(blocks)):
        frames.append({"type": "content_block_start", "index": index, "content_block": start})
        frames.append({"type": "content_block_delta", "index": index, "delta": delta})
        frames.append({"type": "content_block_stop", "index": index})
    frames.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": OUTPUT_TOKENS},
        }
    )
    frames.append({"type": "message_stop"})
    return frames


def _anthropic_blocks(blocks: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for block in blocks:
        if block["type"] == "text":
            yield {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield start, {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}


def _text_frames(api: str, text: str) -> list[dict[str, Any] | str]:
    if api == "anthropic":
        return _anthropic_message([{"type": "text", "text": text}], "end_turn")
    if api == "responses":
        item = {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        return [
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            _responses_completed(),
        ]
    return _chat_frames({"role": "assistant", "content": text}, "stop")


def _tool_frames(api: str, step: Step, n: int, body: dict[str, Any]) -> list[dict[str, Any] | str]:
    call_id = f"call_{n + 1}"
    if api == "anthropic":
        names = {"write": "Write", "edit": "Edit", "read": "Read"}
        args: dict[str, Any] = {"file_path": step.path}
        if step.tool == "write":
            args["content"] = step.content
        elif step.tool == "edit":
            args |= {"old_string": step.old, "new_string": step.new}
        block = {"type": "tool_use", "id": f"toolu_{n + 1}", "name": names[step.tool], "input": args}
        return _anthropic_message([block], "tool_use")
    if api == "responses":
        return [
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": _codex_call(step, call_id, body),
            },
            _responses_completed(),
        ]
    chat_args: dict[str, Any] = {"filePath": step.path}
    if step.tool == "write":
        chat_args["content"] = step.content
    elif step.tool == "edit":
        chat_args |= {"oldString": step.old, "newString": step.new}
    call = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": step.tool, "arguments": json.dumps(chat_args)},
    }
    return _chat_frames({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")


def _codex_call(step: Step, call_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Codex edits through apply_patch: its freeform tool when offered, else a heredoc via exec."""
    if step.tool == "write":
        lines = "".join(f"+{line}\n" for line in step.content.splitlines())
        patch = f"*** Begin Patch\n*** Add File: {step.path}\n{lines}*** End Patch\n"
    elif step.tool == "edit":
        patch = (
            f"*** Begin Patch\n*** Update File: {step.path}\n@@\n-{step.old}\n+{step.new}\n*** End Patch\n"
        )
    else:
        args = json.dumps({"cmd": f"cat {step.path}"})
        return {
            "type": "function_call",
            "id": "fc_1",
            "call_id": call_id,
            "name": "exec_command",
            "arguments": args,
        }
    names = {tool.get("name") for tool in body.get("tools", []) if isinstance(tool, dict)}
    if "apply_patch" in names:
        return {
            "type": "custom_tool_call",
            "id": "ctc_1",
            "call_id": call_id,
            "name": "apply_patch",
            "input": patch,
            "status": "completed",
        }
    args = json.dumps({"cmd": f"apply_patch <<'EOF'\n{patch}EOF\n"})
    return {
        "type": "function_call",
        "id": "fc_1",
        "call_id": call_id,
        "name": "exec_command",
        "arguments": args,
    }


def _responses_completed() -> dict[str, Any]:
    usage = {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": PROMPT_TOKENS + OUTPUT_TOKENS,
    }
    return {"type": "response.completed", "response": {"id": "resp_1", "usage": usage}}


def _chat_frames(delta: dict[str, Any], finish: str) -> list[dict[str, Any] | str]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "mock-model"}
        return base | {"choices": choices} | extra

    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": PROMPT_TOKENS + OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
    }
    return [
        chunk([{"index": 0, "delta": delta, "finish_reason": None}]),
        chunk([{"index": 0, "delta": {}, "finish_reason": finish}]),
        chunk([], usage=usage),
        "[DONE]",
    ]
