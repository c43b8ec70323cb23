"""yagnidrift: a change that builds more than it needs.

On a base..tip range (with a task's ```` ```yagnidrift ```` block, or the policy, or the defaults):
``too_many_new_files`` (more than ``max_new_files`` files added), ``too_many_new_dirs`` (more than
``max_new_dirs`` directories that did not exist at the base), and — while
``enforce_no_speculative_abstractions`` holds — ``speculative_abstraction``: a file the range
adds, or a class / interface / trait / struct / protocol / enum it defines, whose name has one of
``abstraction_keywords`` as a word (``AbstractBaseProviderFactory``, ``user_manager.py``; not
``database.py``: words are split at case changes, ``_``, ``-`` and digits). Paths matching
``allow_paths`` are left out of every check, and so are tests (a fake provider is not an
abstraction). A block that cannot be read: ``invalid_yagni_config``; a ``schema`` other than 1:
``unsupported_schema``.

Invariant: only what the range adds is judged — a type already defined in the file at the base
is never a finding, whatever its name — and a finding's key is ``path:name``, never a line.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from speedrift.gates.changes import ChangedFile, git_bytes
from speedrift.gates.globs import matches_any
from speedrift.lanes.builtin._diffcommon import config, config_findings, no_range, shown, versions
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "yagnidrift"
DEFAULTS: dict[str, Any] = {
    "max_new_files": 8,
    "max_new_dirs": 3,
    "enforce_no_speculative_abstractions": True,
    "abstraction_keywords": [
        "factory",
        "adapter",
        "manager",
        "engine",
        "framework",
        "orchestrator",
        "provider",
        "base",
    ],
    "allow_paths": [],
}
_TYPE = re.compile(
    r"^\s*(?:export\s+)?(?:default\s+)?(?:(?:public|private|internal|abstract|sealed|final|data)\s+)*"
    r"(?:pub(?:\([^)]*\))?\s+)?(?:class|interface|trait|struct|protocol|enum)\s+([A-Za-z_]\w*)"
    r"|^\s*type\s+([A-Za-z_]\w*)\s+(?:struct|interface)\b"
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_TEST_DIRS = ("tests", "test", "__tests__", "spec")


def run(ctx: LaneContext) -> LaneOutput:
    cfg = config(ctx, LANE)
    if cfg.fenced and not cfg.usable:
        return LaneOutput(config_findings(ctx, LANE, cfg, "invalid_yagni_config"))
    why = no_range(ctx.view)
    if why is not None:
        return LaneOutput([], why)
    settings = cfg.settings
    allow: list[str] = settings["allow_paths"]
    changes = [c for c in ctx.view.changes() if not matches_any(c.path, allow)]
    added = [c.path for c in changes if c.status in ("A", "C")]
    findings: list[LaneFinding] = []
    who = f"task {ctx.task_id}" if ctx.task_id else "the range"
    if len(added) > settings["max_new_files"]:
        findings.append(
            LaneFinding(
                lane=NAME,
                kind="too_many_new_files",
                message=f"{who} adds {len(added)} files (max_new_files = {settings['max_new_files']})",
                subject=ctx.task_id,
                evidence=(f"added: {shown(added)}",),
                fix="build only what the task needs now: fold or drop the files nothing uses yet",
            )
        )
    dirs = _new_dirs(ctx, added)
    if len(dirs) > settings["max_new_dirs"]:
        findings.append(
            LaneFinding(
                lane=NAME,
                kind="too_many_new_dirs",
                message=f"{who} adds {len(dirs)} directories (max_new_dirs = {settings['max_new_dirs']})",
                subject=ctx.task_id,
                evidence=(f"new directories: {shown(dirs)}",),
                fix="keep the new code in the existing layout until a second use asks for a new package",
            )
        )
    if settings["enforce_no_speculative_abstractions"]:
        keywords = {k.lower() for k in settings["abstraction_keywords"] if k.strip()}
        findings += _abstractions(ctx, [c for c in changes if c.exists and not _is_test(c.path)], keywords)
    return LaneOutput(findings, "" if findings else f"{len(added)} new file(s), {len(dirs)} new dir(s)")


def _new_dirs(ctx: LaneContext, added: list[str]) -> list[str]:
    out = git_bytes(["ls-tree", "-r", "-d", "--name-only", "-z", str(ctx.view.base)], ctx.repo)
    existing = {os.fsdecode(d) for d in out.split(b"\0") if d}
    found: set[str] = set()
    for path in added:
        folder = posixpath.dirname(path)
        while folder and folder not in existing:
            found.add(folder)
            folder = posixpath.dirname(folder)
    return sorted(found)


def _is_test(path: str) -> bool:
    name = posixpath.basename(path)
    stem = name.split(".", 1)[0]
    parts = path.split("/")[:-1]
    return (
        stem.startswith("test_")
        or stem.endswith(("_test", "Test", "Tests"))
        or ".test." in name
        or ".spec." in name
        or any(p in _TEST_DIRS for p in parts)
    )


def words(name: str) -> list[str]:
    """``AbstractBaseProviderFactory`` -> abstract, base, provider, factory."""
    return [w.lower() for w in _WORDS.findall(name)]


def _hits(name: str, keywords: set[str]) -> list[str]:
    """The keywords that are words of ``name`` (a plural counts: ``providers``)."""
    found = {
        w if w in keywords else w[:-1]
        for w in words(name)
        if w in keywords or (w.endswith("s") and w[:-1] in keywords)
    }
    return sorted(found)


def _defined(text: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _TYPE.match(line)
        if match:
            found.append((number, match.group(1) or match.group(2)))
    return found


def _abstractions(ctx: LaneContext, changes: list[ChangedFile], keywords: set[str]) -> list[LaneFinding]:
    findings: list[LaneFinding] = []
    added_lines = ctx.view.added_lines()
    for change in changes:
        path = change.path
        candidates: list[tuple[int, str, str]] = []  # line, name, what
        if change.status in ("A", "C"):
            stem = posixpath.basename(path).split(".", 1)[0]
            if _hits(stem, keywords):
                candidates.append((0, posixpath.basename(path), "file"))
        lines = added_lines.get(path, [])
        new_types = [(n, m.group(1) or m.group(2)) for n, text in lines if (m := _TYPE.match(text))]
        new_types = [(n, name) for n, name in new_types if _hits(name, keywords)]
        if new_types and change.status not in ("A", "C"):
            old, _new = versions(ctx.view, change)
            before = {name for _n, name in _defined((old or b"").decode("utf-8", "replace"))}
            new_types = [(n, name) for n, name in new_types if name not in before]
        candidates += [(n, name, "type") for n, name in new_types]
        for line, name, what in candidates:
            hits = ", ".join(_hits(name.split(".", 1)[0], keywords))
            noun = "file" if what == "file" else "type"
            findings.append(
                LaneFinding(
                    lane=NAME,
                    kind="speculative_abstraction",
                    message=f"{path}: new {noun} {name} looks like a speculative abstraction ({hits})",
                    file=path,
                    line=line,
                    subject=ctx.task_id,
                    key=f"{path}:{name}",
                    evidence=(f"name: {name}", f"abstraction words: {hits}"),
                    fix=(
                        f"write the concrete code the task needs instead of {name}; introduce the"
                        " abstraction when a second implementation exists (or list the path in allow_paths)"
                    ),
                )
            )
    return findings


LANE = Lane(
    name=NAME,
    scope=LaneScope.DIFF,
    summary="too many new files or directories, speculative abstractions by name",
    run=run,
    defaults=DEFAULTS,
    fence=NAME,
)
