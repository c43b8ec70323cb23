"""Running the dashboard: bind, wire the live state, serve with uvicorn.

:func:`serve` blocks (``speedrift dashboard``); :func:`start_in_thread` runs the same server in a
background thread and returns once it accepts connections (``speedrift hub up`` publishes its
cycles into the returned state). The socket is bound here, before uvicorn starts, so a busy port
is a clear error in the caller's thread instead of a log line in a server thread.
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from speedrift import hubdir
from speedrift.errors import Refused, UsageError
from speedrift.web.app import Service, create_app
from speedrift.web.auth import AccessPolicy, TokenSource, allowed_hosts, is_loopback
from speedrift.web.live import HISTORY_POINTS, DashboardState
from speedrift.web.refresh import Refresher, latest_cycles, repo_infos
from speedrift.web.watch import GraphWatcher
from speedrift.web.ws import Broadcaster

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8777
START_TIMEOUT_S = 30.0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or an error that names the port and how to choose another."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(
            f"cannot bind to host {host!r}: {exc.strerror}", hint="use e.g. --host 127.0.0.1"
        ) from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise Refused(
                f"port {port} on {host} is already in use",
                hint=f"pick another with --port (e.g. --port {port + 1}; --port 0 takes any free port), "
                f"or find what holds it: ss -ltnp 'sport = :{port}'",
            ) from None
        if exc.errno == errno.EACCES:
            raise Refused(f"not permitted to listen on port {port}", hint="use a port above 1023") from None
        raise Refused(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class DashboardServer(uvicorn.Server):
    """uvicorn's server, plus where it listens and a way to wait for it."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, host: str) -> None:
        super().__init__(config)
        self.sock = sock
        self.host = host
        self.port: int = sock.getsockname()[1]
        self.thread: threading.Thread | None = None
        self.on_started: Callable[[DashboardServer], None] | None = None
        self.broadcaster: Broadcaster | None = None

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104 - printing it
        return f"http://{shown if ':' not in shown else f'[{shown}]'}:{self.port}/"

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.on_started is not None and not self.should_exit:
            self.on_started(self)

    def run_here(self) -> None:
        self.run(sockets=[self.sock])

    def stop(self, timeout: float = 30.0) -> None:
        self.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)


@dataclass(frozen=True)
class Wiring:
    state: DashboardState
    services: list[Service]
    policy: AccessPolicy
    hub: Path


def wire(
    ecosystem_path: Path,
    host: str,
    port: int,
    *,
    state: DashboardState | None,
    standalone: bool,
    watch_interval: float = 0.1,
    refresh_interval: float = 30.0,
) -> Wiring:
    """The live state (loaded with the registry, the last cycles and every graph) and its feeders."""
    from speedrift.control.ecosystem.load import load_ecosystem

    ecosystem = load_ecosystem(ecosystem_path)
    hub = hubdir.hub_dir(ecosystem.path)
    hubdir.ensure_token(hub)
    state = state or DashboardState(str(ecosystem.path), source="dashboard" if standalone else "hub")
    infos = repo_infos(ecosystem)
    state.set_repos(infos, plan_only=ecosystem.policy.plan_only)
    cycles = latest_cycles(hub, HISTORY_POINTS)
    if cycles:
        state.load_history(cycles[:-1])
        state.publish_cycle(cycles[-1])
    watcher = GraphWatcher(state, infos, interval=watch_interval)
    watcher.load_all()
    refresher = Refresher(state, ecosystem.path, watcher, standalone=standalone, interval=refresh_interval)
    policy = AccessPolicy(
        token=TokenSource(hubdir.token_path(hub)),
        hosts=allowed_hosts(host, port),
        reads_need_token=not is_loopback(host),
    )
    return Wiring(state, [watcher, refresher], policy, hub)


def make_server(
    ecosystem_path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    state: DashboardState | None = None,
    standalone: bool = True,
    watch_interval: float = 0.1,
    refresh_interval: float = 30.0,
) -> tuple[DashboardServer, DashboardState]:
    sock = bind(host, port)
    try:
        wiring = wire(
            ecosystem_path.resolve(),
            host,
            sock.getsockname()[1],
            state=state,
            standalone=standalone,
            watch_interval=watch_interval,
            refresh_interval=refresh_interval,
        )
    except BaseException:
        sock.close()
        raise
    if wiring.policy.reads_need_token:
        sys.stderr.write(
            f"warning: listening on {host}, beyond loopback: every read and the websocket need the token "
            "too. Traffic is not encrypted; put it behind TLS or a private network.\n"
        )
    app = create_app(
        wiring.state,
        wiring.policy,
        ecosystem_path=ecosystem_path.resolve(),
        hub=wiring.hub,
        services=wiring.services,
    )
    # no per-message deflate: it would compress every delta once per client, undoing encode-once
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
    )
    server = DashboardServer(config, sock, host)
    server.broadcaster = app.state.broadcaster
    return server, wiring.state


def serve(
    ecosystem_path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    state: DashboardState | None = None,
    on_started: Callable[[DashboardServer], None] | None = None,
) -> None:
    """Serve until interrupted. Without ``state`` the dashboard keeps itself fresh (standalone)."""
    server, _state = make_server(ecosystem_path, host, port, state=state, standalone=state is None)
    server.on_started = on_started
    server.run_here()


def start_in_thread(
    ecosystem_path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    state: DashboardState | None = None,
    standalone: bool = False,
    timeout: float = START_TIMEOUT_S,
    **options: float,
) -> tuple[DashboardServer, DashboardState]:
    """Serve from a daemon thread; returns once it accepts connections. Stop with ``server.stop()``
    (or ``server.should_exit = True``). The caller publishes cycles into the returned state."""
    server, live = make_server(ecosystem_path, host, port, state=state, standalone=standalone, **options)
    server.thread = threading.Thread(target=server.run_here, name="speedrift-dashboard", daemon=True)
    server.thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not server.thread.is_alive():
            raise Refused(f"the dashboard on {host}:{server.port} stopped while starting")
        if time.monotonic() > deadline:
            server.stop()
            raise Refused(f"the dashboard on {host}:{server.port} did not start within {timeout:.0f}s")
        time.sleep(0.02)
    return server, live


class HubDashboard:
    """A dashboard served beside a running hub: the hub pushes each cycle into it (``hub up``)."""

    def __init__(self, server: DashboardServer, state: DashboardState) -> None:
        self.server = server
        self.state = state

    @property
    def port(self) -> int:
        return self.server.port

    def publish_cycle(self, record: dict[str, Any]) -> object:
        return self.state.publish_cycle(record)

    def stop(self) -> None:
        self.server.stop()


def start_dashboard(ecosystem_path: Path, host: str, port: int) -> HubDashboard:
    """The hub's dashboard starter (see ``control.daemon.HubOptions.dashboard``)."""
    return HubDashboard(*start_in_thread(ecosystem_path, host, port))
