"""Secret values planted in the run's environment, and the sweep that looks for them afterwards.

Job: make fresh, unguessable values for the variables agents' providers and forges read
(``ANTHROPIC_API_KEY``, ``GITHUB_TOKEN``, …), hand them to every process the run starts, and at
the end grep every file speedrift wrote (its state directories, the graph directories, the
machine-wide state directory, the hub directory) for each value bare, base64-encoded (at each of
the three alignments a value can have inside a longer encoded text) and hex-encoded.

Invariant: the values exist only in this run (random per run), so any hit is a leak by this run;
agents' own files (worktrees, quarantined worktrees) are not speedrift's and are not swept.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_ALNUM = string.ascii_letters + string.digits


def _random(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


NAMES = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GITHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "SPEEDRIFT_CHAOS_CANARY",
)


def plant() -> dict[str, str]:
    """Fresh values, shaped like the real ones."""
    return {
        "ANTHROPIC_API_KEY": "sk-ant-api03-" + _random(48),
        "OPENAI_API_KEY": "sk-proj-" + _random(48),
        "GITHUB_TOKEN": "ghp_" + _random(36),
        "AWS_SECRET_ACCESS_KEY": _random(40, _ALNUM + "+/"),
        "SPEEDRIFT_CHAOS_CANARY": "chaos-canary-" + secrets.token_hex(16),
    }


def encodings(value: str) -> dict[str, bytes]:
    """The forms a value is searched in: bare, hex (both cases) and base64 — the latter at each
    alignment, trimmed to the characters that do not depend on what surrounds the value."""
    raw = value.encode()
    forms = {"bare": raw, "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        start = (0, 2, 3)[shift]  # the first characters that depend on the value alone
        core = encoded[start : len(encoded) - 4]  # the tail may be padded or continue differently
        if len(core) >= 16:
            forms[f"base64+{shift}"] = core
    urlsafe = base64.urlsafe_b64encode(raw).rstrip(b"=")
    forms["base64url"] = urlsafe[: len(urlsafe) - 2]
    return forms


@dataclass
class Sweep:
    files: int = 0
    hits: list[str] = field(default_factory=list)  # "<file>: <variable> (<encoding>)"


def sweep(roots: Iterable[Path], planted: dict[str, str], skip_dirs: Iterable[Path] = ()) -> Sweep:
    """Every regular file under ``roots`` (not following symlinks, not under ``skip_dirs``)
    searched for every encoding of every planted value."""
    needles = [
        (name, form, text) for name, value in planted.items() for form, text in encodings(value).items()
    ]
    skipped = {os.path.realpath(p) for p in skip_dirs}
    result = Sweep()
    seen: set[str] = set()
    for root in roots:
        if not root.exists():
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(folder, d)) not in skipped]
            for name in files:
                path = os.path.join(folder, name)
                real = os.path.realpath(path)
                if real in seen or os.path.islink(path):
                    continue
                seen.add(real)
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue
                result.files += 1
                for variable, form, needle in needles:
                    if needle in data:
                        result.hits.append(f"{path}: {variable} ({form})")
    return result
