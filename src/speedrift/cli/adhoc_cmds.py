"""``speedrift adhoc run --task "…" [--template PACK] [--mode M] [--max-rounds K] [--json]``,
``speedrift adhoc resume RUN``, ``speedrift adhoc list`` and ``speedrift adhoc show RUN``.

``run``: one transient wave for the task (plans/adhoc.py does the work) — drafted by the Wave
Architect and the Plan Verifier, linted, compiled, run through `plan run`'s loop to its closure —
in the foreground, each step on stderr; SIGINT/SIGTERM stop it cleanly (the run is left ``held``,
and ``resume`` carries it on). Exit 0 when the wave closed; 1 when it is held, was not verified
(nothing compiled), or a step failed (the error names the fix). ``resume`` runs a compiled run again
(after `speedrift plan approve` in oversight mode, or a stop). ``list`` and ``show`` read the runs'
state and the graph. The repository is the graph's (cli/worker_cmds.py ``repo_context``).
"""

from __future__ import annotations

import sys
import threading
from argparse import Namespace
from typing import Any

from speedrift.cli.output import emit_json, printable, say, table
from speedrift.cli.worker_cmds import cancel_on_signals, peer_repos, pipeline_executor, repo_context
from speedrift.fleet.pipeline import Pipeline
from speedrift.plans import adhoc
from speedrift.plans.draft import DEFAULT_MAX_ROUNDS
from speedrift.plans.spec import Mode
from speedrift.procs import make_non_dumpable
from speedrift.textclip import clip
from speedrift.times import now_utc


def _pipeline(args: Namespace) -> Pipeline:
    from speedrift.fleet.lanegate import suite_for

    repo, graph_store, config = repo_context(args)
    gates = suite_for(repo, graph_store, config)
    return Pipeline(
        repo, graph_store, config, gates=gates, peer_repos=peer_repos(args), executor=pipeline_executor(args)
    )


def _progress(line: str) -> None:
    sys.stderr.write(f"speedrift: {printable(line)}\n")
    sys.stderr.flush()


def adhoc_run(args: Namespace) -> int:
    make_non_dumpable()  # it holds the secrets it hands to the agents: no one else reads them
    pipeline = _pipeline(args)
    request = adhoc.Request(
        args.task,
        template=args.template,
        mode=Mode(args.mode) if args.mode else None,
        max_rounds=args.max_rounds or DEFAULT_MAX_ROUNDS,
    )
    stop = threading.Event()
    with cancel_on_signals(stop):
        run = adhoc.Runner(pipeline, say=_progress, stop=stop).start(request)
    return _ended(run, args.as_json)


def adhoc_resume(args: Namespace) -> int:
    make_non_dumpable()
    pipeline = _pipeline(args)
    run_id = adhoc.resolve(pipeline.repo, args.run)
    stop = threading.Event()
    with cancel_on_signals(stop):
        run = adhoc.Runner(pipeline, say=_progress, stop=stop).resume(run_id)
    return _ended(run, args.as_json)


def _ended(run: adhoc.AdhocRun, as_json: bool) -> int:
    closed = run.state is adhoc.State.CLOSED
    if as_json:
        emit_json(run.as_dict())
        return 0 if closed else 1
    phase = (run.decision or {}).get("phase")
    where = f" at {phase}" if phase and not closed else ""
    say(f"ad-hoc run {run.id}: {run.state.value}{where}")
    _reasons(run)
    if run.bundle:
        say(f"trace bundle: {printable(run.bundle)} (`speedrift replay` re-derives it)")
    say(f"`speedrift adhoc show {run.id}` shows it whole")
    return 0 if closed else 1


def _reasons(run: adhoc.AdhocRun) -> None:
    for reason in run.held:
        say(f"  - {printable(clip(reason, 500))}")
    for gap in (run.decision or {}).get("open_gaps", []):
        if isinstance(gap, dict):
            said = f"gap ({gap.get('kind')}, from {gap.get('stage')}): {gap.get('summary')}"
            say(f"  {printable(clip(said, 500))}")


def adhoc_list(args: Namespace) -> int:
    repo, graph_store, _config = repo_context(args)
    graph = graph_store.load()
    found = [adhoc.summary(graph, adhoc.load(repo, run_id)) for run_id in adhoc.run_ids(repo)]
    if args.as_json:
        emit_json({"runs": found})
        return 0
    if not found:
        say('No ad-hoc runs: start one with `speedrift adhoc run --task "…"`')
        return 0
    rows = [
        [item["run"], item["state"], _stage(item), _tasks(item), item["title"] or item["task"]]
        for item in found
    ]
    table(None, ["run", "state", "stage", "tasks", "what"], rows)
    return 0


def _stage(item: dict[str, Any]) -> str:
    return str(item["counts"]["stage"] or "-")


def _tasks(item: dict[str, Any]) -> str:
    counts = item["counts"]
    if not counts["tasks"]:
        return "-"
    done = counts["by_status"].get("done", 0)
    return f"{done}/{counts['tasks']} done"


def adhoc_show(args: Namespace) -> int:
    repo, graph_store, _config = repo_context(args)
    run = adhoc.load(repo, adhoc.resolve(repo, args.run))
    shown = adhoc.details(repo, graph_store, run, now=now_utc())
    if args.as_json:
        emit_json(shown)
        return 0
    title = f" — {printable(str(run.title))}" if run.title else ""
    say(f"Ad-hoc run {run.id}{title}: {run.state.value}")
    say(f"  task: {printable(clip(run.task, 300))}")
    say(f"  created {run.created}; mode {run.mode or '-'}; template {run.template or '-'}")
    say(f"  spec: {printable(shown['spec_file'])}" + ("" if shown["spec"] else " (not written)"))
    if run.draft_record:
        say(f"  draft record: {printable(run.draft_record)}")
    state = shown["status"]
    if state:
        say(f"  stage: {state['stage'] or 'not compiled'}")
        rows = [[t["id"], t["role"], t["status"], t["holds"] or "-"] for t in state["tasks"]]
        table(None, ["task", "role", "status", "holds"], rows)
    elif shown["spec"]:
        rows = [
            [t["id"], t["role"], ", ".join(t["after"]) or "-", ", ".join(t["owned"])]
            for t in shown["spec"]["tasks"]
        ]
        table(None, ["task", "role", "after", "owns"], rows)
    decision = run.decision or {}
    if decision:
        say(f"  closure: {decision.get('phase')}")
    _reasons(run)
    if run.bundle:
        say(f"  trace bundle: {printable(run.bundle)}")
    return 0
