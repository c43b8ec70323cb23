"""Redaction: secret values become ``[REDACTED:<kind>]`` in everything speedrift writes.

Two layers. Writers (event logs, run records, evidence, bundles) pass text through
:func:`redact_text`, which replaces every value shaped like a known credential (see
patterns.py) plus every exact value this process has been told about with :func:`remember` —
the secrets gate remembers each value it finds. After the gate finds a secret in an attempt's
diff, :func:`scrub_tree` rewrites (atomically) every file already written in that attempt's run
directory without the value.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from speedrift import fsutil
from speedrift import secret_patterns as patterns

MIN_REMEMBERED = 8  # shorter "values" (a token's prefix, a short password) would shred ordinary text
_lock = threading.Lock()
_known: dict[str, str] = {}  # value -> kind, for this process's lifetime
_known_regex: re.Pattern[str] | None = None


def marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def remember(values: Iterable[tuple[str, str]]) -> None:
    """Redact these exact (kind, value) pairs from everything written from now on."""
    global _known_regex
    with _lock:
        added = False
        for kind, value in values:
            if len(value) >= MIN_REMEMBERED and value not in _known:
                _known[value] = kind
                added = True
        if added:
            ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial overlaps
            _known_regex = re.compile("|".join(re.escape(v) for v in ordered))


def _replace_known(text: str) -> str:
    regex = _known_regex
    if regex is None:
        return text
    known = _known
    return regex.sub(lambda m: marker(known.get(m.group(), "secret")), text)


def redact_text(text: str, extra: Iterable[tuple[str, str]] = ()) -> str:
    """``text`` with known and credential-shaped values replaced."""
    if not text:
        return text
    text = _replace_known(text)
    for kind, value in extra:
        if len(value) >= 4:
            text = text.replace(value, marker(kind))
    text = patterns.PRIVATE_KEY_BLOCK.sub(marker("private-key"), text)
    matches = [m for m in patterns.find(text) if m.kind != "private-key"]
    if not matches:
        return text
    pieces: list[str] = []
    position = 0
    for match in sorted(matches, key=lambda m: (m.start, -m.end)):
        if match.start < position:
            continue  # overlaps a value already replaced
        pieces += [text[position : match.start], marker(match.kind)]
        position = match.end
    pieces.append(text[position:])
    return "".join(pieces)


def redact_value(value: Any) -> Any:
    """Every string inside a JSON-shaped value (dict keys included) redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_value(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def _files(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                yield path


def scrub_tree(folder: Path, values: Iterable[str]) -> list[Path]:
    """Rewrite every file under ``folder`` that holds one of ``values``; returns the files changed.

    Each file is replaced atomically (temp file, fsync, rename) so a crash leaves the old or the
    new content, never half of either. Values shorter than 4 characters are left alone."""
    needles = sorted({v.encode() for v in values if len(v) >= 4}, key=len, reverse=True)
    if not needles or not folder.is_dir():
        return []
    kinds = {v.encode(): k for k, v in _known_items()}
    changed: list[Path] = []
    for path in _files(folder):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not any(n in data for n in needles):
            continue
        for needle in needles:
            data = data.replace(needle, marker(kinds.get(needle, "secret")).encode())
        fsutil.write_atomic(path, data)
        changed.append(path)
    return changed


def _known_items() -> list[tuple[str, str]]:
    with _lock:
        return [(kind, value) for value, kind in _known.items()]


def redact_file(path: Path) -> bool:
    """Rewrite a text file speedrift wrote (e.g. a stderr log) with values redacted."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    text = data.decode("utf-8", "surrogateescape")
    cleaned = redact_text(text)
    if cleaned == text:
        return False
    fsutil.write_atomic(path, cleaned.encode("utf-8", "surrogateescape"))
    return True


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
