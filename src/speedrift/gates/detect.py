"""Finding secrets in files: detect-secrets' plugins plus speedrift's own patterns.

A hit keeps the value in memory only, for redaction; nothing here writes or prints it. Noise
control: detect-secrets' hex-entropy plugin flags every git SHA, so a hex hit needs credential
context on its line; SHA-shaped values never count; an IP address is not a secret. Honoured:
``pragma: allowlist secret`` (same line) and ``pragma: allowlist nextline secret`` (line above),
a detect-secrets baseline (by the value's hash, and its file/line/secret regex filters).

detect-secrets keeps its settings in process-global state, so scans are serialized by a lock.

Known values (:func:`find_known`): the exact secrets speedrift holds (redact.named_secrets) and
their encodings, searched for as bytes in any file — text or binary — and, for the encodings, also
with whitespace removed (``base64`` and ``xxd -p`` wrap long output). A hit names the variable and
the encoding, never the value; no allowlist applies to it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedrift import secret_patterns as patterns
from speedrift.redact import NamedSecret

_DS_LOCK = threading.Lock()
_SKIPPED_PLUGINS = frozenset({"IPPublicDetector"})

_KINDS = {
    "AWS Access Key": "aws-access-key",
    "GitHub Token": "github-token",
    "GitLab Token": "gitlab-token",
    "Base64 High Entropy String": "high-entropy-string",
    "Hex High Entropy String": "high-entropy-hex",
    "Secret Keyword": "secret-keyword",
    "Basic Auth Credentials": "url-credentials",
    "Private Key": "private-key",
    "JSON Web Token": "jwt",
    "Slack Token": "slack-token",
    "Stripe Access Key": "stripe-key",
    "OpenAI Token": "api-key",
    "NPM tokens": "npm-token",
}
# the more specific kind wins when several detectors flag the same value
MIN_VALUE = 8  # shorter detect-secrets values are prefixes (e.g. "ghp"), not secrets
GENERIC_KINDS = ("high-entropy-string", "high-entropy-hex", "secret-keyword", "assigned-credential")


@dataclass(frozen=True, slots=True)
class Hit:
    path: str
    line: int
    kind: str
    value: str  # never written anywhere; used to redact and to compare with the base
    hashed: str  # sha1 of the value, as detect-secrets baselines store it


@dataclass
class Baseline:
    hashes: set[str] = field(default_factory=set)
    exclude_files: list[re.Pattern[str]] = field(default_factory=list)
    exclude_lines: list[re.Pattern[str]] = field(default_factory=list)
    exclude_secrets: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def parse(cls, document: Any) -> Baseline:
        baseline = cls()
        if not isinstance(document, dict):
            return baseline
        results = document.get("results")
        if isinstance(results, dict):
            for entries in results.values():
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, dict) and isinstance(entry.get("hashed_secret"), str):
                        baseline.hashes.add(entry["hashed_secret"])
        for used in document.get("filters_used") or []:
            if not isinstance(used, dict):
                continue
            target = {
                "detect_secrets.filters.regex.should_exclude_file": baseline.exclude_files,
                "detect_secrets.filters.regex.should_exclude_line": baseline.exclude_lines,
                "detect_secrets.filters.regex.should_exclude_secret": baseline.exclude_secrets,
            }.get(str(used.get("path")))
            if target is None:
                continue
            for pattern in used.get("pattern") or []:
                try:
                    target.append(re.compile(str(pattern)))
                except re.error:
                    continue
        return baseline

    def allows(self, hit: Hit, line_text: str) -> bool:
        return (
            hit.hashed in self.hashes
            or any(p.search(hit.path) for p in self.exclude_files)
            or any(p.search(line_text) for p in self.exclude_lines)
            or any(p.search(hit.value) for p in self.exclude_secrets)
        )


def sha1(value: str) -> str:
    return hashlib.sha1(value.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()


def scan_files(files: Sequence[tuple[str, str, bool]]) -> dict[str, list[Hit]]:
    """Secrets per file for (repo-relative path, text, use detect-secrets) triples."""
    detected = _detect_secrets([(path, text) for path, text, deep in files if deep])
    return {path: _hits(path, text, detected.get(path, [])) for path, text, _deep in files}


def scan_text(path: str, text: str, *, use_detect_secrets: bool = True) -> list[Hit]:
    """Secrets in one file's text (``path`` is repo-relative; it feeds detect-secrets' filters)."""
    return scan_files([(path, text, use_detect_secrets)])[path]


def _hits(path: str, text: str, detected: list[tuple[int, str, str]]) -> list[Hit]:
    lines = text.splitlines()
    hits: dict[tuple[int, str], Hit] = {}

    def add(line: int, kind: str, value: str) -> None:
        key = (line, value)
        current = hits.get(key)
        if current is None or (current.kind in GENERIC_KINDS and kind not in GENERIC_KINDS):
            hits[key] = Hit(path, line, kind, value, sha1(value))

    for number, line in enumerate(lines, start=1):
        for match in patterns.find(line):
            add(number, match.kind, match.value)
    for number, kind, value in detected:
        line = lines[number - 1] if 0 < number <= len(lines) else ""
        if not _plausible(kind, value, line):
            continue
        if len(value) < MIN_VALUE:
            # detect-secrets reports only a token's prefix for some kinds: speedrift's own
            # patterns have the full value when they matched that line; else no value is kept
            if any(n == number for n, _v in hits):
                continue
            value = ""
        add(number, kind, value)
    allowed = [h for h in hits.values() if not _allowlisted(lines, h.line)]
    return sorted(allowed, key=lambda h: (h.line, h.kind))


def _plausible(kind: str, value: str, line: str) -> bool:
    if patterns.sha_shaped(value):
        return False
    if kind == "high-entropy-hex":
        return patterns.has_credential_context(line)
    return True


def _allowlisted(lines: list[str], number: int) -> bool:
    line = lines[number - 1] if 0 < number <= len(lines) else ""
    previous = lines[number - 2] if number >= 2 else ""
    return bool(patterns.ALLOW_PRAGMA.search(line) or patterns.ALLOW_NEXT.search(previous))


# A superset of the lines any detect-secrets plugin can flag: long quoted strings (the entropy
# plugins look inside quotes), credential words (the keyword plugin), long alphanumeric runs
# and the fixed prefixes of the token plugins. detect-secrets costs ~0.1 ms per line per plugin
# set, so code files are scanned as a compact copy of just these lines (each with the line
# before it, where allowlist pragmas live); line numbers are mapped back.
_WORTH_A_LOOK = re.compile(
    r"""["'`][^"'`\s]{8,}|[A-Za-z0-9]{16,}|://|-----BEGIN|xox|AccountKey|"""
    r"""(?i:key|pass|pwd|secret|token|auth|cred|contrase|bearer)"""
)
# config formats detect-secrets parses whole (values there need no quotes)
_WHOLE = (".yaml", ".yml", ".ini", ".cfg", ".conf", ".properties", ".env", ".toml", ".json")


