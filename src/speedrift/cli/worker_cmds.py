"""Worker-plane commands: run one attempt, watch and cancel attempts, manage worktrees."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from argparse import Namespace
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speedrift import layout, records
from speedrift.agents.protocol import CANCELLED
from speedrift.cli.base import store
from speedrift.cli.output import emit_json, printable, row_limit, say, table
from speedrift.errors import NotFound, Refused
from speedrift.fleet import attempts
from speedrift.fleet.config import RepoConfig, load_config
from speedrift.graph.store import GraphStore
from speedrift.procs import make_non_dumpable, record_alive
from speedrift.records import AttemptState
from speedrift.repo import worktree_gc, worktrees
from speedrift.times import now_utc

if TYPE_CHECKING:
    from speedrift.fleet.remote.executor import Executor


def repo_context(args: Namespace) -> tuple[Path, GraphStore, RepoConfig]:
    graph_store = store(args)
    repo = graph_store.directory.parent
    return repo, graph_store, load_config(repo)


def peer_repos(args: Namespace) -> dict[str, Path] | None:
    """The named ecosystem's repos (``--ecosystem`` or ``$SPEEDRIFT_ECOSYSTEM``), against which the
    pipeline resolves ``after`` entries REPO:TASK; None when no ecosystem is named."""
    from speedrift.control.ecosystem.peers import named_ecosystem, repo_paths

    ecosystem = named_ecosystem(getattr(args, "ecosystem", None), Path.cwd())
    return repo_paths(ecosystem) if ecosystem is not None else None


def pipeline_executor(args: Namespace) -> Executor:
    """Where the pipeline's attempts develop (fleet/remote/executor.py): the named ecosystem's
    ``[executor]`` (``--ecosystem`` or ``$SPEEDRIFT_ECOSYSTEM``) with ``$SPEEDRIFT_EXECUTOR`` and
    ``$SPEEDRIFT_DASK_SCHEDULER`` applied (the hub hands both to what it starts); local by default."""
    from speedrift.control.ecosystem.load import load_ecosystem
    from speedrift.control.ecosystem.peers import named_ecosystem
    from speedrift.fleet.remote.config import resolve
    from speedrift.fleet.remote.executor import executor_for

    ecosystem = named_ecosystem(getattr(args, "ecosystem", None), Path.cwd())
    base = load_ecosystem(ecosystem).executor if ecosystem is not None else None
    return executor_for(resolve(os.environ, base, where=str(ecosystem or "")))


def _show_event(event: Any) -> None:
    kind = getattr(event, "kind", "")
    text = getattr(event, "text", "")
    if text:
        sys.stderr.write(f"  [{kind}] {printable(str(text))[:300]}\n")
        sys.stderr.flush()


def run(args: Namespace) -> int:
    from speedrift.fleet.lanegate import suite_for
    from speedrift.fleet.pipeline import Pipeline, RunOptions

    make_non_dumpable()  # it holds the secrets it hands to the agent: no one else reads them
    repo, graph_store, config = repo_context(args)
    gates = suite_for(repo, graph_store, config)
    pipeline = Pipeline(
        repo, graph_store, config, gates=gates, peer_repos=peer_repos(args), executor=pipeline_executor(args)
    )
    if getattr(args, "hub", False):
        from speedrift.control.authority import hub_admission

        allowed, reason = hub_admission(repo)()  # right before the claim; fail-closed
        if not allowed:
            raise Refused(
                f"not claiming {args.task_id}: paused: {reason}",
                hint="the hub acts only under a live lease (`speedrift mode`); run it without --hub yourself",
            )

    def step(message: str) -> None:
        sys.stderr.write(f"speedrift: {printable(message)}\n")
        sys.stderr.flush()

    from speedrift.fleet.crash_recovery import recover

    # before claiming: settle what a crash left (a landing whose work is on the target is recorded
    # done, never run again); a landing in progress elsewhere is not waited for
    for note in recover(repo, graph_store, wait=False):
        step(f"recovery: {note}")
    slot = _admit(repo, graph_store, config, args.task_id)  # the machine-wide limits, before the claim
    cancel = threading.Event()
    try:
        with cancel_on_signals(cancel) as received:
            result = pipeline.run(
                args.task_id,
                RunOptions(
                    force=args.force,
                    cancel=cancel,
                    on_step=step,
                    on_event=None if args.quiet else _show_event,
                    on_claimed=lambda n: slot.note(attempt=n) if slot is not None else None,
                ),
            )
    finally:
        if slot is not None:
            slot.release()
    interrupted = _release_if_interrupted(graph_store, result, received)
    after = _after(repo, result, interrupted)
    if args.as_json:
        emit_json({**asdict(result), **after})
    else:
        state = status_text(result.status, result.evidence)
        say(
            f"{printable(result.task_id)} attempt {result.attempt}: {state} — {printable(str(result.reason))}"
        )
        for line in gate_lines(result.status, result.evidence):
            say(line)
        if result.failure:
            say(f"failure class: {result.failure}")
        for line in after.get("lines", []):
            say(line)
        if result.run_dir:
            say(f"run record: {result.run_dir}")
    return 0 if result.status == "done" else 1


LIMIT_HINTS = {
    "repo": "wait for one of the repo's attempts to end (`speedrift agents`), or raise [service] max_agents "
    "in speedrift.toml",
    "runtime": "wait for an attempt of that runtime to end, or raise its cap in speedrift.toml's [limits]",
    "ecosystem": "wait for an attempt to end, or raise [policy] max_agents in ecosystem.toml",
}


def _admit(repo: Path, graph_store: GraphStore, config: RepoConfig, task_id: str) -> Any:
    """Admission (fleet/supervisor.py): take over the slot the hub admitted for this worker
    (``$SPEEDRIFT_SLOT``), or be admitted now; refused with the limit that holds it. None for a task
    that is not in the graph (the pipeline says so)."""
    from speedrift.agents import choose
    from speedrift.fleet import supervisor

    task = graph_store.load().get(task_id)
    if task is None:
        return None
    runtime, _model = choose.select_runtime(task, config.default_runtime)
    handed = os.environ.get(supervisor.SLOT_ENV)
    if handed:
        slot = supervisor.adopt(handed, repo, task_id)
        if slot is not None:
            return slot
    decision = supervisor.admit(repo, task_id, runtime, supervisor.Limits.for_attempt(config, runtime))
    if decision.slot is None:
        raise Refused(
            f"not starting {task_id}: {decision.reason}", hint=LIMIT_HINTS.get(decision.limit or "")
        )
    return decision.slot


@contextlib.contextmanager
def cancel_on_signals(cancel: threading.Event) -> Iterator[list[int]]:
    """SIGTERM or SIGINT end the attempt properly: the session ends the agent's process group and the
    attempt is recorded as cancelled (a step that is not the agent — gates, the merge queue — runs to
    its end first). A second signal interrupts at once; the pipeline still releases the claim."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _release_if_interrupted(graph_store: GraphStore, result: Any, received: list[int]) -> str | None:
    """An attempt cut off by a signal is not the task's fault: its claim goes straight back (the task
    is open again, the failure kept in its history). Returns the signal's name."""
    if not received or result.status != "failed" or result.reason != CANCELLED:
        return None
    from speedrift.fleet import aftercare

    name = signal.Signals(received[0]).name
    aftercare.reopen_interrupted(graph_store, result.task_id, f"interrupted by {name}")
    return name


