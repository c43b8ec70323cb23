"""The dashboard's live state and its deltas: one numbered stream of changes for every client.

Inputs arrive from other threads — a cycle record from the hub (``publish_cycle``), a re-read
task graph from the watcher (``update_graph``), a mode change from the API — and each one that
changes something becomes one delta with the next ``seq``, carrying only what changed: the
tasks whose node changed (a task's status, a dependent that became ready), the cards whose
content changed, and after a cycle the overview, metrics, edges and queues when they differ.
The delta is JSON-encoded once and handed to every subscriber as the same string.

A client holds a snapshot at some ``seq`` and applies deltas ``seq+1, seq+2, …``; a gap means it
missed one and asks for a fresh snapshot. Task graphs are not in the snapshot (50k tasks would
make every connect heavy): ``repo_graph`` serves one repo's nodes tagged with the ``seq`` they
are current at, and later graph deltas for that repo apply on top.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from speedrift.pausestore import RuntimePause
from speedrift.times import now_utc, parse_time
from speedrift.web import queues as queue_mod
from speedrift.web.views import RepoInfo, build_card, node_changes, summarize

Subscriber = Callable[[int, str], None]
HISTORY_POINTS = 48  # sparkline length: about a day of hourly-ish cycles


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")


_HEAVY = ("prompts", "waited_seconds")


def light_queues(full: dict[str, Any]) -> dict[str, Any]:
    """Queues for the websocket: no prompts (large; the page fetches them from /api/queues) and no
    ``waited_seconds`` (it grows every cycle; ``since`` says the same and changes only with the item)."""
    return {
        key: {
            **queue,
            "items": [{k: v for k, v in item.items() if k not in _HEAVY} for item in queue["items"]],
        }
        for key, queue in full.items()
    }


def _prompts_of(queues: dict[str, Any]) -> dict[str, Any]:
    return {item["id"]: item.get("prompts") for queue in queues.values() for item in queue["items"]}


def pause_items(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The runtime pauses a cycle saw, as the overview lists them: who is paused, until when, why,
    and what a person does (``needs_human`` ones are escalations: only a person lifts them)."""
    at = parse_time(record.get("generated_at")) or now_utc()
    items: list[dict[str, Any]] = []
    for raw in record.get("pauses") or []:
        pause = RuntimePause.from_dict(raw)
        if pause is None:
            continue
        items.append(
            {
                "runtime": pause.runtime,
                "provider": pause.provider,
                "cause": pause.cause,
                "until": raw.get("until"),
                "needs_human": pause.needs_human,
                "fix": pause.fix,
                "text": pause.sentence(at),
                "resume": f"speedrift resume-runtime {pause.runtime}",
            }
        )
    return items


def _empty_queues() -> dict[str, Any]:
    return queue_mod.display_queues({})


