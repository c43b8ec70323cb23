"""Pure builders for what the page shows: task nodes, per-repo live summaries and repo cards.

Everything here takes plain data (a decoded graph, the statuses of the peer tasks it names, a
serialized cycle record's repo report) and returns small JSON-ready dicts, so the live state can
diff them with ``==`` and send only what changed. An ``after`` entry ``REPO:TASK`` is judged from
the peer statuses the caller passes (the watcher, which reads every repo's graph anyway); a node
names each one's state, so the page never has to guess whether it is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from speedrift.graph.codec import Graph
from speedrift.graph.model import after_of, is_system, priority_of, speedrift_data, status_of
from speedrift.graph.peers import split
from speedrift.graph.query import PeerStatuses, ready_ids
from speedrift.textclip import clip

TITLE_LIMIT = 120  # a node label; the whole task is one click away
REASON_LIMIT = 240  # why a done task is unverified (its hint is kept whole)
RUNNING = "in-progress"
# what a node's ``peers`` says of a REPO:TASK blocker that cannot be found (otherwise: its status)
PEER_NO_TASK = "no-such-task"  # the repo is registered but has no such task (or no graph)
PEER_NO_REPO = "unregistered-repo"  # no repo of that name in the ecosystem
PEER_BROKEN = frozenset({PEER_NO_TASK, PEER_NO_REPO})


@dataclass(frozen=True, slots=True)
class RepoInfo:
    """What the registry says about a repo (available before the first cycle)."""

    name: str
    path: str
    tags: tuple[str, ...] = ()
    role: str = "product"
    depends_on: tuple[str, ...] = ()
    lifecycle: str = "active"


def peer_deps(graph: Graph) -> dict[str, set[str]]:
    """Every peer task the graph's visible tasks name in ``after``, finished tasks' too (the page
    draws them all): repo name -> task ids. A local task whose id has a colon is not a peer."""
    tasks = graph.tasks
    wanted: dict[str, set[str]] = {}
    for task_id, task in tasks.items():
        if is_system(task_id):
            continue
        for blocker in after_of(task):
            if (parts := _peer_parts(blocker, tasks)) is not None:
                wanted.setdefault(parts[0], set()).add(parts[1])
    return wanted


def _peer_parts(blocker: str, tasks: Mapping[str, object]) -> tuple[str, str] | None:
    """``(repo, task)`` when ``blocker`` names a peer task, None for a local (or system) id."""
    if ":" not in blocker or blocker in tasks or is_system(blocker):
        return None
    return split(blocker)


def peer_state(dep_id: str, peers: PeerStatuses) -> str:
    """The task's status in its repo, :data:`PEER_NO_TASK` or :data:`PEER_NO_REPO`."""
    if dep_id not in peers:
        return PEER_NO_REPO
    status = peers[dep_id]
    return PEER_NO_TASK if status is None else status


def task_nodes(graph: Graph, now: datetime, peers: PeerStatuses | None = None) -> dict[str, dict[str, Any]]:
    """One small dict per user-visible task: id, title, status, after, ready, priority.

    With ``peers`` (see :data:`~speedrift.graph.query.PeerStatuses`), REPO:TASK blockers count for
    readiness by their status there, and a node with such blockers carries ``peers``:
    ``{"REPO:TASK": status | PEER_NO_TASK | PEER_NO_REPO}``. Without, they are missing (as in wg).
    """
    ready = set(ready_ids(graph, now, peers))
    nodes: dict[str, dict[str, Any]] = {}
    for task_id, task in graph.tasks.items():
        if is_system(task_id):
            continue
        title = task.get("title")
        after = [a for a in after_of(task) if not is_system(a)]
        node: dict[str, Any] = {
            "id": task_id,
            "title": (title if isinstance(title, str) else task_id)[:TITLE_LIMIT],
            "status": status_of(task),
            "after": after,
            "ready": task_id in ready,
            "priority": priority_of(task),
        }
        if peers is not None:
            named = {a: peer_state(a, peers) for a in after if _peer_parts(a, graph.tasks) is not None}
            if named:
                node["peers"] = named
        if task.get("paused") is True:
            node["paused"] = True
        if node["status"] == "done" and speedrift_data(task).get("verified") is False:
            # landed without its tests having run ("done (unverified)"): the reason, shortened
            reason = speedrift_data(task).get("unverified_reason")
            node["unverified"] = clip(reason, REASON_LIMIT) if isinstance(reason, str) and reason else True
        assigned = task.get("assigned")
        if isinstance(assigned, str) and assigned:
            node["assigned"] = assigned[:80]
        nodes[task_id] = node
    return nodes


