"""`speedrift dashboard` and `speedrift token rotate`; the dashboard line `hub up` prints."""

from __future__ import annotations

import contextlib
import gc
from argparse import Namespace
from pathlib import Path

from speedrift import hubdir
from speedrift.cli.output import emit_json, say
from speedrift.errors import Refused, UsageError


def _ecosystem(args: Namespace) -> Path:
    explicit = getattr(args, "ecosystem", None)
    return hubdir.find_ecosystem(Path(explicit) if explicit else None, Path.cwd())


def dashboard_url(host: str, port: int, token: str | None) -> str:
    """The page's URL; the token rides in the fragment, which browsers never send to a server."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - printing, not binding
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"#token={token}" if token else "")


def dashboard_line(path: Path, host: str, port: int, *, terminal: bool) -> str:
    """Where the dashboard is. The access token only goes to a terminal: output that is not one
    (``hub up --detach`` writes the hub's log; a pipe, a file) gets the address and where to read
    the token instead, so the hub's log never holds it."""
    hub = hubdir.hub_dir(path)
    token = hubdir.ensure_token(hub)
    if terminal:
        return f"Dashboard: {dashboard_url(host, port, token)}"
    command = f"speedrift dashboard --print-url --ecosystem {path} --port {port}"
    command += "" if host == "127.0.0.1" else f" --host {host}"
    return (
        f"Dashboard: {dashboard_url(host, port, None)} (access token in {hubdir.token_path(hub)}; "
        f"`{command}` prints the URL with it)"
    )


def dashboard(args: Namespace) -> int:
    path = _ecosystem(args)
    hub = hubdir.hub_dir(path)
    if args.print_url:
        say(dashboard_url(args.host, args.port, hubdir.ensure_token(hub)))
        return 0
    if args.refresh <= 0:
        raise UsageError("--refresh must be positive", hint="e.g. --refresh 30")
    gc.enable()  # the CLI runs with the cyclic GC off for short commands; a server lives long
    from speedrift.procs import make_non_dumpable
    from speedrift.web.server import make_server

    make_non_dumpable()  # long-lived, holding the access token

    try:
        server, _state = make_server(
            path, args.host, args.port, standalone=True, refresh_interval=args.refresh
        )
    except Refused as error:
        from speedrift.control.daemon import running_hub

        pid = running_hub(hub)
        if pid is None or "in use" not in error.message:
            raise
        raise Refused(
            f"{error.message}: the hub for this ecosystem (pid {pid}) may already serve the dashboard there",
            hint="open the URL from `speedrift dashboard --print-url`, or pick another port with --port",
        ) from None

    def started(running: object) -> None:
        say(f"Dashboard: {dashboard_url(args.host, server.port, hubdir.read_token(hub))}")
        say("Ctrl-C stops it. `speedrift dashboard --print-url` prints this URL again.")

    server.on_started = started
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops cleanly, then re-raises the Ctrl-C
        server.run_here()
    say("Dashboard stopped.")
    return 0


def token_show(args: Namespace) -> int:
    raise UsageError(
        "`speedrift token` needs an action",
        hint="`speedrift token rotate` replaces the token; `speedrift dashboard --print-url` shows the URL",
    )


def token_rotate(args: Namespace) -> int:
    path = _ecosystem(args)
    hub = hubdir.hub_dir(path)
    token = hubdir.rotate_token(hub)
    if args.as_json:
        emit_json({"token_file": str(hubdir.token_path(hub)), "rotated": True})
        return 0
    say(f"Rotated the dashboard token ({hubdir.token_path(hub)}). Open dashboards must reload with:")
    say(dashboard_url("127.0.0.1", 8777, token))
    return 0
