"""``<repo>/.speedrift/``, one owner: every path and record name of speedrift's per-repo state.

Invariant: no other module spells ``.speedrift`` or a record file name; they ask this module. The
directory is git-excluded (``.git/info/exclude``) and holds only runtime state:

- ``worktrees/<name>/`` and ``worktrees/<name>.json`` — one worktree per attempt and its manifest;
- ``runs/<task>/<attempt>/`` — ``prompt.md``, ``events.jsonl``, ``stderr.log``, ``result.json``
  (the agent's), ``attempt.json`` (state as it changes), ``evidence.json`` (what it proved), and the
  ``cancel`` and ``paused`` marks;
- ``service/`` — the per-repo service (``lock``, ``pid``, ``heartbeat.json``, ``service.log``,
  ``service.out``, the ``started-by-hub`` and ``retries-resumed`` marks);
- ``control.json`` + ``control.lock`` — the hub's mode and lease for this repo;
- ``outcomes.jsonl`` (+ its ``.outcomes.jsonl.lock``) — recent attempt outcomes, for the retry halt;
- ``merge.lock`` — the merge queue; ``landings.jsonl`` — every tip the merge queue put on a target
  branch (repo/landings.py); ``gitsteps/`` — one marker per git step that may hold a git lock
  file, while it runs (repo/gitlocks.py); ``gates/``, ``cache/``, ``scans/``, ``upstream/``, ``logs/``,
  ``repair/``, ``handoffs/``, ``hub-worktrees/``, ``quarantine/``, ``ports/``;
- ``coord/`` — the coordination stores, ``<scope>.jsonl`` + ``<scope>.lock`` (coord/store.py);
  ``roles/`` — the repo's own role templates (fleet/roles); ``role-checkouts/`` — the throwaway
  read-only checkouts roles run in;
- ``reviews/`` — compound review (fleetops/compound.py): ``<date>.md`` and ``<date>.json``, one
  report per review; ``last-review.json``, the last reviewed commit and the review tasks made;
  ``roles/<date>/``, the summarizing role's run; ``checkouts/<date>/``, the throwaway checkout a
  review's pull-request commit is made in;
- inside an agent's worktree, ``.speedrift/result.json`` — the agent's report, copied to its run dir;
  ``.speedrift/signals.jsonl`` — the records it posted with ``speedrift signal``, taken in after its run.

Records are JSON objects read with :func:`read_record` (``None`` when absent, unreadable or not an
object: a half-written or hostile file never raises) and written through :mod:`speedrift.fsutil`;
the typed records (attempt, evidence, heartbeat, events) are read and written by
:mod:`speedrift.records`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import orjson

STATE_DIR = ".speedrift"
# a path relative to the repo root that is speedrift's own state; also the .git/info/exclude line
# that `speedrift init`, the control file and the hub's handlers add
STATE_PREFIX = f"{STATE_DIR}/"
EXCLUDE_PATTERN = f"/{STATE_DIR}/"  # the (root-anchored) exclude line the gates add before caching

# record and file names inside a run directory
PROMPT_FILE = "prompt.md"
EVENTS_FILE = "events.jsonl"
STDERR_FILE = "stderr.log"
RESULT_FILE = "result.json"
APPROVED_HOOKS_DIR = "approved-hooks"  # [git] hooks = "repo": copies of the hooks a landing may run
ATTEMPT_FILE = "attempt.json"
EVIDENCE_FILE = "evidence.json"
CANCEL_FILE = "cancel"  # dropped by `speedrift cancel`: the attempt's session stops
PAUSED_FILE = "paused"  # written while the operator holds the agent stopped (SIGSTOP)
REMOTE_DISCARDED_FILE = "remote-discarded.json"  # Dask results not for this attempt (fleet/remote/ingest.py)
SANDBOX_DIR = "sandbox"  # a sandboxed agent's private HOME and TMPDIR, removed after its run
# inside service/
HEARTBEAT_FILE = "heartbeat.json"
SERVICE_LOCK = "lock"
SERVICE_PID = "pid"
SERVICE_LOG = "service.log"
SERVICE_OUT = "service.out"  # a started service's stdout and stderr
STARTED_BY_HUB = "started-by-hub"  # the hub's restart_service mark; a human start or stop removes it
RETRIES_RESUMED = "retries-resumed"  # `service resume-retries`: outcomes before it stop counting
# beside the other records at the top of .speedrift/
CONTROL_FILE = "control.json"
CONTROL_LOCK = "control.lock"
MERGE_LOCK = "merge.lock"
LANDINGS_FILE = "landings.jsonl"
GIT_STEPS_DIR = "gitsteps"
OUTCOMES_FILE = "outcomes.jsonl"
OUTCOMES_LOCK = f".{OUTCOMES_FILE}.lock"


def state_dir(repo: Path) -> Path:
    return repo / STATE_DIR


def is_state_path(relative: str) -> bool:
    """Whether a repo-relative path (git's form) is inside ``.speedrift/``."""
    return relative == STATE_DIR or relative.startswith(STATE_PREFIX)


def safe_name(task_id: str) -> str:
    """A path- and ref-safe form of any task id; a hash suffix keeps distinct ids distinct."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", task_id).strip(".-")
    cleaned = re.sub(r"\.{2,}", ".", cleaned).removesuffix(".lock")[:60].strip(".-") or "task"
    if cleaned != task_id:
        cleaned += "-" + hashlib.sha256(task_id.encode()).hexdigest()[:8]
    return cleaned


def worktrees_dir(repo: Path) -> Path:
    return state_dir(repo) / "worktrees"


PORTS_DIR_NAME = "ports"  # under a state dir: repo/envshare.py's port-block leases


def ports_dir(repo: Path) -> Path:
    return state_dir(repo) / PORTS_DIR_NAME


def runs_dir(repo: Path) -> Path:
    return state_dir(repo) / "runs"


def task_runs_dir(repo: Path, task_id: str) -> Path:
    return runs_dir(repo) / safe_name(task_id)


def attempt_dir(repo: Path, task_id: str, attempt: int) -> Path:
    """The run directory of one attempt (not created here)."""
    return task_runs_dir(repo, task_id) / str(attempt)


def attempt_dirs(repo: Path, task_id: str) -> list[Path]:
    """A task's run directories, oldest attempt first."""
    folder = task_runs_dir(repo, task_id)
    if not folder.is_dir():
        return []
    numbered = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(numbered, key=lambda p: int(p.name))


def service_dir(repo: Path) -> Path:
    return state_dir(repo) / "service"


def heartbeat_path(repo: Path) -> Path:
    return service_dir(repo) / HEARTBEAT_FILE


def service_lock_path(repo: Path) -> Path:
    return service_dir(repo) / SERVICE_LOCK


def service_pid_path(repo: Path) -> Path:
    return service_dir(repo) / SERVICE_PID


def service_log_path(repo: Path) -> Path:
    return service_dir(repo) / SERVICE_LOG


def service_out_path(repo: Path) -> Path:
    return service_dir(repo) / SERVICE_OUT


def started_by_hub_path(repo: Path) -> Path:
    return service_dir(repo) / STARTED_BY_HUB


def retries_resumed_path(repo: Path) -> Path:
    return service_dir(repo) / RETRIES_RESUMED


def control_path(repo: Path) -> Path:
    return state_dir(repo) / CONTROL_FILE


def control_lock_path(repo: Path) -> Path:
    return state_dir(repo) / CONTROL_LOCK


def merge_lock_path(repo: Path) -> Path:
    return state_dir(repo) / MERGE_LOCK


def landings_path(repo: Path) -> Path:
    return state_dir(repo) / LANDINGS_FILE


def git_steps_dir(repo: Path) -> Path:
    return state_dir(repo) / GIT_STEPS_DIR


def outcomes_path(repo: Path) -> Path:
    return state_dir(repo) / OUTCOMES_FILE


def outcomes_lock_path(repo: Path) -> Path:
    return state_dir(repo) / OUTCOMES_LOCK


def scans_dir(repo: Path) -> Path:
    return state_dir(repo) / "scans"


def lanes_dir(repo: Path) -> Path:
    """Drift lanes' state: ``latest.json`` (the last check's report), ``guard.jsonl`` (every
    follow-up the guard created or refused), and one directory per lane (its cached result,
    its artifacts)."""
    return state_dir(repo) / "lanes"


def lane_dir(repo: Path, lane: str) -> Path:
    return lanes_dir(repo) / safe_name(lane)


def lane_result_path(repo: Path, lane: str) -> Path:
    """A lane's cached result (lanes/runner.py: reused while its inputs are unchanged)."""
    return lane_dir(repo, lane) / RESULT_FILE


def coord_dir(repo: Path) -> Path:
    """The coordination stores, one ``<scope>.jsonl`` (and its ``.lock``) per scope (coord/store.py)."""
    return state_dir(repo) / "coord"


def plans_state_dir(repo: Path) -> Path:
    """Runtime state of waves: ``wave-<n>/`` (validation results, run state) — the committed
    plan itself lives in ``plans/`` of the repo (plans/spec.py)."""
    return state_dir(repo) / "plans"


def traces_dir(repo: Path) -> Path:
    """Wave attempts' trace bundles, ``wave-<n>/attempt-<k>/`` (plans/trace.py)."""
    return state_dir(repo) / "traces"


def role_checkouts_dir(repo: Path) -> Path:
    """Throwaway read-only checkouts a role (Reviewer, Debugger, …) runs in (fleet/roles/runner.py)."""
    return state_dir(repo) / "role-checkouts"


def roles_dir(repo: Path) -> Path:
    """A repo's own role templates, ``<role>.md``, overriding the shipped ones (fleet/roles)."""
    return state_dir(repo) / "roles"


ROLE_RUNS_DIR = "_roles"  # under runs/, beside the tasks' run dirs: no task id starts with "_"


def role_run_dir(repo: Path, role: str, stamp: str) -> Path:
    """The record of one role run started by hand (``speedrift roles run``), not created here:
    ``runs/_roles/<role>-<stamp>`` (``stamp``: times.stamp of when it started)."""
    return runs_dir(repo) / ROLE_RUNS_DIR / safe_name(f"{role}-{stamp}")


def handoffs_dir(repo: Path) -> Path:
    return state_dir(repo) / "handoffs"


def repair_dir(repo: Path) -> Path:
    return state_dir(repo) / "repair"


def logs_dir(repo: Path) -> Path:
    return state_dir(repo) / "logs"


def cache_dir(repo: Path, *parts: str) -> Path:
    return state_dir(repo).joinpath("cache", *parts)


def gate_bundles_dir(repo: Path) -> Path:
    return state_dir(repo) / "gates"


def hub_worktrees_dir(repo: Path) -> Path:
    return state_dir(repo) / "hub-worktrees"


# an absolute path inside an attempt's (or the hub's) worktree, up to and including its root
_IN_WORKTREE = re.compile(rf"^/.*?/{re.escape(STATE_DIR)}/(?:hub-)?worktrees/[^/]+/")


def worktree_relative(path: str) -> str:
    """``path`` from its worktree's root when it lies inside one of speedrift's worktrees
    (``/…/.speedrift/worktrees/fix-2/src/app.py`` → ``src/app.py``, as the repo knows it);
    any other path unchanged."""
    return _IN_WORKTREE.sub("", path)


def upstream_dir(repo: Path) -> Path:
    return state_dir(repo) / "upstream"


UPSTREAM_PROPOSAL_FILE = "proposal.json"
UPSTREAM_BODY_FILE = "body.md"


def upstream_proposal_dir(repo: Path, proposal_id: str) -> Path:
    """One upstream proposal (fleetops/upstream.py): ``proposal.json`` and ``body.md``."""
    return upstream_dir(repo) / safe_name(proposal_id)


def upstream_checkout_path(repo: Path, proposal_id: str) -> Path:
    """The throwaway checkout a proposal's commits are cherry-picked in (removed after)."""
    return upstream_dir(repo) / "checkouts" / safe_name(proposal_id)


def quarantine_dir(repo: Path) -> Path:
    return state_dir(repo) / "quarantine"


REVIEWS_DIR = "reviews"
REVIEW_STATE_FILE = "last-review.json"
REVIEW_LOCK = ".review.lock"


def reviews_dir(repo: Path) -> Path:
    """Compound review's reports and its durable record (fleetops/compound.py)."""
    return state_dir(repo) / REVIEWS_DIR


def review_state_path(repo: Path) -> Path:
    """The last reviewed commit of the target branch and the review tasks already made."""
    return reviews_dir(repo) / REVIEW_STATE_FILE


def review_lock_path(repo: Path) -> Path:
    """Held while a compound review of the repo runs: two reviews never interleave."""
    return reviews_dir(repo) / REVIEW_LOCK


def review_report_path(repo: Path, stem: str, suffix: str) -> Path:
    """One review's report, ``<stem>.md`` or ``<stem>.json`` (``stem``: its date, ``-2``… when taken)."""
    return reviews_dir(repo) / f"{safe_name(stem)}.{suffix}"


def review_role_dir(repo: Path, stem: str) -> Path:
    """The record of the role run that summarized one review."""
    return reviews_dir(repo) / "roles" / safe_name(stem)


def review_checkout_path(repo: Path, stem: str) -> Path:
    """The throwaway checkout one review's pull-request commit is made in (removed after)."""
    return reviews_dir(repo) / "checkouts" / safe_name(stem)


def agent_result_path(worktree: Path) -> Path:
    """Where an agent writes its report: inside its own worktree (its sandbox allows nothing else)."""
    return state_dir(worktree) / RESULT_FILE


SIGNALS_FILE = "signals.jsonl"


def signals_path(worktree: Path) -> Path:
    """Where ``speedrift signal`` puts what an agent posts (coordination records) during its run:
    inside its worktree, the only place its sandbox lets it write; the supervisor takes them in
    after the run (fleet/signals.py), checked and stamped with the attempt as author."""
    return state_dir(worktree) / SIGNALS_FILE


# --- the files of one run directory (``attempt_dir``) ----------------------------------------------
def prompt_path(run_dir: Path) -> Path:
    return run_dir / PROMPT_FILE


def events_path(run_dir: Path) -> Path:
    return run_dir / EVENTS_FILE


def stderr_path(run_dir: Path) -> Path:
    return run_dir / STDERR_FILE


def result_path(run_dir: Path) -> Path:
    """The run record's copy of the agent's report."""
    return run_dir / RESULT_FILE


def attempt_record_path(run_dir: Path) -> Path:
    return run_dir / ATTEMPT_FILE


def evidence_path(run_dir: Path) -> Path:
    return run_dir / EVIDENCE_FILE


def approved_hooks_dir(run_dir: Path) -> Path:
    """The hooks an attempt's landing may run when only some of the repo's are approved
    (repo/gitboundary.py ``approve_hooks``)."""
    return run_dir / APPROVED_HOOKS_DIR


def cancel_path(run_dir: Path) -> Path:
    return run_dir / CANCEL_FILE


def paused_path(run_dir: Path) -> Path:
    return run_dir / PAUSED_FILE


def sandbox_dir(run_dir: Path) -> Path:
    """Where a sandboxed agent's private HOME and TMPDIR are made (agents/sandbox.py)."""
    return run_dir / SANDBOX_DIR


def state_path(repo: Path, *parts: str) -> Path:
    """Any other file or folder under ``.speedrift/`` (``upstream/``, ``quarantine/``, …)."""
    return state_dir(repo).joinpath(*parts)


def read_record(path: Path) -> dict[str, Any] | None:
    """A JSON object record, or None when absent, unreadable, malformed or not an object."""
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None
