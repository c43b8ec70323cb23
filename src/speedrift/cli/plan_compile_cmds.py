"""`speedrift plan compile WAVE [--dry-run] [--json]` and `speedrift plan status [WAVE] [--json]`
(also bare `speedrift plan`).

compile: the wave's tasks and closure tasks written into the graph (plans/compiler.py); exit 0
when compiled (or, with --dry-run, compiled on paper), 1 when lint found problems in the spec —
every finding printed, nothing written — or the compile was refused (named, with the fix).
status: every wave's stage, tasks, what holds them and the spec's drift (plans/status.py); exit 0.
"""

from __future__ import annotations

from argparse import Namespace

from speedrift.cli.base import actor_name, store
from speedrift.cli.output import emit_json, printable, say, table
from speedrift.coord.records import Actor, Author
from speedrift.errors import UsageError
from speedrift.plans.compile import ChangeKind
from speedrift.plans.compiler import CompileResult, LintFindings, compile_plan
from speedrift.plans.status import WaveStatus, statuses
from speedrift.times import now_utc


def wave_number(text: str) -> int:
    """A WAVE argument: a wave number (``5``, or ``wave-5``)."""
    raw = text.strip().removeprefix("wave-")
    if not raw.isdigit():
        raise UsageError(f"{text!r} is not a wave number", hint="give the n of wave-<n>, e.g. 5")
    return int(raw)


def plan_compile(args: Namespace) -> int:
    graph_store = store(args)
    repo = graph_store.directory.parent
    wave = wave_number(args.wave)
    author = Author(Actor.HUMAN, name=actor_name())
    try:
        done = compile_plan(repo, graph_store, wave, author=author, dry_run=args.dry_run)
    except LintFindings as refused:
        if not args.as_json:
            raise
        found = [finding.as_dict() for finding in refused.findings]
        emit_json({"wave": wave, "compiled": False, "findings": found})
        return 1
    if args.as_json:
        emit_json({**done.as_dict(), "compiled": True})
    else:
        _show_compile(done)
    return 0


def _show_compile(done: CompileResult) -> None:
    compiled = done.compiled
    counts = compiled.as_dict()["counts"]
    tail = " (--dry-run: nothing written)" if done.dry_run else ""
    if not compiled.changes:
        say(f"Wave {compiled.wave} is compiled: nothing to change ({len(compiled.task_ids)} tasks){tail}")
        return
    said = ", ".join(f"{counts[kind.value]} {kind.value}" for kind in ChangeKind if counts[kind.value])
    verb = "would change" if done.dry_run else "compiled"
    say(f"Wave {compiled.wave} {verb}: {said}; {len(compiled.unchanged)} unchanged{tail}")
    rows = [
        (
            change.task_id,
            f"kept: {change.status}" if change.kind is ChangeKind.KEPT else change.kind.value,
            change.reason,
        )
        for change in compiled.changes
    ]
    table(None, ["task", "change", "reason"], rows)
    for warning in compiled.mutation.warnings:
        say(f"warning: {printable(warning)}")
    if done.record:
        say(f"Recorded as {done.record} (`speedrift board wave-{compiled.wave}`)")


def plan_status(args: Namespace) -> int:
    graph_store = store(args)
    repo = graph_store.directory.parent
    raw = getattr(args, "wave", None)
    wave = wave_number(raw) if raw is not None else None
    found = statuses(repo, graph_store, wave, now=now_utc())
    if args.as_json:
        emit_json({"waves": [status.as_dict() for status in found]})
        return 0
    if not found:
        say("No waves: write one with `speedrift plan draft`, or `speedrift plan import WAVE.md`")
        return 0
    for index, status in enumerate(found):
        if index:
            say("")
        _show_status(status)
    return 0


def _show_status(status: WaveStatus) -> None:
    title = f" — {status.title}" if status.title else ""
    stage = status.stage.value if status.stage is not None else "not compiled"
    say(f"Wave {status.wave}{title}: {stage}")
    if status.spec_problem:
        say(f"  spec: {printable(status.spec_problem)}")
    if status.compiled and status.drift:
        if status.recompile:
            say(f"  the spec changed since it was compiled; `speedrift plan compile {status.wave}` would:")
        else:
            say("  the spec changed for tasks that are no longer open (compile keeps them as they are):")
        for change in status.drift:
            say(f"    {printable(str(change))}")
    if not status.tasks:
        return
    if any(row.assigned for row in status.tasks):
        rows = [(row.id, row.role, row.status, row.assigned or "", row.holds) for row in status.tasks]
        table(None, ["task", "role", "status", "assigned", "holds"], rows)
    else:
        table(
            None,
            ["task", "role", "status", "holds"],
            [(r.id, r.role, r.status, r.holds) for r in status.tasks],
        )
