"""The Starlette application: page, static files, JSON API and ``/ws/status``, behind one guard.

The guard is plain ASGI middleware, so it runs before routing and before any body is read:
Host on every request (DNS rebinding), Origin on mutations and the websocket, the bearer token
on mutations (and on reads too when the server listens beyond loopback). Responses carry a
strict Content-Security-Policy: the page loads only its own scripts and connects only to its
own origin.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from speedrift.errors import SpeedriftError
from speedrift.web.agents import routes as agents_routes
from speedrift.web.api import ApiContext, build_routes, error, speedrift_error
from speedrift.web.auth import MUTATING_METHODS, AccessPolicy
from speedrift.web.live import DashboardState
from speedrift.web.metrics import routes as metrics_routes
from speedrift.web.ws import Broadcaster

STATIC_DIR = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}


class Service(Protocol):
    """Something that runs beside the server (graph watcher, refresher)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Guard:
    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self.policy.host_ok(headers.get("host")):
            await self._refuse(scope, receive, send, 403, "host not allowed", "use http://127.0.0.1:<port>/")
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)  # Origin and (when needed) token: see ws.py
            return
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        if method in MUTATING_METHODS:
            if not self.policy.origin_ok(headers.get("origin")):
                await self._refuse(scope, receive, send, 403, "origin not allowed")
                return
            if not await self._token_ok(scope, receive, send, headers):
                return
        elif (
            self.policy.reads_need_token
            and path.startswith("/api/")
            and not await self._token_ok(scope, receive, send, headers)
        ):
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    out.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _token_ok(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> bool:
        status = self.policy.token_status(headers.get("authorization"))
        if status == 200:
            return True
        if status == 401:
            await self._refuse(
                scope,
                receive,
                send,
                401,
                "token required",
                "send Authorization: Bearer <token>; `speedrift dashboard --print-url` prints a URL with it",
            )
        else:
            await self._refuse(
                scope,
                receive,
                send,
                403,
                "bad token",
                "the token was rotated? `speedrift dashboard --print-url`",
            )
        return False

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str, hint: str | None = None
    ) -> None:
        if scope["type"] == "websocket":
            await WebSocket(scope, receive, send).close(code=1008, reason=message)
            return
        response = error(status, message, hint)
        if status == 401:
            response.headers["www-authenticate"] = 'Bearer realm="speedrift"'
        await response(scope, receive, send)


def create_app(
    state: DashboardState,
    policy: AccessPolicy,
    *,
    ecosystem_path: Path | None = None,
    hub: Path | None = None,
    services: Sequence[Service] = (),
    static_dir: Path = STATIC_DIR,
) -> Starlette:
    broadcaster = Broadcaster(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import asyncio

        broadcaster.attach(asyncio.get_running_loop())
        for service in services:
            service.start()
        try:
            yield
        finally:
            broadcaster.detach()
            for service in reversed(services):
                service.stop()

    async def index(request: Request) -> Response:
        return FileResponse(static_dir / "index.html", media_type="text/html")

    async def favicon(request: Request) -> Response:
        return FileResponse(static_dir / "favicon.svg", media_type="image/svg+xml")

    async def ws_status(websocket: WebSocket) -> None:
        await broadcaster.serve(websocket, policy)

    routes: list[BaseRoute] = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        *build_routes(),
        *agents_routes(),
        *metrics_routes(static_dir),
        WebSocketRoute("/ws/status", ws_status),
        Mount("/static", app=StaticFiles(directory=static_dir), name="static"),
    ]
    # endpoints raise SpeedriftError; this one handler turns it into {error, hint} with its status
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={SpeedriftError: speedrift_error})
    app.state.api = ApiContext(state=state, ecosystem_path=ecosystem_path, hub=hub)
    app.state.broadcaster = broadcaster
    app.state.dashboard = state
    app.add_middleware(Guard, policy=policy)
    return app


def asgi_info(app: Any) -> dict[str, Any]:
    """What tests and the benchmark may want to look at (broadcaster, state)."""
    return {"broadcaster": app.state.broadcaster, "state": app.state.dashboard}
