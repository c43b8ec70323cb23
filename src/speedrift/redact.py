"""Redaction: secret values become ``[REDACTED:<kind>]`` in everything speedrift writes, and the
one home of the exact secret values speedrift holds.

Two layers. Writers (event logs, run records, evidence, bundles) pass text through
:func:`redact_text`, which replaces every value shaped like a known credential (see
secret_patterns.py) plus every exact value this process has been told about with :func:`remember`
— the secrets gate remembers each value it finds. After the gate finds a secret in an attempt's
diff, :func:`scrub_tree` rewrites (atomically) every file already written in that attempt's run
directory without the value.

Named secrets: :func:`remember_environment` records the value of every credential-named variable
(secret_patterns.is_secret_name: what agents/env.py withholds from an agent) and of every name
passed through ``[env] secrets``. Each is redacted as ``[REDACTED:<NAME>]`` together with its
encodings (:func:`encoded_forms`: base64 and base64url at the three byte offsets, hex, URL
encoding), and :func:`named_secrets` hands them to the secrets gate, which searches every diff for
them. Invariant: a value is only ever compared and replaced, never written or shown; values too
short or too plain to be a credential (:func:`worth_searching`) are not remembered.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speedrift import fsutil
from speedrift import secret_patterns as patterns
from speedrift.termtext import printable

MIN_REMEMBERED = 8  # shorter "values" (a token's prefix, a short password) would shred ordinary text
_lock = threading.Lock()
_known: dict[str, str] = {}  # value -> kind, for this process's lifetime
# the known values as one regex, and as a tuple: a substring test first is far cheaper than the regex
# (set together, read together, so a reader never pairs one with the other's older version)
_known_match: tuple[re.Pattern[str], tuple[str, ...]] | None = None


def marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def remember(values: Iterable[tuple[str, str]]) -> None:
    """Redact these exact (kind, value) pairs from everything written from now on."""
    with _lock:
        _remember_locked(values)


def _remember_locked(values: Iterable[tuple[str, str]]) -> None:
    global _known_match
    added = False
    for kind, value in values:
        if len(value) >= MIN_REMEMBERED and value not in _known:
            _known[value] = kind
            added = True
    if added:
        ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial overlaps
        _known_match = (re.compile("|".join(re.escape(v) for v in ordered)), tuple(ordered))


# --- named secrets: the exact values speedrift holds ----------------------------------------------
@dataclass(frozen=True, slots=True)
class NamedSecret:
    """A secret speedrift holds, by the variable that holds it. ``forms``: (encoding, bytes) — the
    value itself (``value``) and each encoding of it a leak may take. Never written anywhere."""

    name: str
    forms: tuple[tuple[str, bytes], ...]


_named: dict[str, NamedSecret] = {}  # value -> the secret, for this process's lifetime


def encoded_forms(value: str) -> tuple[tuple[str, bytes], ...]:
    """``value`` as a leak may carry it: itself; base64 and base64url (with or without padding, and
    inside a longer encoded blob: for each of the 3 byte offsets the value can start at, the
    characters that depend on its bytes alone); hex (lower and upper case); URL-encoded."""
    raw = value.encode("utf-8", "surrogateescape")
    forms: dict[bytes, str] = {raw: "value"}
    for offset in range(3):
        shifted = b"\0" * offset + raw
        start, end = -(-8 * offset // 6), 8 * len(shifted) // 6  # whole 6-bit groups of the value
        forms.setdefault(base64.b64encode(shifted)[start:end], "base64")
        forms.setdefault(base64.urlsafe_b64encode(shifted)[start:end], "base64url")
    forms.setdefault(raw.hex().encode(), "hex")
    forms.setdefault(raw.hex().upper().encode(), "hex")
    forms.setdefault(urllib.parse.quote_from_bytes(raw, safe="").encode(), "url-encoded")
    forms.setdefault(urllib.parse.quote_from_bytes(raw).encode(), "url-encoded")  # "/" kept, as quote() does
    forms.setdefault(urllib.parse.quote_from_bytes(raw, safe=" ").replace(" ", "+").encode(), "url-encoded")
    return tuple((encoding, needle) for needle, encoding in forms.items())


def worth_searching(name: str, value: str, *, named: bool = False) -> bool:
    """Whether a variable's value is a secret to search for and redact: at least
    :data:`MIN_REMEMBERED` characters, not a placeholder, not the path of a file (``KUBECONFIG``,
    ``SSH_AUTH_SOCK``, ``AWS_CA_BUNDLE`` are withheld, but their values are paths) and — for a
    name withheld only as one of a family of settings (``AWS_REGION`` under ``AWS_*``), unless
    ``named`` in ``[env] secrets`` — random enough to be a key rather than a word."""
    if len(value) < MIN_REMEMBERED or patterns.placeholder(value):
        return False
    if value.startswith(("/", "~", "./", "../")) and os.path.exists(os.path.expanduser(value)):
        return False
    return named or patterns.is_credential_name(name) or patterns.looks_random(value)


def remember_secret(name: str, value: str, *, named: bool = False) -> bool:
    """Remember one variable's value (see :func:`worth_searching`): redacted, with its encodings,
    from everything written from now on, and searched for by the secrets gate. Returns whether it
    is remembered now. Surrounding whitespace (a value read from a file) is not part of it."""
    value = value.strip()
    if not worth_searching(name, value, named=named):
        return False
    with _lock:
        if value not in _named:
            secret = NamedSecret(name, encoded_forms(value))
            _named[value] = secret
            _remember_locked((name, needle.decode("utf-8", "surrogateescape")) for _e, needle in secret.forms)
    return True


def remember_environment(passed: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> list[str]:
    """Remember the secrets ``environ`` (default: this process's environment) holds: every
    credential-named variable, and every name in ``passed`` (``[env] secrets``) whatever it is
    called. Returns the names remembered (never the values)."""
    source = os.environ if environ is None else environ
    named = set(passed)
    return sorted(
        name
        for name, value in list(source.items())
        if (name in named or patterns.is_secret_name(name))
        and remember_secret(name, value, named=name in named)
    )


def named_secrets() -> list[NamedSecret]:
    """Every named secret remembered in this process (each once, whichever variables held it)."""
    with _lock:
        return list(_named.values())


def _replace_known(text: str) -> str:
    known_match = _known_match
    if known_match is None:
        return text
    regex, values = known_match
    if not any(value in text for value in values):
        return text
    known = _known
    return regex.sub(lambda m: marker(known.get(m.group(), "secret")), text)


def recordable(text: str) -> str:
    """Text from an agent, a provider or a gate as speedrift records it (a failure reason, the
    evidence behind a class, a wait's question): no credential, and every control character,
    escape and NUL shown escaped (speedrift/termtext.py) — the graph refuses raw ones, and
    recording a failure must never fail over what a provider said. Line breaks are kept."""
    return printable(redact_text(text), newlines=True)


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


# redact_value's strings as redacted before, each with the known values it was redacted against:
# a run record is rewritten several times in an attempt with mostly the same strings. An entry
# counts only while those known values are still the current ones (:func:`remember` replaces
# them), so a value remembered later is never missed. Short strings only, and a bounded number.
_MEMO_MAX_CHARS = 2048
_MEMO_MAX_ENTRIES = 4096
_memo: dict[str, tuple[object, str]] = {}


def _redact_memo(text: str) -> str:
    if len(text) > _MEMO_MAX_CHARS:
        return redact_text(text)
    known = _known_match  # before redacting: a newer set makes the entry stale, never wrong
    hit = _memo.get(text)
    if hit is not None and hit[0] is known:
        return hit[1]
    redacted = redact_text(text)
    if len(_memo) >= _MEMO_MAX_ENTRIES:
        _memo.clear()
    _memo[text] = (known, redacted)
    return redacted


def redact_value(value: Any) -> Any:
    """Every string inside a JSON-shaped value (dict keys included) redacted."""
    if isinstance(value, str):
        return _redact_memo(value)
    if isinstance(value, dict):
        return {_redact_memo(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
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
