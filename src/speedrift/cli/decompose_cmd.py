"""`speedrift decompose TASK [--dry-run] [--max-rounds N] [--json]`: split a task with the
Architect, checked by speedrift and the Plan Verifier, into subtasks written to the graph.

Exit 0: written (or, with --dry-run, verified). Exit 1: the split failed verification in every
round — a human decides (the human_escalation record is named; --dry-run posts none) — or a role
gave no valid output (nothing written). fleet/decompose.py does the work.
"""

from __future__ import annotations

from argparse import Namespace

from speedrift.cli.base import actor_name, store
from speedrift.cli.output import emit_json, printable, say, table
from speedrift.fleet.config import load_config
from speedrift.fleet.decompose import Decomposition, Outcome, findings_text
from speedrift.fleet.decompose import decompose as run_decompose


def decompose(args: Namespace) -> int:
    graph_store = store(args)
    repo = graph_store.directory.parent
    done = run_decompose(
        repo,
        graph_store,
        load_config(repo),
        args.task_id,
        actor=actor_name(),
        max_rounds=args.max_rounds,
        dry_run=args.dry_run,
    )
    if args.as_json:
        emit_json(done.as_dict())
    else:
        _show(done)
    return 0 if done.outcome in (Outcome.WRITTEN, Outcome.VERIFIED) else 1


def _show(done: Decomposition) -> None:
    task, rounds = printable(done.task_id), len(done.rounds)
    parts = ", ".join(printable(str(s.task_id)) for s in done.subtasks)
    if done.outcome is Outcome.WRITTEN:
        say(f"Decomposed {task} into {parts} (verified in {rounds} round(s)); {task} runs again after them")
    elif done.outcome is Outcome.VERIFIED:
        say(f"Verified split of {task} in {rounds} round(s) (--dry-run: nothing written)")
    if done.outcome in (Outcome.WRITTEN, Outcome.VERIFIED):
        rows = [
            [s.task_id, s.title, ", ".join(s.after) or "-", ", ".join(s.touch), s.model or "-"]
            for s in done.subtasks
        ]
        table(None, ["id", "title", "after", "scope", "model"], rows)
        return
    say(printable(findings_text(done.rounds[-1]), newlines=True))
    if done.outcome is Outcome.ESCALATED:
        say(
            f"The split of {task} failed verification in {rounds} round(s): a human decides — coordination "
            f"record {printable(str(done.escalation))} (`speedrift board`)"
        )
    else:
        say(f"The split of {task} failed verification in {rounds} round(s) (--dry-run: nothing posted)")
    say(f"record: {printable(str(done.record_dir))}")
