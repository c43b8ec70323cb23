"""A per-blob result cache for the tree lanes (secdrift, qadrift, archdrift): what a lane learned
from one file's content, keyed by the blob's SHA, so a rerun after a small change reads and
analyses only the blobs that changed.

The cache is one JSON document in the lane's state directory holding a ``version`` (the lane's
analysis code and settings, hashed: any change empties the cache), the entries, and ``stats`` about
the last run (how many blobs were analysed afresh and how many were reused).

Invariants: a value is a function of the blob's bytes (plus whatever the caller folds into the
key, e.g. the file's base name) and of ``version`` only — never of the time or of other files; the
document is written atomically and holds only the entries the last run used (entries for blobs
no longer in the tree are dropped), so it never grows past the tree it describes. A missing,
corrupt or outdated document is an empty cache, never an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil


def version_of(*parts: str | bytes) -> str:
    """A short digest of everything a cached value depends on besides the blob."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part)
        digest.update(b"\x1f")
    return digest.hexdigest()[:24]


def source_of(module_file: str | None) -> bytes:
    """A module's own source bytes (folded into a version: editing the analysis empties the cache)."""
    if not module_file:
        return b""
    try:
        return Path(module_file).read_bytes()
    except OSError:
        return b""


class BlobCache:
    """Values by key (a blob SHA, optionally with more) for one lane; ``path`` None: nothing kept."""

    def __init__(self, path: Path | None, version: str) -> None:
        self.path = path
        self.version = version
        self.entries: dict[str, Any] = {}
        self.used: set[str] = set()
        self.hits = 0
        self.misses = 0
        if path is None:
            return
        try:
            document = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        if (
            isinstance(document, dict)
            and document.get("version") == version
            and isinstance(document.get("entries"), dict)
        ):
            self.entries = document["entries"]

    def get(self, key: str) -> Any | None:
        value = self.entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self.used.add(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self.entries[key] = value
        self.used.add(key)

    def save(self, stats: Mapping[str, Any]) -> None:
        """Keep the entries this run used, with ``stats``; a cache that cannot be written only costs
        time on the next run."""
        if self.path is None:
            return
        kept = {key: self.entries[key] for key in sorted(self.used) if key in self.entries}
        document = {"version": self.version, "stats": dict(stats), "entries": kept}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fsutil.write_atomic(self.path, orjson.dumps(document), durable=False)
        except OSError:
            return
        self.entries = kept


def read_stats(path: Path) -> dict[str, Any]:
    """The ``stats`` of the last run that wrote the cache at ``path`` ({} when there is none)."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    stats = document.get("stats") if isinstance(document, dict) else None
    return dict(stats) if isinstance(stats, dict) else {}
