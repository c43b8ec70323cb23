"""What an attempt may not change in git: the repository's configuration and its hooks.

Job: before an agent runs, snapshot the files of the repository's git directory that make git run
programs or choose which ones — ``config``, ``config.worktree`` and every worktree's
``config.worktree``, the files their ``include.path`` entries name, ``info/attributes`` (it picks
filter, diff and merge drivers), the hooks directory (``hooks/``, and the one ``core.hooksPath``
names when that is an absolute path) — as content hashes; after the agent, compare and name what
changed: "``.git/config``: core.fsmonitor added", "``.git/hooks/post-checkout`` added". The
pipeline holds an attempt that changed any of them for a human (fleet/pipeline.py). A config key
that everyday git commands write (``branch.<name>.remote``/``merge``/``description``: ``push -u``,
``checkout --track``) is reported and does not hold.

And for a repo that opted in to its own hooks (``[git] hooks = "repo"``): which of them
speedrift's own commit and landing may run (:func:`approve_hooks`) — only those that were there,
byte for byte, before the attempt began. Unchanged, they run from the directory git would use;
otherwise the unchanged ones are copied into a directory of the attempt's own (a hook that reads
files next to itself then finds none and fails, refusing the commit: safe) and the others are
named, never run.

Invariants: nothing here writes into the repository; a config value is never kept or shown (it may
hold a credential) — only key names and hashes; speedrift never restores a user's configuration by
itself: it says what changed and how to undo it.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedrift import gitcmd
from speedrift.repo import git

MAX_FILES = 2000  # per hooks directory: more is not a hooks directory, and the rest is not hashed
SAMPLE_SUFFIX = ".sample"  # git's own examples: never run
# written by everyday git commands (push -u, checkout --track, branch --edit-description):
# reported, never a reason to hold an attempt
ROUTINE_KEYS = ("remote", "merge", "description")
ABSENT = "absent"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str | None:
    """sha256 of a regular file's bytes, ``:x`` appended when it is executable; a symbolic link's
    target comes first (``link:<target>>``, then what it points to). None when absent or not a
    file."""
    try:
        prefix = f"link:{os.readlink(path)}>" if path.is_symlink() else ""
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return None
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None
    return prefix + digest + (":x" if info.st_mode & 0o111 else "")


def _content(digest: str) -> str:
    """A digest without its symbolic link part: what a copy of the file hashes to."""
    return digest.rpartition(">")[2]


def _tree(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (relative path -> digest), at most :data:`MAX_FILES`."""
    found: dict[str, str] = {}
    if not directory.is_dir():
        return found
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            digest = _file_digest(path)
            if digest is not None:
                found[path.relative_to(directory).as_posix()] = digest
            if len(found) >= MAX_FILES:
                return found
    return found


# ---------------------------------------------------------------- hooks


@dataclass(frozen=True)
class HookSet:
    """The hooks directory git would use in a checkout and every file in it (path -> digest)."""

    directory: Path
    files: dict[str, str]

    @property
    def runnable(self) -> dict[str, str]:
        """The hooks git would run: executable files directly in the directory, samples excluded."""
        return {
            name: digest
            for name, digest in self.files.items()
            if "/" not in name and digest.endswith(":x") and not name.endswith(SAMPLE_SUFFIX)
        }

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "files": dict(self.files)}

    @classmethod
    def from_dict(cls, raw: object) -> HookSet | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("directory"), str):
            return None
        files = raw.get("files")
        if not isinstance(files, dict):
            return None
        return cls(Path(raw["directory"]), {str(k): str(v) for k, v in files.items() if isinstance(v, str)})


def configured_hooks_path(checkout: Path) -> str | None:
    """``core.hooksPath`` as the repository's own configuration sets it (``~`` expanded), ignoring
    what speedrift puts on git's command line; None when it is unset."""
    args = ["config", "--show-scope", "-z", "--type=path", "--get-all", "core.hooksPath"]
    tokens = [os.fsdecode(t) for t in gitcmd.run_bytes(args, checkout).stdout.split(b"\0")]
    values = [tokens[i + 1] for i in range(0, len(tokens) - 1, 2) if tokens[i] != "command"]
    return values[-1] if values and values[-1] else None


def hooks_dir(checkout: Path) -> Path:
    """The directory git would take hooks from in ``checkout`` (a checkout's top level) under the
    repository's own configuration: ``core.hooksPath`` (a relative one from the checkout, where git
    runs hooks), else the common git directory's ``hooks``."""
    configured = configured_hooks_path(checkout)
    if configured is None:
        return git.common_dir(checkout) / "hooks"
    path = Path(configured)
    return path if path.is_absolute() else checkout / path


