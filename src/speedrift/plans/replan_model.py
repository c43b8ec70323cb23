"""Forward replanning's vocabulary and its pure parts (plans/replan.py is the edge): the states of a
replan, a wave's change (its spec before and after, its change lists), the summary a replan
record holds, what the Architect is told and the rule that a task done in the graph keeps its
spec entry exactly.

Pure: spec values, statuses and change lists in; text, lists and problems out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift.coord.records import MAX_DATA_BYTES
from speedrift.graph.model import DONE
from speedrift.plans import spec
from speedrift.plans.compile import Change
from speedrift.plans.compile_tasks import task_id
from speedrift.plans.draft import IMPORT_ONLY, IMPORT_ONLY_TASK, SET_BY_SPEEDRIFT, Round, last_findings
from speedrift.plans.status import WaveStatus
from speedrift.textclip import clip

SOURCE = "plan_update"  # data.source of the replan records
MAX_REASON = 2_000
LISTS = ("added", "updated", "abandoned", "kept")


class State(StrEnum):
    APPLIED = "applied"  # written (and the compiled waves compiled again)
    PROPOSED = "proposed"  # an oversight wave changes: waits for `plan approve-replan`
    UNCHANGED = "unchanged"  # the Architect kept every wave as it was
    NOT_VERIFIED = "not_verified"  # a wave failed its last round: nothing written
    DRY_RUN = "dry_run"  # what would change; nothing written
    REJECTED = "rejected"  # a proposal a person turned down


@dataclass
class WaveDelta:
    """One regenerated wave: its spec before and after, and what that changes in the graph."""

    wave: int
    mode: spec.Mode
    compiled: bool
    before: dict[str, Any]
    after: dict[str, Any]
    lists: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in LISTS})
    record_dir: Path | None = None
    rounds: list[Round] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return spec.canonical(self.before) != spec.canonical(self.after)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "compiled": self.compiled,
            **{name: list(self.lists[name]) for name in LISTS},
            "spec_hash_before": spec.spec_hash(self.before),
            "spec_hash_after": spec.spec_hash(self.after),
        }


@dataclass
class Replan:
    from_wave: int
    reason: str
    state: State
    closed: list[int]
    waves: list[WaveDelta]
    record: str | None = None  # the decision record's id
    proposal: int | None = None  # the proposal's number, for `plan approve-replan`
    by: str | None = None  # who approved or rejected it
    unchanged: list[int] = field(default_factory=list)  # waves the Architect kept as they were

    @property
    def failed(self) -> WaveDelta | None:
        """The wave whose last round did not pass (NOT_VERIFIED)."""
        return self.waves[-1] if self.state is State.NOT_VERIFIED and self.waves else None

    def summary(self) -> dict[str, Any]:
        """``data.replan`` of the record: the change lists of every changed wave, and why."""
        out: dict[str, Any] = {
            "from_wave": self.from_wave,
            "reason": self.reason,
            "state": self.state.value,
            "closed_waves": list(self.closed),
            "waves": {str(d.wave): d.as_dict() for d in self.waves if d.changed},
            "unchanged_waves": sorted({*self.unchanged, *(d.wave for d in self.waves if not d.changed)}),
        }
        if self.proposal is not None:
            out["proposal"] = self.proposal
        if self.by is not None:
            out["by"] = self.by
        return out

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replan": self.summary(), "record": self.record}
        if self.failed is not None:
            out["findings"] = last_findings(self.failed.rounds[-1]) if self.failed.rounds else []
            out["record_dir"] = str(self.failed.record_dir)
        out["record_dirs"] = {str(d.wave): str(d.record_dir) for d in self.waves if d.record_dir}
        return out


# --- pure: what the Architect is told, what it may not change -------------------------------------
def architect_view(value: Mapping[str, Any]) -> dict[str, Any]:
    """A spec as the Architect writes one: without what speedrift sets or only an import fills."""
    out = {k: v for k, v in value.items() if k not in (*SET_BY_SPEEDRIFT, *IMPORT_ONLY)}
    out["tasks"] = [
        {k: v for k, v in item.items() if k not in IMPORT_ONLY_TASK} for item in value.get("tasks", ())
    ]
    return out


def carried(current: Mapping[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What completes the Architect's wave: the current spec's ``prose``, and each task's
    ``extra`` for a task it keeps (the Architect cannot write either)."""
    extras = {item["id"]: item["extra"] for item in current.get("tasks", ()) if item.get("extra")}

    def complete(wave: dict[str, Any]) -> dict[str, Any]:
        out = dict(wave)
        if current.get("prose"):
            out["prose"] = current["prose"]
        tasks = out.get("tasks")
        if extras and isinstance(tasks, list):
            out["tasks"] = [
                {**item, "extra": extras[item["id"]]}
                if isinstance(item, Mapping) and item.get("id") in extras and "extra" not in item
                else item
                for item in tasks
            ]
        return out

    return complete


def done_task_problems(
    current: Mapping[str, Any], proposed: Mapping[str, Any], done: Iterable[str]
) -> list[str]:
    """Why ``proposed`` may not replace ``current``: each task of ``done`` (spec ids of tasks done
    in the graph) that it drops or edits ([]: none)."""
    before = {item["id"]: item for item in current.get("tasks", ())}
    listed = proposed.get("tasks")
    after = {
        item.get("id"): item
        for item in (listed if isinstance(listed, list) else [])
        if isinstance(item, Mapping)
    }
    problems: list[str] = []
    for local in sorted(set(done)):
        kept = before.get(local)
        if kept is None:
            continue  # done, but no longer in the spec: nothing to keep
        if local not in after:
            problems.append(
                f"task `{local}` is done: it was dropped — put it back, its entry exactly as it was"
            )
        elif after[local] != kept:
            fields = sorted(k for k in {*kept, *after[local]} if kept.get(k) != after[local].get(k))
            problems.append(
                f"task `{local}` is done: its entry changed ({', '.join(fields)}) — keep it exactly as it"
                " was; put new work in a new task"
            )
    return problems


