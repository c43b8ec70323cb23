"""Peer statuses for one repo's graph, from a named ecosystem: the seam every caller outside the hub uses.

``after = ["shop-api:design-api"]`` resolves against the repos registered in ``ecosystem.toml``
by name. The hub's observer resolves these itself from the graphs it reads each cycle; a command
working in one repo (``speedrift ready``, ``blocked``, ``why-blocked``, ``why``) — and the per-repo
service, given :func:`peer_resolver` by whoever starts it — reads only the referenced peers'
graphs, through :func:`peer_statuses`.

The ecosystem is named explicitly (``--ecosystem FILE``) or by ``$SPEEDRIFT_ECOSYSTEM``; there is
no default, so without one ``REPO:TASK`` blockers stay missing and block, as in workgraph.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from speedrift import hubdir
from speedrift.control.ecosystem.load import load_ecosystem
from speedrift.graph import peers
from speedrift.graph.codec import Graph
from speedrift.graph.query import PeerStatuses

PeerResolver = Callable[[Graph], PeerStatuses | None]


def named_ecosystem(
    explicit: str | os.PathLike[str] | None, cwd: Path, env: Mapping[str, str] | None = None
) -> Path | None:
    """``--ecosystem`` if given, else ``$SPEEDRIFT_ECOSYSTEM``, as a checked path; None when neither."""
    value = explicit or (os.environ if env is None else env).get(hubdir.ECOSYSTEM_ENV)
    return hubdir.find_ecosystem(Path(value), cwd) if value else None


def repo_paths(ecosystem: Path) -> dict[str, Path]:
    """Every registered repo of the ecosystem, by name."""
    return {entry.name: entry.path for entry in load_ecosystem(ecosystem).repos}


def peer_statuses(graph: Graph, ecosystem: Path) -> PeerStatuses | None:
    """The statuses of the peer tasks ``graph`` waits on, read from the ecosystem's repos (only the
    graphs of the repos referenced); None when it waits on none (the ecosystem is not even read)."""
    wanted = peers.referenced(graph)
    if not wanted:
        return None
    return peers.resolve(wanted, repo_paths(ecosystem))


def peer_resolver(ecosystem: Path | None) -> PeerResolver | None:
    """A function from a repo's graph to its peer statuses, for a caller in a lower layer (the
    per-repo service) that cannot load an ecosystem itself; None without an ecosystem."""
    if ecosystem is None:
        return None
    path = ecosystem

    def resolve(graph: Graph) -> PeerStatuses | None:
        return peer_statuses(graph, path)

    return resolve
