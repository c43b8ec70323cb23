"""Deterministic, realistic workgraph ``graph.jsonl`` content for benchmarks and large-graph tests.

:func:`generate_graph` returns the bytes of a graph file with ``n`` task lines (plus a few
``"kind":"resource"`` lines), shaped like the graphs ``wg`` writes in real projects:

* keys in wg's serde order (``kind`` first, then ``id``, ``title``, ``description``, ``status``,
  ``priority``, ``assigned``, ``estimate``, ``after``, ``tags``, ``skills``, ``deliverables``,
  ``exec``, ``not_before``, ``created_at``, ``started_at``, ``completed_at``, ``log``,
  ``retry_count``, ``failure_reason``, ``model``, ``paused``, ``verify_failures``,
  ``dispatch_count``), compact separators, raw UTF-8, one object per line, trailing newline;
* status mix ~60% done, 20% open, 8% in-progress, 5% failed, 3% abandoned, 2% blocked,
  2% incomplete (drawn independently per task);
* 0-3 dependencies per task, always on *earlier* tasks (so the graph is acyclic), mostly within
  the previous 30 tasks, 10% anywhere earlier; ~15% of the lines that have dependencies use the
  legacy key ``blocked_by`` instead of ``after``;
* nanosecond RFC 3339 timestamps (``2026-01-25T16:20:57.127486323+00:00``) increasing with the
  line number; started/completed times and 1-4 log entries that fit the status;
* optional fields at realistic rates: description (some with non-ASCII text), estimate, tags,
  skills, deliverables, model, exec; priority mostly absent (wg's default) with some 50/100/5;
  occasional ``not_before`` in the past or in the (far) future; a few ``paused``; fields speedrift
  does not model (``retry_count``, ``verify_failures``, ``dispatch_count``).

The output depends only on ``(n, seed)``: no clock, no environment.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

__all__ = ["STATUS_WEIGHTS", "generate_graph"]

STATUS_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("done", 0.60),
    ("open", 0.20),
    ("in-progress", 0.08),
    ("failed", 0.05),
    ("abandoned", 0.03),
    ("blocked", 0.02),
    ("incomplete", 0.02),
)

_EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
_SPAN_SECONDS = 200 * 24 * 3600  # creation times spread over ~200 days
_FUTURE = datetime(2031, 3, 1, 12, 0, 0, tzinfo=UTC)  # "not before" gates that are still closed

# (id word, title phrase)
_VERBS = (
    ("implement", "Implement"),
    ("design", "Design"),
    ("test", "Write tests for"),
    ("fix", "Fix"),
    ("refactor", "Refactor"),
    ("document", "Document"),
    ("review", "Review"),
    ("migrate", "Migrate"),
    ("add", "Add"),
    ("benchmark", "Benchmark"),
    ("investigate", "Investigate"),
    ("wire", "Wire up"),
)
_NOUNS = (
    ("db", "DB layer"),
    ("schema", "schema"),
    ("api", "REST API"),
    ("auth", "auth middleware"),
    ("cache", "read-through cache"),
    ("parser", "config parser"),
    ("cli", "CLI flags"),
    ("ui", "dashboard view"),
    ("queue", "job queue"),
    ("scheduler", "scheduler"),
    ("webhooks", "webhook delivery"),
    ("billing", "billing export"),
    ("search", "search index"),
    ("metrics", "metrics pipeline"),
    ("logging", "structured logging"),
    ("deploy", "deploy script"),
)
_AREAS = (
    "orders",
    "users",
    "invoices",
    "the importer",
    "the sync daemon",
    "payments",
    "notifications",
    "the admin panel",
    "reports",
    "the mobile app",
)
_SENTENCES = (
    "Acceptance: all existing tests pass and the new path is covered.",
    "See the design notes in docs/ for the intended shape.",
    "Keep the public interface unchanged; callers must not need edits.",
    "The current implementation is O(n²) on large inputs — fix that.",
    "Coordinate with the owner of the upstream task before merging.",
    "Add a regression test for the crash reported in the last run.",
    "Use the existing retry helper instead of a hand-rolled loop.",
    "Naïve approach first, measure, then optimise the hot path.",
    "Output must stay byte-compatible with the previous format ✓",
    "Document the new flags in the README and in --help.",
)
_ASSIGNEES = ("claude", "claude", "claude", "codex", "codex", "agent-1", "agent-2", "agent-7", "erik")
_MODELS = ("claude:sonnet", "claude:opus", "codex:gpt-5", "haiku", "sonnet")
_TAGS = ("backend", "frontend", "infra", "bug", "perf", "docs", "security", "tech-debt", "urgent", "eval")
_SKILLS = ("rust", "python", "sql", "typescript", "devops", "testing")
_PATHS = (
    "src/db.rs",
    "src/api/mod.rs",
    "src/cli.rs",
    "src/graph.rs",
    "tests/integration.rs",
    "docs/design.md",
    "web/src/App.tsx",
    "migrations/0007_orders.sql",
    "README.md",
    "Cargo.toml",
)
_FAILURES = (
    "Agent exited with code 1",
    "verify command failed: cargo test",
    "Timed out after 30m",
    "API error 529: overloaded",
)
_EXECS = ("cargo test -p core", "make lint", "./scripts/deploy.sh staging")


def _stamp(moment: datetime, nanos: int) -> str:
    """wg's timestamp shape: seconds precision from chrono plus a 9-digit fraction."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}+00:00"


