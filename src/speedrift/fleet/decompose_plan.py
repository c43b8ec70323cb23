"""The pure half of `speedrift decompose`: speedrift's own checks of an Architect's plan, and the
one graph change that writes a verified plan.

:func:`check_plan` finds what speedrift can judge without a model: ids unique and valid (and free
in the graph once namespaced under the parent, ``<parent>-<id>``), dependencies inside the split,
no cycle, paths inside the repository, and no file (or glob) owned by two tasks that may run at
the same time — neither depending on the other, directly or through others.
:func:`decompose_mutation` adds the subtasks — each with its acceptance criteria
(``speedrift.acceptance_criteria``, which the developer's prompt and the Reviewer read), the
parent's spec excerpt (``speedrift.spec``), its declared scope (``speedrift.touch`` =
files_touched, what gates/scope.py and the prompt read), its dependencies, its model (a
``planning`` tier: the strongest of ``[recovery] model_tiers``; else the parent's), the
``decomposed`` tag and ``speedrift.parent`` — and makes the parent wait for them, reopened as a
``split_task`` recovery reopens it
(``recovery_graph.retry_mutation``), in ONE mutation: it is written whole or not at all.

Pure: graph and time in, :class:`~speedrift.graph.ops.Mutation` out (fleet/decompose.py is the edge).
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from speedrift.errors import NotFound, Refused, UsageError
from speedrift.fleet import recovery_graph
from speedrift.fleet.roles.inputs import TASK_CRITERIA_KEY, TASK_SPEC_KEY
from speedrift.gates.ownership import parallel_overlaps, path_problem
from speedrift.graph import ids, ops
from speedrift.graph.codec import Graph
from speedrift.graph.cycles import strongly_connected
from speedrift.graph.model import (
    AFTER_KEYS,
    BLOCKED,
    FAILED,
    INCOMPLETE,
    OPEN,
    Task,
    after_of,
    edge_key,
    speedrift_data,
    status_of,
    str_list,
)
from speedrift.textclip import clip

DECOMPOSED = "decomposed"  # the tag every subtask carries (speedrift.parent names the parent)
SPLITTABLE = frozenset({OPEN, BLOCKED, FAILED, INCOMPLETE})
REOPENED = frozenset({FAILED, INCOMPLETE})  # these are reopened (wg's retry), the others edited
NOT_INHERITED = frozenset({recovery_graph.NEEDS_HUMAN, recovery_graph.NEEDS_REPLAN, "split", DECOMPOSED})


class FindingKind(StrEnum):
    TOO_FEW = "too_few_tasks"
    DUPLICATE_ID = "duplicate_id"
    BAD_ID = "bad_id"
    ID_TAKEN = "id_taken"
    UNKNOWN_DEPENDENCY = "unknown_dependency"
    CYCLE = "cycle"
    BAD_PATH = "bad_path"
    OWNERSHIP_OVERLAP = "ownership_overlap"


@dataclass(frozen=True)
class Finding:
    """One problem speedrift's own checks found in a plan."""

    kind: FindingKind
    message: str
    tasks: tuple[str, ...] = ()
    file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value, "message": self.message, "tasks": list(self.tasks)}
        if self.file is not None:
            out["file"] = self.file
        return out


# --- the task as a role reads it ------------------------------------------------------------------
# --- speedrift's own checks (pure) -------------------------------------------------------------------
def subtask_id(parent_id: str, local: str) -> str:
    return f"{parent_id}-{local}"


def check_plan(parent_id: str, tasks: Sequence[Mapping[str, Any]], existing: Container[str]) -> list[Finding]:
    """Every problem speedrift finds in the Architect's ``tasks`` by itself ([]: none)."""
    found: list[Finding] = []
    local = [str(t.get("id", "")) for t in tasks]
    if len(tasks) < 2:
        found.append(Finding(FindingKind.TOO_FEW, "a split needs at least two tasks", tuple(local)))
    for task_id in sorted({i for i in local if local.count(i) > 1}):
        found.append(
            Finding(FindingKind.DUPLICATE_ID, f"the id {task_id!r} names more than one task", (task_id,))
        )
    for task_id in dict.fromkeys(local):
        full = subtask_id(parent_id, task_id)
        try:
            ids.validate_id(full)
        except UsageError as bad:
            found.append(Finding(FindingKind.BAD_ID, f"{full!r}: {bad.message}", (task_id,)))
            continue
        if full in existing:
            found.append(
                Finding(
                    FindingKind.ID_TAKEN,
                    f"the graph already has a task {full!r}: choose another id",
                    (task_id,),
                )
            )
    deps = {str(t.get("id", "")): [str(d) for d in t.get("depends_on") or []] for t in tasks}
    for task_id, blockers in deps.items():
        for blocker in blockers:
            if blocker == task_id:
                found.append(Finding(FindingKind.CYCLE, f"{task_id!r} depends on itself", (task_id,)))
            elif blocker not in deps:
                found.append(
                    Finding(
                        FindingKind.UNKNOWN_DEPENDENCY,
                        f"{task_id!r} depends on {blocker!r}, which is not a task of this split",
                        (task_id,),
                    )
                )
    for members in strongly_connected(deps):
        if len(members) > 1:
            shown = " -> ".join([*members, members[0]])
            found.append(
                Finding(FindingKind.CYCLE, f"the dependencies form a cycle: {shown}", tuple(members))
            )
    for task in tasks:
        for path in task.get("files_touched") or []:
            problem = path_problem(str(path))
            if problem:
                found.append(
                    Finding(FindingKind.BAD_PATH, f"{path!r}: {problem}", (str(task.get("id")),), str(path))
                )
    found += _overlaps(tasks, deps)
    return found


