"""Inter-repo dependency edges: declared in ecosystem.toml, or inferred from task references.

An edge ``source -> target`` means *source depends on target*. Declared edges come from
``depends_on``; dependency edges from unfinished tasks whose ``after`` names a task of the other
repo (``target:task``, the observer's ``graph.peer_dependencies``); inferred ones from the
observer's ``graph.mentions`` (each occurrence of another registered repo's name in task text or
dependency ids). One edge per pair, of the strongest kind (declared, then dependency, then
inferred), weighted by everything that supports it. Edges to names that are not registered, and
self-references, are dropped (there is no node to draw them to).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from speedrift.register.record import RepoEdge, RepoEntry, RepoSnapshot

DECLARED_WEIGHT = 8
DEPENDENCY_WEIGHT = 4  # per task waiting on a task of the other repo
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
    waits = _task_dependencies(snaps, names)
    edges: list[RepoEdge] = []
    for pair in sorted(declared | set(mentioned) | set(waits)):
        reasons: list[str] = []
        weight = 0
        if pair in declared:
            weight += DECLARED_WEIGHT
            reasons.append(f"declared: {pair[0]} depends_on {pair[1]} in ecosystem.toml")
        blockers = waits.get(pair, [])
        if blockers:
            weight += DEPENDENCY_WEIGHT * len(blockers)
            shown = sorted(set(blockers))
            more = f" +{len(shown) - 3} more" if len(shown) > 3 else ""
            plural = "task waits" if len(blockers) == 1 else "tasks wait"
            reasons.append(
                f"dependency: {len(blockers)} {plural} in {pair[0]} on {', '.join(shown[:3])}{more}"
            )
        count = mentioned.get(pair, 0)
        if count:
            weight += MENTION_WEIGHT * count
            plural = "reference" if count == 1 else "references"
            reasons.append(f"inferred: {count} task {plural} to {pair[1]} in {pair[0]}'s graph")
        edges.append(
            RepoEdge(
                source=pair[0],
                target=pair[1],
                kind="declared" if pair in declared else "dependency" if blockers else "inferred",
                weight=min(MAX_WEIGHT, weight),
                reasons=tuple(reasons),
            )
        )
    return tuple(edges)


def _task_dependencies(snaps: Sequence[RepoSnapshot], names: set[str]) -> dict[tuple[str, str], list[str]]:
    """(source, target) -> the ``target:task`` ids source's unfinished tasks wait on, one per task."""
    waits: dict[tuple[str, str], list[str]] = {}
    for snapshot in snaps:
        if snapshot.graph is None:
            continue
        for _task, blocker in snapshot.graph.peer_dependencies:
            target = blocker.partition(":")[0]
            if target != snapshot.name and target in names:
                waits.setdefault((snapshot.name, target), []).append(blocker)
    return waits