def request_text(
    value: Mapping[str, Any],
    reason: str,
    status: WaveStatus | None,
    closed: Sequence[tuple[int, str, str]],
    replanned: Sequence[Mapping[str, Any]],
    from_wave: int,
) -> str:
    """The replan request: the Architect's ``request`` and the Plan Verifier's spec."""
    n = int(value["wave"])
    lines = [
        f"Replan wave {n} of this repository's plan (`speedrift plan update --from-wave {from_wave}`): "
        "rewrite the wave below for the reason given, keeping what still holds. Tasks done keep their "
        "entries exactly; new work goes in new tasks.",
        "",
        "### Why the plan changes",
        reason.strip()
        or "(no reason given: bring the wave up to date with the repository and the waves before it)",
        "",
        f"### The wave as it stands ({spec.SPECS_DIR}/wave-{n}.json)",
        "```json",
        orjson.dumps(architect_view(value), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode(),
        "```",
        "",
        "### Progress so far",
        *_progress_lines(status),
    ]
    if closed:
        lines += ["", "### Closed waves (done; never changed)"]
        lines += [
            f"- wave {w}: {clip(title, 200)}" + (f" — {clip(s, 400)}" if s else "") for w, title, s in closed
        ]
    if replanned:
        lines += ["", "### Waves replanned before this one (as now proposed)"]
        for other in replanned:
            ids = ", ".join(str(t.get("id")) for t in other.get("tasks", ()))
            summary = f" — {clip(str(other['summary']), 400)}" if other.get("summary") else ""
            lines.append(f"- wave {other['wave']}: {clip(str(other['title']), 200)}{summary} (tasks: {ids})")
    return "\n".join(lines)


def _progress_lines(status: WaveStatus | None) -> list[str]:
    if status is None or not status.compiled:
        return ["The wave is not compiled yet: no task has started; any of them may change."]
    assert status.stage is not None
    lines = [f"The wave is at its `{status.stage.value}` stage. Its tasks in the graph:"]
    for row in status.tasks:
        if row.closure:
            continue
        said = "done: keep its entry exactly as it is" if row.status == DONE else row.status
        lines.append(f"- `{row.local}` ({row.id}): {said}")
    return lines


def lists_of(changes: Iterable[Change]) -> dict[str, list[str]]:
    """A compile's change list as the replan summary's task id lists."""
    out: dict[str, list[str]] = {name: [] for name in LISTS}
    for change in changes:
        out[change.kind.value].append(change.task_id)
    return out


def spec_lists(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[str]]:
    """The change lists of a wave never compiled: its tasks added, changed and removed in the spec,
    as the graph ids a compile would give them."""
    n = int(after["wave"])
    old = {item["id"]: item for item in before.get("tasks", ())}
    new = {item["id"]: item for item in after.get("tasks", ())}
    return {
        "added": [task_id(n, t) for t in new if t not in old],
        "updated": [task_id(n, t) for t in new if t in old and new[t] != old[t]],
        "abandoned": [task_id(n, t) for t in old if t not in new],
        "kept": [],
    }


# --- the record ------------------------------------------------------------------------------------
def words(result: Replan) -> str:
    """The record's summary line: what happened, and the counts per changed wave."""
    changed = [d for d in result.waves if d.changed]
    counts = "; ".join(
        f"wave {d.wave}: " + (", ".join(f"{len(d.lists[k])} {k}" for k in LISTS if d.lists[k]) or "spec only")
        for d in changed
    )
    name = f"Replan {result.proposal}" if result.proposal is not None else "Replan"
    head = f"{name} from wave {result.from_wave}"
    said = {
        State.APPLIED: f"{head} approved by {result.by} and applied" if result.by else f"{head} applied",
        State.PROPOSED: f"{head} waits for approval",
        State.UNCHANGED: f"{head}: every wave kept as it was",
        State.REJECTED: f"{head} rejected by {result.by}",
    }.get(result.state, f"{head}: {result.state.value}")
    said += f" ({counts})" if counts else ""
    if result.state is State.PROPOSED:
        said += f": `speedrift plan approve-replan {result.proposal}` applies it"
    return said


def detail_text(result: Replan) -> str:
    lines = [f"Reason: {result.reason or '(none given)'}"]
    if result.closed:
        lines.append("Closed waves, left as they are: " + ", ".join(map(str, result.closed)))
    for d in result.waves:
        if not d.changed:
            lines.append(f"wave {d.wave}: unchanged")
            continue
        lines.append(f"wave {d.wave} ({d.mode.value}):")
        lines += [f"  {k}: {', '.join(d.lists[k])}" for k in LISTS if d.lists[k]]
    return "\n".join(lines)


def record_data(result: Replan) -> dict[str, Any]:
    data: dict[str, Any] = {"source": SOURCE, "replan": result.summary()}
    if len(orjson.dumps(data)) > MAX_DATA_BYTES:  # hundreds of tasks: the lists in the detail only
        for entry in data["replan"]["waves"].values():
            for name in LISTS:
                entry[name] = entry[name][:50]
        data["clipped"] = True
    return data