class DashboardState:
    """Thread-safe; subscribers are called under the state lock, in ``seq`` order, and must not block."""

    def __init__(
        self,
        ecosystem: str = "",
        *,
        source: str = "hub",
        history_points: int = HISTORY_POINTS,
    ) -> None:
        self.ecosystem = ecosystem
        self.source = source
        self._history_points = history_points
        self._lock = threading.RLock()
        self._seq = 0
        self._infos: dict[str, RepoInfo] = {}
        self._plan_only: bool | None = None
        self._cycle: dict[str, Any] | None = None
        self._reports: dict[str, dict[str, Any]] = {}
        self._next_actions: dict[str, dict[str, Any]] = {}
        self._controls: dict[str, dict[str, Any]] = {}
        self._graphs: dict[str, dict[str, dict[str, Any]] | None] = {}
        self._graph_problems: dict[str, tuple[str, ...]] = {}  # per repo: what reading its graph met
        self._summaries: dict[str, dict[str, Any]] = {}
        self._cards: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._edges: list[dict[str, Any]] = []
        self._metrics: dict[str, dict[str, Any]] = {}
        self._history: dict[str, deque[float]] = {}
        self._queues: dict[str, Any] = _empty_queues()
        self._queues_light: dict[str, Any] = light_queues(self._queues)
        self._overview: dict[str, Any] = {}
        self._subscribers: dict[int, Subscriber] = {}
        self._next_subscriber = 0
        self._snapshot_cache: tuple[int, str] | None = None
        self._overview = self._build_overview()

    # ------------------------------------------------------------------ subscriptions

    @property
    def seq(self) -> int:
        with self._lock:
            return self._seq

    def subscribe(self, callback: Subscriber) -> int:
        with self._lock:
            self._next_subscriber += 1
            self._subscribers[self._next_subscriber] = callback
            return self._next_subscriber

    def unsubscribe(self, handle: int) -> None:
        with self._lock:
            self._subscribers.pop(handle, None)

    def _emit(self, delta: dict[str, Any], cause: str) -> int:
        """Number, encode once, hand the same string to every subscriber. Caller holds the lock."""
        self._seq += 1
        message = {"type": "delta", "seq": self._seq, "cause": cause, **delta}
        text = encode(message)
        self._snapshot_cache = None
        for callback in list(self._subscribers.values()):
            callback(self._seq, text)
        return self._seq

    # ------------------------------------------------------------------ inputs

    def set_repos(self, repos: Sequence[RepoInfo], plan_only: bool | None = None) -> int | None:
        """The registry's repos (cards exist before the first cycle). Repos no longer listed go."""
        with self._lock:
            names = [r.name for r in repos]
            removed = [name for name in self._infos if name not in set(names)]
            self._infos = {r.name: r for r in repos}
            for name in removed:
                self._reports.pop(name, None)
                self._graphs.pop(name, None)
                self._graph_problems.pop(name, None)
                self._summaries.pop(name, None)
                self._cards.pop(name, None)
                self._controls.pop(name, None)
            if plan_only is not None:
                self._plan_only = plan_only
            if self._cycle is None:
                self._edges = self._declared_edges()
            delta: dict[str, Any] = {}
            changed = self._refresh_cards(names)
            if changed:
                delta["cards"] = changed
            if removed:
                delta["removed_cards"] = removed
            self._apply_order(delta)
            self._apply_overview(delta)
            if self._cycle is None:
                delta["edges"] = self._edges
            return self._emit(delta, "registry") if delta else None

    def publish_cycle(self, record: dict[str, Any]) -> int | None:
        """A cycle record (the ledger's dict): overview, metrics, cards, edges and queues follow it."""
        with self._lock:
            if self._cycle is not None and record.get("cycle_id") == self._cycle.get("cycle_id"):
                return None  # the same cycle again (hub and ledger follower both saw it)
            self._take_cycle(record)
            delta: dict[str, Any] = {}
            self._apply_overview(delta)
            delta["metrics"] = self._metrics_payload()
            changed = self._refresh_cards(
                list(self._infos) + [n for n in self._reports if n not in self._infos]
            )
            if changed:
                delta["cards"] = changed
            self._apply_order(delta)
            edges = list(record.get("edges") or [])
            if edges != self._edges:
                self._edges = edges
                delta["edges"] = edges
            queues = queue_mod.display_queues(record)  # the cycle decided them; shown as recorded
            light = light_queues(queues)
            if light != self._queues_light:
                delta["queues"] = light
            elif _prompts_of(queues) != _prompts_of(self._queues):
                delta["queues_prompts_changed"] = True  # same items, new prompt text: refetch them
            self._queues, self._queues_light = queues, light
            return self._emit(delta, "cycle")

    def load_history(self, records: Iterable[dict[str, Any]]) -> None:
        """Seed sparklines from older ledger records, oldest first (no deltas). Queue ages need no
        seeding: each record's entries carry their ``since``."""
        with self._lock:
            for record in records:
                if not record.get("cycle_id") or record.get("kind"):
                    continue
                self._push_history(record)

    def update_graph(
        self, repo: str, nodes: dict[str, dict[str, Any]] | None, problems: tuple[str, ...] = ()
    ) -> int | None:
        """A repo's task nodes after its graph file changed: a delta with the changed tasks only.
        ``problems``: what reading it met (skipped lines, or why it could not be read at all)."""
        with self._lock:
            self._graph_problems[repo] = problems
            old = self._graphs.get(repo)
            upsert, removed = node_changes(old, nodes)
            first = repo not in self._graphs
            self._graphs[repo] = nodes
            self._summaries[repo] = summarize(nodes)
            delta: dict[str, Any] = {}
            if (upsert or removed) and not first:
                delta["graph"] = {"repo": repo, "upsert": upsert, "remove": removed}
            changed = self._refresh_cards([repo])
            if changed:
                delta["cards"] = changed
            self._apply_overview(delta)
            return self._emit(delta, "graph") if delta else None

    def update_control(self, repo: str, control: dict[str, Any]) -> int | None:
        """A mode/lease change made from the dashboard or CLI: the card shows it at once."""
        with self._lock:
            self._controls[repo] = dict(control)
            changed = self._refresh_cards([repo])
            return self._emit({"cards": changed}, "control") if changed else None

    # ------------------------------------------------------------------ outputs

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "type": "snapshot",
                "seq": self._seq,
                "overview": self._overview,
                "metrics": self._metrics_payload(),
                "cards": [self._cards[name] for name in self._order if name in self._cards],
                "edges": self._edges,
                "queues": self._queues_light,
            }

    def snapshot_text(self) -> tuple[int, str]:
        """The snapshot, encoded once per ``seq`` however many clients connect."""
        with self._lock:
            if self._snapshot_cache is None or self._snapshot_cache[0] != self._seq:
                self._snapshot_cache = (self._seq, encode(self.snapshot()))
            return self._snapshot_cache

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"seq": self._seq, "overview": self._overview, "metrics": self._metrics_payload()}

    def cards(self) -> dict[str, Any]:
        with self._lock:
            return {"seq": self._seq, "cards": [self._cards[n] for n in self._order if n in self._cards]}

    def repo_detail(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            card = self._cards.get(name)
            if card is None:
                return None
            report = self._reports.get(name) or {}
            return {
                "seq": self._seq,
                "card": card,
                "reasons": report.get("reasons") or [],
                "snapshot": report.get("snapshot"),
            }

    def repo_graph(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            if name not in self._infos and name not in self._graphs:
                return None
            nodes = self._graphs.get(name)
            return {
                "seq": self._seq,
                "repo": name,
                "graph": nodes is not None,
                "nodes": list(nodes.values()) if nodes else [],
                "problems": list(self._graph_problems.get(name, ())),
            }

    def ecosystem_graph(self) -> dict[str, Any]:
        with self._lock:
            nodes = [
                {
                    "id": name,
                    "tier": card.get("tier"),
                    "activity": card.get("activity"),
                    "score": card.get("score"),
                    "ready": card["tasks"]["ready"],
                    "running": card["tasks"]["running"],
                }
                for name in self._order
                if (card := self._cards.get(name)) is not None
            ]
            return {"seq": self._seq, "nodes": nodes, "edges": self._edges}

    def queues(self, *, with_prompts: bool = True) -> dict[str, Any]:
        with self._lock:
            return {"seq": self._seq, "queues": self._queues if with_prompts else self._queues_light}

    def repo_names(self) -> list[str]:
        with self._lock:
            return list(self._infos)

    def repo_info(self, name: str) -> RepoInfo | None:
        with self._lock:
            return self._infos.get(name)

    def latest_cycle(self) -> dict[str, Any] | None:
        with self._lock:
            return self._cycle

    def find_action(self, action_id: str) -> dict[str, Any] | None:
        """The action with this id in the current cycle's plan (planned or held back)."""
        with self._lock:
            cycle = self._cycle or {}
            for action in cycle.get("planned") or []:
                if action.get("id") == action_id:
                    return dict(action)
            for held in cycle.get("skipped") or []:
                if (held.get("action") or {}).get("id") == action_id:
                    return dict(held["action"])
            return None

    # ------------------------------------------------------------------ internals (lock held)

    def _take_cycle(self, record: dict[str, Any]) -> None:
        self._cycle = record
        self._reports = {str(r["name"]): r for r in record.get("repos") or [] if r.get("name")}
        for name, report in self._reports.items():
            if name not in self._infos:
                snap = report.get("snapshot") or {}
                self._infos[name] = RepoInfo(
                    name=name, path=str(snap.get("path", "")), tags=tuple(snap.get("tags") or ())
                )
            control = (report.get("snapshot") or {}).get("control")
            if control:
                # the cycle read control.json after any change made here; it is the newer truth
                self._controls[name] = control
        self._next_actions = {}
        for action in sorted(record.get("planned") or [], key=lambda a: -int(a.get("priority") or 0)):
            self._next_actions.setdefault(
                str(action.get("repo")),
                {"id": action.get("id"), "kind": action.get("kind"), "reason": action.get("reason")},
            )
        self._plan_only = bool(record.get("plan_only", True))
        self._push_history(record)
        self._metrics = {k: dict(v) for k, v in (record.get("metrics") or {}).items()}

    def _push_history(self, record: dict[str, Any]) -> None:
        metrics = record.get("metrics") or {}
        for key, metric in metrics.items():
            points = self._history.setdefault(key, deque(maxlen=self._history_points))
            value = metric.get("value")
            if isinstance(value, int | float):
                points.append(float(value))

    def _metrics_payload(self) -> dict[str, Any]:
        return {
            key: {**metric, "history": list(self._history.get(key, ()))}
            for key, metric in self._metrics.items()
        }

    def _refresh_cards(self, names: Iterable[str]) -> list[dict[str, Any]]:
        changed: list[dict[str, Any]] = []
        for name in names:
            info = self._infos.get(name)
            if info is None:
                continue
            summary = self._summaries.get(name) or summarize(None)
            card = build_card(
                info, self._reports.get(name), summary, self._controls.get(name), self._next_actions.get(name)
            )
            if self._cards.get(name) != card:
                self._cards[name] = card
                changed.append(card)
        return changed

    def _ranked_names(self) -> list[str]:
        ranked = [name for name in self._reports if name in self._infos]  # the cycle's order: worst first
        return ranked + sorted(name for name in self._infos if name not in self._reports)

    def _apply_order(self, delta: dict[str, Any]) -> None:
        order = self._ranked_names()
        if order != self._order:
            self._order = order
            delta["order"] = order

    def _build_overview(self) -> dict[str, Any]:
        cycle = self._cycle or {}
        activity: dict[str, int] = {}
        tiers: dict[str, int] = {}
        tasks = {
            "total": 0,
            "ready": 0,
            "running": 0,
            "open": 0,
            "done": 0,
            "failed": 0,
            "blocked_missing": 0,
        }
        for name in self._infos:
            card = self._cards.get(name)
            if card is None:
                continue
            if card.get("activity"):
                activity[card["activity"]] = activity.get(card["activity"], 0) + 1
            if card.get("tier"):
                tiers[card["tier"]] = tiers.get(card["tier"], 0) + 1
            summary = card["tasks"]
            tasks["total"] += summary["total"]
            tasks["ready"] += summary["ready"]
            tasks["running"] += summary["running"]
            tasks["blocked_missing"] += summary["missing_deps"]
            for status in ("open", "done", "failed"):
                tasks[status] += summary["counts"].get(status, 0)
        return {
            "ecosystem": self.ecosystem,
            "source": self.source,
            "cycle_id": cycle.get("cycle_id"),
            "generated_at": cycle.get("generated_at"),
            "plan_only": self._plan_only,
            "narrative": cycle.get("narrative") or "",
            "hints": list(cycle.get("hints") or []),
            "inputs": cycle.get("inputs") or {},
            "repos": len(self._infos),
            "activity": dict(sorted(activity.items())),
            "tiers": dict(sorted(tiers.items())),
            "tasks": tasks,
            "pauses": pause_items(cycle),
        }

    def _apply_overview(self, delta: dict[str, Any]) -> None:
        overview = self._build_overview()
        if overview != self._overview:
            self._overview = overview
            delta["overview"] = overview

    def _declared_edges(self) -> list[dict[str, Any]]:
        return [
            {"source": info.name, "target": dep, "kind": "declared", "weight": 1, "reasons": ["depends_on"]}
            for info in self._infos.values()
            for dep in info.depends_on
            if dep in self._infos
        ]
