"""Dependencies on tasks in peer repos: ``after = ["shop-api:design-api"]``, as wg's federation writes.

:mod:`speedrift.graph.query` judges such a blocker from a :data:`~speedrift.graph.query.PeerStatuses`
mapping its caller supplies; this module builds that mapping. :func:`referenced` finds the peer
ids a graph's unfinished tasks wait on (pure); :func:`statuses_in` looks them up in a peer's graph
(pure); :func:`resolve` reads just the referenced peers' graphs, given where each registered repo
lives (the caller — the hub's observer, the CLI — knows the ecosystem; this layer never reads it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from speedrift.graph.codec import Graph
from speedrift.graph.model import DEP_SATISFIED, Task, after_of, status_of
from speedrift.graph.query import PeerStatuses
from speedrift.graph.store import repo_graph_file


def split(dep_id: str) -> tuple[str, str] | None:
    """``(repo, task)`` of a ``REPO:TASK`` dependency id, None for a local id."""
    repo, sep, task = dep_id.partition(":")
    return (repo, task) if sep and repo and task else None


def referenced(graph: Graph, task: Task | None = None) -> dict[str, set[str]]:
    """The peer tasks this graph's tasks wait on (finished ones aside), or — given ``task`` — that
    one task's own, finished or not: repo name -> task ids."""
    tasks = graph.tasks
    wanted: dict[str, set[str]] = {}
    for one in tasks.values() if task is None else (task,):
        if task is None and status_of(one) in DEP_SATISFIED:
            continue
        for blocker in after_of(one):
            if ":" in blocker and blocker not in tasks and (parts := split(blocker)) is not None:
                wanted.setdefault(parts[0], set()).add(parts[1])
    return wanted


def statuses_in(graph: Graph | None, repo: str, task_ids: Iterable[str]) -> dict[str, str | None]:
    """``{"REPO:TASK": status}`` for ``task_ids`` in ``repo``'s ``graph`` (None: no such task, or
    the repo has no graph)."""
    tasks = graph.tasks if graph is not None else {}
    return {
        f"{repo}:{task_id}": (status_of(tasks[task_id]) if task_id in tasks else None) for task_id in task_ids
    }


def read_peer_graph(repo: Path) -> Graph | None:
    """A peer repo's graph, read lock-free (writers replace it by rename); None without one."""
    path = repo_graph_file(repo)
    if path is None:
        return None
    try:
        return Graph.from_bytes(path.read_bytes())
    except OSError:
        return None


def resolve(wanted: Mapping[str, Collection[str]], repos: Mapping[str, Path]) -> PeerStatuses:
    """Statuses of the ``wanted`` peer tasks, reading only the graphs of the repos named there.

    ``repos``: every registered repo by name. A repo not in it is left out of the answer, which
    readiness reports as "no repo R in the ecosystem"; a repo without a readable graph answers
    None for each task ("no task T in R")."""
    found: dict[str, str | None] = {}
    for name, task_ids in wanted.items():
        path = repos.get(name)
        if path is not None:
            found.update(statuses_in(read_peer_graph(path), name, task_ids))
    return found
