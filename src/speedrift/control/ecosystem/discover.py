"""Autodiscovery: git repos under the workspace root that have a live task graph, watched without registering.

Enabled by ``[discovery] enabled = true``. A direct child directory of the discovery root counts
when it holds ``.git`` and a ``.wg/graph.jsonl`` or ``.workgraph/graph.jsonl`` modified within
``max_age_days``. Discovery only reads directory listings and ``stat``s; it never overrides a
declared entry (same path or same name: the declared one wins, the found one is dropped).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from speedrift.control.ecosystem.load import NAME_RE, DiscoverySettings
from speedrift.graph.store import graph_file_candidates
from speedrift.hubdir import HUB_DIR_NAME
from speedrift.register.record import RepoEntry


def _graph_mtime(folder: Path) -> float | None:
    newest: float | None = None
    for path in graph_file_candidates(folder):
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        newest = mtime if newest is None else max(newest, mtime)
    return newest


def discover(
    settings: DiscoverySettings, declared: Sequence[RepoEntry], now: datetime, workspace_root: Path
) -> tuple[RepoEntry, ...]:
    """Repos found under the discovery root, sorted by name, none of them already declared."""
    if not settings.enabled:
        return ()
    root = settings.root or workspace_root
    try:
        children = sorted(os.scandir(root), key=lambda item: item.name)
    except OSError:
        return ()
    declared_paths = {os.path.realpath(entry.path) for entry in declared}
    names = {entry.name for entry in declared}
    cutoff = (now - timedelta(days=settings.max_age_days)).timestamp()
    found: list[RepoEntry] = []
    for child in children:
        if child.name.startswith(".") or child.name == HUB_DIR_NAME or not NAME_RE.match(child.name):
            continue
        try:
            if not child.is_dir():
                continue
        except OSError:
            continue
        folder = Path(child.path)
        if not (folder / ".git").exists():
            continue
        mtime = _graph_mtime(folder)
        if mtime is None or mtime < cutoff:
            continue
        if os.path.realpath(folder) in declared_paths or child.name in names:
            continue
        names.add(child.name)
        found.append(
            RepoEntry(name=child.name, path=folder, source="autodiscovered", tags=("autodiscovered",))
        )
    return tuple(found)


def with_discovered(
    settings: DiscoverySettings, declared: Sequence[RepoEntry], now: datetime, workspace_root: Path
) -> tuple[RepoEntry, ...]:
    """Declared entries first (unchanged), then the discovered ones."""
    return (*declared, *discover(settings, declared, now, workspace_root))