def _prefiltered(path: str, text: str) -> tuple[str, list[int] | None] | None:
    """(text to scan, original line number of each of its lines — None: unchanged), or None
    when no line can hold a secret detect-secrets would find."""
    name = path.rsplit("/", 1)[-1]
    if path.endswith(_WHOLE) or name.startswith(".env"):
        return text, None
    lines = text.split("\n")
    wanted: set[int] = set()
    for index, line in enumerate(lines):
        if _WORTH_A_LOOK.search(line):
            wanted.update((index - 1, index) if index else (index,))
    if not wanted:
        return None
    ordered = sorted(wanted)
    return "\n".join(lines[i] for i in ordered) + "\n", [i + 1 for i in ordered]


def _detect_secrets(files: Sequence[tuple[str, str]]) -> dict[str, list[tuple[int, str, str]]]:
    """detect-secrets over (prefiltered) copies of the files, in one temporary directory under
    their base names (its filters look at names; each copy is UTF-8 even if the original is not)."""
    work = [(path, prepared) for path, text in files if (prepared := _prefiltered(path, text)) is not None]
    if not work:
        return {}
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import transient_settings

    found: dict[str, list[tuple[int, str, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="speedrift-secrets-") as folder:
        copies: list[tuple[str, Path, list[int] | None]] = []
        for index, (path, (text, numbers)) in enumerate(work):
            name = os.fsencode(path).decode("utf-8", "replace").rsplit("/", 1)[-1]
            copy = Path(folder, f"{index}-{name}")
            copy.write_text(text, encoding="utf-8", errors="replace")
            copies.append((path, copy, numbers))
        with _DS_LOCK:
            classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
            names = [getattr(plugin, "__name__", "") for plugin in classes]
            plugins = [{"name": name} for name in names if name and name not in _SKIPPED_PLUGINS]
            with transient_settings({"plugins_used": plugins}):
                for path, copy, numbers in copies:
                    for secret in scan_file(str(copy)):
                        line = int(secret.line_number)
                        if numbers is not None:
                            line = numbers[line - 1] if 0 < line <= len(numbers) else 0
                        kind = _KINDS.get(secret.type) or _slug(secret.type)
                        found.setdefault(path, []).append((line, kind, secret.secret_value or ""))
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "secret"


def values(hits: Iterable[Hit]) -> list[tuple[str, str]]:
    return [(h.kind, h.value) for h in hits if h.value]


# --- the exact values speedrift holds ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KnownHit:
    path: str
    line: int  # 1-based; where the first occurrence starts
    name: str  # the variable that holds the secret
    encoding: str  # value | base64 | base64url | hex | url-encoded
    needle: bytes = field(default=b"", repr=False, compare=False)  # what was found; never written


_WHITESPACE = b" \t\r\n\v\f"
_WRAPPABLE = frozenset({"base64", "base64url", "hex"})


def find_known(path: str, data: bytes, secrets: Sequence[NamedSecret]) -> list[KnownHit]:
    """The first place each (secret, encoding) occurs in ``data``: one hit per pair."""
    hits: dict[tuple[str, str], KnownHit] = {}
    squeezed: bytes | None = None
    for secret in secrets:
        for encoding, needle in secret.forms:
            if (secret.name, encoding) in hits:
                continue
            at = data.find(needle)
            if at < 0 and encoding in _WRAPPABLE:
                if squeezed is None:
                    squeezed = data.translate(None, _WHITESPACE)
                inside = squeezed.find(needle)
                at = _unsqueezed(data, inside) if inside >= 0 else -1
            if at >= 0:
                line = data.count(b"\n", 0, at) + 1
                hits[(secret.name, encoding)] = KnownHit(path, line, secret.name, encoding, needle)
    return sorted(hits.values(), key=lambda h: (h.line, h.name, h.encoding))


def _unsqueezed(data: bytes, position: int) -> int:
    """Where the ``position``-th non-whitespace byte of ``data`` is."""
    seen = 0
    for match in re.finditer(rb"[^ \t\r\n\v\f]+", data):
        length = match.end() - match.start()
        if seen + length > position:
            return match.start() + position - seen
        seen += length
    return len(data)
