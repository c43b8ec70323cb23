"""The demo's feeder: new work keeps arriving while `speedrift demo` runs.

A thread that, every 20–40 s times ``SPEEDRIFT_DEMO_PACE``, adds one task to the next repo of
:data:`~speedrift.demo.ecosystem.FED` whose open work is under :data:`MAX_OPEN`, through that repo's
GraphStore with actor ``demo-feeder``. The scenarios rotate (:data:`ROTATION`), so every path of
the loop — landing, a gate failure and its recovery, a corrective task, a question for a person —
keeps happening. Ids continue from the tasks already fed, so a rerun adds to what exists.

Invariant: the feeder only adds tasks; it never claims, edits or finishes one.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from speedrift.demo.ecosystem import FED, scenario_text
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import TERMINAL, status_of
from speedrift.graph.store import GraphStore
from speedrift.times import now_utc

ACTOR = "demo-feeder"
TAG = "demo-feed"
MAX_OPEN = 3  # non-terminal tasks in a repo above which it gets nothing new
ROTATION = ("land", "failing_test", "land", "question", "stubborn", "land", "leak")
_WORK = (
    ("Normalise customer emails", "Lower-case and deduplicate customer emails."),
    ("Tag releases", "Collect the release tags, each once."),
    ("Merge shipping zones", "Combine the shipping zones, each once."),
    ("List active coupons", "The active coupon codes, without repeats."),
    ("Summarise audit events", "The distinct audit event kinds."),
    ("Index product colours", "Every colour a product comes in, once."),
    ("Collect error codes", "The error codes the API returns, each once."),
)


@dataclass(frozen=True)
class Fed:
    repo: str
    task: str
    scenario: str


def next_task(repo: str, graph: Graph, seq: int) -> ops.NewTask | None:
    """The ``seq``-th fed task for ``repo``, or None when its open work is at the bound."""
    open_work = sum(1 for t in graph.tasks.values() if status_of(t) not in TERMINAL)
    if open_work >= MAX_OPEN:
        return None
    scenario = ROTATION[seq % len(ROTATION)]
    title, what = _WORK[seq % len(_WORK)]
    task_id = f"{repo}-{seq + 1}"
    while task_id in graph.tasks:
        seq += len(ROTATION) * len(_WORK)
        task_id = f"{repo}-{seq + 1}"
    return ops.NewTask(
        f"{title} ({task_id})", task_id=task_id, description=scenario_text(scenario, what), tags=[TAG]
    )


def feed_once(root: Path, repo: str, seq: int, now: datetime) -> Fed | None:
    """Add the next task to ``repo`` of the demo under ``root``; what was added, or None."""
    store = GraphStore(root / repo / ".workgraph")
    added: list[Fed] = []

    def add(graph: Graph, at: datetime) -> ops.Mutation:
        spec = next_task(repo, graph, seq)
        if spec is None:
            return ops.Mutation()
        mutation = ops.add_task(graph, spec, now=at, actor=ACTOR)
        added.append(Fed(repo, str(spec.task_id), ROTATION[seq % len(ROTATION)]))
        return mutation

    store.mutate(add, actor=ACTOR)
    return added[0] if added else None


def fed_so_far(root: Path, repo: str) -> int:
    """How many tasks the feeder has added to ``repo`` (a rerun continues from there)."""
    path = root / repo / ".workgraph"
    if not path.is_dir():
        return 0
    tasks = GraphStore(path).load().tasks.values()
    return sum(1 for t in tasks if TAG in (t.get("tags") or []))


def interval_s(pace: float, tick: int) -> float:
    """20–40 s times the pace, varying deterministically from tick to tick."""
    digest = hashlib.sha256(f"feed:{tick}".encode()).digest()
    return (20.0 + 20.0 * digest[0] / 255) * pace


class Feeder:
    """The feeding thread; :meth:`stop` ends it within a second."""

    def __init__(self, root: Path, pace: float, clock: Callable[[], datetime] = now_utc) -> None:
        self.root = root
        self.pace = pace
        self.now = clock
        self.fed: list[Fed] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        counts = {repo: fed_so_far(self.root, repo) for repo in FED}
        tick = 0
        while not self._stop.wait(interval_s(self.pace, tick)):
            repo = FED[tick % len(FED)]
            tick += 1
            try:
                fed = feed_once(self.root, repo, counts[repo], self.now())
            except (OSError, ValueError) as error:  # a busy or broken graph: try the next repo
                print(f"demo feeder: {repo}: {error}", flush=True)
                continue
            if fed is not None:
                counts[repo] += 1
                self.fed.append(fed)