def summarize(nodes: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """Live task counts of one repo, from its nodes (None: the repo has no graph). A REPO:TASK
    blocker counts as missing only when its repo or task does not exist."""
    if nodes is None:
        return {"graph": False, "total": 0, "counts": {}, "ready": 0, "running": 0, "missing_deps": 0}
    counts: dict[str, int] = {}
    ready = running = missing = 0
    for node in nodes.values():
        status = node["status"]
        counts[status] = counts.get(status, 0) + 1
        ready += node["ready"]
        running += status == RUNNING
        peers = node.get("peers") or {}  # a peer blocker is missing only if it does not exist
        missing += sum(
            1 for b in node["after"] if b not in nodes and peers.get(b, PEER_NO_TASK) in PEER_BROKEN
        )
    return {
        "graph": True,
        "total": len(nodes),
        "counts": dict(sorted(counts.items())),
        "ready": ready,
        "running": running,
        "missing_deps": missing,
    }


def node_changes(
    old: dict[str, dict[str, Any]] | None, new: dict[str, dict[str, Any]] | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """(nodes added or changed, ids removed) between two node maps."""
    old = old or {}
    new = new or {}
    upsert = [node for task_id, node in new.items() if old.get(task_id) != node]
    removed = [task_id for task_id in old if task_id not in new]
    return upsert, removed


def risk_level(gates: dict[str, Any] | None, lanes: dict[str, Any] | None = None) -> str:
    """none | low | medium | high | critical, from the latest gate findings and what the drift
    lanes found on the target branch (critical, error, warning)."""
    lanes = lanes or {}
    if not gates and not lanes:
        return "none"
    gates = gates or {}
    if gates.get("critical") or gates.get("secret_leaks") or lanes.get("critical"):
        return "critical"
    if gates.get("high") or gates.get("last_status") == "fail" or lanes.get("error"):
        return "high"
    if gates.get("medium") or lanes.get("warning"):
        return "medium"
    if gates.get("low") or gates.get("last_status") == "warn":
        return "low"
    return "none"


def _stall_words(report: dict[str, Any] | None, summary: dict[str, Any]) -> str | None:
    if report and report.get("stall"):
        return str(report["stall"])
    if report and report.get("activity") == "stalled":
        reasons = report.get("reasons") or []
        return str(reasons[0]["text"]) if reasons else "stalled"
    return None


def build_card(
    info: RepoInfo,
    report: dict[str, Any] | None,
    summary: dict[str, Any],
    control: dict[str, Any] | None = None,
    next_action: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A repo card: the cycle's judgment (score, tier, stall) plus the live task counts.

    Before the first cycle (``report`` None) the card shows the live counts only.
    """
    snapshot: dict[str, Any] = (report or {}).get("snapshot") or {}
    git = snapshot.get("git") or {}
    gates = snapshot.get("gates") or {}
    lanes = snapshot.get("lanes") or {}
    service = snapshot.get("service") or {}
    control = control or snapshot.get("control") or {}
    reasons = [str(r.get("text", "")) for r in (report or {}).get("reasons") or []][:3]
    score = report.get("score") if report else None
    activity = report.get("activity") if report else ("active" if summary["running"] else None)
    if activity in (None, "idle", "stalled") and summary["running"]:
        activity = "active"  # live evidence beats the last cycle's verdict
    card: dict[str, Any] = {
        "name": info.name,
        "path": info.path,
        "tags": list(snapshot.get("tags") or info.tags),
        "role": info.role,
        "score": score,
        "tier": report.get("tier") if report else None,
        "trend": report.get("trend") if report else None,
        "delta": report.get("delta") if report else None,
        # attention priority: the further from healthy, the sooner to look (0..100)
        "priority": (100 - int(score)) if isinstance(score, int | float) else None,
        "activity": activity,
        "stall": _stall_words(report, summary) if activity == "stalled" else None,
        "reasons": reasons,
        "dirty": int(git.get("dirty_files") or 0) + int(git.get("untracked_files") or 0),
        "branch": git.get("branch"),
        "ahead": git.get("ahead"),
        "behind": git.get("behind"),
        "risk": risk_level(gates, lanes),
        "findings": {
            k: int(gates.get(k) or 0) for k in ("critical", "high", "medium", "low", "secret_leaks")
        },
        "drift": {k: int(lanes.get(k) or 0) for k in ("critical", "error", "warning")},
        "mode": control.get("mode", "observe"),
        "lease_owner": control.get("lease_owner"),
        "lease_expires_at": control.get("lease_expires_at"),
        "service": bool(service.get("running")),
        "agents": int(service.get("active_agents") or 0),
        "errors": [str(e) for e in snapshot.get("errors") or []][:3],
        "tasks": summary,
        "next_action": next_action,
    }
    return card


# --- all repos' task graphs together (the page's "All repos" view) ---------------------------------
ALL_GRAPHS_DEFAULT = 400  # nodes the all-repos view shows unless asked for another cap
ALL_GRAPHS_MAX = 2_000  # the most it ever sends: a browser lays out no more in reasonable time
# which tasks a capped view keeps first: the live work, then what waits, then what is finished
_KEEP_RANK = {RUNNING: 0, "failed": 2, "open": 3, "blocked": 3, "incomplete": 3, "done": 6, "abandoned": 7}


def _keep_rank(node: Mapping[str, Any]) -> tuple[int, int, str]:
    rank = 1 if node.get("ready") else _KEEP_RANK.get(str(node.get("status")), 5)
    priority = node.get("priority")
    return rank, -(priority if isinstance(priority, int) else 0), str(node.get("id"))


def all_task_graphs(
    graphs: Mapping[str, Mapping[str, Any] | None], limit: int = ALL_GRAPHS_DEFAULT
) -> dict[str, Any]:
    """Every repo's task nodes in one answer, at most ``limit`` in all: ``{repos: [{repo, graph,
    total, nodes}], total, shown, limit}``, repos in the given order. Over the cap, each repo keeps
    its most active tasks first (running, ready, failed, waiting, then finished), taken in turns so
    every repo with tasks is represented; ``shown < total`` is the page's "showing N of M".
    ``graphs`` is repo name -> its :meth:`DashboardState.repo_graph` answer (None: unknown)."""
    limit = max(1, min(int(limit), ALL_GRAPHS_MAX))
    ranked: dict[str, list[Mapping[str, Any]]] = {}
    repos: list[dict[str, Any]] = []
    for name, graph in graphs.items():
        nodes = list((graph or {}).get("nodes") or ())
        ranked[name] = sorted(nodes, key=_keep_rank)
        repos.append({"repo": name, "graph": bool((graph or {}).get("graph")), "total": len(nodes)})
    total = sum(len(nodes) for nodes in ranked.values())
    taken: dict[str, int] = dict.fromkeys(ranked, 0)
    budget = min(limit, total)
    while budget > 0:  # round-robin: one more task from every repo that has one left
        for name, nodes in ranked.items():
            if budget and taken[name] < len(nodes):
                taken[name] += 1
                budget -= 1
    for entry in repos:
        entry["nodes"] = ranked[entry["repo"]][: taken[entry["repo"]]]
    return {"repos": repos, "total": total, "shown": sum(taken.values()), "limit": limit}
