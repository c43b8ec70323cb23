"""Where the hub keeps its state, found from ``ecosystem.toml``: one directory, every path named here.

``<directory of ecosystem.toml>/.speedrift-hub/`` (or ``$SPEEDRIFT_HUB_DIR``), mode 0700, holds
``register.db`` (SQLite), ``ledger/cycles.jsonl``, ``hub.pid``, ``token`` (0600) and ``logs/``
(``hub.log``, the handlers' process logs). ``hub up``, ``hub once``, the dashboard, ``why`` and
``ledger`` all resolve it the same way, so they agree on one hub per ecosystem.

Invariant: no other module spells ``.speedrift-hub`` or a file name inside it; they ask this module.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from speedrift import fsutil
from speedrift.errors import NotFound, UsageError

ECOSYSTEM_FILE = "ecosystem.toml"
# names the ecosystem for commands run inside one repo (they never look for ./ecosystem.toml)
ECOSYSTEM_ENV = "SPEEDRIFT_ECOSYSTEM"
HUB_DIR_NAME = ".speedrift-hub"
HUB_PREFIX = f"{HUB_DIR_NAME}/"  # a path relative to a repo root that is the hub's state
HUB_DIR_ENV = "SPEEDRIFT_HUB_DIR"
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret


def find_ecosystem(explicit: Path | None, cwd: Path) -> Path:
    """``--ecosystem PATH`` (a file, or a directory holding ecosystem.toml), else ``./ecosystem.toml``."""
    if explicit is not None:
        path = explicit.expanduser()
        if not path.is_absolute():
            path = cwd / path
        if path.is_dir():
            path = path / ECOSYSTEM_FILE
        if not path.is_file():
            raise NotFound(
                f"{path} does not exist",
                hint="check --ecosystem, or create it with `speedrift repos add NAME PATH`",
            )
        return path
    candidate = cwd / ECOSYSTEM_FILE
    if candidate.is_file():
        return candidate
    raise NotFound(
        f"no {ECOSYSTEM_FILE} in {cwd} (searched: {candidate})",
        hint=(
            "run the command from the directory holding ecosystem.toml, pass --ecosystem PATH, "
            "create one with `speedrift repos add NAME PATH`, or try `speedrift demo`"
        ),
    )


def hub_dir(ecosystem: Path, *, create: bool = True) -> Path:
    """The hub's state directory for this ecosystem, created private (0700) on first use."""
    override = os.environ.get(HUB_DIR_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
    else:
        path = ecosystem.resolve().parent / HUB_DIR_NAME
    if create:
        if path.exists() and not path.is_dir():
            raise UsageError(
                f"{path} exists and is not a directory",
                hint=f"move it aside, or point ${HUB_DIR_ENV} at a directory",
            )
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


# --- paths inside the hub dir ---------------------------------------------------------------------
def register_db_path(hub: Path) -> Path:
    return hub / "register.db"


def register_gap_path(hub: Path) -> Path:
    """Since when the register has been unreachable (control/registergap.py), only during a gap."""
    return hub / "register-gap.json"


def ledger_dir(hub: Path) -> Path:
    return hub / "ledger"


def cycles_path(hub: Path) -> Path:
    return ledger_dir(hub) / "cycles.jsonl"


def pid_path(hub: Path) -> Path:
    return hub / "hub.pid"


def logs_dir(hub: Path) -> Path:
    return hub / "logs"


def hub_log_path(hub: Path) -> Path:
    """A detached ``hub up``'s output."""
    return logs_dir(hub) / "hub.log"


def token_path(hub: Path) -> Path:
    return hub / TOKEN_FILE


# --- the dashboard token ----------------------------------------------------------------------------
def read_token(hub: Path) -> str | None:
    try:
        text = token_path(hub).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def _write_token(hub: Path, token: str, *, exclusive: bool) -> bool:
    """Write the token 0600. With ``exclusive`` only if no token exists; returns whether it wrote."""
    hub.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = (token + "\n").encode("ascii")
    if exclusive:
        # of two first calls only one creates the file: they agree on one token
        return fsutil.create_new(token_path(hub), data, mode=0o600)
    fsutil.write_atomic(token_path(hub), data, mode=0o600, keep_mode=False)
    return True


def ensure_token(hub: Path) -> str:
    """The dashboard's access token, created (urlsafe, 32 random bytes, file 0600) on first call."""
    existing = read_token(hub)
    if existing:
        return existing
    _write_token(hub, secrets.token_urlsafe(32), exclusive=True)
    token = read_token(hub)
    if token is None:
        raise NotFound(f"{token_path(hub)} could not be read back", hint="check the hub dir's permissions")
    return token


def rotate_token(hub: Path) -> str:
    """Replace the token atomically; old dashboard sessions stop working."""
    token = secrets.token_urlsafe(32)
    _write_token(hub, token, exclusive=False)
    return token


def agents_state_path(hub: Path) -> Path:
    """The standing agents' durable state (fleetops/state.py): last fired slots, restarts, drift
    levels, pauses."""
    return hub / "agents-state.json"


def agents_state_lock_path(hub: Path) -> Path:
    return hub / "agents-state.lock"