def _time(rng: random.Random, moment: datetime) -> str:
    return _stamp(moment, rng.randrange(1_000_000_000))


def _status(rng: random.Random) -> str:
    roll = rng.random()
    for status, weight in STATUS_WEIGHTS:
        if roll < weight:
            return status
        roll -= weight
    return STATUS_WEIGHTS[-1][0]


def _deps(rng: random.Random, index: int) -> list[int]:
    if index == 0:
        return []
    count = rng.choices((0, 1, 2, 3), weights=(25, 40, 25, 10))[0]
    picked: list[int] = []
    for _ in range(count):
        nearby = rng.random() < 0.9
        dep = index - rng.randint(1, min(30, index)) if nearby else rng.randrange(index)
        if dep not in picked:
            picked.append(dep)
    return picked


def _log(
    rng: random.Random, status: str, assignee: str | None, created: datetime, end: datetime
) -> list[dict[str, Any]]:
    messages: list[tuple[str | None, str]] = []
    if status == "open":
        if rng.random() < 0.3:
            messages.append((None, "Task created"))
        else:
            return []
    else:
        who = assignee or "agent"
        messages.append((who, f"Task claimed by @{who}"))
        for _ in range(rng.randint(0, 2)):
            messages.append((who, rng.choice(_SENTENCES)))
        closing = {
            "done": "Task marked as done",
            "failed": "Task failed: " + rng.choice(_FAILURES),
            "abandoned": "Task abandoned",
            "incomplete": "Agent stopped before finishing",
            "blocked": "Waiting on upstream fix",
        }.get(status)
        if closing is not None:
            messages.append((who, closing))
        messages = messages[:4]
    span = max((end - created).total_seconds(), 1.0)
    entries: list[dict[str, Any]] = []
    for position, (actor, message) in enumerate(messages):
        offset = span * (position + rng.random()) / len(messages)
        entry: dict[str, Any] = {"timestamp": _time(rng, created + timedelta(seconds=offset))}
        if actor is not None:
            entry["actor"] = actor
        if rng.random() < 0.1:
            entry["user"] = "erik"
        entry["message"] = message
        entries.append(entry)
    return entries


