"""``speedrift plan run WAVE`` and ``speedrift plan approve TASK``.

``run`` carries a compiled wave to its closure in the foreground (plans/run.py), printing each
step; SIGINT/SIGTERM stop it cleanly (running attempts are cancelled and reopened, as a service's
are). Exit 0 when the wave closed, 1 when it is held (the reasons and open gaps are printed, and
posted as blockers), 2 when it cannot run (lint findings, not compiled).

``approve`` records a person's approval at a task's checkpoint (fleet/approval.py): its merge,
when an attempt waits merge-pending for it (then lands it at once, gated again, unless
``--no-land``), or its start (a deploy task of an oversight wave).
"""

from __future__ import annotations

import getpass
import os
import sys
import threading
from argparse import Namespace

from speedrift.cli.output import emit_json, say
from speedrift.cli.worker_cmds import cancel_on_signals, peer_repos, pipeline_executor, repo_context
from speedrift.fleet import approval
from speedrift.fleet.pipeline import Pipeline
from speedrift.plans.run import WaveRun


def _pipeline(args: Namespace) -> Pipeline:
    from speedrift.fleet.lanegate import suite_for

    repo, graph_store, config = repo_context(args)
    gates = suite_for(repo, graph_store, config)
    return Pipeline(
        repo, graph_store, config, gates=gates, peer_repos=peer_repos(args), executor=pipeline_executor(args)
    )


def plan_run(args: Namespace) -> int:
    pipeline = _pipeline(args)
    stop = threading.Event()

    def show(line: str) -> None:
        sys.stderr.write(f"  {line}\n")
        sys.stderr.flush()

    with cancel_on_signals(stop):
        run = WaveRun(pipeline, args.wave, say=show, stop=stop)
        report = run.run()
    if args.as_json:
        emit_json(report.as_dict())
        return 0 if report.closed else 1
    decision = report.decision
    if report.closed:
        say(f"wave {args.wave}: closed")
    else:
        phase = decision.phase.value if decision else "implementation"
        say(f"wave {args.wave}: held at {phase}")
        for reason in report.held:
            say(f"  - {reason}")
        for gap in decision.open_gaps if decision else ():
            say(f"  gap ({gap.kind.value}, from {gap.stage.value}): {gap.summary}")
    if report.bundle is not None:
        say(f"trace bundle: {report.bundle} (`speedrift replay` re-derives it)")
    return 0 if report.closed else 1


def plan_approve(args: Namespace) -> int:
    pipeline = _pipeline(args)
    by = args.actor or os.environ.get("WG_AGENT_ID") or getpass.getuser()
    approved = approval.record(pipeline.store, args.task, by=by)
    result = None
    if approved.checkpoint is approval.Checkpoint.MERGE and not args.no_land:
        result = pipeline.resume_landing(args.task)
    if args.as_json:
        landing = None if result is None else {"status": result.status, "reason": result.reason}
        emit_json({**approved.as_dict(), "landing": landing})
        return 0 if result is None or result.status == "done" else 1
    said = f" attempt {approved.attempt}" if approved.attempt is not None else ""
    say(f"{args.task}: approved to {approved.checkpoint.value}{said} by {by}")
    if result is not None:
        say(f"{args.task}: {result.status}: {result.reason}")
        return 0 if result.status == "done" else 1
    return 0
