"""Compiling a wave: its spec and the graph in; the one graph change that makes the graph hold the
wave, and a typed list of what it changes (added, updated, kept, abandoned, each with a reason), out.

What each task should hold, and its id, is plans/compile_tasks.py's; this module compares that
with the graph. Invariants:

- Compiling a spec against the graph it produced changes nothing: the mutation is empty.
- A task is rewritten only when what it was compiled from changed (its ``task_hash`` or
  ``context_hash``) AND it is open; a changed task in any other state is reported ``kept`` and never
  edited. What compile did not write survives an update: other tags (``needs-human``) and other
  dependencies (the parts of a decomposed task).
- A task removed from the spec is abandoned when open (with a log line), else reported kept; an
  abandoned task is never reopened (kept, with the fix: a new id).
- Every change is one :class:`~speedrift.graph.ops.Mutation`: written whole or not at all.

Pure: spec value, graph and time in (plans/compiler.py lints, writes and records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from speedrift.errors import InvalidValue, Refused
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.cycles import strongly_connected
from speedrift.graph.model import (
    ABANDONED,
    AFTER_KEYS,
    OPEN,
    PLAN_KEY,
    PLAN_STAGE_KEY,
    Task,
    after_of,
    edge_key,
    plan_data,
    speedrift_data,
    status_of,
    str_list,
)
from speedrift.plans import spec
from speedrift.plans.compile_tasks import (
    Want,
    closure_id,
    command_of,
    compiled_tasks,
    dependencies_first,
    key_of,
    sequenced,
    spec_source,
    task_id,
    want_closure,
    want_task,
    wave_tag,
)
from speedrift.plans.spec import CLOSURE_ORDER, ClosureStage, WaveKey


class ChangeKind(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    KEPT = "kept"  # changed (or removed) in the spec, but no longer open: left as it is
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    task_id: str
    local: str  # the spec's task id, or the closure stage
    reason: str
    status: str | None = None  # the task's status, for kept

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "task": self.task_id,
            "local": self.local,
            "reason": self.reason,
        }
        if self.status is not None:
            out["status"] = self.status
        return out

    def __str__(self) -> str:
        kind = f"kept: {self.status}" if self.kind is ChangeKind.KEPT else self.kind.value
        return f"{self.task_id}: {kind} — {self.reason}"


@dataclass
class Compiled:
    wave: WaveKey  # the wave's number, or an ad-hoc run's key
    spec_hash: str
    mutation: ops.Mutation
    changes: list[Change]
    task_ids: list[str]  # every task of the wave as compiled: its tasks in spec order, then the closure
    unchanged: list[str] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return bool(self.mutation.tasks)

    def as_dict(self) -> dict[str, Any]:
        counts = {kind.value: sum(1 for c in self.changes if c.kind is kind) for kind in ChangeKind}
        return {
            "wave": self.wave,
            "spec_hash": self.spec_hash,
            "tasks": self.task_ids,
            "changes": [c.as_dict() for c in self.changes],
            "counts": {**counts, "unchanged": len(self.unchanged)},
            "warnings": list(self.mutation.warnings),
        }


# --- the compile -----------------------------------------------------------------------------------
def compile_wave(graph: Graph, value: Mapping[str, Any], *, now: datetime, actor: str | None) -> Compiled:
    """The mutation that makes ``graph`` hold the wave ``value`` (a schema-valid spec) and the list of
    what it changes (see the module docstring). Raises InvalidValue or Refused, naming the fix."""
    wave = spec.parse(value)
    if not wave.tasks:
        raise InvalidValue(
            f"wave {wave.wave} has no tasks: nothing to compile", hint="add a task to the spec"
        )
    n = wave.key
    shash = spec.spec_hash(value)
    items = {str(item["id"]): item for item in value["tasks"]}
    ordered = dependencies_first(wave)
    first = sequenced(graph, wave)
    wants = [want_task(wave, t, items[t.id], shash, first) for t in ordered]
    in_spec_order = [task_id(n, t.id) for t in wave.tasks]
    after = in_spec_order  # integration after every task, then each stage after the one before
    for stage in CLOSURE_ORDER:
        want = want_closure(wave, stage, list(after), shash)
        wants.append(want)
        after = [want.id]
    _check_ownership(graph, n, wants)
    work = _Work(graph, n, now, actor)
    for want in wants:
        work.place(want)
    wanted = {w.id for w in wants}
    for task in compiled_tasks(graph, n):
        if task["id"] not in wanted:
            work.remove(task)
    work.check_cycles()
    order = {tid: i for i, tid in enumerate([*in_spec_order, *(closure_id(n, s) for s in CLOSURE_ORDER)])}
    changes = sorted(work.changes, key=lambda c: order.get(c.task_id, len(order)))
    return Compiled(
        wave=n,
        spec_hash=shash,
        mutation=work.mutation,
        changes=changes,
        task_ids=list(order),
        unchanged=work.unchanged,
    )


def behind(graph: Graph, value: Mapping[str, Any], *, now: datetime) -> list[Change]:
    """What compiling ``value`` would still write (added, updated, abandoned): [] when ``graph``
    holds the wave as its spec stands. This — never a task's ``spec_hash``, which a task keeps from
    the compile that last wrote it — is how to ask whether a wave is compiled. Raises as
    :func:`compile_wave` does (a wave it runs after is not compiled, …)."""
    return [
        c for c in compile_wave(graph, value, now=now, actor=None).changes if c.kind is not ChangeKind.KEPT
    ]


def _check_ownership(graph: Graph, wave: WaveKey, wants: Sequence[Want]) -> None:
    for want in wants:
        current = graph.get(want.id)
        if current is None:
            continue
        plan = plan_data(current)
        mine = key_of(current) == wave and (
            plan.get("task") == want.local or plan.get(PLAN_STAGE_KEY) == want.local
        )
        if not mine:
            raise Refused(
                f"task {want.id!r} is already in the graph and was not compiled from {spec.label(wave)}'s "
                f"task {want.local!r}",
                hint=f"rename the task in the spec, or rename or remove {want.id} in the graph",
            )


@dataclass
class _Work:
    graph: Graph
    wave: WaveKey
    now: datetime
    actor: str | None
    mutation: ops.Mutation = field(default_factory=ops.Mutation)
    changes: list[Change] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    probe: Graph = field(init=False)

    def __post_init__(self) -> None:
        self.probe = Graph()
        self.probe.tasks = dict(self.graph.tasks)
        # the dependencies compile writes: any plan task's id (never a decomposed part's)
        self.managed = {tid for tid, t in self.graph.tasks.items() if key_of(t) is not None}

    def _take(self, built: ops.Mutation) -> None:
        for task in built.tasks:
            self.probe.tasks[task["id"]] = task
        self.mutation.tasks += built.tasks
        self.mutation.records += built.records
        self.mutation.warnings += built.warnings

    def place(self, want: Want) -> None:
        current = self.graph.get(want.id)
        self.managed.add(want.id)
        if current is None:
            self._add(want)
            return
        plan = plan_data(current)
        status = status_of(current)
        if status == ABANDONED:  # removed from the spec once, or abandoned by hand: never reopened here
            why = "in the spec, but abandoned in the graph; give the task a new id to add it again"
            self.changes.append(Change(ChangeKind.KEPT, want.id, want.local, why, status=status))
            return
        if (plan.get("task_hash"), plan.get("context_hash")) == want.fingerprint():
            self.unchanged.append(want.id)
            return
        why = self._why(want, plan)
        if status != OPEN:
            why += "; only open tasks are edited"
            self.changes.append(Change(ChangeKind.KEPT, want.id, want.local, why, status=status))
            return
        self._update(want, current, plan, why)

    def _why(self, want: Want, plan: Mapping[str, Any]) -> str:
        if plan.get("task_hash") != want.plan.get("task_hash"):
            return "changed in the spec"
        if want.plan.get(PLAN_STAGE_KEY) == ClosureStage.INTEGRATION.value:
            return "the wave's tasks, title, summary or sequencing changed"
        return "the wave's title, summary or sequencing changed"

    def _add(self, want: Want) -> None:
        spec_ = ops.NewTask(
            title=want.title,
            task_id=want.id,
            description=want.description,
            after=want.after,
            tags=want.tags,
            model=want.model,
            touch=want.touch,
            deliverables=want.deliverables,
        )
        added = ops.add_task(self.probe, spec_, now=self.now, actor=self.actor)
        by = "speedrift plan compile" if isinstance(self.wave, int) else command_of(self.wave, "compile")
        note = f"Compiled from {spec.label(self.wave)}'s spec ({spec_source(self.wave)}) by `{by}`"
        ops.set_fields(
            self.probe,
            want.id,
            speedrift=want.speedrift,
            message=note,
            now=self.now,
            actor=self.actor,
            within=added,
        )
        self._take(added)
        self.changes.append(Change(ChangeKind.ADDED, want.id, want.local, "new in the spec"))

    def _update(self, want: Want, current: Task, plan: Mapping[str, Any], why: str) -> None:
        old_tags = {wave_tag(self.wave), str(plan.get("role", ""))}
        kept_tags = [t for t in str_list(current, "tags") if t not in old_tags and t not in want.tags]
        kept_after = [a for a in after_of(current) if a not in self.managed]
        after = list(dict.fromkeys([*want.after, *kept_after]))
        tags = [*want.tags, *kept_tags]
        fields: dict[str, Any] = {
            "title": want.title,
            "description": want.description,
            edge_key(current, AFTER_KEYS): after or None,
            "tags": tags or None,
            "model": want.model,
            "deliverables": want.deliverables or None,
        }
        touched = sorted(k for k, v in fields.items() if current.get(k) != v)
        own = {**want.speedrift, "touch": want.touch or None}
        data = speedrift_data(current)
        touched += sorted(k for k, v in own.items() if k != PLAN_KEY and data.get(k) != v)
        reason = f"{why} ({', '.join(touched)})" if touched else why
        note = f"Updated from {spec.label(self.wave)}'s spec by `speedrift plan compile`: {reason}"
        built = ops.set_fields(
            self.probe, want.id, fields, speedrift=own, message=note, now=self.now, actor=self.actor
        )
        self._take(built)
        self.changes.append(Change(ChangeKind.UPDATED, want.id, want.local, reason))

    def remove(self, task: Task) -> None:
        status = status_of(task)
        local = str(plan_data(task).get("task") or plan_data(task).get(PLAN_STAGE_KEY) or task["id"])
        if status == ABANDONED:
            return
        if status != OPEN:
            why = "removed from the spec; only open tasks are abandoned"
            self.changes.append(Change(ChangeKind.KEPT, task["id"], local, why, status=status))
            return
        reason = f"removed from {spec.label(self.wave)}'s spec (`speedrift plan compile`)"
        self._take(ops.abandon(self.probe, task["id"], reason=reason, now=self.now, actor=self.actor))
        self.changes.append(Change(ChangeKind.ABANDONED, task["id"], local, "removed from the spec"))

    def check_cycles(self) -> None:
        """Refuse a change that would close a dependency loop through a task it writes (an edited
        sequencing can, across waves); the spec's own cycles were refused before."""
        touched = {t["id"] for t in self.mutation.tasks}
        if not touched:
            return
        edges = {tid: after_of(t) for tid, t in self.probe.tasks.items()}
        for members in strongly_connected(edges):
            loop = any((self.probe.tasks.get(m) or {}).get("cycle_config") for m in members)
            if touched & set(members) and not loop:
                raise Refused(
                    f"compiling {spec.label(self.wave)} would make a dependency loop: "
                    f"{', '.join(sorted(members))}",
                    hint="check sequencing.after_waves of the waves involved",
                )
