"""Worker-plane commands: run one attempt, watch and cancel attempts, manage worktrees."""

from __future__ import annotations

import sys
import time
from argparse import Namespace
from dataclasses import asdict
from pathlib import Path
from typing import Any

from speedrift import layout, records
from speedrift.cli.base import store
from speedrift.cli.output import emit_json, printable, say, table
from speedrift.errors import NotFound, Refused
from speedrift.fleet import attempts
from speedrift.fleet.config import RepoConfig, load_config
from speedrift.graph.store import GraphStore
from speedrift.procs import pid_alive
from speedrift.records import AttemptState
from speedrift.repo import worktrees


def repo_context(args: Namespace) -> tuple[Path, GraphStore, RepoConfig]:
    graph_store = store(args)
    repo = graph_store.directory.parent
    return repo, graph_store, load_config(repo)


def _show_event(event: Any) -> None:
    kind = getattr(event, "kind", "")
    text = getattr(event, "text", "")
    if text:
        sys.stderr.write(f"  [{kind}] {printable(str(text))[:300]}\n")
        sys.stderr.flush()


def run(args: Namespace) -> int:
    from speedrift.fleet.pipeline import Pipeline, RunOptions
    from speedrift.gates.suite import for_repo

    repo, graph_store, config = repo_context(args)
    gates = for_repo(config.gates, graph_store, config.target_branch)
    pipeline = Pipeline(repo, graph_store, config, gates=gates)
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

    result = pipeline.run(
        args.task_id,
        RunOptions(force=args.force, on_step=step, on_event=None if args.quiet else _show_event),
    )
    if args.as_json:
        emit_json(asdict(result), pretty=True)
    else:
        say(f"{result.task_id} attempt {result.attempt}: {result.status} — {result.reason}")
        if result.failure:
            say(f"failure class: {result.failure}")
        if result.run_dir:
            say(f"run record: {result.run_dir}")
    return 0 if result.status == "done" else 1


def agents(args: Namespace) -> None:
    repo, _store, _config = repo_context(args)
    rows = [r for r in attempts.running(repo) if pid_alive(r.get("pid"))]
    rows.sort(key=lambda r: str(r.get("started", "")))
    if args.as_json:
        emit_json(rows)
        return
    if not rows:
        say("No attempts are running.")
        return
    table(
        "Running attempts",
        ["task", "attempt", "runtime", "pid", "started"],
        [
            (Path(r["run_dir"]).parent.name, r["attempt"], r.get("runtime"), r.get("pid"), r.get("started"))
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


def tail(args: Namespace) -> None:
    repo, _store, _config = repo_context(args)
    folder = _attempt_dir(repo, args.task_id, args.attempt)
    position = 0
    while True:
        lines, position = records.new_event_lines(folder, position)
        for raw in lines:
            _print_event_line(raw, args.as_json)
        if not args.follow or _attempt_state(folder) is not AttemptState.RUNNING:
            return
        time.sleep(0.3)


def _print_event_line(raw: bytes, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(raw.decode("utf-8", "replace") + "\n")
        return
    event = records.parse_event(raw)
    if event is not None:
        text = printable(event.text)[:500]
        say(f"{event.ts or ''} {event.kind or '?':9} {text}")


def cancel(args: Namespace) -> int:
    repo, _store, _config = repo_context(args)
    folder = _attempt_dir(repo, args.task_id, None)
    record = records.read_attempt(folder) or records.AttemptRecord({})
    if record.state is not AttemptState.RUNNING or not pid_alive(record.pid):
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
    table(
        "Speedrift worktrees",
        ["worktree", "task", "state", "verdict", "reason"],
        [(r.manifest.name, r.manifest.task_id, r.manifest.state, r.verdict, r.reason) for r in rows],
    )


def _inspect_all(args: Namespace) -> list[worktrees.WorktreeStatus]:
    repo, graph_store, _config = repo_context(args)
    graph = graph_store.load()
    return [
        worktrees.inspect(repo, m, (graph.tasks.get(m.task_id) or {}).get("status"))
        for m in worktrees.read_manifests(repo)
    ]


def worktrees_gc(args: Namespace) -> None:
    repo, _store, _config = repo_context(args)
    rows = _inspect_all(args)
    removed: list[str] = []
    kept: list[dict[str, str]] = []
    for row in rows:
        if row.verdict == "remove":
            if not args.dry_run:
                worktrees.remove(repo, row)
            removed.append(row.manifest.name)
        else:
            kept.append({"worktree": row.manifest.name, "reason": row.reason})
    if args.as_json:
        emit_json({"dry_run": args.dry_run, "removed": removed, "kept": kept})
        return
    verb = "Would remove" if args.dry_run else "Removed"
    say(f"{verb} {len(removed)} worktree(s){': ' + ', '.join(removed) if removed else ''}")
    for item in kept:
        say(f"kept {item['worktree']}: {item['reason']}")


def worktrees_quarantine(args: Namespace) -> None:
    repo, _store, _config = repo_context(args)
    for manifest in worktrees.read_manifests(repo):
        if manifest.name == args.name:
            destination = worktrees.quarantine(repo, manifest)
            say(f"Quarantined {args.name} to {destination} (work intact)")
            return
    raise NotFound(f"no speedrift worktree named {args.name!r}", hint="`speedrift worktrees list`")
