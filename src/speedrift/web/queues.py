"""The five attention queues, derived from one cycle record (pure).

aging gaps · dependency breaks · security/quality findings · upstream candidates · waiting on a
human. Each item says what, why, how urgent (0..100), how long it has waited, and carries a
ready-to-paste Claude prompt and Codex prompt. Items come from the repos' snapshots (conditions)
and from the cycle's planned and held-back actions (which bring their own prompts and an id the
operator can approve). Every queue is capped: the page shows the head, ``total`` says how many.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

QUEUES: tuple[tuple[str, str], ...] = (
    ("aging", "Aging gaps"),
    ("dependency", "Dependency breaks"),
    ("risk", "Security & quality findings"),
    ("upstream", "Upstream candidates"),
    ("human", "Waiting on a human"),
)
QUEUE_CAP = 50
DAY = 86_400.0
STALE_IN_PROGRESS_S = 3 * DAY
# rules that hold an action back until a person decides: approve it, or change mode/lease/policy
HUMAN_RULES = frozenset(
    {"plan_only", "mode", "lease", "hard_stop", "refused", "dirty_checkout", "corrective_cap"}
)
KIND_QUEUE = {
    "verify_in_progress": "aging",
    "repair_dependencies": "dependency",
    "emit_corrective_task": "dependency",
    "run_gate_scan": "risk",
    "sync_upstream": "upstream",
    "prepare_upstream_packet": "upstream",
    "restart_service": "human",
    "dispatch_ready": "human",
}

PromptParts = tuple[
    str, list[str], list[str], list[str], str | None
]  # goal, context, acceptance, constraints, gate
PromptPair = Callable[[str, Sequence[str], Sequence[str], Sequence[str], str | None], dict[str, str]]


def default_prompt_pair(
    goal: str,
    context: Sequence[str],
    acceptance: Sequence[str],
    constraints: Sequence[str],
    gate_output: str | None,
) -> dict[str, str]:
    """The control plane's prompt builder (one phrasing for Claude, one for Codex)."""
    from speedrift.control.plan.prompts import prompt_pair

    return prompt_pair(goal, context, acceptance, constraints, gate_output)


@dataclass(slots=True)
class _Item:
    id: str
    queue: str
    repo: str
    what: str
    why: str
    priority: int
    task: str | None = None
    waited_seconds: float | None = None
    since: str | None = None  # when the condition began, when the data says (a task's start)
    action_id: str | None = None
    approvable: bool = False
    prompt_parts: PromptParts | None = None
    prompts: dict[str, str] = field(default_factory=dict)


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _start(observed_at: object, age: object) -> str | None:
    """When something ``age`` seconds old at ``observed_at`` began (ISO, whole seconds)."""
    moment = _parse(observed_at)
    if moment is None or not isinstance(age, int | float):
        return None
    begun = (moment - timedelta(seconds=float(age))).replace(microsecond=0)
    return begun.isoformat().replace("+00:00", "Z")


def _days(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.1f} d"
    return f"{seconds / 3600:.1f} h"


_CONSTRAINTS = [
    "Work only in this repository; record progress with `speedrift log`, follow-ups with `speedrift add`.",
    "Do not force-push, rewrite history, delete branches you did not create, or bypass a gate.",
]


def _parts(goal: str, context: str, acceptance: str, gate_output: str | None = None) -> PromptParts:
    return (goal, [context], [acceptance], list(_CONSTRAINTS), gate_output)