def hook_set(checkout: Path) -> HookSet:
    """The hooks git would run in ``checkout`` (a checkout's top level), hashed."""
    directory = hooks_dir(checkout)
    return HookSet(directory, _tree(directory))


@dataclass(frozen=True)
class Approval:
    """Which hooks speedrift's own git may run: ``directory`` (None: none at all) and the hooks it
    refused (``refused``: "pre-commit (added during the attempt)")."""

    directory: Path | None
    refused: list[str] = field(default_factory=list)


def approve_hooks(checkout: Path, before: HookSet, scratch: Path) -> Approval:
    """The hooks that were in ``before`` byte for byte (see the module docstring). ``scratch``: a
    directory of the attempt's own, emptied and filled with copies when only some are approved."""
    now = hook_set(checkout)
    if now.directory != before.directory:
        moved = f"core.hooksPath now names {now.directory}, not {before.directory} as before the attempt"
        return Approval(None, [f"every hook ({moved})"])
    approved = before.runnable
    refused = [
        f"{name} ({'added' if name not in approved else 'changed'} during the attempt)"
        for name, digest in sorted(now.runnable.items())
        if approved.get(name) != digest
    ]
    if not refused and now.files == before.files:
        return Approval(now.directory)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, mode=0o700)
    for name, digest in sorted(now.runnable.items()):
        if approved.get(name) != digest:
            continue
        copy = scratch / name
        try:
            shutil.copyfile(now.directory / name, copy)
            copy.chmod(0o700)
        except OSError as error:
            refused.append(f"{name} (could not be copied: {error.strerror or error})")
            continue
        if _file_digest(copy) != _content(digest):  # changed while we copied: not the hook that was approved
            copy.unlink()
            refused.append(f"{name} (changed during the attempt)")
    return Approval(scratch, refused)


# ---------------------------------------------------------------- the git directory


@dataclass(frozen=True)
class Snapshot:
    """The watched files of a repository's git directory (display name -> digest, or
    :data:`ABSENT`), the config files' bytes (to name changed keys), and the hooks of the
    attempt's checkout (what its landing may run)."""

    files: dict[str, str]
    configs: dict[str, bytes | None]
    paths: dict[str, Path]
    hooks: HookSet


@dataclass(frozen=True)
class Change:
    """One change in the git directory, named without any value."""

    path: str  # display name: relative to the repo when inside it (".git/config")
    what: str  # "added", "removed", "changed", "changed (comments or layout only)" …
    undo: str  # what a person runs or does to undo it
    key: str | None = None  # the config key, for a config file
    routine: bool = False  # written by everyday git commands: reported, never holding

    def __str__(self) -> str:
        return f"{self.path}: {self.key} {self.what}" if self.key else f"{self.path} {self.what}"


def _shown(repo: Path, path: Path) -> str:
    for base in (repo, repo.resolve()):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return str(path)


def _include_paths(config: Path, data: bytes) -> list[Path]:
    """The files ``include.path`` / ``includeIf.<cond>.path`` in ``config`` name (relative ones
    from the config's directory); read, never followed by git here."""
    if b"include" not in data.lower():
        return []
    found: list[Path] = []
    for key, value in _entries(config) or []:
        lowered = key.lower()
        if value and lowered.endswith(".path") and lowered.startswith(("include.", "includeif.")):
            target = Path(os.fsdecode(value)).expanduser()
            found.append(target if target.is_absolute() else config.parent / target)
    return found


