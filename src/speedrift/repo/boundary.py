"""Did an attempt write outside its worktree? Compare, before and after the run, everything an
unsandboxed agent could reach that is not speedrift's or git's own doing. Reported, not blocking:
the user may legitimately be editing their checkout meanwhile, so speedrift says what changed and
where instead of guessing who. A sandboxed agent (agents/sandbox.py) cannot make such a write at
all, so only an unsandboxed attempt is watched (the pipeline skips it otherwise).

What is watched (:class:`Watch`), all with one ``lstat`` per entry — no hashing, no full walk:

- the main checkout and idle sibling worktrees: what ``git status`` lists as changed, untracked
  *or ignored* (``--ignored=matching``: an ignored directory is one entry, git does not descend
  into it, so a big ``node_modules`` or ``.venv`` costs one line). An ignored directory is stamped
  with its direct entries (:data:`DIR_ENTRIES_CAP`), so a file written into it, or one level
  deeper, shows; an in-place rewrite deep inside a big ignored tree does not (watching that would
  mean walking the whole tree on every attempt). The task graph (``.wg/``, ``.workgraph/``) is
  never counted: speedrift itself writes it during a run, through its one writer and op log;
- the repo's ``.speedrift/`` (where attempt worktrees live, so ``../`` from one lands there):
  every entry that is not speedrift's own — the layout's names (speedrift/layout.py), attempt
  worktrees and their manifests in ``worktrees/``, task directories in ``runs/``, and the temp
  files of speedrift's atomic writes. What speedrift writes inside its own entries during a run
  (run records, manifests, locks, caches) is never looked at;
- the repository's git directory: a file dropped there that is not git's own (``HEAD``-style
  names, ``*.lock``, ``objects/``, ``refs/``, ``logs/``, ``index``, worktree admin …), and new
  files in ``info/``. The config files, ``info/attributes`` and the hooks are repo/gitboundary.py's
  (an attempt that changed them is held for a human), so they are not repeated here.

Invariant: the watch reports, it never fails the attempt — an area that cannot be read before or
after (a sibling worktree removed meanwhile) is left out of the comparison, not reported."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from speedrift import gitcmd, layout
from speedrift.graph.store import GRAPH_DIR_NAMES
from speedrift.repo import git

Stamp = tuple[int, int]  # (size, mtime_ns); (-1, -1) = listed but gone
DIR_ENTRIES_CAP = 5000  # an ignored/foreign directory with more entries is stamped by itself only

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


# --- what is watched --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Watch:
    """What one attempt's outside-write check compares (see the module docstring)."""

    checkouts: tuple[Path, ...] = ()
    state_dir: Path | None = None  # the repo's .speedrift/ (its main checkout's status leaves it out)
    git_dir: Path | None = None  # the repository's common git directory

    def without(self, busy: set[Path]) -> Watch:
        """The same watch without the checkouts in ``busy`` (resolved paths)."""
        return replace(self, checkouts=tuple(c for c in self.checkouts if c.resolve() not in busy))


def watch(repo: Path, skip: set[Path]) -> Watch:
    """The watch for an attempt in ``repo``: its checkouts but ``skip`` (resolved paths: the
    attempt's own worktree, those of running attempts), its ``.speedrift/`` and its git dir."""
    try:
        common: Path | None = git.common_dir(repo)
    except (gitcmd.GitError, OSError):
        common = None
    return Watch(tuple(checkouts(repo, skip)), layout.state_dir(repo), common)


@dataclass
class Snapshot:
    """Stamps of the watched entries by area (a checkout, the state dir, the git dir), keyed by
    absolute path; an area that could not be read is absent."""

    areas: dict[str, dict[str, Stamp]] = field(default_factory=dict)


