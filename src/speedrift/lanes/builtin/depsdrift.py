"""depsdrift: a dependency manifest changed while its lock file did not (``lock_not_updated``).

Found without any configuration, per directory, for the ecosystems in :data:`LOCKS_FOR`
(pyproject.toml → uv.lock / poetry.lock / pdm.lock / pylock.toml, Pipfile → Pipfile.lock, requirements*.in →
the .txt of the same stem, package.json → package-lock.json / yarn.lock / pnpm-lock.yaml /
bun.lock(b), Cargo.toml → Cargo.lock, go.mod → go.sum, Gemfile → Gemfile.lock, composer.json →
composer.lock): a manifest pairs with the locks of its family in its own directory, or — for a
workspace member (uv, Cargo, npm, yarn, pnpm, bun) — with the workspace root's lock when the root
names the member. A manifest whose family keeps no lock at the tip is not judged: the project does
not lock. A task's ```` ```depsdrift ```` block (or the policy) adds declared pairs: ``manifests``
and ``locks`` globs; ``ignore`` leaves files out; ``require_lock_update_when_manifest_changes`` =
false and ``auto_detect`` = false turn the checks off. A block that cannot be read:
``invalid_deps_config``; a ``schema`` other than 1: ``unsupported_schema``.

Invariant: a manifest change that leaves what its lock records alone — a description, scripts, a
comment — is never a finding: for TOML and JSON manifests the tables the lock depends on are
compared at base and tip (including the project's own name and version where the lock records
them: uv.lock, Cargo.lock, composer.lock), for line-based ones the requirement lines.
"""

from __future__ import annotations

import json
import posixpath
import tomllib
from collections import Counter
from typing import Any

import yaml

from speedrift.gates.globs import matches, matches_any
from speedrift.lanes.builtin._diffcommon import (
    at_tip,
    changed_paths,
    config,
    config_findings,
    matching,
    no_range,
    versions,
)
from speedrift.lanes.builtin._manifests import LOCKS_FOR
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "depsdrift"
DEFAULTS: dict[str, Any] = {
    "manifests": [],  # declared pairs: globs of manifests …
    "locks": [],  # … and of the locks that must change with them
    "require_lock_update_when_manifest_changes": True,
    "ignore": [],
    "auto_detect": True,  # the built-in manifest/lock pairs
}
# what each manifest's lock depends on (dotted keys)
_RELEVANT: dict[str, tuple[str, ...]] = {
    "pyproject.toml": (
        "project.dependencies",
        "project.optional-dependencies",
        "project.requires-python",
        "dependency-groups",
        "tool.poetry.dependencies",
        "tool.poetry.dev-dependencies",
        "tool.poetry.group",
        "tool.poetry.source",
        "tool.poetry.extras",
        "tool.uv",
        "tool.pdm.dev-dependencies",
        "tool.pdm.source",
        "tool.pdm.resolution",
    ),
    "Pipfile": ("packages", "dev-packages", "source", "requires"),
    "package.json": (
        "dependencies",
        "devDependencies",
        "optionalDependencies",
        "peerDependencies",
        "peerDependenciesMeta",
        "bundleDependencies",
        "bundledDependencies",
        "overrides",
        "resolutions",
        "workspaces",
        "pnpm",
    ),
    "Cargo.toml": (
        "package.name",
        "package.version",
        "dependencies",
        "dev-dependencies",
        "build-dependencies",
        "target",
        "workspace.members",
        "workspace.exclude",
        "workspace.dependencies",
        "workspace.package.version",
        "patch",
        "replace",
    ),
    "composer.json": (
        "name",
        "version",
        "require",
        "require-dev",
        "conflict",
        "replace",
        "provide",
        "minimum-stability",
        "prefer-stable",
        "repositories",
        "extra",
        "config.platform",
    ),
}
# locks that also record the project's own name and version (uv.lock's editable root entry)
_SELF_RECORDED = {"uv.lock": ("project.name", "project.version")}
_LINE_COMMENT = {"Gemfile": "#", "go.mod": "//"}
# locks a workspace root keeps for its members: lock -> (root file, dotted key of member globs)
_WORKSPACE = {
    "uv.lock": ("pyproject.toml", "tool.uv.workspace.members"),
    "Cargo.lock": ("Cargo.toml", "workspace.members"),
    "package-lock.json": ("package.json", "workspaces"),
    "yarn.lock": ("package.json", "workspaces"),
    "bun.lock": ("package.json", "workspaces"),
    "bun.lockb": ("package.json", "workspaces"),
    "pnpm-lock.yaml": ("pnpm-workspace.yaml", "packages"),
}


def run(ctx: LaneContext) -> LaneOutput:
    cfg = config(ctx, LANE)
    if cfg.fenced and not cfg.usable:
        return LaneOutput(config_findings(ctx, LANE, cfg, "invalid_deps_config"))
    settings = cfg.settings
    if bool(settings["manifests"]) != bool(settings["locks"]):
        return LaneOutput([_half_pair(ctx, settings)])
    why = no_range(ctx.view)
    if why is not None:
        return LaneOutput([], why)
    if not settings["require_lock_update_when_manifest_changes"]:
        return LaneOutput([], "require_lock_update_when_manifest_changes = false: nothing to judge")
    paths = changed_paths(ctx.view, settings["ignore"])
    changed = set(paths)
    present = at_tip(ctx.view)
    by_path = {c.path: c for c in ctx.view.changes()}
    pairs: dict[str, list[str]] = {}  # manifest -> the locks one of which must change
    if settings["auto_detect"]:
        for path in paths:
            if by_path[path].exists:
                locks = _auto_locks(ctx, path, present)
                if locks:
                    pairs[path] = locks
    declared = matching(paths, settings["manifests"])
    for path in declared:
        if by_path[path].exists and path not in pairs:
            pairs[path] = sorted(p for p in present | changed if matches_any(p, settings["locks"]))
    findings: list[LaneFinding] = []
    for manifest, locks in sorted(pairs.items()):
        if any(lock in changed for lock in locks):
            continue
        old, new = versions(ctx.view, by_path[manifest])
        what = dependency_changes(manifest, old, new, {posixpath.basename(lock) for lock in locks})
        if what:
            findings.append(_finding(ctx, manifest, locks, what))
    return LaneOutput(
        findings, "" if findings else f"{len(pairs)} manifest change(s) with their locks in step"
    )