def _overlaps(tasks: Sequence[Mapping[str, Any]], deps: Mapping[str, Sequence[str]]) -> list[Finding]:
    """Files (or globs) two tasks that may run at the same time both declare."""
    listed = [(str(t.get("id", "")), [str(f).strip() for f in t.get("files_touched") or []]) for t in tasks]
    shared: dict[tuple[int, int], set[str]] = {}
    for found in parallel_overlaps(listed, deps):
        a, b = listed[found.first][1][found.first_path], listed[found.second][1][found.second_path]
        shared.setdefault((found.first, found.second), set()).add(a if a == b else f"{a} / {b}")
    out: list[Finding] = []
    for (first, second), files in sorted(shared.items()):
        one, other = listed[first][0], listed[second][0]
        for file in sorted(files):
            out.append(
                Finding(
                    FindingKind.OWNERSHIP_OVERLAP,
                    f"{one!r} and {other!r} may run at the same time and both touch {file}: make one "
                    "depend on the other, or give the file to one of them",
                    (one, other),
                    file,
                )
            )
    return out


# --- the subtasks and the one graph change (pure) ---------------------------------------------------
def subtask_data(parent: Task, tasks: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each subtask's ``speedrift`` fields, by its id: its parent, its acceptance criteria as the
    Reviewer reads them (fleet/roles/inputs.py) and the parent's spec excerpt, when it has one."""
    spec = speedrift_data(parent).get(TASK_SPEC_KEY)
    out: dict[str, dict[str, Any]] = {}
    for item in tasks:
        criteria = [
            {"criterion": str(c.get("criterion")), "verify_by": str(c.get("verify_by"))}
            for c in item.get("acceptance_criteria") or []
            if isinstance(c, Mapping)
        ]
        fields: dict[str, Any] = {"parent": str(parent["id"]), TASK_CRITERIA_KEY: criteria}
        if spec:
            fields[TASK_SPEC_KEY] = spec
        out[subtask_id(str(parent["id"]), str(item["id"]))] = fields
    return out


def subtask_specs(
    parent: Task, tasks: Sequence[Mapping[str, Any]], *, runtime: str, tiers: Sequence[str]
) -> list[ops.NewTask]:
    """The subtasks of a verified plan, dependencies first."""
    parent_id = str(parent["id"])
    by_id = {str(t["id"]): t for t in tasks}
    inherited = after_of(parent)
    tags = [t for t in str_list(parent, "tags") if t not in NOT_INHERITED] + [DECOMPOSED]
    parent_model = parent.get("model") if isinstance(parent.get("model"), str) else None
    specs: list[ops.NewTask] = []
    for local in _dependencies_first(by_id):
        item = by_id[local]
        planning = item.get("model_tier") == "planning" and tiers
        specs.append(
            ops.NewTask(
                title=clip(str(item["title"]), 200),
                task_id=subtask_id(parent_id, local),
                description=_description(
                    item, parent, [subtask_id(parent_id, o) for o in by_id if o != local]
                ),
                after=list(
                    dict.fromkeys(
                        [*inherited, *(subtask_id(parent_id, d) for d in item.get("depends_on") or [])]
                    )
                ),
                tags=list(dict.fromkeys(tags)),
                model=f"{runtime}:{tiers[-1]}" if planning else parent_model,
                touch=[str(f).strip() for f in item.get("files_touched") or []],
            )
        )
    return specs


def _dependencies_first(by_id: Mapping[str, Mapping[str, Any]]) -> list[str]:
    done: list[str] = []
    waiting = list(by_id)
    while waiting:
        ready = [i for i in waiting if all(d in done for d in by_id[i].get("depends_on") or [])]
        if not ready:
            raise Refused("the plan's dependencies form a cycle")  # check_plan reports it first
        done += ready
        waiting = [i for i in waiting if i not in ready]
    return done


def _description(item: Mapping[str, Any], parent: Task, others: Sequence[str]) -> str:
    # its acceptance criteria go into speedrift.acceptance_criteria (subtask_data), where the
    # developer's prompt and the Reviewer read them
    lines = [
        str(item.get("description", "")).strip(),
        "",
        f"Part of `{parent['id']}` ({clip(str(parent.get('title', '')), 200)}), split by "
        "`speedrift decompose`" + (f"; the other parts: {', '.join(others)}." if others else "."),
        "Change only the files of this task's scope: the other parts own theirs.",
    ]
    return "\n".join(lines)


def parent_note(part_ids: Sequence[str]) -> str:
    return (
        f"Split into {', '.join(part_ids)} by `speedrift decompose`; it runs again after them: check the "
        "whole task is done, and finish only what the parts left"
    )


def decompose_mutation(
    graph: Graph,
    parent_id: str,
    specs: Sequence[ops.NewTask],
    *,
    now: datetime,
    actor: str | None,
    data: Mapping[str, Mapping[str, Any]] | None = None,
) -> ops.Mutation:
    """The subtasks added and the parent waiting for them, in one change: a failed (or incomplete)
    parent is reopened as ``split_task`` reopens it, an open one edited (its re-planning hold, the
    needs-replan tag and its pause, lifted). Refused when the parent cannot be split now or an id
    is taken. ``data``: each subtask's ``speedrift`` fields (:func:`subtask_data`)."""
    parent = graph.get(parent_id)
    if parent is None:
        raise NotFound(f"no task {parent_id!r} in the graph")
    check_splittable(parent)
    taken = [s.task_id for s in specs if s.task_id in graph.tasks]
    if taken:
        raise Refused(
            f"the graph already has {', '.join(map(str, taken))}", hint="run `speedrift decompose` again"
        )
    probe = Graph()
    probe.tasks = dict(graph.tasks)
    mutation = ops.Mutation()
    for spec in specs:
        assert spec.task_id is not None
        added = ops.add_task(probe, spec, now=now, actor=actor)
        own = dict((data or {}).get(spec.task_id) or {"parent": parent_id})
        ops.set_fields(probe, spec.task_id, speedrift=own, now=now, actor=actor, within=added)
        probe.tasks[spec.task_id] = added.tasks[0]
        mutation.tasks += added.tasks
        mutation.records += added.records
        mutation.warnings += added.warnings
    part_ids = [str(s.task_id) for s in specs]
    note = parent_note(part_ids)
    marked: dict[str, Any] = {"decomposed_into": part_ids}
    if status_of(parent) in REOPENED:
        changed = recovery_graph.retry_mutation(
            probe, parent_id, None, when=None, now=now, actor=actor, context=note
        )
        fields = _waiting_fields(changed.get(parent_id) or parent, part_ids)
        ops.set_fields(probe, parent_id, fields, speedrift=marked, now=now, actor=actor, within=changed)
    else:
        fields = _waiting_fields(parent, part_ids)
        marked["retry_context"] = note
        changed = ops.set_fields(
            probe, parent_id, fields, speedrift=marked, message=note, now=now, actor=actor
        )
    mutation.tasks += changed.tasks
    mutation.records += changed.records
    return mutation


def _waiting_fields(parent: Task, part_ids: Sequence[str]) -> dict[str, Any]:
    """The parent after its parts; a re-planning hold (needs-replan, and the pause it came with)
    lifted: this is the re-plan."""
    fields: dict[str, Any] = {
        edge_key(parent, AFTER_KEYS): list(dict.fromkeys([*after_of(parent), *part_ids]))
    }
    tags = str_list(parent, "tags")
    if recovery_graph.NEEDS_REPLAN in tags:
        fields["tags"] = [t for t in tags if t != recovery_graph.NEEDS_REPLAN] or None
        if parent.get("paused"):
            fields["paused"] = None
    return fields


def check_splittable(task: Task) -> None:
    status = status_of(task)
    if status not in SPLITTABLE:
        raise Refused(
            f"task {task['id']!r} is {status}; only an open, blocked, failed or incomplete task can be "
            "decomposed",
            hint="cancel a running attempt first (`speedrift cancel`); a finished task needs a new task",
        )
    command = task.get("exec")
    if isinstance(command, str) and command.strip():
        raise Refused(
            f"task {task['id']!r} runs a shell command (exec): there is nothing for the Architect to split",
            hint="split the command into tasks by hand (`speedrift add --exec …`)",
        )