def snapshot(watched: Watch) -> Snapshot:
    state = Snapshot()
    own_state = watched.state_dir.resolve() if watched.state_dir is not None else None
    for checkout in watched.checkouts:
        main = own_state is not None and checkout.resolve() == own_state.parent
        found = _checkout(checkout, skip_state=main)
        if found is not None:
            state.areas[str(checkout)] = found
    if watched.state_dir is not None and watched.state_dir.is_dir():
        state.areas[str(watched.state_dir)] = _state_dir(watched.state_dir)
    if watched.git_dir is not None and watched.git_dir.is_dir():
        state.areas[str(watched.git_dir)] = _git_dir(watched.git_dir)
    return state


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths whose stamp differs, appeared or went, in the areas read both times."""
    changed: list[str] = []
    for area in before.areas.keys() & after.areas.keys():
        old, new = before.areas[area], after.areas[area]
        changed += [path for path, stamp in new.items() if old.get(path) != stamp]
        changed += [path for path in old if path not in new]  # reverted back to clean, or removed
    return sorted(set(changed))


# --- the areas --------------------------------------------------------------------------------------
_STATUS = ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored=matching"]


def _checkout(checkout: Path, *, skip_state: bool) -> dict[str, Stamp] | None:
    """Changed, untracked and ignored entries of one checkout; None when git cannot read it."""
    try:
        # no optional locks: never take index.lock while looking (another process may be committing)
        out = git.run(_STATUS, checkout, no_optional_locks=True).stdout
    except (gitcmd.GitError, OSError):
        # removed meanwhile (another attempt landed and cleaned up, `git worktree remove` half
        # way), or a checkout git cannot read: nothing to compare there
        return None
    found: dict[str, Stamp] = {}
    entries = iter(e for e in out.split("\0") if e)
    for entry in entries:
        code, rel = entry[:2], entry[3:]
        if code[0] in "RC":
            next(entries, None)  # the source path of a rename or copy
        top = rel.split("/", 1)[0]
        if top in GRAPH_DIR_NAMES or (skip_state and layout.is_state_path(rel.rstrip("/"))):
            continue
        path = f"{checkout}/{rel}"
        if code == "!!" and rel.endswith("/"):
            _directory(path, found)
        else:
            found[path] = _stamp(Path(path))
    return found


def _state_dir(root: Path) -> dict[str, Stamp]:
    """The entries of ``.speedrift/`` that are not speedrift's own (see :func:`_own_state_name`)."""
    found: dict[str, Stamp] = {}
    for entry in _entries(root):
        if entry.name in _OWN_STATE_NAMES or _temp_of(entry.name) in _OWN_STATE_NAMES:
            continue
        _foreign(entry, found)
    for folder, own in ((_WORKTREES, _is_attempt_entry), (_RUNS, _is_task_entry)):
        for entry in _entries(root / folder):
            if not own(entry):
                _foreign(entry, found)
    return found


def _git_dir(common: Path) -> dict[str, Stamp]:
    """Entries of the git directory that are neither git's own nor repo/gitboundary.py's."""
    found: dict[str, Stamp] = {}
    for entry in _entries(common):
        if not _is_git_name(entry.name):
            _foreign(entry, found)
    for entry in _entries(common / "info"):
        if entry.name not in _GIT_INFO and not entry.name.endswith(".lock"):
            _foreign(entry, found)
    for entry in _entries(common / "worktrees"):
        if not entry.is_dir(follow_symlinks=False) and not entry.name.endswith(".lock"):
            _foreign(entry, found)  # worktree admin directories are git's; a file there is not
    return found


# speedrift's own entries at the top of .speedrift/, as speedrift/layout.py names them
_PROBE = Path("/")
_WORKTREES = layout.worktrees_dir(_PROBE).name
_RUNS = layout.runs_dir(_PROBE).name
_OWN_STATE_NAMES = frozenset(
    {
        *(
            where(_PROBE).relative_to(layout.state_dir(_PROBE)).parts[0]
            for where in (
                layout.worktrees_dir,
                layout.runs_dir,
                layout.service_dir,
                layout.control_path,
                layout.control_lock_path,
                layout.merge_lock_path,
                layout.landings_path,
                layout.git_steps_dir,
                layout.outcomes_path,
                layout.outcomes_lock_path,
                layout.scans_dir,
                layout.handoffs_dir,
                layout.repair_dir,
                layout.logs_dir,
                layout.cache_dir,
                layout.gate_bundles_dir,
                layout.hub_worktrees_dir,
                layout.role_checkouts_dir,
                layout.coord_dir,
                layout.roles_dir,
                layout.upstream_dir,
                layout.quarantine_dir,
                layout.ports_dir,
            )
        ),
    }
)
_TEMP = re.compile(r"\.(.+)\.\d+\.\d+\.tmp")  # fsutil.temp_path: .<name>.<pid>.<thread>.tmp
# an attempt's worktree name (repo/worktrees.py attempt_name: "<safe task id>-<attempt>")
_ATTEMPT_NAME = re.compile(r"[A-Za-z0-9._-]+-[0-9]+")

