"""Cycle analysis: strongly connected components and the back-edges that close each loop.

Workgraph treats a loop in the ``after`` edges as deliberate iteration: the structural back-edge
(the edge returning to the loop's header) does not block readiness, so the header can run on its
forward dependencies alone. Pure functions over ``{task_id: [blocker ids]}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cycle:
    members: tuple[str, ...]  # in loop order, starting at the header
    header: str
    configured: bool  # some member declares `cycle_config`: a deliberate loop


@dataclass
class CycleAnalysis:
    cycles: list[Cycle] = field(default_factory=list)
    back_edges: set[tuple[str, str]] = field(default_factory=set)  # (blocker, dependent)


def strongly_connected(blockers: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's SCCs (iterative) with more than one member, or a self-loop."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in blockers:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, position = work[-1]
            edges = blockers.get(node, ())
            if position < len(edges):
                work[-1] = (node, position + 1)
                nxt = edges[position]
                if nxt not in blockers:
                    continue
                if nxt not in index_of:
                    index_of[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index_of[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges:
                    found.append(component)
    return found


def analyze(
    blockers: Mapping[str, Sequence[str]], configured: set[str] | frozenset[str] = frozenset()
) -> CycleAnalysis:
    """Find loops and their back-edges.

    ``blockers`` maps a task to the tasks it runs after. The header of a loop is, in order of
    preference: a member with ``cycle_config``, a member with a blocker outside the loop, the
    alphabetically first member. A depth-first walk from the header in execution order marks
    every edge that returns to a task on the walk as a back-edge.
    """
    analysis = CycleAnalysis()
    for component in strongly_connected(blockers):
        members = set(component)
        ordered = sorted(component)
        with_config = [m for m in ordered if m in configured]
        with_entry = [m for m in ordered if any(b not in members for b in blockers.get(m, ()))]
        header = (with_config or with_entry or ordered)[0]
        # dependents within the loop, for walking in execution order
        dependents: dict[str, list[str]] = {m: [] for m in ordered}
        for m in ordered:
            for b in blockers.get(m, ()):
                if b in members:
                    dependents[b].append(m)
        walk_order: list[str] = []
        visited: set[str] = set()
        on_path: set[str] = set()
        work: list[tuple[str, int]] = [(header, 0)]
        visited.add(header)
        on_path.add(header)
        walk_order.append(header)
        while work:
            node, position = work[-1]
            nexts = dependents[node]
            if position < len(nexts):
                work[-1] = (node, position + 1)
                nxt = nexts[position]
                if nxt in on_path:
                    analysis.back_edges.add((node, nxt))
                elif nxt not in visited:
                    visited.add(nxt)
                    on_path.add(nxt)
                    walk_order.append(nxt)
                    work.append((nxt, 0))
                continue
            work.pop()
            on_path.discard(node)
        analysis.cycles.append(Cycle(members=tuple(walk_order), header=header, configured=bool(with_config)))
    analysis.cycles.sort(key=lambda c: c.header)
    return analysis


def path_between(blockers: Mapping[str, Sequence[str]], start: str, goal: str) -> list[str] | None:
    """A chain start -> ... -> goal following ``after`` edges (start runs after ... after goal)."""
    previous: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt_frontier: list[str] = []
        for node in frontier:
            for b in blockers.get(node, ()):
                if b in seen:
                    continue
                previous[b] = node
                if b == goal:
                    chain = [goal]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    return list(reversed(chain))
                seen.add(b)
                nxt_frontier.append(b)
        frontier = nxt_frontier
    return None
