"""``<repo>/.speedrift/``, one owner: every path and record name of speedrift's per-repo state.

Invariant: no other module spells ``.speedrift`` or a record file name; they ask this module. The
directory is git-excluded (``.git/info/exclude``) and holds only runtime state:

- ``worktrees/<name>/`` and ``worktrees/<name>.json`` — one worktree per attempt and its manifest;
- ``runs/<task>/<attempt>/`` — ``prompt.md``, ``events.jsonl``, ``stderr.log``, ``result.json``
  (the agent's), ``attempt.json`` (state as it changes), ``evidence.json`` (what it proved), ``cancel``;
- ``service/`` — the per-repo service (``lock``, ``pid``, ``heartbeat.json``, ``service.log``);
- ``control.json`` + ``control.lock`` — the hub's mode and lease for this repo;
- ``outcomes.jsonl`` / ``halt.json`` — recent attempt outcomes and the retry halt;
- ``merge.lock`` — the merge queue; ``gates/``, ``cache/``, ``scans/``, ``upstream/``, ``logs/``,
  ``repair/``, ``handoffs/``, ``hub-worktrees/``, ``quarantine/``.

Records are JSON objects read with :func:`read_record` (``None`` when absent, unreadable or not an
object: a half-written or hostile file never raises) and written through :mod:`speedrift.fsutil`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import orjson

STATE_DIR = ".speedrift"
EXCLUDE_PATTERN = f"/{STATE_DIR}/"  # the line speedrift adds to .git/info/exclude
STATE_PREFIX = f"{STATE_DIR}/"  # a path relative to the repo root that is speedrift's own state

# record and file names inside a run directory
PROMPT_FILE = "prompt.md"
EVENTS_FILE = "events.jsonl"
STDERR_FILE = "stderr.log"
RESULT_FILE = "result.json"
ATTEMPT_FILE = "attempt.json"
EVIDENCE_FILE = "evidence.json"
CANCEL_FILE = "cancel"
# inside service/
HEARTBEAT_FILE = "heartbeat.json"
# beside the other records at the top of .speedrift/
CONTROL_FILE = "control.json"
CONTROL_LOCK = "control.lock"
MERGE_LOCK = "merge.lock"
OUTCOMES_FILE = "outcomes.jsonl"
HALT_FILE = "halt.json"


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


def control_path(repo: Path) -> Path:
    return state_dir(repo) / CONTROL_FILE


def control_lock_path(repo: Path) -> Path:
    return state_dir(repo) / CONTROL_LOCK


def merge_lock_path(repo: Path) -> Path:
    return state_dir(repo) / MERGE_LOCK


def outcomes_path(repo: Path) -> Path:
    return state_dir(repo) / OUTCOMES_FILE


def halt_path(repo: Path) -> Path:
    return state_dir(repo) / HALT_FILE


def scans_dir(repo: Path) -> Path:
    return state_dir(repo) / "scans"


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
