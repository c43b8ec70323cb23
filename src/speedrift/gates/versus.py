"""Running a tool at the tip and, only where needed, at the base — then keeping what is new.

Two shapes of tool:

* per-file tools (ruff, eslint, semgrep): the tip run covers the changed files; the base run
  covers only base versions of files that have findings at the tip, written to a temporary
  directory with the config files they need. Base findings are cached per file path under a key
  of (base commit, tool, configuration), so attempts from one base share the work.
* whole-program tools (mypy, tsc): the base run checks out the whole base tree (privately, see
  basetree.py); its findings are cached under (base commit, tool, configuration).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from speedrift.gates import basetree, diffaware
from speedrift.gates.changes import ChangedFile, zero_context_diff
from speedrift.gates.context import GateContext
from speedrift.gates.model import Finding

# (root directory, repo-relative paths) -> findings with repo-relative file names
PerFileRun = Callable[[Path, list[str]], list[Finding]]
WholeRun = Callable[[Path], list[Finding]]

PYTHON_CONFIGS = ("pyproject.toml", "ruff.toml", ".ruff.toml", "setup.cfg", "mypy.ini", ".mypy.ini")
JS_CONFIGS = (
    "package.json",
    "eslint.config.js",
    "eslint.config.mjs",
    "eslint.config.cjs",
    "eslint.config.ts",
    ".eslintrc",
    ".eslintrc.js",
    ".eslintrc.cjs",
    ".eslintrc.json",
    ".eslintrc.yml",
    ".eslintrc.yaml",
    ".eslintignore",
    "tsconfig.json",
)


def config_candidates(paths: Sequence[str], names: Sequence[str]) -> list[str]:
    """Config file names in the root and in every directory holding a changed file, and between."""
    folders: set[str] = {""}
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folders.add("/".join(parts[:depth]))
    return sorted(f"{folder}/{name}" if folder else name for folder in folders for name in names)


def compare_per_file(
    ctx: GateContext,
    tool: str,
    config_key: str,
    files: Sequence[ChangedFile],
    tip_findings: list[Finding],
    run: PerFileRun,
    configs: Sequence[str],
    link_node_modules: bool = False,
) -> list[Finding]:
    """``tip_findings`` with ``new`` set by comparing with the base versions of their files."""
    if not tip_findings:
        return []
    with_findings = {f.file for f in tip_findings}
    at_base = [c for c in files if c.display in with_findings and c.base_path]
    key = diffaware.cache_key(ctx.base, tool, ctx.finder.fingerprint(tool), config_key)
    cached = ctx.cache.get(tool, key) or {}
    missing = sorted({c.base_path for c in at_base if c.base_path and c.base_path not in cached})
    if missing:
        extra = config_candidates(missing, configs)
        with basetree.some_files(ctx.worktree, ctx.base, missing, extra=extra) as root:
            if link_node_modules:
                _link_node_modules(ctx, root)
            present = [p for p in missing if (root / p).is_file()]
            found = run(root, present) if present else []
        by_file: dict[str, list[Finding]] = defaultdict(list)
        for finding in found:
            by_file[finding.file].append(finding)
        for path in missing:
            cached[path] = diffaware.findings_to_json(by_file.get(path, []))
        ctx.cache.put(tool, key, cached)
    base_findings = [
        f for c in at_base if c.base_path for f in diffaware.findings_from_json(cached.get(c.base_path))
    ]
    return _mark(ctx, tip_findings, base_findings, at_base)


def compare_whole(
    ctx: GateContext,
    tool: str,
    config_key: str,
    tip_findings: list[Finding],
    run: WholeRun,
    link_node_modules: bool = False,
) -> list[Finding]:
    if not tip_findings:
        return []
    key = diffaware.cache_key(ctx.base, tool, ctx.finder.fingerprint(tool), config_key)
    cached = ctx.cache.get(tool, key)
    if cached is None or "findings" not in cached:
        with basetree.full_tree(ctx.worktree, ctx.base) as root:
            if link_node_modules:
                _link_node_modules(ctx, root)
            cached = {"findings": diffaware.findings_to_json(run(root))}
        ctx.cache.put(tool, key, cached)
    base_findings = diffaware.findings_from_json(cached["findings"])
    return _mark(ctx, tip_findings, base_findings, list(ctx.changes))


def _mark(
    ctx: GateContext, tip: list[Finding], base: list[Finding], changes: Sequence[ChangedFile]
) -> list[Finding]:
    renames = {c.base_path: c.path for c in changes if c.base_path and c.base_path != c.path}
    by_path = {c.path: c for c in ctx.changes}
    files = sorted({f.file for f in tip if f.file in by_path})
    # old paths too, so git pairs a renamed file with its old self
    pathspec = sorted({*files, *(by_path[f].base_path or f for f in files)})
    maps = diffaware.line_maps(_diff(ctx, pathspec)) if files else {}
    return diffaware.mark_new(tip, base, maps, renames)


def _diff(ctx: GateContext, files: list[str]) -> bytes:
    chunks = [files[i : i + 200] for i in range(0, len(files), 200)]
    tip = None if ctx.working_tree else ctx.tip
    return b"\n".join(zero_context_diff(ctx.worktree, ctx.base, tip, chunk) for chunk in chunks)


def _link_node_modules(ctx: GateContext, root: Path) -> None:
    for source in (ctx.worktree / "node_modules", ctx.repo / "node_modules"):
        if source.exists() and not (root / "node_modules").exists():
            (root / "node_modules").symlink_to(source.resolve(), target_is_directory=True)
            return


def split_new(findings: list[Finding], keep_old: int = 50) -> tuple[list[Finding], list[Finding]]:
    new = [f for f in findings if f.new]
    old = [f for f in findings if not f.new]
    return new, old[:keep_old]
