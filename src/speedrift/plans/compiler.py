"""`speedrift plan compile WAVE`, the edge of plans/compile.py: read the wave's spec, refuse it while
lint finds anything, write the change through the one graph writer, and record what changed.

The compile runs inside the graph's write transaction (``GraphStore.mutate``), against the graph as
re-read under the lock, so a task claimed a moment earlier is seen as claimed, never edited. The
change list (added, updated, kept, abandoned, each with its reason) is posted as one ``decision``
record in the coordination scope ``wave-<n>``, targeting the tasks it names, so a developer at
work on a task the spec changed under it reads it in its inbox.

Invariants: a spec with a lint finding never reaches the graph (every finding is listed); the graph
changes in one mutation or not at all; a dry run writes nothing and posts nothing; a compile that
writes nothing posts nothing, unless it reports kept tasks the wave's last decision (for another
spec) did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from speedrift.coord.records import (
    MAX_DATA_BYTES,
    MAX_DETAIL,
    MAX_LIST,
    MAX_SUMMARY,
    Author,
    Draft,
    Kind,
    Status,
)
from speedrift.coord.store import CoordStore
from speedrift.errors import Refused
from speedrift.graph.codec import Graph
from speedrift.graph.store import GraphStore
from speedrift.plans import lint, spec
from speedrift.plans.compile import ChangeKind, Compiled, compile_wave
from speedrift.textclip import clip, cut_middle
from speedrift.times import now_utc

DECISION_SOURCE = "plan_compile"  # data.source of the decision records a compile posts
MAX_SHOWN_FINDINGS = 50


class LintFindings(Refused):
    """The wave's spec has lint findings: nothing is compiled. ``findings``: every one of them."""

    def __init__(self, wave: spec.WaveKey, findings: list[lint.Finding]) -> None:
        shown = "\n".join(f"  {finding}" for finding in findings[:MAX_SHOWN_FINDINGS])
        more = len(findings) - MAX_SHOWN_FINDINGS
        tail = f"\n  … and {more} more" if more > 0 else ""
        super().__init__(
            f"{spec.label(wave)} is not compiled: lint found {len(findings)} problem(s)\n{shown}{tail}",
            hint="fix them, then compile again "
            f"(`speedrift plan lint {spec.spec_path(Path(), wave).as_posix()}`)",
        )
        self.wave = wave
        self.findings = findings


@dataclass
class CompileResult:
    compiled: Compiled
    dry_run: bool
    record: str | None = None  # the decision record's id, when one was posted

    def as_dict(self) -> dict[str, Any]:
        return {**self.compiled.as_dict(), "dry_run": self.dry_run, "record": self.record}


def checked_spec(repo: Path, wave: spec.WaveKey) -> dict[str, Any]:
    """Wave ``wave``'s spec, read and linted against ``repo``'s facts; LintFindings when lint found
    anything, NotFound when there is no spec."""
    path = spec.spec_path(repo, wave)
    value = spec.read(path)  # NotFound, or InvalidValue naming the file, before lint reads it
    findings = lint.lint_file(repo, path)
    if findings:
        raise LintFindings(wave, findings)
    return value


def compile_plan(
    repo: Path,
    store: GraphStore,
    wave: spec.WaveKey,
    *,
    author: Author,
    dry_run: bool = False,
    now: datetime | None = None,
) -> CompileResult:
    """Compile wave ``wave`` of ``repo`` into ``store``'s graph (see the module docstring).
    ``author``: who compiled, as the decision record and the task logs name them."""
    value = checked_spec(repo, wave)
    actor = author.name or author.actor.value
    if dry_run:
        compiled = compile_wave(store.load(), value, now=now or now_utc(), actor=actor)
        return CompileResult(compiled, dry_run=True)
    held: list[Compiled] = []

    def build(graph: Graph, at: datetime) -> Any:
        held.append(compile_wave(graph, value, now=at, actor=actor))
        return held[-1].mutation

    store.mutate(build, actor=actor, now=now)
    compiled = held[-1]
    record = None
    if compiled.writes or (compiled.changes and not _reported(repo, compiled)):
        record = post_changes(repo, compiled, author, now=now)
    return CompileResult(compiled, dry_run=False, record=record)


def _reported(repo: Path, compiled: Compiled) -> bool:
    """Whether the wave's last compile decision already reported this spec (a compile again that
    only finds the same tasks kept posts nothing new)."""
    coord = CoordStore.for_scope(repo, spec.scope_of(compiled.wave))
    if not coord.path.exists():
        return False
    mine = [r for r in coord.read().records.values() if r.data.get("source") == DECISION_SOURCE]
    return bool(mine) and max(mine, key=lambda r: r.seq).data.get("spec_hash") == compiled.spec_hash


def post_changes(repo: Path, compiled: Compiled, author: Author, *, now: datetime | None = None) -> str:
    """Post the change list as one resolved ``decision`` record in scope ``wave-<n>``; its id."""
    counts = compiled.as_dict()["counts"]
    said = ", ".join(f"{counts[kind.value]} {kind.value}" for kind in ChangeKind if counts[kind.value])
    summary = f"{spec.label(compiled.wave, capital=True)} compiled from its spec ({said})"
    changes = [change.as_dict() for change in compiled.changes]
    data: dict[str, Any] = {
        "source": DECISION_SOURCE,
        "wave": compiled.wave,
        "spec_hash": compiled.spec_hash,
        "changes": changes,
    }
    while len(orjson.dumps(data)) > MAX_DATA_BYTES and data["changes"]:
        data["changes"] = data["changes"][: len(data["changes"]) // 2]
        data["clipped"] = len(changes)
    draft = Draft(
        kind=Kind.DECISION,
        summary=clip(summary, MAX_SUMMARY),
        author=author,
        status=Status.RESOLVED,  # it happened: a record of the change, not a question
        detail=cut_middle("\n".join(str(change) for change in compiled.changes), MAX_DETAIL),
        targets=tuple(dict.fromkeys(f"task:{change.task_id}" for change in compiled.changes))[:MAX_LIST],
        data=data,
    )
    return CoordStore.for_scope(repo, spec.scope_of(compiled.wave)).post(draft, now=now).id
