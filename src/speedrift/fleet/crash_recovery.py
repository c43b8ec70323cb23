"""Crash recovery: make a repo consistent again after a process that worked in it died.

Job: :func:`recover` settles what a crash (kill -9, an OOM kill, a killed worker) left in a repo.
It runs when the service starts, may run on every tick, and runs before ``speedrift run`` claims,
because it acts only on what no live process owns:

1. git lock files speedrift's own git steps left (repo/gitlocks.py), a checkout that a
   fast-forward killed before its ref moved left half-written (repo/landing.py), and a worktree a
   killed ``git worktree add`` left half-created (repo/worktrees.py) — which would fail every
   later ``git worktree add`` in the repo;
2. rebases a crash cut off: aborted, and the abort's real result reported — when it fails, the
   worktree is quarantined (work intact) and the note says so;
3. landings, from every state of their state machine (repo/landing.py): a candidate already on
   the target is logged, its manifest says ``landed`` and its task ``done`` — once; a landing cut
   off before the target moved leaves its manifest ``failed`` and the task to step 5; a landed
   attempt whose task is done has its worktree removed;
4. attempts whose process died: a manifest still saying ``active`` says ``failed``, so the
   worktree is watched again for writes from outside (repo/boundary.py);
5. tasks claimed by a worker that is gone: ``done`` when the landings log shows their attempt's
   work on the target (the manifest may be gone), otherwise released for a new attempt;
6. ``pre_existing`` waits whose target branch moved on since: resumed.

Invariants: idempotent — a second run finds nothing to do; a manifest, git step or claim whose
owner (pid + start time) is alive is never touched; work already on the target branch is never
released to run again, and a task is marked done for it at most once (an ``open`` task only when
its current attempt landed and its recorded ``landed_commit`` is not that landing's).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from speedrift import layout
from speedrift.agents import sandbox
from speedrift.fleet import recovery_graph
from speedrift.graph import ops
from speedrift.graph.codec import Graph
from speedrift.graph.model import IN_PROGRESS, OPEN, speedrift_data, status_of
from speedrift.graph.store import GraphStore
from speedrift.procs import record_alive
from speedrift.repo import git, gitlocks, landing, landings, worktrees
from speedrift.repo.worktrees import Manifest, ManifestState

# a worktree in one of these states whose owner died may hold a rebase a crash cut off
INTERRUPTIBLE = (ManifestState.LANDING, ManifestState.ACTIVE, ManifestState.MERGE_PENDING)
ACTOR = "speedrift-recovery"


def recover(repo: Path, store: GraphStore, *, actor: str = ACTOR, wait: bool = True) -> list[str]:
    """Settle everything a crash left (see the module docstring). Returns one line per action.

    ``wait=False`` (a tick): when a landing holds the merge queue right now, the git and landing
    steps are left for the next call instead of waiting behind it."""
    notes: list[str] = []
    with _queue(repo, wait) as held:
        if held:
            notes += _settle_git(repo)
            for manifest in worktrees.read_manifests(repo):
                if not manifest.owner_alive():
                    notes += _settle_manifest(repo, store, manifest, actor)
    graph = store.load()  # each change below re-reads its task under the graph lock
    notes += _settle_claims(repo, store, graph, actor)
    notes += _resume_waits(repo, store, graph, actor)
    return notes


def settle_attempt(
    repo: Path, store: GraphStore, task_id: str, attempt: int, *, actor: str = ACTOR
) -> str | None:
    """For a supervisor whose worker died running ``attempt``: if the attempt's work reached the
    target branch, record the landing and the task done (once) and say so; None when it did not —
    then, and only then, the caller releases or fails the task. Call it before recording a crash."""
    with landing.merge_lock(repo):
        _settle_git(repo)
        path = worktrees.manifest_path(repo, worktrees.attempt_name(task_id, attempt))
        for manifest in worktrees.read_manifests(repo):
            if worktrees.manifest_path(repo, manifest.name) == path:
                tip = landed_tip(repo, manifest)
                if tip is not None:
                    _record_landed(repo, store, manifest, tip, actor)
                    return f"{task_id}: attempt {attempt} had landed {tip[:12]}; marked done"
        found = landings.of_attempt(repo, task_id, attempt)
        if found is not None and landings.on_target(repo, found.new, found.target):
            if store.mutate(
                partial(_done, task_id=task_id, attempt=attempt, landed=found.new, actor=actor), actor=actor
            ).tasks:
                return f"{task_id}: attempt {attempt} had landed {found.new[:12]}; marked done"
            return f"{task_id}: attempt {attempt} had landed {found.new[:12]}"
    return None


def landed_tip(repo: Path, manifest: Manifest) -> str | None:
    """The commit the attempt put on its target, if the target has it: ``landed``'s commit, or the
    candidate of a ``landing`` the ref already moved to (a landing without a candidate, from an
    older speedrift: its branch tip, when the target has it and it is not the base)."""
    if manifest.state is ManifestState.LANDED and manifest.landed_commit:
        return manifest.landed_commit
    if manifest.state is not ManifestState.LANDING:
        return None
    if manifest.candidate:
        return (
            manifest.candidate
            if landings.on_target(repo, manifest.candidate, manifest.target_branch)
            else None
        )
    tip = git.rev_parse(repo, f"refs/heads/{manifest.branch}")
    if tip and tip != manifest.base_commit and landings.on_target(repo, tip, manifest.target_branch):
        return tip
    return None


# --- the steps ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _queue(repo: Path, wait: bool) -> Iterator[bool]:
    if wait:
        with landing.merge_lock(repo):
            yield True
    else:
        with landing.try_merge_lock(repo) as held:
            yield held


def _settle_git(repo: Path) -> list[str]:
    notes: list[str] = []
    for cleared in gitlocks.clear_stale(repo):
        marker = cleared.marker
        owner = marker.owner.pid if marker.owner else "?"
        if cleared.removed:
            names = ", ".join(_short(repo, lock) for lock in cleared.removed)
            notes.append(
                f"removed {names} left by an interrupted git {marker.step} (process {owner} is gone)"
            )
        if marker.step == landing.FAST_FORWARD_STEP:
            restored = landing.restore_interrupted_checkout(repo, marker.detail)
            if restored:
                notes.append(restored)
        if marker.step == worktrees.ADD_STEP:
            undone = worktrees.undo_interrupted_add(repo, marker.detail)
            if undone:
                notes.append(undone)
    return notes


def _settle_manifest(repo: Path, store: GraphStore, manifest: Manifest, actor: str) -> list[str]:
    notes: list[str] = []
    worktree = Path(manifest.path)
    if manifest.state in INTERRUPTIBLE and worktree.is_dir():
        aborted = landing.abort_interrupted_rebase(repo, worktree)
        if aborted is not None and aborted.aborted:
            notes.append(f"aborted an interrupted rebase in {worktree}")
        elif aborted is not None:
            return [*notes, _quarantine(repo, manifest, aborted.detail)]
    if manifest.state in (ManifestState.LANDING, ManifestState.LANDED):
        tip = landed_tip(repo, manifest)
        if tip is None:
            manifest.set_state(ManifestState.FAILED, "its landing was cut off before the target moved")
            worktrees.write_manifest(repo, manifest)
            notes.append(f"{manifest.task_id}: its landing was cut off before {manifest.target_branch} moved")
            return notes
        if _record_landed(repo, store, manifest, tip, actor):
            notes.append(f"{manifest.task_id}: had landed {tip[:12]} before the crash; marked done")
        task = store.load().get(manifest.task_id)
        finished = task is None or status_of(task) != IN_PROGRESS  # done, or moved on
        if finished and worktrees.remove_landed(repo, manifest):
            notes.append(f"{manifest.task_id}: removed the landed worktree {worktree}")
        return notes
    if manifest.state is ManifestState.ACTIVE:
        manifest.set_state(ManifestState.FAILED, "its process died during the attempt")
        worktrees.write_manifest(repo, manifest)
        # its sandbox died with it (--die-with-parent); the private HOME (a copy of the CLI's
        # state file among it) is not left behind
        sandbox.remove_private(layout.attempt_dir(repo, manifest.task_id, manifest.attempt))
        notes.append(
            f"{manifest.task_id}: attempt {manifest.attempt}'s process is gone; its worktree is kept"
        )
    return notes


def _record_landed(repo: Path, store: GraphStore, manifest: Manifest, tip: str, actor: str) -> bool:
    """The landing's log line, manifest ``landed`` and task ``done``, each only if not there yet.
    Returns whether the task was marked done now."""
    if manifest.landing_from or manifest.state is ManifestState.LANDING:
        landings.record(repo, landing.landing_of(manifest, tip))
    if manifest.state is not ManifestState.LANDED or manifest.landed_commit != tip:
        manifest.landed_commit = tip
        manifest.set_state(ManifestState.LANDED, "landed; recorded after a crash")
        worktrees.write_manifest(repo, manifest)
    done = partial(_done, task_id=manifest.task_id, attempt=manifest.attempt, landed=tip, actor=actor)
    return bool(store.mutate(done, actor=actor).tasks)


def _settle_claims(repo: Path, store: GraphStore, graph: Graph, actor: str) -> list[str]:
    notes: list[str] = []
    host = socket.gethostname()
    for task_id, task in graph.tasks.items():
        data = speedrift_data(task)
        worker = data.get("worker")
        if status_of(task) != IN_PROGRESS or not isinstance(worker, dict) or worker.get("host") != host:
            continue
        if data.get("state") == "merge-pending":
            continue  # gated work waiting for the target checkout: the service's merge retry lands it
        if record_alive(worker):  # pid + start time: a reused pid or a zombie does not count
            continue
        pid, attempt = worker.get("pid"), data.get("attempt")
        found = landings.of_attempt(repo, task_id, attempt) if isinstance(attempt, int) else None
        if found is not None and landings.on_target(repo, found.new, found.target):
            done = partial(_done, task_id=task_id, attempt=found.attempt, landed=found.new, actor=actor)
            if store.mutate(done, actor=actor).tasks:
                notes.append(
                    f"{task_id}: had landed {found.new[:12]} before its worker {pid} died; marked done"
                )
            continue
        if store.mutate(partial(_release, task_id=task_id, worker=worker, actor=actor), actor=actor).tasks:
            notes.append(f"{task_id}: released (its worker {pid} is gone)")
    return notes


def _resume_waits(repo: Path, store: GraphStore, graph: Graph, actor: str) -> list[str]:
    notes: list[str] = []
    for task_id, task in graph.tasks.items():
        waiting = recovery_graph.waiting_of(task)
        if not waiting or waiting.get("kind") != recovery_graph.PRE_EXISTING:
            continue
        target, seen = waiting.get("target"), waiting.get("target_tip")
        tip = git.rev_parse(repo, f"refs/heads/{target}") if isinstance(target, str) else None
        if tip is None or tip == seen:
            continue
        why = f"Resumed: {target} moved to {tip[:12]} since the failure already there was found; trying again"

        def resume(graph: Graph, now: datetime, task_id: str = task_id, why: str = why) -> ops.Mutation:
            return recovery_graph.resume_wait_mutation(
                graph, task_id, why=why, context=None, now=now, actor=actor
            )

        if store.mutate(resume, actor=actor).tasks:
            notes.append(f"{task_id}: {target} moved on; the pre-existing failure it waited on may be fixed")
    return notes


def _quarantine(repo: Path, manifest: Manifest, detail: str) -> str:
    """A rebase that cannot be aborted: the worktree is moved aside (work intact) for a human."""
    where = manifest.path
    try:
        where = str(worktrees.quarantine(repo, manifest))
    except Exception as error:  # a move git refuses: marked in place instead
        manifest.set_state(ManifestState.QUARANTINED, f"could not be moved aside: {error}")
        worktrees.write_manifest(repo, manifest)
    manifest.set_state(ManifestState.QUARANTINED, f"the interrupted rebase could not be aborted: {detail}")
    worktrees.write_manifest(repo, manifest)
    return (
        f"{manifest.task_id}: could not abort the interrupted rebase in {manifest.name} ({detail}); "
        f"the worktree is quarantined at {where} with its work intact — finish or abort the rebase there"
    )


# --- graph changes ----------------------------------------------------------------------------------------
def _done(
    graph: Graph, now: datetime, task_id: str, attempt: int, landed: str, actor: str = ACTOR
) -> ops.Mutation:
    """Done for an attempt whose work is on the target — only once: an in-progress task, or an open
    one (released meanwhile) whose current attempt it is and whose done was never written."""
    task = graph.get(task_id)
    if task is None:
        return ops.Mutation()
    data = speedrift_data(task)
    status = status_of(task)
    current = data.get("attempt")
    if status == IN_PROGRESS:
        if isinstance(current, int) and current != attempt:
            return ops.Mutation()  # a newer attempt owns the task now
    elif status != OPEN or current != attempt or data.get("landed_commit") == landed:
        return ops.Mutation()
    message = f"Landed {landed[:12]} (recorded after a crash)"
    mutation = ops.done(graph, task_id, now=now, actor=actor, force=True, message=message)
    recorded: dict[str, Any] = {"state": None, "worker": None, "landed_commit": landed}
    return ops.set_fields(graph, task_id, speedrift=recorded, now=now, actor=actor, within=mutation)


def _release(
    graph: Graph, now: datetime, task_id: str, worker: dict[str, Any], actor: str = ACTOR
) -> ops.Mutation:
    """Back to open — unless it was claimed again meanwhile (by another worker)."""
    task = graph.get(task_id)
    if task is None or status_of(task) != IN_PROGRESS or speedrift_data(task).get("worker") != worker:
        return ops.Mutation()
    message = f"Released: worker {worker.get('pid')} is gone; the task is open for a new attempt"
    mutation = ops.unclaim(graph, task_id, now=now, actor=actor, message=message)
    released = {"state": None, "worker": None}
    return ops.set_fields(graph, task_id, speedrift=released, now=now, actor=actor, within=mutation)


def _short(repo: Path, path: str) -> str:
    try:
        return str(Path(path).relative_to(repo))
    except ValueError:
        return path
