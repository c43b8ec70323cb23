"""The nightwatch in the hub loop: judge the fleet's drift on its own interval and correct it.

:func:`hub_step` runs each hub cycle and does something only when ``[nightwatch] enabled`` and at
least ``interval_s`` passed since its last evaluation — a mark kept in the agents state
(``slots["nightwatch"]``), so a restarted hub keeps the interval (terraphim never read its own).
It reads the machine-wide attempt feed (:mod:`speedrift.attemptlog`, the last :data:`HORIZON`)
restricted to this ecosystem's repos, judges every subject (:mod:`.nightwatch`), stores each
verdict (``agents[name].drift``, ``models["runtime:model"]``) and, only when a subject's LEVEL
CHANGES (never again on the next tick at the same level), applies the correction of the new level
to an agent and records it in the ledger (``kind = "nightwatch"``):

- Minor: recorded, nothing else;
- Moderate: its concurrency is halved (``max(1, current // 2)``; current is the stored value, else
  the agent's ``max_concurrent``);
- Severe: restarted — its running attempts are cancelled (as ``speedrift cancel`` does: a cancel
  file in the attempt's run directory) and the scheduler starts a fresh run;
- Critical: paused (:func:`speedrift.fleetops.pausing.pause_agent`, ``by = "nightwatch"``), until
  ``now + pause_cooldown_s`` when that is set, else until a person runs
  ``speedrift agents resume NAME``.

A fall to a lower level applies no new correction; concurrency is restored (to ``max_concurrent``)
only when the level is back at Normal or Minor. A runtime×model subject's level change is recorded
and shown, and never pauses anything: agents are what speedrift starts and can pause; a runtime is
paused by its provider's faults (usage limit, auth), machine-wide, elsewhere (pausestore).

A nightwatch pause whose ``until`` has passed is lifted here (``resume_agent``, ``by =
"nightwatch-cooldown"``) on every call, due or not. An agent judged Critical that is no longer
paused (lifted by its cooldown or by a person) is judged afresh: attempts that finished before that
moment stop counting for it (a mark ``slots["nightwatch:agent:NAME"]``), as fleet/halt.py forgets
outcomes before ``resume-retries``; otherwise it would stay Critical, unpaused, forever.

Repo graphs are written (a pause sets wg's ``paused`` on the agent's open run tasks) and running
attempts cancelled only in repos where ``ctx.may_write`` grants automation; the pause in the agents
state always applies (it only stops speedrift from starting the agent's runs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from speedrift import attemptlog, records
from speedrift.errors import SpeedriftError
from speedrift.fleet import attempts
from speedrift.fleet.budgetpub import repo_key
from speedrift.fleet.opsconfig import NightwatchConfig
from speedrift.fleetops import nightwatch
from speedrift.fleetops.declared import Served, declared_agents
from speedrift.fleetops.hubctx import HubContext
from speedrift.fleetops.nightwatch import RANK, SubjectKind, Verdict
from speedrift.fleetops.pausing import pause_agent, resume_agent
from speedrift.fleetops.schedule import concurrency
from speedrift.fleetops.state import Drift, DriftLevel, FleetState, StateStore
from speedrift.graph.model import IN_PROGRESS, status_of
from speedrift.graph.store import GraphStore
from speedrift.procs import record_alive
from speedrift.records import AttemptState
from speedrift.times import format_time

SLOT = "nightwatch"  # state.slots key: the last evaluation
FRESH = nightwatch.FRESH
HORIZON = timedelta(days=30)  # how far back the feed is read; a window never reaches further
PAUSED_BY = "nightwatch"
LIFTED_BY = "nightwatch-cooldown"
RESTORED_AT = (DriftLevel.NORMAL, DriftLevel.MINOR)


@dataclass
class Change:
    """One subject whose level changed, and what was already done about it under the state lock."""

    verdict: Verdict
    before: DriftLevel
    action: str  # what was done (completed outside the lock for a restart or a pause)

    @property
    def rising(self) -> bool:
        return RANK[self.verdict.level] > RANK[self.before]


def hub_step(ctx: HubContext) -> list[dict[str, Any]]:
    """Lift expired nightwatch pauses; when due, judge every subject and correct level changes.
    Returns the ledger records of what it decided."""
    out = lift_expired(ctx)
    config = ctx.ops.nightwatch
    store = StateStore(ctx.hub)
    if not config.enabled or not due(store.read(), config, ctx.now):
        return out
    entries = ecosystem_entries(attemptlog.read(since=ctx.now - HORIZON), ctx.repos.values())
    served = {s.name: s for s in declared_agents(ctx.ops, ctx.repos)[0]}  # its problems: the scheduler's
    changes = store.update(lambda state: judge_and_store(state, entries, ctx, served))
    for change in changes or ():
        out.extend(correct(ctx, change))
    return out


def due(state: FleetState, config: NightwatchConfig, now: datetime) -> bool:
    last = state.slots.get(SLOT)
    return last is None or now < last or (now - last).total_seconds() >= config.interval_s


def ecosystem_entries(
    entries: Iterable[attemptlog.AttemptEntry], repos: Iterable[Path]
) -> list[attemptlog.AttemptEntry]:
    """The entries of attempts in the given repos (each spelled as the feed spells it: its real path)."""
    wanted = {repo_key(p) for p in repos}
    return [e for e in entries if e.repo in wanted]


# --- judging (under the state lock) ----------------------------------------------------------------------
def judge_and_store(
    state: FleetState,
    entries: list[attemptlog.AttemptEntry],
    ctx: HubContext,
    served: Mapping[str, Served],
) -> list[Change] | None:
    """Under the lock: re-check the interval, judge, store every verdict and the evaluation mark,
    change concurrency for the level changes; the restarts and pauses are left to :func:`correct`.
    ``served``: the declared agents by name (fleetops/declared.py)."""
    config, now = ctx.ops.nightwatch, ctx.now
    if not due(state, config, now):
        return None  # another hub process evaluated meanwhile
    _mark_resumed(state, now)
    since = {key[len(FRESH) :]: at for key, at in state.slots.items() if key.startswith(FRESH)}
    known = [nightwatch.agent_subject(name) for name in served]
    known += [nightwatch.agent_subject(name) for name in state.agents]
    known += [f"{nightwatch.MODEL_PREFIX}{key}" for key in state.models]
    verdicts = nightwatch.evaluate(entries, config, subjects=known, since=since)
    changes: list[Change] = []
    for verdict in verdicts.values():
        stored = _stored(state, verdict)
        before = stored.level
        stored.score, stored.samples, stored.evaluated_at = verdict.score, verdict.samples, now
        if verdict.level is before:
            continue
        stored.level, stored.changed_at = verdict.level, now
        change = Change(verdict, before, "recorded")
        if verdict.kind is SubjectKind.AGENT:
            change.action = _concurrency(state, served.get(verdict.name), change)
        else:
            change.action = "recorded (a runtime×model is shown, never paused by the nightwatch)"
        changes.append(change)
    state.slots[SLOT] = now
    return changes


def _stored(state: FleetState, verdict: Verdict) -> Drift:
    if verdict.kind is SubjectKind.AGENT:
        return state.agent(verdict.name).drift
    return state.models.setdefault(verdict.name, Drift())


def _mark_resumed(state: FleetState, now: datetime) -> None:
    """An agent judged Critical that is no longer paused is judged afresh from now."""
    for name, agent in state.agents.items():
        if agent.drift.level is not DriftLevel.CRITICAL or agent.paused(now):
            continue
        mark, changed = state.slots.get(FRESH + nightwatch.agent_subject(name)), agent.drift.changed_at
        if mark is None or (changed is not None and mark < changed):
            nightwatch.judge_afresh(state, name, now)


def _concurrency(state: FleetState, served: Served | None, change: Change) -> str:
    """A level change's concurrency correction (see the module docstring); ``served``: the agent as
    declared (None for an ``agent:`` tag no declaration names: its configured value counts as 1)."""
    level = change.verdict.level
    agent = state.agent(change.verdict.name)
    configured = served.agent.max_concurrent if served is not None else 1
    if not change.rising:
        if level in RESTORED_AT and agent.concurrency is not None:
            lowered, agent.concurrency = agent.concurrency, None
            return f"concurrency restored to {configured} (was {lowered})"
        if level in RESTORED_AT:
            return "recorded (recovered)"
        return "recorded (recovering; its concurrency is restored at normal or minor)"
    if level is DriftLevel.MODERATE:
        current = concurrency(served, agent) if served is not None else (agent.concurrency or configured)
        agent.concurrency = max(1, current // 2)
        return f"concurrency lowered to {agent.concurrency} (was {current})"
    if level is DriftLevel.SEVERE:
        return "restart"
    if level is DriftLevel.CRITICAL:
        return "pause"
    return "recorded"


# --- corrections (outside the lock) ----------------------------------------------------------------------
def writable(ctx: HubContext) -> tuple[dict[str, Path], dict[str, str]]:
    """The repos the hub may change now, and why each other one is left alone."""
    allowed: dict[str, Path] = {}
    refused: dict[str, str] = {}
    for name, path in ctx.repos.items():
        ok, why = ctx.may_write(name)
        if ok:
            allowed[name] = path
        else:
            refused[name] = why
    return allowed, refused


def correct(ctx: HubContext, change: Change) -> list[dict[str, Any]]:
    """Carry out a change's restart or pause; answer its ledger records."""
    verdict, now = change.verdict, ctx.now
    extra: list[dict[str, Any]] = []
    if change.action == "restart":
        change.action = restart(ctx, verdict.name)
    elif change.action == "pause":
        cooldown = ctx.ops.nightwatch.pause_cooldown_s
        until = now + timedelta(seconds=cooldown) if cooldown else None
        try:
            paused = pause_agent(
                ctx.hub,
                ctx.repos,
                verdict.name,
                by=PAUSED_BY,
                reason=f"critical drift: {verdict.why}",
                now=now,
                until=until,
                write_graph=lambda repo: ctx.may_write(repo)[0],
            )
        except SpeedriftError as exc:
            change.action = f"pause failed: {exc}"
        else:
            extra.append(paused)
            change.action = _paused_words(verdict.name, until, paused)
    record = {
        "kind": "nightwatch",
        "generated_at": now,
        "subject": verdict.subject,
        "from": change.before.value,
        "to": verdict.level.value,
        "score": round(verdict.score, 4),
        "metrics": verdict.metrics.to_json(),
        "samples": verdict.samples,
        "action": change.action,
        "why": verdict.why,
    }
    return [record, *extra]