def _after(repo: Path, result: Any, interrupted: str | None) -> dict[str, Any]:
    """What happens next to a failed attempt's task, and who does it: lines for people, fields for
    ``--json``."""
    if interrupted:
        text = f"interrupted by {interrupted}: the agent's process group was ended and the task is open again"
        return {"interrupted": interrupted, "lines": [text]}
    if result.status != "failed" or not result.recovery:
        return {}
    from speedrift.control.authority import recovery_executor
    from speedrift.fleet.recovery import Decision

    decision = Decision.from_dict(result.recovery)
    of = f"attempt {decision.attempt} of {decision.max_attempts}"
    if decision.automatic:
        kind, who = recovery_executor(repo, result.task_id)
        delay = f", after {decision.delay_seconds:g}s" if decision.delay_seconds else ""
        lines = [f"recovery: {decision.recovery} (automatic, {of}{delay})", f"carried out by: {who}"]
    elif decision.recovery in ("split_task", "replan"):
        kind, who = "speedrift", "speedrift, already (see the task's log)"
        lines = [f"recovery: {decision.recovery} ({decision.note or of})", f"carried out by: {who}"]
    else:
        kind, who = "human", "a human"
        lines = [f"recovery: {decision.recovery} — {decision.question or decision.note or ''}".rstrip(" —")]
        lines.append(f"carried out by: {who}")
    return {
        "next": {"recovery": decision.recovery, "automatic": decision.automatic, "by": kind, "who": who},
        "lines": lines,
    }


GATE_WORDS = {"pass": "passed", "fail": "failed", "warn": "warning", "skipped": "skipped"}
GATE_REASON_LIMIT = 240  # a terminal line or two; textclip keeps the hint at the end whole


