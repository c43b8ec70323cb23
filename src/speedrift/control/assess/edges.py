"""Inter-repo dependency edges: declared in ecosystem.toml, or inferred from task references.

An edge ``source -> target`` means *source depends on target*. Declared edges come from
``depends_on``; inferred ones from the observer's ``graph.mentions`` (each occurrence of another
registered repo's name in task text or dependency ids). One edge per pair: a declared pair that
is also mentioned keeps kind ``declared`` and adds the mention weight. Edges to names that are
not registered, and self-references, are dropped (there is no node to draw them to).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from speedrift.register.record import RepoEdge, RepoEntry, RepoSnapshot

DECLARED_WEIGHT = 8
MENTION_WEIGHT = 2  # per reference
MAX_WEIGHT = 24


def repo_edges(
    entries: Sequence[RepoEntry], snapshots: Mapping[str, RepoSnapshot] | Sequence[RepoSnapshot]
) -> tuple[RepoEdge, ...]:
    snaps = list(snapshots.values()) if isinstance(snapshots, Mapping) else list(snapshots)
    names = {e.name for e in entries} | {s.name for s in snaps}
    declared: set[tuple[str, str]] = {
        (entry.name, dep)
        for entry in entries
        for dep in entry.depends_on
        if dep != entry.name and dep in names
    }
    mentioned: dict[tuple[str, str], int] = {}
    for snapshot in snaps:
        if snapshot.graph is None:
            continue
        for target, count in Counter(snapshot.graph.mentions).items():
            if target != snapshot.name and target in names:
                mentioned[(snapshot.name, target)] = count
    edges: list[RepoEdge] = []
    for pair in sorted(declared | set(mentioned)):
        reasons: list[str] = []
        weight = 0
        if pair in declared:
            weight += DECLARED_WEIGHT
            reasons.append(f"declared: {pair[0]} depends_on {pair[1]} in ecosystem.toml")
        count = mentioned.get(pair, 0)
        if count:
            weight += MENTION_WEIGHT * count
            plural = "reference" if count == 1 else "references"
            reasons.append(f"inferred: {count} task {plural} to {pair[1]} in {pair[0]}'s graph")
        edges.append(
            RepoEdge(
                source=pair[0],
                target=pair[1],
                kind="declared" if pair in declared else "inferred",
                weight=min(MAX_WEIGHT, weight),
                reasons=tuple(reasons),
            )
        )
    return tuple(edges)
