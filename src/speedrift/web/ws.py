"""``/ws/status``: a snapshot on connect, then numbered deltas; fan-out that no client can stall.

The state hands each delta (already encoded, one string) to :class:`Broadcaster` from whatever
thread produced it; one ``call_soon_threadsafe`` moves it onto the server's loop, where it is
appended to every client's bounded queue. Each client has its own sender task, so a slow
socket only fills its own queue; when that overflows the queue is dropped and the client gets
a fresh snapshot instead (the same recovery as a client-detected gap).

Client -> server messages: ``{"type": "resync"}`` (send me a snapshot), ``{"type": "ping"}``
(answered with ``{"type": "pong"}``) and, when reads need the token, a first
``{"type": "auth", "token": "…"}``.

Live agent output rides the same socket, for the clients that ask: ``{"type": "follow", "repo",
"task", "attempt", "position"}`` starts following that attempt's ``events.jsonl`` from byte
``position`` (``0``, or the run detail's ``events_position``); the server then sends ``{"type":
"events", "repo", "task", "attempt", "from", "position", "events": […], "end"}`` messages, each
carrying the complete lines between ``from`` and ``position`` rendered by
:mod:`speedrift.eventview` (redacted when written), in bounded batches, until ``end`` (the
attempt's final state) or ``{"type": "unfollow"}``; a new ``follow`` replaces the old one (one per
client). These messages are per client and outside the numbered delta stream (no ``seq``): a
client whose ``from`` is not the position it holds (a message lost to a resync, a reconnect)
follows again from its own position, so it sees every event once, in order. ``{"type":
"events_error", "message"}`` answers a follow that names no known repo or attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from speedrift import layout
from speedrift.web import runs
from speedrift.web.auth import AccessPolicy
from speedrift.web.live import DashboardState, encode

MAX_PENDING = 256  # deltas a client may lag behind before it is resynced instead
AUTH_TIMEOUT_S = 10.0
PONG = '{"type":"pong"}'
FOLLOW_POLL_S = 0.25  # how often a followed attempt's log is looked at


class Client:
    __slots__ = (
        "base_seq",
        "follower",
        "max_pending",
        "overflowed",
        "pending",
        "resync",
        "resyncs",
        "wake",
    )

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.pending: deque[tuple[int | None, str]] = deque()
        self.wake = asyncio.Event()
        self.max_pending = max_pending
        self.overflowed = False
        self.resync = False
        self.base_seq = 0
        self.resyncs = 0
        self.follower: asyncio.Task[None] | None = None  # following one attempt's events

    def offer(self, seq: int | None, text: str) -> None:
        """Called on the loop. Never blocks: past the bound, drop everything and resync later."""
        if self.overflowed:
            return
        if len(self.pending) >= self.max_pending:
            self.pending.clear()
            self.overflowed = True
        else:
            self.pending.append((seq, text))
        self.wake.set()


class Broadcaster:
    """Connects the state's subscriber callback (any thread) to the clients (the loop)."""

    def __init__(self, state: DashboardState, max_pending: int = MAX_PENDING) -> None:
        self.state = state
        self.max_pending = max_pending
        self.clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: int | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = self.state.subscribe(self._from_any_thread)

    def detach(self) -> None:
        if self._handle is not None:
            self.state.unsubscribe(self._handle)
            self._handle = None

    def _from_any_thread(self, seq: int, text: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fanout, seq, text)

    def _fanout(self, seq: int, text: str) -> None:
        for client in self.clients:
            client.offer(seq, text)

    async def serve(self, websocket: WebSocket, policy: AccessPolicy) -> None:
        if not policy.origin_ok(websocket.headers.get("origin")):
            await websocket.close(code=1008, reason="origin not allowed")  # before accept: HTTP 403
            return
        await websocket.accept()
        if policy.reads_need_token and not await _authenticated(websocket, policy):
            return
        client = Client(self.max_pending)
        self.clients.add(client)  # before the snapshot: no delta after it can be missed
        sender = asyncio.create_task(self._send(websocket, client))
        try:
            client.resync = True
            client.wake.set()
            await self._receive(websocket, client)
        finally:
            self.clients.discard(client)
            _stop_following(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _send(self, websocket: WebSocket, client: Client) -> None:
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                if client.overflowed or client.resync:
                    if client.overflowed:
                        client.resyncs += 1
                    client.overflowed = client.resync = False
                    client.pending.clear()
                    seq, text = self.state.snapshot_text()
                    client.base_seq = seq
                    await websocket.send_text(text)
                while client.pending and not client.overflowed:
                    seq_or_none, text = client.pending.popleft()
                    if seq_or_none is not None:
                        if seq_or_none <= client.base_seq:
                            continue  # already inside the snapshot this client holds
                        client.base_seq = seq_or_none
                    await websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return

    async def _receive(self, websocket: WebSocket, client: Client) -> None:
        while True:
            try:
                raw = await websocket.receive_text()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "resync":
                client.resync = True
                client.wake.set()
            elif kind == "ping":
                client.offer(None, PONG)
            elif kind == "follow":
                self._follow(client, message)
            elif kind == "unfollow":
                _stop_following(client)

    def _follow(self, client: Client, message: dict[str, Any]) -> None:
        """Start following the attempt ``message`` names (replacing what the client followed)."""
        _stop_following(client)
        repo, task, attempt, position = (message.get(k) for k in ("repo", "task", "attempt", "position"))
        info = self.state.repo_info(repo) if isinstance(repo, str) else None
        problem = None
        if info is None or not info.path:
            problem = f"no repo named {repo!r} on this dashboard"
        elif not isinstance(task, str) or not task:
            problem = "follow needs a task id"
        elif not _whole(attempt, 1) or not _whole(position, 0):
            problem = "follow needs an attempt number (1, 2, …) and a byte position (0 or more)"
        if problem is not None:
            client.offer(None, encode({"type": "events_error", "message": problem}))
            return
        if info is None or not isinstance(task, str) or not isinstance(attempt, int):
            return
        folder = layout.attempt_dir(Path(info.path), task, attempt)
        head = {"type": "events", "repo": repo, "task": task, "attempt": attempt}
        client.follower = asyncio.create_task(_follow_log(client, folder, head, int(position or 0)))


def _whole(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _stop_following(client: Client) -> None:
    if client.follower is not None:
        client.follower.cancel()
        client.follower = None


async def _follow_log(client: Client, folder: Path, head: dict[str, Any], position: int) -> None:
    """Send the attempt's events from ``position`` as they are written, in bounded batches, until it
    ends. A client behind by half its queue is waited for: a follower never makes it overflow."""
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            if len(client.pending) > client.max_pending // 2:
                await asyncio.sleep(FOLLOW_POLL_S)
                continue
            batch = await asyncio.to_thread(runs.event_batch, folder, position)
            if batch["events"] or batch["end"] is not None or batch["position"] != position:
                client.offer(None, encode({**head, **batch}))
            position = batch["position"]
            if batch["end"] is not None:
                return
            if not (batch["more"] and batch["events"]):
                await asyncio.sleep(FOLLOW_POLL_S)


async def _authenticated(websocket: WebSocket, policy: AccessPolicy) -> bool:
    try:
        raw = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S)
        message = orjson.loads(raw)
    except (TimeoutError, WebSocketDisconnect, orjson.JSONDecodeError, RuntimeError, KeyError):
        message = None
    token = message.get("token") if isinstance(message, dict) and message.get("type") == "auth" else None
    if not isinstance(token, str) or not token:
        await websocket.close(code=4401, reason="token required")
        return False
    if not policy.token_matches(token):
        await websocket.close(code=4403, reason="bad token")
        return False
    return True