def _task(rng: random.Random, index: int, n: int, ids: list[str]) -> dict[str, Any]:
    verb_id, verb_title = rng.choice(_VERBS)
    noun_id, noun_title = rng.choice(_NOUNS)
    task_id = f"{verb_id}-{noun_id}-{index}"
    ids.append(task_id)
    status = _status(rng)
    created = _EPOCH + timedelta(seconds=_SPAN_SECONDS * index / max(n, 1) + rng.uniform(0, 600))

    task: dict[str, Any] = {"kind": "task", "id": task_id}
    task["title"] = f"{verb_title} {noun_title} for {rng.choice(_AREAS)}"
    if rng.random() < 0.4:
        task["description"] = " ".join(rng.sample(_SENTENCES, rng.randint(1, 4)))
    task["status"] = status
    roll = rng.random()
    if roll < 0.06:
        task["priority"] = 50
    elif roll < 0.08:
        task["priority"] = 100
    elif roll < 0.12:
        task["priority"] = 5
    assignee: str | None = None
    if status in ("in-progress", "done", "failed") or (status != "open" and rng.random() < 0.5):
        assignee = rng.choice(_ASSIGNEES)
        task["assigned"] = assignee
    if rng.random() < 0.5:
        estimate: dict[str, float] = {"hours": rng.choice((0.5, 1.0, 2.0, 3.0, 4.0, 8.0))}
        if rng.random() < 0.1:
            estimate["cost"] = round(rng.uniform(0.1, 5.0), 2)
        task["estimate"] = estimate
    deps = [ids[d] for d in _deps(rng, index)]
    if deps:
        task["blocked_by" if rng.random() < 0.15 else "after"] = deps
    if rng.random() < 0.4:
        task["tags"] = rng.sample(_TAGS, rng.randint(1, 3))
    if rng.random() < 0.2:
        task["skills"] = rng.sample(_SKILLS, rng.randint(1, 2))
    if rng.random() < 0.3:
        task["deliverables"] = rng.sample(_PATHS, rng.randint(1, 3))
    if rng.random() < 0.01:
        task["exec"] = rng.choice(_EXECS)
    if status == "open" and rng.random() < 0.05:
        past = created + timedelta(hours=rng.uniform(1, 48))
        task["not_before"] = _time(rng, past if rng.random() < 0.5 else _FUTURE)
    task["created_at"] = _time(rng, created)
    end = created + timedelta(hours=rng.uniform(0.1, 48))
    if status != "open":
        started = created + timedelta(minutes=rng.uniform(1, 600))
        end = started + timedelta(minutes=rng.uniform(5, 480))
        if status != "blocked" or rng.random() < 0.5:
            task["started_at"] = _time(rng, started)
        if status in ("done", "failed", "abandoned"):
            task["completed_at"] = _time(rng, end)
    log = _log(rng, status, assignee, created, end)
    if log:
        task["log"] = log
    if status == "failed" or (status in ("done", "open") and rng.random() < 0.03):
        task["retry_count"] = rng.randint(1, 3)
    if status == "failed":
        task["failure_reason"] = rng.choice(_FAILURES)
    if rng.random() < 0.25:
        task["model"] = rng.choice(_MODELS)
    if status == "open" and rng.random() < 0.02:
        task["paused"] = True
    if rng.random() < 0.02:
        task["verify_failures"] = rng.randint(1, 4)
    if status != "open" and rng.random() < 0.1:
        task["dispatch_count"] = rng.randint(1, 5)
    return task


def _resource(number: int) -> dict[str, Any]:
    kinds = (("gpu", "GPU pool", "compute", 4.0, "gpus"), ("api", "API budget", "money", 250.0, "usd"))
    short, name, kind, available, unit = kinds[number % len(kinds)]
    return {
        "kind": "resource",
        "id": f"{short}-{number}",
        "name": f"{name} {number}",
        "type": kind,
        "available": available,
        "unit": unit,
    }


def generate_graph(n: int, seed: int) -> bytes:
    """``graph.jsonl`` bytes with ``n`` tasks (and ``max(2, n // 20000)`` resources), from ``seed``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    resources = max(2, n // 20_000)
    # resources sit at evenly spread lines, as they do when added now and then over a project
    resource_at = {round((k + 0.5) * n / resources) for k in range(resources)}
    ids: list[str] = []
    lines: list[bytes] = []
    dumps = orjson.dumps
    for index in range(n):
        if index in resource_at:
            lines.append(dumps(_resource(len(lines) - index)))
        lines.append(dumps(_task(rng, index, n, ids)))
    return b"\n".join(lines) + b"\n" if lines else b""