def _locks_named(path: str) -> tuple[str, ...]:
    name = posixpath.basename(path)
    if name in LOCKS_FOR:
        return LOCKS_FOR[name]
    if name.endswith(".in") and (matches(name, "requirements*.in") or matches(path, "**/requirements/*.in")):
        return (name[: -len(".in")] + ".txt",)
    return ()


def _auto_locks(ctx: LaneContext, manifest: str, present: set[str]) -> list[str]:
    """The locks ``manifest`` pairs with at the tip: its family's in its directory, else a
    workspace root's that names its directory as a member."""
    names = _locks_named(manifest)
    folder = posixpath.dirname(manifest)
    here = [posixpath.join(folder, n) for n in names if posixpath.join(folder, n) in present]
    if here:
        return here
    parts = folder.split("/") if folder else []
    for depth in range(len(parts) - 1, -1, -1):
        root = "/".join(parts[:depth])
        member = "/".join(parts[depth:])
        for name in names:
            lock = posixpath.join(root, name)
            if name in _WORKSPACE and lock in present and _is_member(ctx, root, name, member):
                return [lock]
    return []


def _is_member(ctx: LaneContext, root: str, lock: str, member: str) -> bool:
    file, key = _WORKSPACE[lock]
    data = ctx.view.read(posixpath.join(root, file))
    if data is None:
        return False
    try:
        text = data.decode("utf-8")
        if file.endswith(".yaml"):
            table = yaml.safe_load(text)
        else:
            table = tomllib.loads(text) if file.endswith(".toml") else json.loads(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError):
        return False
    globs = _dig(table, key)
    if isinstance(globs, dict):  # package.json: "workspaces": {"packages": [...]}
        globs = globs.get("packages")
    return isinstance(globs, list) and any(isinstance(g, str) and matches(member, g) for g in globs)


def _dig(table: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(table, dict):
            return None
        table = table.get(part)
    return table


def dependency_changes(manifest: str, old: bytes | None, new: bytes | None, locks: set[str]) -> list[str]:
    """What changed between base and tip that ``locks`` depend on (empty: nothing they record)."""
    name = posixpath.basename(manifest)
    keys = _RELEVANT.get(name)
    if keys is not None:
        keys = keys + tuple(k for lock in sorted(locks) for k in _SELF_RECORDED.get(lock, ()))
        try:
            before, after = _parse(name, old), _parse(name, new)
        except (UnicodeDecodeError, ValueError):
            return [f"{name} could not be parsed at the base or the tip"]
        dynamic = _dig(after, "project.dynamic")
        if isinstance(dynamic, list) and "version" in dynamic:  # the lock cannot record it
            keys = tuple(k for k in keys if k != "project.version")
        return [k for k in keys if _dig(before, k) != _dig(after, k)]
    comment = _LINE_COMMENT.get(name, "#")
    if _lines(old, comment, name) != _lines(new, comment, name):
        return ["requirement lines"]
    return []


def _parse(name: str, data: bytes | None) -> Any:
    if data is None:
        return {}
    text = data.decode("utf-8")
    return json.loads(text) if name.endswith(".json") else tomllib.loads(text)


def _lines(data: bytes | None, comment: str, name: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for raw in (data or b"").decode("utf-8", "replace").splitlines():
        line = " ".join(raw.split(comment, 1)[0].split())
        if line and not (name == "go.mod" and line.startswith("module ")):
            found[line] += 1
    return found


def _finding(ctx: LaneContext, manifest: str, locks: list[str], what: list[str]) -> LaneFinding:
    shown_locks = " or ".join(locks) or "its lock"
    return LaneFinding(
        lane=NAME,
        kind="lock_not_updated",
        message=f"{manifest} changed what its lock records ({', '.join(what)}); {shown_locks} did not change",
        severity=Severity.WARNING,
        file=manifest,
        subject=ctx.task_id,
        key=manifest,
        evidence=(f"changed in {manifest}: {', '.join(what)}", f"unchanged: {shown_locks}"),
        fix=(
            f"regenerate the lock for {manifest} (uv lock, poetry lock, npm install, cargo update -w,"
            " go mod tidy, …) and commit it"
        ),
        scope=(manifest, *locks),  # the fix regenerates the lock: it must be in the follow-up's scope
    )


def _half_pair(ctx: LaneContext, settings: dict[str, Any]) -> LaneFinding:
    return LaneFinding(
        lane=NAME,
        kind="invalid_deps_config",
        message="depsdrift's declared pairs need both manifests and locks globs",
        severity=Severity.ERROR,
        subject=ctx.task_id,
        evidence=(f"manifests: {settings['manifests']}", f"locks: {settings['locks']}"),
        fix="set both manifests = [globs] and locks = [globs], or neither (the built-in pairs still apply)",
    )


LANE = Lane(
    name=NAME,
    scope=LaneScope.DIFF,
    summary="a dependency manifest changed without its lock file",
    run=run,
    defaults=DEFAULTS,
    fence=NAME,
)
