"""What travels between the hub and a Dask worker: a :class:`JobSpec` out, a :class:`JobResult` back.

Job: one attempt's development phase on a worker machine — obtain the repository at the attempt's
base commit (from its shared remote, or from a git bundle shipped with the job), make a worktree,
run the agent runtime there (sandboxed, with the attempt's budgets and rlimits), commit what it
left, run the gates on that commit, and bring the result branch back as a git bundle with the
run's files (events, logs, result). The hub keeps the claim and the landing (the merge queue).

Invariants:

- Both sides are plain, picklable dataclasses holding nothing but values: no path of the hub is
  used on a worker (the worker makes its own worktree and run dir), no secret travels (a worker
  composes the agent's environment from its own environment with :class:`EnvRecipe`).
- A job is identified by :attr:`JobSpec.key`, unique per attempt and dispatch; every result names
  the key it answers, the worker that produced it and the attempt (task, number) it belongs to, so
  the hub can recognize and discard a result that is not for the attempt it waits on.
- ``version`` is the hub's speedrift version: a worker running another version refuses the job
  (:attr:`JobResult.refused`) rather than running it with different rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from speedrift.agents.protocol import Budgets
from speedrift.agents.rlimits import RLimitPlan
from speedrift.fleet.config import RepoConfig
from speedrift.gates.verdict import GateVerdict

KEY_PREFIX = "speedrift-attempt"  # every job's key starts so: `cluster status` finds ours by it
CANCEL_PREFIX = "speedrift-cancel-"  # + key: the distributed.Event the hub sets to cancel a job
STARTED_PREFIX = "speedrift-started-"  # + key: scheduler metadata naming the worker that started it
HEARTBEAT_PREFIX = "speedrift-hub-alive-"  # + key: scheduler metadata the hub refreshes while it waits


def make_key(repo_name: str, task_id: str, attempt: int, nonce: str) -> str:
    """A job's key: ``speedrift-attempt/<repo>/<task>/<attempt>/<nonce>`` (unique per dispatch)."""
    return f"{KEY_PREFIX}/{repo_name}/{task_id}/{attempt}/{nonce}"


@dataclass(frozen=True)
class KeyParts:
    repo: str
    task_id: str
    attempt: int
    nonce: str


def parse_key(key: object) -> KeyParts | None:
    """:func:`make_key` read back; None for any other key (not one of ours)."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX + "/"):
        return None
    parts = key.split("/")
    if len(parts) != 5 or not parts[3].isdigit():
        return None
    return KeyParts(parts[1], parts[2], int(parts[3]), parts[4])


class ExecutorKind(StrEnum):
    """Where attempts run: ``local`` (worker processes on this machine, the default) or ``dask``."""

    LOCAL = "local"
    DASK = "dask"


class SourceKind(StrEnum):
    """How a worker obtains the repository: fetched from its shared remote, or from a bundle."""

    REMOTE = "remote"
    BUNDLE = "bundle"


@dataclass(frozen=True)
class RepoSource:
    kind: SourceKind
    url: str | None = None  # REMOTE: what the worker fetches from (never a local path of the hub)
    # BUNDLE: `git bundle` of the base commit's history — all of it, or only what follows
    # ``prerequisite`` (empty when the base is the prerequisite itself)
    bundle: bytes | None = None
    ref: str = ""  # the ref inside the bundle / on the remote that holds the base commit
    # BUNDLE: the commit the bundle starts after, which every worker that may take the job is
    # known to hold (fleet/remote/held.py); None: the bundle carries the whole history
    prerequisite: str | None = None


@dataclass(frozen=True)
class EnvRecipe:
    """How the worker builds the agent's environment (agents/env.py ``agent_env``) from its own:
    ``extra`` values set as given, ``allow`` names/globs taken from the worker's environment,
    ``secrets`` exact names passed through from the worker's environment (never their values)."""

    extra: dict[str, str] = field(default_factory=dict)
    allow: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobSpec:
    key: str
    version: str
    repo_name: str
    repo_key: str  # the worker's cache directory for this repository (fleet/supervisor.repo_key)
    source: RepoSource
    base_commit: str
    branch: str  # the attempt's branch on the hub (the worker makes no branch: its bundle is of HEAD)
    target_branch: str
    task: dict[str, Any]  # the task as claimed
    attempt: int
    prompt: str
    runtime: str
    model: str | None
    exec_command: str | None
    options: dict[str, Any]  # the runtime's options (RunRequest.options)
    budgets: Budgets
    env: EnvRecipe
    config: RepoConfig  # sandbox and gates settings are read from it on the worker
    limits: RLimitPlan | None = None
    run_gates: bool = True
    hub_host: str = ""
    heartbeat_s: float = 10.0  # the hub refreshes HEARTBEAT_PREFIX+key this often while it waits
    # the author/committer the hub commits with in this repo (repo/git.py identity_env): the
    # worker commits the agent's work as the hub would, not as whoever runs the worker
    git_identity: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class JobResult:
    key: str
    task_id: str
    attempt: int
    worker: str  # the Dask worker's address (tcp://host:port)
    host: str  # the worker machine's hostname
    outcome: dict[str, Any] = field(default_factory=dict)  # fleet/merging.outcome_record's shape
    base_commit: str = ""
    tip: str | None = None  # the attempt branch's commit after the worker committed the agent's work
    bundle: bytes | None = None  # `git bundle` of base_commit..tip (None: nothing new)
    verdict: GateVerdict | None = None  # the worker's gates on ``tip`` (None: not run)
    files: dict[str, bytes] = field(default_factory=dict)  # run-dir files by name (events.jsonl, …)
    sandbox: dict[str, Any] | None = None  # the worker's sandbox decision, as evidence
    commit_problem: str | None = None  # the commit was refused (landing.CommitRejected's message)
    rerun_of: str | None = None  # this job had started on that worker, which vanished: not run again
    refused: str | None = None  # the worker would not run it (version mismatch, no runtime, …)
    timings: dict[str, float] = field(default_factory=dict)
    # the commits a thin bundle starts after that this worker's cache lacks: nothing ran, and the
    # hub sends the job again with the whole history
    missing_base: tuple[str, ...] = ()
    # the newest base this worker's cache holds (fleet/remote/repocache.newest_base), for the
    # hub's record of what it may ship thin (fleet/remote/held.py); "" when not known
    holds: str = ""
