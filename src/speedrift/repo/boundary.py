"""Did an attempt write outside its worktree? Compare the main checkout and idle sibling
worktrees before and after the run. Reported, not blocking: the user may legitimately be editing
their checkout meanwhile, so speedrift says what changed and where instead of guessing who."""

from __future__ import annotations

import contextlib
from pathlib import Path

from speedrift.repo import git

Snapshot = dict[str, tuple[int, int]]  # "<checkout>/<path>" -> (size, mtime_ns); (-1, -1) = deleted


def snapshot(repo: Path, skip: set[Path]) -> Snapshot:
    state: Snapshot = {}
    for entry in git.worktrees(repo):
        if entry.path.resolve() in skip or not entry.path.is_dir():
            continue
        for rel in git.status_porcelain(entry.path):
            target = entry.path / rel
            key = f"{entry.path}/{rel}"
            try:
                stat = target.lstat()
                state[key] = (stat.st_size, stat.st_mtime_ns)
            except OSError:
                state[key] = (-1, -1)
    return state


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    changed = [path for path, stamp in after.items() if before.get(path) != stamp]
    changed += [path for path in before if path not in after]  # reverted back to clean
    return sorted(set(changed))


def running_worktrees(repo: Path) -> set[Path]:
    """Worktrees of attempts that are running right now: their churn is their own business."""
    from speedrift.repo import worktrees

    busy: set[Path] = set()
    for manifest in worktrees.read_manifests(repo):
        if manifest.state in ("active", "landing"):
            with contextlib.suppress(OSError):
                busy.add(Path(manifest.path).resolve())
    return busy