def status_text(status: str, evidence: Mapping[str, Any]) -> str:
    """ "done", or "done (unverified)" when it landed without its tests having run."""
    return f"{status} (unverified)" if status == "done" and evidence.get("verified") is False else status


def gate_lines(status: str, evidence: Mapping[str, Any]) -> list[str]:
    """One line per gate of the last check (the tip that landed, or the one that was blocked),
    e.g. ``  tests     failed   1 regression(s) (2 failed, 5 passed): … (pytest)``; then why a
    landed attempt is unverified."""
    from speedrift.textclip import clip

    verdicts = [v for v in evidence.get("gates") or [] if isinstance(v, Mapping)]
    lines: list[str] = []
    if not verdicts:
        done = status == "done"
        lines.append(f"gates: not run ({'no changes to check' if done else 'the attempt ended before them'})")
    elif not isinstance(verdicts[-1].get("results"), list):
        lines.append(f"gates: {verdicts[-1].get('summary') or 'none configured'}")
    else:
        last = verdicts[-1]
        checked = f" (checked {len(verdicts)} times; the last shown)" if len(verdicts) > 1 else ""
        lines.append(f"gates on {str(last.get('commit') or last.get('tip') or '')[:12]}{checked}:")
        lines += [_gate_line(item) for item in last["results"] if isinstance(item, Mapping)]
    if status == "done" and evidence.get("verified") is False:
        why = str(evidence.get("unverified_reason") or "the tests did not run")
        lines.append(f"unverified: {clip(printable(why), GATE_REASON_LIMIT)}")
    return lines


def _gate_line(item: Mapping[str, Any]) -> str:
    from speedrift.gates.testrun import label_of
    from speedrift.textclip import clip

    gate, outcome = str(item.get("gate", "?")), str(item.get("status", "?"))
    word = GATE_WORDS.get(outcome, outcome)
    if item.get("required") and outcome != "pass":
        word += " (required)"
    line = f"  {gate:9} {word:8} {clip(printable(str(item.get('reason') or '')), GATE_REASON_LIMIT)}"
    command = item.get("command")
    if gate == "tests" and isinstance(command, list) and command:
        line += f" ({label_of([str(part) for part in command])})"
    return line


def running_rows(repo: Path, graph_store: GraphStore) -> list[dict[str, Any]]:
    """The attempts running in ``repo``, each with its ``task`` (the id, not the run folder's safe
    name), ``pid``: the agent's own process (its group leader, ``agent_pgid``; None until the agent
    started or once it is gone) and ``worker_pid``: the process running the attempt (a service
    runs several). ``attempt.json``'s other keys are kept as they are."""
    found = [r for r in attempts.running(repo) if record_alive(r)]  # the worker: pid + start time
    found.sort(key=lambda r: str(r.get("started", "")))
    folders = {Path(r["run_dir"]).parent.name for r in found}
    ids = {layout.safe_name(t): t for t in graph_store.load().tasks} if folders else {}
    rows: list[dict[str, Any]] = []
    for record in found:
        folder = Path(record["run_dir"]).parent.name
        agent = record.get("agent_pgid") if record_alive(record, "agent_pgid", "agent_start") else None
        rows.append(
            {
                **record,
                "task": ids.get(folder, folder),
                "pid": agent,
                "agent_pgid": record.get("agent_pgid"),
                "worker_pid": record.get("pid"),
            }
        )
    return rows


def agents(args: Namespace) -> None:
    repo, graph_store, _config = repo_context(args)
    rows = running_rows(repo, graph_store)
    if args.as_json:
        emit_json(rows)
        return
    if not rows:
        say("No attempts are running.")
        return
    table(
        "Running attempts",
        ["task", "attempt", "runtime", "agent pid", "worker pid", "started"],
        [
            (r["task"], r["attempt"], r.get("runtime"), r["pid"] or "-", r["worker_pid"], r.get("started"))
            for r in rows
        ],
    )


def _attempt_dir(repo: Path, task_id: str, attempt: int | None) -> Path:
    folder = (
        layout.attempt_dir(repo, task_id, attempt)
        if attempt is not None
        else attempts.latest_attempt_dir(repo, task_id)
    )
    if folder is None or not folder.is_dir():
        raise NotFound(f"no attempt of {task_id!r} has run here", hint="`speedrift run ID` starts one")
    return folder


def _attempt_state(folder: Path) -> AttemptState | None:
    record = records.read_attempt(folder)
    return record.state if record else None


