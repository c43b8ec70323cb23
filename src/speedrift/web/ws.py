"""``/ws/status``: a snapshot on connect, then numbered deltas; fan-out that no client can stall.

The state hands each delta (already encoded, one string) to :class:`Broadcaster` from whatever
thread produced it; one ``call_soon_threadsafe`` moves it onto the server's loop, where it is
appended to every client's bounded queue. Each client has its own sender task, so a slow
socket only fills its own queue; when that overflows the queue is dropped and the client gets
a fresh snapshot instead (the same recovery as a client-detected gap).

Client -> server messages: ``{"type": "resync"}`` (send me a snapshot), ``{"type": "ping"}``
(answered with ``{"type": "pong"}``) and, when reads need the token, a first
``{"type": "auth", "token": "…"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from speedrift.web.auth import AccessPolicy
from speedrift.web.live import DashboardState

MAX_PENDING = 256  # deltas a client may lag behind before it is resynced instead
AUTH_TIMEOUT_S = 10.0
PONG = '{"type":"pong"}'


class Client:
    __slots__ = ("base_seq", "max_pending", "overflowed", "pending", "resync", "resyncs", "wake")

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.pending: deque[tuple[int | None, str]] = deque()
        self.wake = asyncio.Event()
        self.max_pending = max_pending
        self.overflowed = False
        self.resync = False
        self.base_seq = 0
        self.resyncs = 0

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