# git's own names at the top of its directory: pseudo-refs and message files are upper case
# (HEAD, ORIG_HEAD, FETCH_HEAD, MERGE_MSG, COMMIT_EDITMSG, AUTO_MERGE, BISECT_LOG …)
_GIT_NAMES = frozenset(
    {
        "config",
        "config.worktree",
        "description",
        "index",
        "packed-refs",
        "shallow",
        "commondir",
        "gitdir",
        "hooks",
        "info",
        "objects",
        "refs",
        "logs",
        "worktrees",
        "modules",
        "rr-cache",
        "rebase-merge",
        "rebase-apply",
        "sequencer",
        "branches",
        "remotes",
        "reftable",
        "lfs",
        "gc.pid",
        "gc.log",
        "gitk.cache",
    }
)
_GIT_PATTERN = re.compile(
    r"[A-Z][A-Z0-9_]*|.*\.lock|(sharedindex|index|fsmonitor--daemon)\..*|fsmonitor--daemon"
)
# info/: exclude (speedrift and people add lines), attributes (repo/gitboundary.py), and git's own
_GIT_INFO = frozenset({"exclude", "attributes", "sparse-checkout", "refs", "grafts"})


def _is_git_name(name: str) -> bool:
    return name in _GIT_NAMES or _GIT_PATTERN.fullmatch(name) is not None


def _temp_of(name: str) -> str | None:
    """The file a speedrift atomic write's temp file stands for, or None for any other name."""
    found = _TEMP.fullmatch(name)
    return found.group(1) if found else None


def _is_attempt_entry(entry: os.DirEntry[str]) -> bool:
    """An attempt's worktree or manifest (``<name>.json``, or its temp file while written)."""
    name = entry.name
    manifest = _temp_of(name) or name
    if manifest.endswith(".json") and _ATTEMPT_NAME.fullmatch(manifest.removesuffix(".json")):
        return True
    return entry.is_dir(follow_symlinks=False) and _ATTEMPT_NAME.fullmatch(name) is not None


def _is_task_entry(entry: os.DirEntry[str]) -> bool:
    """A task's run directories (``runs/<task>/``): everything in them is speedrift's record."""
    return entry.is_dir(follow_symlinks=False)


# --- stamps -----------------------------------------------------------------------------------------
def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as found:
            return sorted(found, key=lambda e: e.name)
    except OSError:
        return []


def _stamp(path: Path) -> Stamp:
    try:
        info = path.lstat()
    except OSError:
        return (-1, -1)
    return (info.st_size, info.st_mtime_ns)


def _foreign(entry: os.DirEntry[str], found: dict[str, Stamp]) -> None:
    """Stamp an entry that is nobody's own: a file by itself, a directory with its entries."""
    if entry.is_dir(follow_symlinks=False):
        _directory(entry.path + "/", found)
    else:
        found[entry.path] = _stamp(Path(entry.path))


def _directory(path: str, found: dict[str, Stamp]) -> None:
    """``path`` (ending in "/") and its direct entries: a write into it, or into one of its
    directories, changes one of these stamps. Past :data:`DIR_ENTRIES_CAP` entries, the directory
    alone."""
    found[path] = _stamp(Path(path))
    entries = _entries(Path(path))
    if len(entries) > DIR_ENTRIES_CAP:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            suffix = "/" if stat.S_ISDIR(info.st_mode) else ""
            found[path + entry.name + suffix] = (info.st_size, info.st_mtime_ns)


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
