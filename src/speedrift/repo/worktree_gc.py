"""What `speedrift worktrees gc` does beyond :func:`speedrift.repo.worktrees.inspect`'s own verdicts:
collect superseded attempts, and scrub secret-bearing quarantines once their retention is over.

* **Superseded**: a failed, waiting or abandoned attempt's worktree whose task has moved on — a
  later attempt of the same task landed (its run record says ``done`` with a ``landed_commit``) or
  the task is ``done`` — is removed even with uncommitted changes (its work was replaced by the
  work that landed); a branch holding commits that never landed is kept and named, with the
  command that deletes it — speedrift never deletes unmerged commits itself. A task that is only
  ``abandoned`` keeps :func:`inspect`'s careful rule (a dirty worktree stays, so does an unlanded
  branch). Work that nothing superseded is never removed.
* **Quarantined** worktrees are always kept, except one quarantined because the secrets gate
  blocked its commit (:func:`speedrift.repo.worktrees.withdraw` wrote a ``withdrawn:`` note): once
  ``[worktrees] quarantine_retention`` (default 14 days) has passed since the quarantine, it is
  *scrubbed* — the whole checkout (every file, the index holding the blocked commit's content)
  and its branch are deleted, and its manifest is kept, marked ``scrubbed_at``, as the record.
  The blocked commit is then unreachable; git's own ``gc`` deletes its objects (``git gc
  --prune=now`` at once). The attempt's run record and evidence under ``.speedrift/runs/`` stay.

Pure judgement (:func:`judge`) takes ``now`` as a parameter; :func:`scrub` acts.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from speedrift import layout, records
from speedrift.records import AttemptState
from speedrift.repo import git, gitlocks
from speedrift.repo.worktrees import (
    Manifest,
    ManifestState,
    WorktreeStatus,
    manifest_path,
    remove_worktree,
    write_manifest,
)
from speedrift.times import format_time, parse_time

SCRUB = "scrub"
WITHDRAWN_NOTE = "withdrawn:"  # worktrees.withdraw's note: the secrets gate blocked the commit
SUPERSEDABLE = frozenset({ManifestState.FAILED, ManifestState.WAITING, ManifestState.ABANDONED})


def landed_attempts(repo: Path, task_id: str) -> dict[int, str]:
    """The task's attempts whose run record says they landed: attempt number -> landed commit."""
    landed: dict[int, str] = {}
    for folder in layout.attempt_dirs(repo, task_id):
        record = records.read_attempt(folder)
        commit = record.raw.get("landed_commit") if record else None
        if record and record.state is AttemptState.DONE and isinstance(commit, str) and folder.name.isdigit():
            landed[int(folder.name)] = commit
    return landed


def holds_blocked_secret(manifest: Manifest) -> bool:
    return any(note.startswith(WITHDRAWN_NOTE) for note in manifest.notes)


def quarantined_since(repo: Path, manifest: Manifest) -> datetime | None:
    """When it was quarantined: the manifest says so; an older one, by its file's last change
    (it is rewritten only when its state changes, so never before the quarantine)."""
    recorded = parse_time(manifest.quarantined_at)
    if recorded is not None:
        return recorded
    try:
        changed = manifest_path(repo, manifest.name).stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(changed).astimezone()


def judge(
    repo: Path,
    status: WorktreeStatus,
    task_status: str | None,
    landed: dict[int, str],
    now: datetime,
    retention: timedelta,
    retention_text: str,
) -> WorktreeStatus:
    """``status`` with the verdict GC acts on: superseded attempts removed, secret-bearing
    quarantines scrubbed after ``retention``; anything else as :func:`inspect` judged it."""
    manifest = status.manifest
    if manifest.state is ManifestState.QUARANTINED:
        return _quarantined(repo, status, now, retention, retention_text)
    if status.verdict != "keep" or manifest.state not in SUPERSEDABLE:
        return status
    later = sorted(n for n in landed if n > manifest.attempt)
    if later:
        why = f"superseded: attempt {later[-1]} of {manifest.task_id} landed ({landed[later[-1]][:12]})"
    elif task_status == "done":
        why = f"superseded: {manifest.task_id} is done"
    else:
        return status
    if status.dirty:
        why += f"; discards {len(status.dirty)} uncommitted change(s)"
    if status.unlanded_commits:
        why += (
            f"; keeps branch {manifest.branch} ({status.unlanded_commits} unlanded commit(s)):"
            f" `git branch -D {manifest.branch}` deletes it"
        )
    return dataclasses.replace(status, verdict="remove", reason=why, superseded=True)


def _quarantined(
    repo: Path, status: WorktreeStatus, now: datetime, retention: timedelta, retention_text: str
) -> WorktreeStatus:
    manifest = status.manifest
    if not holds_blocked_secret(manifest):
        return dataclasses.replace(status, verdict="keep", reason="quarantined (work kept for a human)")
    if manifest.scrubbed_at:
        why = f"quarantined secret leak, scrubbed at {manifest.scrubbed_at} (record kept)"
        return dataclasses.replace(status, verdict="keep", reason=why)
    since = quarantined_since(repo, manifest)
    due = since + retention if since is not None else None
    if due is not None and due <= now:
        why = (
            f"quarantined secret leak since {format_time(since) if since else '?'}: "
            f"past quarantine_retention {retention_text}, its files and branch are deleted (record kept)"
        )
        return dataclasses.replace(status, verdict=SCRUB, reason=why)
    when = format_time(due) if due is not None else "an unknown time"
    why = f"quarantined secret leak: scrubbed from {when} (quarantine_retention {retention_text})"
    return dataclasses.replace(status, verdict="keep", reason=why)


def delete_branch(repo: Path, branch: str) -> bool:
    """``git branch -D`` (its reflog goes with it), marked; False when there was none to delete.
    Only a scrubbed quarantine's branch goes this way: it sits at its base since the withdrawal."""
    if git.rev_parse(repo, f"refs/heads/{branch}") is None:
        return False
    locks = gitlocks.ref_locks(repo, branch)
    return gitlocks.run_step(repo, "delete-branch", ["branch", "-D", branch], repo, locks).returncode == 0


def scrub(repo: Path, status: WorktreeStatus, now: datetime) -> None:
    """Delete a secret-bearing quarantine's checkout (files and index) and its branch; keep its
    manifest, marked ``scrubbed_at``, as the record."""
    manifest = status.manifest
    path = Path(manifest.path)
    if path.exists():
        remove_worktree(repo, manifest.path, force=True)
    if path.exists():  # not a worktree git knows any more (moved by hand): its files go anyway
        shutil.rmtree(path, ignore_errors=True)
    git.run(["worktree", "prune"], repo, check=False)
    delete_branch(repo, manifest.branch)  # at its base since the withdrawal; its reflog held the leak
    manifest.scrubbed_at = format_time(now)
    manifest.notes = [*manifest.notes, "scrubbed: files and branch deleted after the retention"][-20:]
    write_manifest(repo, manifest)
