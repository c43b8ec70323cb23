"""Did an attempt write outside its worktree? Compare the main checkout and idle sibling
worktrees before and after the run. Reported, not blocking: the user may legitimately be editing
their checkout meanwhile, so speedrift says what changed and where instead of guessing who. A
sandboxed agent (agents/sandbox.py) cannot make such a write at all, so only an unsandboxed
attempt is watched (the pipeline skips it otherwise). The task graph (``.wg/``, ``.workgraph/``)
is never counted: speedrift itself writes it during a run (claims, logs, other attempts), through
its one writer and op log."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from speedrift import gitcmd
from speedrift.graph.store import GRAPH_DIR_NAMES
from speedrift.repo import git

Snapshot = dict[str, tuple[int, int]]  # "<checkout>/<path>" -> (size, mtime_ns); (-1, -1) = deleted


_LISTING_TTL_S = 5.0
_listings: dict[Path, tuple[float, list[Path]]] = {}


Listing = tuple[float, list[Path]]  # (time.monotonic() when git listed them, the checkouts)


def listing(repo: Path) -> Listing | None:
    """The repo's worktree listing, reused for a few seconds: with many attempts starting at once,
    asking git each time costs more than a checkout added in the last seconds going unwatched by
    one attempt. None when git cannot list them and there is no earlier listing."""
    cached = _listings.get(repo)
    if cached is None or time.monotonic() - cached[0] > _LISTING_TTL_S:
        try:
            cached = (time.monotonic(), [e.path for e in git.worktrees(repo)])
        except gitcmd.GitError:
            # git could not list them this time (a worktree half-added by a process killed
            # meanwhile): the last listing, else none — the watch reports, it never fails the attempt
            return cached
        _listings[repo] = cached
    return cached


def adopt(repo: Path, known: Listing) -> None:
    """Take ``known`` (a supervisor's listing, handed to its worker process) unless ours is newer;
    ``time.monotonic()`` is one clock for every process on the machine."""
    mine = _listings.get(repo)
    if mine is None or mine[0] < known[0]:
        _listings[repo] = known


def checkouts(repo: Path, skip: set[Path]) -> list[Path]:
    """The checkouts to watch: every worktree of the repo (see :func:`listing`) except ``skip``."""
    found = listing(repo)
    return [p for p in (found[1] if found else []) if p.resolve() not in skip and p.is_dir()]


def snapshot(watched: list[Path]) -> Snapshot:
    state: Snapshot = {}
    for checkout in watched:
        try:
            changed = git.status_porcelain(checkout)
        except (gitcmd.GitError, OSError):
            # removed meanwhile (another attempt landed and cleaned up, `git worktree remove` half
            # way), or a checkout git cannot read: nothing to watch there — the watch reports, it
            # never fails the attempt that watches
            continue
        for rel in changed:
            if rel.split("/", 1)[0] in GRAPH_DIR_NAMES:
                continue
            target = checkout / rel
            key = f"{checkout}/{rel}"
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
    """Worktrees of attempts that are running right now: their churn is their own business. A
    manifest still saying active or landing whose owner died is no running attempt: watched."""
    from speedrift.repo import worktrees

    busy: set[Path] = set()
    for manifest in worktrees.read_manifests(repo):
        running = manifest.state in (worktrees.ManifestState.ACTIVE, worktrees.ManifestState.LANDING)
        if running and manifest.owner_alive():
            with contextlib.suppress(OSError):
                busy.add(Path(manifest.path).resolve())
    return busy