def _paused_words(name: str, until: datetime | None, record: Mapping[str, Any]) -> str:
    lifted = f"until {format_time(until)}" if until else f"until `speedrift agents resume {name}`"
    words = f"paused {lifted}"
    if not record.get("changed", True):
        kept = record.get("kept") or {}
        words = f"already paused by {kept.get('by', 'someone')}; that pause is kept"
    if record.get("not_written"):
        words += f"; run tasks left alone in {', '.join(record['not_written'])} (no automation authority)"
    return words


def _left_alone(refused: Mapping[str, str], what: str) -> str:
    if not refused:
        return ""
    return "; " + "; ".join(f"{what} in {name} left alone: {why}" for name, why in sorted(refused.items()))


def restart(ctx: HubContext, name: str) -> str:
    """Cancel the agent's running attempts in the repos the hub may change; the scheduler starts a
    fresh run. Answers what was done."""
    allowed, refused = writable(ctx)
    cancelled: list[str] = []
    for repo_name, path in sorted(allowed.items()):
        cancelled += [f"{repo_name}:{ref}" for ref in cancel_running(path, name)]
    done = (
        f"restart: cancelled {len(cancelled)} running attempt(s) ({', '.join(cancelled)}); "
        "the scheduler starts a fresh run"
        if cancelled
        else "restart: no running attempt to cancel; its next run starts fresh"
    )
    return done + _left_alone(refused, "attempts")