def cancel(args: Namespace) -> int:
    repo, _store, _config = repo_context(args)
    folder = _attempt_dir(repo, args.task_id, None)
    record = records.read_attempt(folder) or records.AttemptRecord({})
    if record.state is not AttemptState.RUNNING or not record_alive(record.raw):
        raise Refused(f"no running attempt of {args.task_id!r} (latest is {record.state_text})")
    attempts.request_cancel(folder)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if _attempt_state(folder) is not AttemptState.RUNNING:
            say(f"Cancelled {args.task_id} attempt {folder.name}; its worktree is kept.")
            return 0
        time.sleep(0.2)
    say(f"Cancel requested for {args.task_id}; the attempt has not stopped yet.")
    return 1


def worktrees_list(args: Namespace) -> None:
    rows = _inspect_all(args)
    if args.as_json:
        emit_json([r.to_dict() for r in rows])
        return
    limit = row_limit(args)
    table(
        "Speedrift worktrees",
        ["worktree", "task", "state", "verdict", "reason"],
        [(r.manifest.name, r.manifest.task_id, r.manifest.state, r.verdict, r.reason) for r in rows],
        limit=limit,
    )


def _inspect_all(args: Namespace) -> list[worktrees.WorktreeStatus]:
    """Every worktree with the verdict GC acts on (repo/worktrees.py inspect, then
    repo/worktree_gc.py judge: superseded attempts, secret-bearing quarantines past retention)."""
    repo, graph_store, config = repo_context(args)
    graph = graph_store.load()
    now = now_utc()
    landed: dict[str, dict[int, str]] = {}
    rows: list[worktrees.WorktreeStatus] = []
    for manifest in worktrees.read_manifests(repo):
        status = (graph.tasks.get(manifest.task_id) or {}).get("status")
        if manifest.task_id not in landed:
            landed[manifest.task_id] = worktree_gc.landed_attempts(repo, manifest.task_id)
        row = worktrees.inspect(repo, manifest, status)
        rows.append(
            worktree_gc.judge(
                repo,
                row,
                status,
                landed[manifest.task_id],
                now,
                config.worktrees.retention,
                config.worktrees.quarantine_retention,
            )
        )
    return rows


def worktrees_gc(args: Namespace) -> None:
    """Remove what GC may remove, scrub secret-bearing quarantines past their retention, keep and
    say why for the rest. Run by hand (or from cron): neither the hub nor the service runs it."""
    repo, _store, _config = repo_context(args)
    rows = _inspect_all(args)
    removed: list[str] = []
    scrubbed: list[str] = []
    kept: list[dict[str, str]] = []
    reasons: dict[str, str] = {}
    for row in rows:
        name = row.manifest.name
        if row.verdict == "remove":
            if not args.dry_run:
                worktrees.remove(repo, row)
            removed.append(name)
            reasons[name] = row.reason
        elif row.verdict == worktree_gc.SCRUB:
            if not args.dry_run:
                worktree_gc.scrub(repo, row, now_utc())
            scrubbed.append(name)
            reasons[name] = row.reason
        else:
            kept.append({"worktree": name, "reason": row.reason})
    if args.as_json:
        emit_json(
            {
                "dry_run": args.dry_run,
                "removed": removed,
                "scrubbed": scrubbed,
                "reasons": reasons,
                "kept": kept,
            }
        )
        return
    verb = "Would remove" if args.dry_run else "Removed"
    say(f"{verb} {len(removed)} worktree(s){': ' + ', '.join(removed) if removed else ''}")
    for name in removed:
        say(f"  {name}: {printable(reasons[name])}")
    if scrubbed:
        verb = "Would scrub" if args.dry_run else "Scrubbed"
        say(
            f"{verb} {len(scrubbed)} quarantined secret leak(s) past the retention "
            "(files and branch deleted, record kept):"
        )
        for name in scrubbed:
            say(f"  {name}: {printable(reasons[name])}")
        say("  the blocked commits are unreachable now: `git gc --prune=now` deletes them from .git/objects")
    for item in kept:
        say(f"kept {item['worktree']}: {printable(item['reason'])}")


def worktrees_quarantine(args: Namespace) -> None:
    repo, _store, _config = repo_context(args)
    for manifest in worktrees.read_manifests(repo):
        if manifest.name == args.name:
            destination = worktrees.quarantine(repo, manifest)
            say(f"Quarantined {args.name} to {destination} (work intact)")
            return
    raise NotFound(f"no speedrift worktree named {args.name!r}", hint="`speedrift worktrees list`")
