"""Which runtime, model and process limits one attempt gets, and the record of why.

The pipeline's one way to choose (``speedrift run``, the service, the hub's workers all go through
``Pipeline.run``): :func:`choose` routes the task (agents/routing.py with the repo's ``[routing]``
table), then walks the runtime fallback order — the task's ``speedrift.fallback``, else its
standing agent's ``speedrift.agent.fallback``, else the repo's ``[routing] fallback`` — past every
runtime that is paused machine-wide (pausestore.py) or fails its preflight, and past the runtimes
that failed the task's latest attempts with a provider fault (``speedrift.fallback_skip``, written
by fleet/recovery_graph.py; they go last, not away). :func:`limits_of` reads the task's
``speedrift.agent.limits``.

Invariants: a fallback is never silent — :class:`Chosen` carries ``fallback = {from, to, reason}``
for the evidence, attempt.json and the task's log; with no order, or every runtime in it unusable,
the attempt is refused before its claim naming every runtime tried. A task value of the wrong
shape is ignored and said in the record (``ignored``), never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from speedrift import pausestore
from speedrift.agents import rlimits, routing
from speedrift.agents.choose import MODEL_RUNTIMES
from speedrift.agents.routing import Choice
from speedrift.errors import Refused, SpeedriftError
from speedrift.failure_class import FailureClass, parse_failure_class
from speedrift.fleet import pauses
from speedrift.fleet.config import RepoConfig
from speedrift.fleet.opsconfig import RUNTIME_MODEL_RE
from speedrift.graph.model import Task, speedrift_data
from speedrift.pausestore import RuntimePause

FALLBACK_KEY = "fallback"  # speedrift.fallback: the task's own order
SKIP_KEY = "fallback_skip"  # speedrift.fallback_skip: entries that failed its latest attempts
AGENT_KEY = "agent"  # speedrift.agent: a standing agent's run (fleetops/)
MAX_SKIP = 10
# failures a stronger model would not fix: they do not climb a routing tier
NOT_ESCALATING = frozenset(
    {
        FailureClass.USAGE_LIMIT,
        FailureClass.TRANSIENT_INFRA,
        FailureClass.AUTH_FAILURE,
        FailureClass.ENV_BOOTSTRAP,
        FailureClass.MERGE_CONFLICT,
    }
)
LIMIT_KEYS = ("memory_mb", "cpu_seconds")

# (runtime, model) → the pause that makes it unusable now (a failed preflight pauses it), or None
Usable = Callable[[str, str | None], RuntimePause | None]


@dataclass(frozen=True)
class Chosen:
    """What the attempt runs on: ``routed`` is routing's choice; ``runtime``/``model`` what runs
    (the model resolved with the runtime's configured one); ``fallback`` when they differ."""

    routed: Choice
    runtime: str
    model: str | None
    fallback: dict[str, Any] | None = None
    ignored: tuple[str, ...] = ()  # task values of the wrong shape, left out

    @property
    def label(self) -> str:
        return routing.entry_label(self.runtime, self.model)

    def records(self) -> dict[str, Any]:
        """``routing`` (and ``fallback`` when one happened) for the evidence and attempt.json."""
        out: dict[str, Any] = {"routing": self.routed.record()}
        if self.ignored:
            out["routing"]["ignored"] = list(self.ignored)
        if self.fallback is not None:
            out["fallback"] = dict(self.fallback)
        return out

    def log_line(self) -> str | None:
        """The task's log line for a fallback (None: no fallback)."""
        if self.fallback is None:
            return None
        f = self.fallback
        return f"Runtime fallback ({f['source']} order): {f['from']} → {f['to']}: {f['reason']}"[:4000]


class NoRuntime(pauses.RuntimePaused):
    """Every runtime in the task's fallback order is unusable now: refused before the claim."""

    def __init__(self, tried: Sequence[tuple[str, RuntimePause]], source: str, now: datetime) -> None:
        auto = pausestore.read().auto_resume
        named = "; ".join(f"{label} — {pause.sentence(now, auto)}" for label, pause in tried)
        Refused.__init__(
            self,
            f"no runtime in the fallback order ({source}) can run now: {named}",
            hint="wait for a pause to end, or lift one with `speedrift resume-runtime NAME`",
        )
        self.pause = tried[0][1]
        self.tried = tuple(label for label, _ in tried)


# --- routing ----------------------------------------------------------------------------------------
def agent_of(task: Task) -> dict[str, Any]:
    found = speedrift_data(task).get(AGENT_KEY)
    return found if isinstance(found, dict) else {}


def role_of(task: Task, config: RepoConfig) -> str | None:
    """The task's role for routing: its standing agent's ``role`` (the run task's own, else the
    repo's ``[[agents]]`` entry of that name)."""
    agent = agent_of(task)
    role = agent.get("role")
    if isinstance(role, str) and role:
        return role
    name = agent.get("name")
    declared = next((a for a in config.agents if a.name == name), None) if isinstance(name, str) else None
    return str(declared.role) if declared is not None and declared.role is not None else None


def escalation_attempt(task: Task) -> int:
    """1 + the task's recorded failures a stronger model may fix (provider faults, infrastructure
    and merge conflicts do not count): the attempt number routing escalates by."""
    history = speedrift_data(task).get("failures")
    counted = 0
    for entry in history if isinstance(history, list) else []:
        cls = parse_failure_class(entry.get("class")) if isinstance(entry, dict) else None
        if cls is not None and cls not in NOT_ESCALATING:
            counted += 1
    return 1 + counted


def tiers_of(config: RepoConfig) -> dict[str, str]:
    """``[routing] tiers``: tier → runtime[:model]."""
    return {str(tier): entry for tier, entry in config.routing.tiers.items()}


def routing_view(task: Task) -> Task:
    """The task as routing reads it: a standing agent's run with no model of its own, whose agent
    names a routing tier or a bare runtime (``speedrift.agent.model``, fleetops/runs.py), asks for
    that tier or that runtime."""
    if task.get("model") or task.get("exec"):
        return task
    wanted = agent_of(task).get("model")
    wanted = wanted.strip() if isinstance(wanted, str) else ""
    if wanted in routing.TIERS:
        return {**task, "model": wanted}
    if wanted in MODEL_RUNTIMES:
        return {**task, "model": f"{wanted}:"}  # that CLI with its configured model
    return task


def route_task(task: Task, config: RepoConfig) -> Choice:
    """Routing's choice for ``task`` with the repo's ``[routing]`` table (no pause consulted)."""
    table = config.routing
    rules = tuple(routing.Rule(r.tier, tuple(r.tags), str(r.role) if r.role else None) for r in table.rules)
    return routing.route(
        routing_view(task),
        default_runtime=config.default_runtime,
        tiers=tiers_of(config),
        rules=rules,
        default_tier=table.default_tier,
        escalate=table.escalate,
        attempt_number=escalation_attempt(task),
        role=role_of(task, config),
    )


# --- the fallback order -----------------------------------------------------------------------------
def fallback_order(task: Task, config: RepoConfig) -> tuple[list[str], str, list[str]]:
    """(entries, where they come from, what was ignored): the task's ``speedrift.fallback`` >
    its agent's ``speedrift.agent.fallback`` > the repo's ``[routing] fallback``. An exec task has
    none (its command is the task)."""
    ignored: list[str] = []
    command = task.get("exec")
    if isinstance(command, str) and command.strip():
        return [], "none", ignored
    for source, raw in (
        ("the task's speedrift.fallback", speedrift_data(task).get(FALLBACK_KEY)),
        ("its agent's speedrift.agent.fallback", agent_of(task).get(FALLBACK_KEY)),
    ):
        if raw is None:
            continue
        entries = _entries(raw, source, ignored)
        if entries:
            return entries, source, ignored
    if config.routing.fallback:
        return list(config.routing.fallback), "the repo's [routing] fallback", ignored
    return [], "none", ignored


def _entries(raw: object, source: str, ignored: list[str]) -> list[str]:
    if not isinstance(raw, list):
        ignored.append(f"{source} is not a list of runtime[:model] entries: ignored")
        return []
    good = [e.strip() for e in raw if isinstance(e, str) and RUNTIME_MODEL_RE.match(e.strip())]
    bad = [e for e in raw if not (isinstance(e, str) and RUNTIME_MODEL_RE.match(e.strip()))]
    if bad:
        ignored.append(f"{source}: {', '.join(map(repr, bad))[:300]} not runtime[:model]: ignored")
    return good


def skipped(task: Task) -> list[dict[str, Any]]:
    """The ``speedrift.fallback_skip`` entries that steer the task's next attempt, oldest first:
    its latest attempt failed with a fault that moves down the order, and so did each attempt
    before it back to the first failure without one (an attempt that landed, or failed by the
    agent's own doing, ends the chain). Read before the claim (``speedrift.attempt`` is then the
    latest attempt's number)."""
    data = speedrift_data(task)
    raw, latest, history = data.get(SKIP_KEY), data.get("attempt"), data.get("failures")
    if not isinstance(raw, list) or not isinstance(history, list):
        return []
    by_attempt = {e.get("attempt"): e for e in raw if isinstance(e, dict) and isinstance(e.get("entry"), str)}
    if latest not in by_attempt:
        return []
    chain: list[dict[str, Any]] = []
    for failure in reversed([h for h in history if isinstance(h, dict)]):
        entry = by_attempt.get(failure.get("attempt"))
        if entry is None:
            break
        if entry not in chain:
            chain.append(entry)
    return list(reversed(chain))


def resolved(runtime: str, model: str | None, config: RepoConfig) -> str | None:
    return model or config.runtime_options(runtime).model


# --- the choice -------------------------------------------------------------------------------------
def choose(task: Task, config: RepoConfig, *, now: datetime, usable: Usable | None = None) -> Chosen:
    """The runtime ``task``'s next attempt runs on (see the module docstring). ``usable`` checks a
    runtime beyond its pause (the preflight, which pauses it when it fails). Raises
    :class:`~speedrift.fleet.pauses.RuntimePaused` (one candidate) or :class:`NoRuntime` (an order)
    when nothing can run; InvalidValue for a bad routing or runtime name."""
    routed = route_task(task, config)
    entries, source, ignored = fallback_order(task, config)
    if routed.kind == routing.DEFAULT and entries:  # nothing chose a model: the order's head is the first
        runtime, model = routing.parse_entry(entries[0])
        routed = Choice(
            runtime, model, None, f"no [routing] tiers: the first entry of {source}", routing.DEFAULT
        )
    first = routing.entry_label(routed.runtime, resolved(routed.runtime, routed.model, config))
    labels = [resolved_label(e, config) for e in entries]
    recent = skipped(task)
    skip_reasons = {str(e["entry"]): e for e in recent}
    candidates = routing.order(first, labels, [str(e["entry"]) for e in recent]) if labels else [first]
    book = pausestore.read()
    passed: list[tuple[str, str]] = []  # (label, why it was passed over), in order
    tried: list[tuple[str, RuntimePause]] = []
    for label in candidates:
        runtime, model = routing.parse_entry(label)
        pause = book.blocking(runtime, pauses.provider_of(runtime, model), now)
        if pause is None and usable is not None:
            pause = usable(runtime, model)
        if pause is not None:
            tried.append((label, pause))
            passed.append((label, pause.sentence(now, book.auto_resume)))
            continue
        if label != first:
            if first in skip_reasons and all(p[0] != first for p in passed):  # passed over as skipped
                passed.insert(0, (first, _skip_reason(first, skip_reasons[first], book, now)))
            reason = "; ".join(why for _label, why in passed) or "moved down the order"
            fallback = {"from": first, "to": label, "reason": reason, "source": source, "order": candidates}
            return Chosen(routed, runtime, model, fallback, tuple(ignored))
        return Chosen(routed, runtime, model, None, tuple(ignored))
    if len(tried) == 1:
        raise pauses.RuntimePaused(tried[0][1], now, auto_resume=book.auto_resume)
    raise NoRuntime(tried, source, now)


def _skip_reason(label: str, said: Mapping[str, Any], book: pausestore.PauseBook, now: datetime) -> str:
    """Why a recently failed entry was passed over: its pause when it has one, else the failure."""
    runtime, model = routing.parse_entry(label)
    pause = book.blocking(runtime, pauses.provider_of(runtime, model), now)
    if pause is not None:
        return pause.sentence(now, book.auto_resume)
    return f"attempt {said.get('attempt')} failed on it: {said.get('reason')}"


def resolved_label(entry: str, config: RepoConfig) -> str:
    runtime, model = routing.parse_entry(entry)
    return routing.entry_label(runtime, resolved(runtime, model, config))


def dispatch_runtime(task: Task, config: RepoConfig, now: datetime) -> str | None:
    """The runtime ``task`` would run on now (pauses only, no preflight), or None when every
    runtime it may use is paused: what a service asks before it starts an attempt."""
    try:
        return choose(task, config, now=now).runtime
    except pauses.RuntimePaused:
        return None
    except SpeedriftError:  # a bad routing value: the attempt itself reports it
        return config.default_runtime


# --- resource limits --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskLimits:
    """``speedrift.agent.limits`` as read: the values to apply, and what was ignored."""

    values: dict[str, int] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()


def limits_of(task: Task) -> TaskLimits:
    """The task's ``speedrift.agent.limits`` (``memory_mb`` ≥ 16, ``cpu_seconds`` ≥ 1, integers);
    anything else there is ignored and said."""
    raw = agent_of(task).get("limits")
    if raw is None:
        return TaskLimits()
    if not isinstance(raw, Mapping):
        return TaskLimits(ignored=("speedrift.agent.limits is not a table: ignored",))
    values: dict[str, int] = {}
    ignored: list[str] = []
    floors = {"memory_mb": 16, "cpu_seconds": 1}
    for key, value in raw.items():
        if value is None:
            continue
        if key not in floors:
            known = ", ".join(floors)
            ignored.append(f"speedrift.agent.limits.{key}: not a limit speedrift applies ({known})")
        elif isinstance(value, bool) or not isinstance(value, int) or value < floors[key]:
            ignored.append(f"speedrift.agent.limits.{key} = {value!r}: not an integer ≥ {floors[key]}")
        else:
            values[key] = value
    return TaskLimits(values, tuple(ignored))


def rlimit_plan(task: Task) -> rlimits.RLimitPlan | None:
    """The rlimits the task's agent runs under (None: the task sets none)."""
    limits = limits_of(task)
    return rlimits.plan_rlimits(limits.values) if limits.values else None


def attempt_records(chosen: Chosen, task: Task) -> dict[str, Any]:
    """What the attempt records about how it was set up (evidence, attempt.json): ``routing``,
    ``fallback`` when it moved down the order, ``limits`` when the task sets any."""
    records = chosen.records()
    limits = limits_of(task)
    if limits.values or limits.ignored:
        records["limits"] = rlimits.plan_rlimits(limits.values).record(limits.ignored)
    return records
