"""Arguments of the web commands: `speedrift dashboard`, `speedrift token rotate`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from speedrift.cli import argtypes

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535; 0 picks a free one)")
    return value


def _ecosystem(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ecosystem", metavar="PATH", default=None, help="ecosystem.toml (default: ./ecosystem.toml)"
    )


def add(command: Command, common: argparse.ArgumentParser) -> None:
    """Register the web command group. `command(name, "module:function", help)` makes a subcommand."""
    p = command(
        "dashboard",
        "web_cmds:dashboard",
        "Serve the live operator dashboard (standalone: watches the repos itself; `hub up` serves it too).",
    )
    _ecosystem(p)
    p.add_argument(
        "--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need the token)"
    )
    p.add_argument("--port", type=_port, default=8777, help="port (default 8777; 0 picks a free one)")
    p.add_argument(
        "--print-url",
        action="store_true",
        help="print the URL with the access token (in the fragment) and exit",
    )
    p.add_argument(
        "--refresh",
        type=argtypes.seconds(0, argtypes.DAY_S),
        default=30.0,
        metavar="SECONDS",
        help="without a hub: re-observe and score the repos this often (default 30)",
    )

    p = command("token", "web_cmds:token_show", "The dashboard's access token: rotate.")
    _ecosystem(p)
    sub = p.add_subparsers(dest="token_command", metavar="ACTION")
    q = sub.add_parser("rotate", help="replace the token; open dashboards must use the new URL")
    _ecosystem(q)
    q.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    q.set_defaults(handler="web_cmds:token_rotate")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
