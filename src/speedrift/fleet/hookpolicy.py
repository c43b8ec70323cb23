"""Which of a repository's hooks speedrift's own commit and landing run: ``[git] hooks``.

Job: for one attempt, the hooks directory its commit, rebase and fast-forward get. ``"none"`` (the
default): None — git runs no hook (gitcmd.py gives it an empty hooks directory). ``"repo"``: the
hooks that were there before the attempt began, byte for byte (repo/gitboundary.py
``approve_hooks``, against the set the pipeline recorded in the attempt's record — so a landing
resumed later, in another process, judges against the same set); a hook added or changed since is
named in the attempt's record (``hooks_not_run``) and the task's log, and never runs.

Invariant: without a record of the hooks as they were before the attempt, no hook runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from speedrift import layout, records
from speedrift.fleet import attempts
from speedrift.fleet.attempt import Attempt, worker_actor
from speedrift.fleet.config import RepoConfig
from speedrift.graph import ops
from speedrift.graph.store import GraphStore
from speedrift.repo import gitboundary

HOOKS_BEFORE_KEY = "git_hooks_before"  # in attempt.json: the hooks as they were before the agent ran
NOT_RUN_KEY = "hooks_not_run"  # in attempt.json and the evidence: the hooks refused, named


@dataclass(frozen=True)
class HookUse:
    """``directory``: the hooks git may run (None: none); ``refused``: hooks it may not, named."""

    directory: Path | None
    refused: list[str] = field(default_factory=list)


def record_before(run_dir: Path, hooks: gitboundary.HookSet) -> None:
    """Keep the hooks as they were before the agent ran in the attempt's record."""
    attempts.write_attempt(run_dir, {HOOKS_BEFORE_KEY: hooks.to_dict()})


def landing_hooks(config: RepoConfig, store: GraphStore, attempt: Attempt) -> HookUse:
    """The hooks ``attempt``'s commit and landing may run (see the module docstring); a refusal is
    recorded in the attempt's record and said once in the task's log."""
    if config.git.hooks != "repo":
        return HookUse(None)
    record = records.read_attempt(attempt.run_dir)
    raw = record.raw if record is not None else {}
    before = gitboundary.HookSet.from_dict(raw.get(HOOKS_BEFORE_KEY))
    if before is None:
        use = HookUse(None, ["every hook (no record of the hooks as they were before the attempt)"])
    else:
        approval = gitboundary.approve_hooks(
            attempt.worktree, before, layout.approved_hooks_dir(attempt.run_dir)
        )
        use = HookUse(approval.directory, approval.refused)
    if use.refused and raw.get(NOT_RUN_KEY) != use.refused[:50]:  # a resumed landing: said once
        _report(store, attempt, use.refused)
    return use


def _report(store: GraphStore, attempt: Attempt, refused: list[str]) -> None:
    attempts.write_attempt(attempt.run_dir, {NOT_RUN_KEY: refused[:50]})
    shown = ", ".join(refused[:10]) + (f" and {len(refused) - 10} more" if len(refused) > 10 else "")
    message = (
        f'Hooks not run on speedrift\'s commit and landing: {shown}. [git] hooks = "repo" runs only the '
        "hooks that were there before the attempt began; review the others before you run them yourself."
    )
    actor = worker_actor()
    store.mutate(
        lambda g, now: ops.log_message(g, attempt.task_id, message, now=now, actor=actor), actor=actor
    )