def snapshot(repo: Path, checkout: Path, previous: Snapshot | None = None) -> Snapshot:
    """The watched files of ``repo``'s git directory now, and the hooks of ``checkout``.
    ``previous``: an earlier snapshot of the same checkout; while the repository's config files
    are byte for byte as they were then, the hooks directory git would use is too, and is not
    asked of git again (its hooks are hashed anew all the same)."""
    common = git.common_dir(repo)
    configs = [common / "config", common / "config.worktree"]
    worktrees_dir = common / "worktrees"
    if worktrees_dir.is_dir():
        own = (p / "config.worktree" for p in worktrees_dir.iterdir())
        configs += sorted(p for p in own if p.exists())
    files: dict[str, str] = {}
    config_bytes: dict[str, bytes | None] = {}
    paths: dict[str, Path] = {}
    index = 0
    while index < len(configs):  # the list grows by the files the main config includes
        config = configs[index]
        index += 1
        name = _shown(repo, config)
        try:
            data: bytes | None = config.read_bytes()
        except OSError:
            data = None
        config_bytes[name] = data
        files[name] = _digest(data) if data is not None else ABSENT
        paths[name] = config
        if index == 1 and data is not None:
            configs += [p for p in _include_paths(config, data) if p not in configs]
    attributes = common / "info" / "attributes"
    name = _shown(repo, attributes)
    files[name], paths[name] = _file_digest(attributes) or ABSENT, attributes
    unchanged = previous is not None and previous.configs == config_bytes
    hooks = (
        HookSet(previous.hooks.directory, _tree(previous.hooks.directory))
        if previous is not None and unchanged
        else hook_set(checkout)
    )
    hook_dirs = [common / "hooks"]
    if hooks.directory != common / "hooks" and not hooks.directory.is_relative_to(checkout):
        hook_dirs.append(hooks.directory)  # an absolute core.hooksPath; a relative one is the checkout's
    for directory in hook_dirs:
        tree = hooks.files if directory == hooks.directory else _tree(directory)
        for rel, digest in tree.items():
            name = _shown(repo, directory / rel)
            files[name], paths[name] = digest, directory / rel
    return Snapshot(files, config_bytes, paths, hooks)


def changes(before: Snapshot, after: Snapshot) -> list[Change]:
    """What changed in the watched files between two snapshots, config keys named, values never."""
    found: list[Change] = []
    for name in sorted(set(before.files) | set(after.files)):
        old, new = before.files.get(name, ABSENT), after.files.get(name, ABSENT)
        if old == new:
            continue
        path = after.paths.get(name) or before.paths[name]
        if name in before.configs or name in after.configs:
            found += _config_changes(name, path, before.configs.get(name), after.configs.get(name))
            continue
        what = "added" if old == ABSENT else "removed" if new == ABSENT else "changed"
        undo = (
            f"`rm {shlex.quote(str(path))}`"
            if what == "added"
            else f"restore {path} as it was (review it first)"
        )
        found.append(Change(name, what, undo))
    return found


def _config_changes(name: str, path: Path, old: bytes | None, new: bytes | None) -> list[Change]:
    if old is None or new is None:
        what = "added" if old is None else "removed"
        return [Change(name, what, f"review {path}" if new is not None else f"restore {path}")]
    old_keys, new_keys = _keys(old), _keys(new)
    if old_keys is None or new_keys is None:
        return [Change(name, "changed (not readable as git configuration)", f"review {path}")]
    found: list[Change] = []
    for key in sorted(set(old_keys) | set(new_keys)):
        if old_keys.get(key) == new_keys.get(key):
            continue
        routine = key.startswith("branch.") and key.rsplit(".", 1)[-1] in ROUTINE_KEYS
        if key not in old_keys:
            undo = f"`git config --file {shlex.quote(str(path))} --unset-all {shlex.quote(key)}`"
            found.append(Change(name, "added", undo, key, routine))
        elif key not in new_keys:
            found.append(Change(name, "removed", f"set {key} again in {path}", key, routine))
        else:
            shows = f"git config --file {shlex.quote(str(path))} --get-all {shlex.quote(key)}"
            undo = f"set {key} in {path} back (`{shows}` shows it now)"
            found.append(Change(name, "changed", undo, key, routine))
    if not found:  # the same keys and values, written differently (comments, order of sections)
        found.append(Change(name, "changed (comments or layout only)", f"review {path}", routine=True))
    return found


def _keys(data: bytes) -> dict[str, str] | None:
    """A config file's keys -> the hash of their values in order; None when git cannot read it."""
    with tempfile.TemporaryDirectory(prefix="speedrift-gitconfig-") as folder:
        copy = Path(folder, "config")
        copy.write_bytes(data)
        entries = _entries(copy)
    if entries is None:
        return None
    values: dict[str, list[bytes]] = {}
    for key, value in entries:
        values.setdefault(key, []).append(value)
    return {key: _digest(b"\0".join(listed)) for key, listed in values.items()}


def _entries(config: Path) -> list[tuple[str, bytes]] | None:
    """(key, value) of every entry in one config file, includes not followed; None when git cannot
    read it."""
    done = gitcmd.run_bytes(["config", "--file", str(config), "--null", "--list"], config.parent)
    if done.returncode != 0:
        return None
    found: list[tuple[str, bytes]] = []
    for entry in done.stdout.split(b"\0"):
        if entry:
            key, _, value = entry.partition(b"\n")
            found.append((os.fsdecode(key), value))
    return found


def describe(found: list[Change], limit: int = 10) -> str:
    shown = "; ".join(str(change) for change in found[:limit])
    return shown + (f"; and {len(found) - limit} more" if len(found) > limit else "")