def cancel_running(repo: Path, agent: str) -> list[str]:
    """Request the cancel of every running attempt of ``agent``'s in-progress run tasks in
    ``repo``, as ``speedrift cancel`` does (cli/worker_cmds.py): the latest attempt's record says
    running and its process lives → a cancel file in its run directory. Answers ``task#attempt``."""
    store = GraphStore.of_repo(repo)
    if store is None:
        return []
    try:
        graph = store.load()
    except (OSError, SpeedriftError):
        return []
    done: list[str] = []
    for task_id, task in graph.tasks.items():
        tags = task.get("tags")
        if status_of(task) != IN_PROGRESS or not isinstance(tags, list) or attemptlog.agent_of(tags) != agent:
            continue
        folder = attempts.latest_attempt_dir(repo, task_id)
        record = records.read_attempt(folder) if folder is not None else None
        if folder is None or record is None:
            continue
        if record.state is AttemptState.RUNNING and record_alive(record.raw):
            attempts.request_cancel(folder)
            done.append(f"{task_id}#{folder.name}")
    return done


def lift_expired(ctx: HubContext) -> list[dict[str, Any]]:
    """Lift every nightwatch pause whose ``until`` has passed; answers the resume records."""
    state = StateStore(ctx.hub).read()
    expired = [
        name
        for name, agent in sorted(state.agents.items())
        if agent.pause is not None
        and agent.pause.by == PAUSED_BY
        and agent.pause.until is not None
        and ctx.now >= agent.pause.until
    ]
    if not expired:
        return []
    out: list[dict[str, Any]] = []
    for name in expired:
        try:
            out.append(
                resume_agent(
                    ctx.hub,
                    ctx.repos,
                    name,
                    by=LIFTED_BY,
                    now=ctx.now,
                    write_graph=lambda r: ctx.may_write(r)[0],
                )
            )
        except SpeedriftError as exc:
            out.append(
                {
                    "kind": "nightwatch",
                    "generated_at": ctx.now,
                    "subject": nightwatch.agent_subject(name),
                    "action": f"lifting the expired pause failed: {exc}",
                }
            )
    return out
