"""Who may talk to the dashboard: Host and Origin checks (DNS rebinding) and the bearer token.

The server answers only requests whose ``Host`` names the address it is bound to (loopback
names with the bound port, or the configured host): a rebinding page at ``evil.example:8777``
that resolves to 127.0.0.1 is refused before any route runs. Mutations and the websocket also
refuse a foreign ``Origin`` (browsers always send one there; tools that send none are judged by
the token alone). Mutations need ``Authorization: Bearer <token>`` — checked before the body is
read, compared in constant time, re-read from the hub dir when the file changes so that
``speedrift token rotate`` takes effect without a restart.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(bind_host: str, port: int, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """``Host`` header values the server answers: loopback names and the bound host, with the port."""
    names = {*LOOPBACK_NAMES, _bracket(bind_host.lower()), *(_bracket(e.lower()) for e in extra)}
    if bind_host in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        names.discard(_bracket(bind_host))
    values = {f"{name}:{port}" for name in names}
    if port == 80:
        values |= names
    return frozenset(values)


class TokenSource:
    """The token file, re-read only when its mtime changes (cheap on every request)."""

    def __init__(self, path: Path | None, fixed: str | None = None) -> None:
        self.path = path
        self._fixed = fixed
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._value: str | None = fixed

    def __call__(self) -> str | None:
        if self.path is None:
            return self._fixed
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        stamp = (info.st_mtime_ns, info.st_ino)
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._value = self.path.read_text(encoding="ascii").strip() or None
                except (OSError, UnicodeDecodeError):
                    self._value = None
                self._stamp = stamp
            return self._value


@dataclass(frozen=True)
class AccessPolicy:
    token: Callable[[], str | None]
    hosts: frozenset[str]
    reads_need_token: bool = False

    def origins(self) -> frozenset[str]:
        return frozenset(f"http://{host}" for host in self.hosts)

    def host_ok(self, host: str | None) -> bool:
        return host is not None and host.lower() in self.hosts

    def origin_ok(self, origin: str | None) -> bool:
        """A missing Origin is a non-browser client (no ambient credentials to abuse)."""
        return origin is None or origin.lower() in self.origins()

    def token_status(self, authorization: str | None) -> int:
        """200 when the bearer token matches, 401 when none was sent, 403 when it is wrong."""
        if not authorization:
            return 401
        scheme, _, supplied = authorization.partition(" ")
        if scheme.lower() != "bearer" or not supplied.strip():
            return 401
        return 200 if self.token_matches(supplied.strip()) else 403

    def token_matches(self, supplied: str | None) -> bool:
        expected = self.token()
        if not expected or not supplied:
            return False
        return hmac.compare_digest(supplied.encode("utf-8", "replace"), expected.encode("utf-8"))