def _repo_items(report: dict[str, Any]) -> Iterable[_Item]:
    name = str(report.get("name"))
    snap: dict[str, Any] = report.get("snapshot") or {}
    path = snap.get("path") or name
    where = f"Repository {name} at {path}."
    if not snap.get("exists", True) or snap.get("errors"):
        errors = "; ".join(str(e) for e in snap.get("errors") or []) or "the path does not exist"
        yield _Item(
            f"error:{name}",
            "human",
            name,
            f"{name} cannot be observed",
            errors,
            85,
            prompt_parts=_parts(
                f"Make {name} observable again by the speedrift hub.",
                f"{where} The hub reported: {errors}",
                "`speedrift hub once` observes the repo without errors.",
            ),
        )
    graph = snap.get("graph") or {}
    dead = set(graph.get("dead_claims") or [])
    for brief in graph.get("in_progress") or []:
        age = brief.get("age_seconds")
        task_id = str(brief.get("id"))
        if task_id in dead:
            why = "claimed by a process that is gone: nobody is working on it"
            priority = 75
        elif isinstance(age, int | float) and age >= STALE_IN_PROGRESS_S:
            why = f"in progress for {_days(age)} with no finish"
            priority = min(90, 45 + int(age // DAY) * 5)
        else:
            continue
        yield _Item(
            f"aging:{name}:{task_id}",
            "aging",
            name,
            f"{task_id}: {brief.get('title', '')}",
            why,
            priority,
            task=task_id,
            waited_seconds=float(age) if isinstance(age, int | float) else None,
            since=_start(snap.get("observed_at"), age),
            prompt_parts=_parts(
                f"Finish or release task {task_id} ({brief.get('title', '')}) in {name}.",
                f"{where} The task is {why}. Inspect `speedrift show {task_id}` and its run records.",
                f"{task_id} is done with evidence, or unclaimed with a log entry saying why.",
            ),
        )
    stale_open = int(graph.get("stale_open") or 0)
    if stale_open:
        yield _Item(
            f"aging-open:{name}",
            "aging",
            name,
            f"{stale_open} open task(s) older than 14 days",
            "old open work is either not needed or not reachable",
            min(60, 25 + 3 * stale_open),
            prompt_parts=_parts(
                f"Triage the {stale_open} open tasks in {name} that are older than 14 days.",
                f"{where} Run `speedrift aging` to list them.",
                "Each old task is done, abandoned with a reason, or re-prioritised with a log note.",
            ),
        )
    for task_id, missing in graph.get("missing_dependencies") or []:
        yield _Item(
            f"dep-missing:{name}:{task_id}:{missing}",
            "dependency",
            name,
            f"{task_id} waits on {missing}, which does not exist",
            "a missing blocker never finishes",
            70,
            task=str(task_id),
            prompt_parts=_parts(
                f"Repair the dependency of {task_id} on the missing task {missing} in {name}.",
                f"{where} `speedrift why-blocked {task_id}` shows the chain.",
                f"{task_id} waits only on tasks that exist (`speedrift rm-dep` / `speedrift add`).",
            ),
        )
    failed_blockers = int(graph.get("failed_blockers") or 0)
    if failed_blockers:
        yield _Item(
            f"dep-failed:{name}",
            "dependency",
            name,
            f"{failed_blockers} open task(s) blocked by a failed task",
            "failed blockers hold dependents forever",
            60,
            prompt_parts=_parts(
                f"Unblock the {failed_blockers} tasks in {name} that wait on a failed task.",
                f"{where} `speedrift blocked` lists them with what holds each.",
                "Each failed blocker is retried (`speedrift retry`) or abandoned with a reason.",
            ),
        )
    attempts = snap.get("attempts") or {}
    for task_id in attempts.get("repeated_failures") or []:
        yield _Item(
            f"loop:{name}:{task_id}",
            "dependency",
            name,
            f"{task_id} failed twice in a row",
            "a failed loopback: retrying the same way will fail again",
            65,
            task=str(task_id),
            prompt_parts=_parts(
                f"Find why task {task_id} in {name} keeps failing and fix the cause.",
                f"{where} Its attempts are under .speedrift/runs/; `speedrift tail {task_id}` shows one.",
                f"A new attempt of {task_id} passes its gates, or the task is rewritten with the lesson.",
            ),
        )
    gates = snap.get("gates") or {}
    critical, high = int(gates.get("critical") or 0), int(gates.get("high") or 0)
    leaks = int(gates.get("secret_leaks") or 0)
    if critical or high or leaks or gates.get("last_status") == "fail":
        found = (
            ", ".join(
                f"{n} {label}"
                for n, label in ((leaks, "secret leak(s)"), (critical, "critical"), (high, "high"))
                if n
            )
            or "the last gate run failed"
        )
        priority = 98 if leaks else 95 if critical else 80 if high else 70
        yield _Item(
            f"risk:{name}",
            "risk",
            name,
            f"{name}: {found}",
            "findings on the target branch",
            priority,
            prompt_parts=_parts(
                f"Resolve the security and quality findings in {name}.",
                f"{where} The latest evidence bundles report {found}.",
                "The gates pass on the target branch with no critical or high findings and no secrets.",
                gate_output=f"gates: last_status={gates.get('last_status', 'none')}, {found}",
            ),
        )
    git = snap.get("git") or {}
    ahead, behind = git.get("ahead"), git.get("behind")
    if isinstance(ahead, int) and ahead > 0:
        yield _Item(
            f"upstream-ahead:{name}",
            "upstream",
            name,
            f"{ahead} local commit(s) on {git.get('branch')} not in {git.get('upstream')}",
            "work that could be proposed upstream",
            min(60, 30 + ahead),
            prompt_parts=_parts(
                f"Prepare the {ahead} local commits of {name} for an upstream contribution.",
                f"{where} Branch {git.get('branch')} is {ahead} ahead of {git.get('upstream')}.",
                "A reviewed contribution packet (summary, changed files, tests); nothing is pushed.",
            ),
        )
    if isinstance(behind, int) and behind > 0:
        yield _Item(
            f"upstream-behind:{name}",
            "upstream",
            name,
            f"{behind} commit(s) behind {git.get('upstream')}",
            "upstream moved on; local work diverges",
            min(50, 20 + behind),
            prompt_parts=_parts(
                f"Bring {name} up to date with {git.get('upstream')}.",
                f"{where} {behind} upstream commits are not merged.",
                "The branch contains the upstream commits, tests pass; history is not rewritten.",
            ),
        )


def _action_item(action: dict[str, Any], held: dict[str, Any] | None) -> _Item:
    kind = str(action.get("kind"))
    queue = KIND_QUEUE.get(kind, "human")
    rule = held.get("rule") if held else None
    human = rule in HUMAN_RULES
    if human:
        queue = "human"
    why = str(action.get("reason") or "")
    if held:
        why = f"{why} — held back ({rule}): {held.get('reason', '')}"
    return _Item(
        f"action:{action.get('id')}",
        queue,
        str(action.get("repo")),
        f"{kind.replace('_', ' ')} in {action.get('repo')}"
        + (f" ({action['subject']})" if action.get("subject") else ""),
        why,
        int(action.get("priority") or 0),
        task=action.get("subject"),
        action_id=str(action.get("id")),
        approvable=human,
        prompts={k: str(v) for k, v in (action.get("prompts") or {}).items()},
    )


def _param_tasks(action: dict[str, Any]) -> list[str]:
    """Task ids an action is about, from its params (e.g. verify_in_progress lists them)."""
    params = action.get("params") or {}
    tasks = params.get("tasks") if isinstance(params, dict) else None
    return [str(t) for t in tasks] if isinstance(tasks, list) else []


def build_queues(
    record: dict[str, Any],
    first_seen: dict[str, str] | None = None,
    prompt_pair: PromptPair | None = None,
    cap: int = QUEUE_CAP,
    *,
    with_prompts: bool = True,
) -> tuple[dict[str, Any], dict[str, str]]:
    """(queues, first_seen) for one cycle record.

    ``first_seen`` maps item id -> when it first appeared (ISO); pass the previous cycle's map to
    keep how long an item has waited across cycles. The returned map holds only current items.
    """
    now_text = str(record.get("generated_at") or "")
    now = _parse(now_text)
    seen = dict(first_seen or {})
    make = prompt_pair or default_prompt_pair
    items: list[_Item] = []
    for report in record.get("repos") or []:
        items.extend(_repo_items(report))
    held_by_id = {s["action"]["id"]: s for s in record.get("skipped") or [] if s.get("action")}
    by_id = {a["id"]: a for a in record.get("planned") or []}
    for action_id, held in held_by_id.items():
        by_id.setdefault(action_id, held["action"])
    index = {(i.queue, i.repo, i.task): i for i in items}
    for action_id, action in by_id.items():
        candidate = _action_item(action, held_by_id.get(action_id))
        related = [candidate.task, *_param_tasks(action)]
        twin = next(
            (t for t in (index.get((candidate.queue, candidate.repo, r)) for r in related) if t is not None),
            None,
        )
        if twin is not None and twin.action_id is None:
            # the condition and the action the hub planned for it are one item
            twin.action_id, twin.approvable = candidate.action_id, candidate.approvable
            twin.priority = max(twin.priority, candidate.priority)
            twin.prompts = candidate.prompts or twin.prompts
            continue
        items.append(candidate)
        index.setdefault((candidate.queue, candidate.repo, candidate.task), candidate)

    current: dict[str, str] = {}
    out: dict[str, Any] = {}
    grouped: dict[str, list[_Item]] = {key: [] for key, _ in QUEUES}
    for item in items:
        since = item.since or seen.get(item.id, now_text)
        current[item.id] = since
        if item.waited_seconds is None and now is not None and (start := _parse(since)) is not None:
            item.waited_seconds = max(0.0, (now - start).total_seconds())
        grouped[item.queue].append(item)
    for key, label in QUEUES:
        ranked = sorted(grouped[key], key=lambda i: (-i.priority, -(i.waited_seconds or 0.0), i.id))
        shown = []
        for item in ranked[:cap]:
            prompts = item.prompts
            if with_prompts and (not prompts.get("claude") or not prompts.get("codex")):
                parts = item.prompt_parts or _parts(
                    item.what, f"Repository {item.repo}. {item.why}", "Resolved."
                )
                prompts = {**make(*parts), **{k: v for k, v in prompts.items() if v}}
            shown.append(
                {
                    "id": item.id,
                    "repo": item.repo,
                    "what": item.what,
                    "why": item.why,
                    "priority": item.priority,
                    "waited_seconds": None if item.waited_seconds is None else round(item.waited_seconds),
                    "since": current[item.id],
                    "task": item.task,
                    "action_id": item.action_id,
                    "approvable": item.approvable,
                    "prompts": {"claude": prompts.get("claude", ""), "codex": prompts.get("codex", "")},
                }
            )
        out[key] = {"label": label, "total": len(ranked), "items": shown}
    return out, current
