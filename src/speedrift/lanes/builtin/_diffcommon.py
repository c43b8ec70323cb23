"""What the built-in drift lanes share: a lane's settings overlaid with a task's fence, the finding
that says a fence is unusable, changed paths filtered by globs, a changed file's two versions, and
a lane's small JSON state file.

Invariant: a fence never crashes a lane — every problem with it (TOML, an unknown key, a value of
the wrong type, a schema other than 1) comes back as a list of problems naming the key, which the
lane reports as one ``invalid_*_config`` (or ``unsupported_schema``) finding and then judges
nothing else for that task. A state file that is missing or unreadable reads as empty; it is
rewritten atomically under a lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speedrift import fsutil
from speedrift.gates.changes import ChangedFile, read_blobs
from speedrift.gates.globs import matches_any
from speedrift.lanes.context import LaneContext, RepoView
from speedrift.lanes.model import LaneFinding, Severity
from speedrift.lanes.spec import Lane, SettingsError, check_settings

SCHEMA = 1
STATE_FILE = "state.json"

# a fence-only key's expected type: "str", "int", "bool", "list[str]"
FenceKeys = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Config:
    """A lane's settings for one task: policy (already over defaults) overlaid with the fence."""

    settings: dict[str, Any]
    fenced: bool  # the task has the lane's fence (parsed or not)
    problems: tuple[str, ...] = ()  # why the fence cannot be used, each naming the key
    schema: Any = SCHEMA  # the fence's ``schema`` (1 when absent)
    extra: dict[str, Any] = field(default_factory=dict)  # fence-only keys (coredrift: touch, mode…)

    @property
    def usable(self) -> bool:
        return not self.problems and self.schema == SCHEMA


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)  # list[str]


def config(ctx: LaneContext, lane: Lane, fence_only: FenceKeys | None = None) -> Config:
    """``ctx.settings`` (the lane's defaults when empty) overlaid with ``ctx.fence``."""
    return overlay(lane, ctx.settings, ctx.fence, ctx.fence_error, fence_only)


def overlay(
    lane: Lane,
    given: Mapping[str, Any],
    fence: Mapping[str, Any] | None,
    fence_error: str | None,
    fence_only: FenceKeys | None = None,
) -> Config:
    settings = {**lane.defaults, **given}
    if fence_error is not None:
        return Config(settings, True, (fence_error,))
    if fence is None:
        return Config(settings, False)
    problems: list[str] = []
    extra: dict[str, Any] = {}
    known = dict(fence_only or {})
    for key, value in fence.items():
        if key == "schema":
            continue
        if key in known:
            if _type_ok(known[key], value):
                extra[key] = value
            else:
                problems.append(f"{key}: expected {known[key]}, got {type(value).__name__}")
            continue
        if key not in lane.defaults:
            names = ", ".join(sorted({"schema", *lane.defaults, *known}))
            problems.append(f"{key}: the ```{lane.fence}``` block has no such key (its keys: {names})")
            continue
        try:
            check_settings(lane, {key: value})
        except SettingsError as exc:
            problems.append(f"{key}: {exc.problem}")
            continue
        settings[key] = value
    negative = [
        k for k, v in settings.items() if isinstance(v, int | float) and not isinstance(v, bool) and v < 0
    ]
    problems += [f"{k}: must be >= 0, got {settings[k]}" for k in negative]
    schema = fence.get("schema", SCHEMA)
    return Config(settings, True, tuple(problems), schema, extra)


def config_findings(
    ctx: LaneContext,
    lane: Lane,
    cfg: Config,
    invalid_kind: str,
    schema_kind: str = "unsupported_schema",
    subject: str | None = None,
) -> list[LaneFinding]:
    """The finding a fence that cannot be used gives: ``invalid_kind``, or ``schema_kind`` for a
    schema other than 1 (about ``subject``, the context's task by default)."""
    fence = f"```{lane.fence}```"
    task = ctx.task_id if subject is None else subject
    if cfg.problems:
        return [
            LaneFinding(
                lane=lane.name,
                kind=invalid_kind,
                message=f"task {task}: the {fence} block cannot be used: {cfg.problems[0]}",
                severity=Severity.ERROR,
                subject=task,
                evidence=cfg.problems,
                fix=f"correct the {fence} block in the task description (see the evidence for each key)",
            )
        ]
    if cfg.schema != SCHEMA:
        return [
            LaneFinding(
                lane=lane.name,
                kind=schema_kind,
                message=f"task {task}: the {fence} block has schema {cfg.schema!r}; only 1 is read",
                severity=Severity.ERROR,
                subject=task,
                evidence=(f"schema = {cfg.schema!r}",),
                fix=f"set schema = 1 in the {fence} block",
            )
        ]
    return []


# ---------------------------------------------------------------------- the diff range


def changed_paths(view: RepoView, ignore: Sequence[str] = ()) -> list[str]:
    """Every path the range changed (deleted ones too), except those matching ``ignore``."""
    return [c.path for c in view.changes() if not matches_any(c.path, ignore)]


def matching(paths: Iterable[str], globs: Sequence[str]) -> list[str]:
    return [p for p in paths if globs and matches_any(p, globs)]


def at_tip(view: RepoView) -> set[str]:
    """Paths present at the range's tip: the head tree, plus what the range added, minus what it
    deleted (the tip and head are one commit after a landing; an attempt's tip may add files)."""
    present = set(view.paths())
    for change in view.changes():
        if change.exists:
            present.add(change.path)
        else:
            present.discard(change.path)
        if change.status == "R" and change.old_path:
            present.discard(change.old_path)
    return present


def versions(view: RepoView, change: ChangedFile) -> tuple[bytes | None, bytes | None]:
    """A changed file's bytes at the base and at the tip (None where it does not exist)."""
    wanted = [b for b in (change.old_blob, change.new_blob) if b]
    blobs = read_blobs(view.repo, wanted) if wanted else {}
    old = blobs.get(change.old_blob) if change.old_blob else None
    new: bytes | None = None
    if change.exists:
        if change.new_blob:
            new = blobs.get(change.new_blob)
        else:  # the working tree (tip None): git has not hashed it
            try:
                new = (view.repo / change.path).read_bytes()
            except OSError:
                new = None
    return old, new


def no_range(view: RepoView) -> str | None:
    """Why a diff lane cannot judge (no base..tip range), or None."""
    return None if view.base is not None else "no diff range (base..tip) to judge"


# ---------------------------------------------------------------------- lane state


def update_state(state_dir: Path, change: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read ``state_dir/state.json``, let ``change`` edit it, and write it back atomically when
    ``change`` says it changed something — all under a lock, so two runs never lose an update."""
    path = state_dir / STATE_FILE
    with fsutil.flocked(state_dir / ".state.lock"):
        try:
            loaded = json.loads(path.read_bytes())
        except (OSError, ValueError):
            loaded = {}
        state: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        if change(state):
            data = json.dumps(state, indent=2, sort_keys=True).encode() + b"\n"
            fsutil.write_atomic(path, data)
    return state


def shown(items: Sequence[str], limit: int = 10) -> str:
    """``a, b, c`` (and how many more)."""
    head = ", ".join(items[:limit])
    return head + (f" and {len(items) - limit} more" if len(items) > limit else "")
