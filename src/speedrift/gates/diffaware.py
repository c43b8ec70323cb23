"""Diff-awareness: which of the tip's findings are new relative to the base commit.

Findings are compared by (file, rule, message) — numbers in messages that look like line
references are ignored — and, within such a group, matched to base findings by line after
mapping base lines through the diff's hunks (``git diff -U0``), nearest first. Unmatched tip
findings are new; a file renamed in the diff is compared with its old self.

Base results are cached as JSON under ``<repo>/.speedrift/cache/gates/`` keyed by (base commit,
tool, configuration hash), so the base is analysed once however many attempts start from it.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil
from speedrift.gates.model import Finding

_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_FILE = re.compile(rb"^\+\+\+ (?:b/)?(.*)$")
_LINE_REF = re.compile(r"\b(?:line|lines|column|col)\s+\d+(?:[-:]\d+)?", re.I)
_POSITION = re.compile(r":\d+(?::\d+)?\b")


@dataclasses.dataclass
class LineMap:
    """Maps a base line number of one file to the tip's numbering (hunks from ``-U0``)."""

    starts: list[int] = dataclasses.field(default_factory=list)  # sorted base_start of each hunk
    hunks: list[tuple[int, int, int, int]] = dataclasses.field(default_factory=list)

    def to_tip(self, line: int) -> int:
        index = bisect.bisect_right(self.starts, line) - 1
        if index < 0:
            return line
        _base_start, base_end, tip_start, tip_end = self.hunks[index]
        if line < base_end:
            return tip_start  # the line itself changed: its nearest position at the tip
        return line + tip_end - base_end


def line_maps(diff: bytes) -> dict[str, LineMap]:
    """Per tip path, the hunks of a ``-U0`` diff as (base_start, base_end, tip_start, tip_end)
    with exclusive ends; a pure insertion after base line N starts (and ends) at N + 1."""
    maps: dict[str, LineMap] = {}
    current: LineMap | None = None
    for raw in diff.split(b"\n"):
        file_match = _FILE.match(raw)
        if file_match:
            current = maps.setdefault(os.fsdecode(file_match.group(1)), LineMap())
            continue
        hunk = _HUNK.match(raw)
        if hunk and current is not None:
            old_start = int(hunk.group(1))
            old_count = int(hunk.group(2)) if hunk.group(2) is not None else 1
            new_start = int(hunk.group(3))
            new_count = int(hunk.group(4)) if hunk.group(4) is not None else 1
            base_start = old_start if old_count else old_start + 1
            tip_start = new_start if new_count else new_start + 1
            current.starts.append(base_start)
            current.hunks.append((base_start, base_start + old_count, tip_start, tip_start + new_count))
    return maps


def normalize(message: str) -> str:
    return _POSITION.sub("", _LINE_REF.sub("line N", message)).strip()


def _key(finding: Finding) -> tuple[str, str, str]:
    return (finding.file, finding.rule or finding.kind, normalize(finding.message))


def mark_new(
    tip: Sequence[Finding],
    base: Iterable[Finding],
    maps: dict[str, LineMap],
    renames: dict[str, str] | None = None,
) -> list[Finding]:
    """The tip's findings, each with ``new`` set: False when a base finding accounts for it."""
    renames = renames or {}  # base path -> tip path
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for finding in base:
        path = renames.get(finding.file, finding.file)
        moved = dataclasses.replace(finding, file=path)
        line = finding.line or 0
        mapped = maps[path].to_tip(line) if path in maps and line else line
        groups[_key(moved)].append(mapped)
    result: list[Finding] = []
    by_key: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, finding in enumerate(tip):
        by_key[_key(finding)].append(index)
    old: set[int] = set()
    for key, indices in by_key.items():
        available = groups.get(key, [])
        if not available:
            continue
        pairs = sorted((abs((tip[i].line or 0) - b), i, j) for i in indices for j, b in enumerate(available))
        used_tip: set[int] = set()
        used_base: set[int] = set()
        for _distance, i, j in pairs:
            if i in used_tip or j in used_base:
                continue
            used_tip.add(i)
            used_base.add(j)
            old.add(i)
    for index, finding in enumerate(tip):
        result.append(dataclasses.replace(finding, new=index not in old))
    return result


# --- the cache ---------------------------------------------------------------------------------
def cache_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def config_hash(root: Path, names: Sequence[str]) -> str:
    """Hash of the config files (by name, under ``root``) that change what a tool reports."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update((root / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def findings_to_json(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(f) for f in findings]


def findings_from_json(rows: object) -> list[Finding]:
    out: list[Finding] = []
    fields = {f.name for f in dataclasses.fields(Finding)}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict):
            try:
                out.append(Finding(**{k: v for k, v in row.items() if k in fields}))
            except TypeError:
                continue
    return out


class Cache:
    """One JSON document per key; writes are atomic, a corrupt or missing entry is a miss."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, tool: str, key: str) -> Path:
        return self.folder / tool / f"{key}.json"

    def get(self, tool: str, key: str) -> dict[str, Any] | None:
        try:
            value = orjson.loads(self._path(tool, key).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, tool: str, key: str, value: dict[str, Any]) -> None:
        path = self._path(tool, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fsutil.write_atomic(path, orjson.dumps(value))
        except OSError:
            return  # a cache that cannot be written only costs time
