"""archdrift: the code's packages and the imports between them, compared with the architecture the
repo declares.

The declaration is a fenced block in the architecture file (``docs/architecture.md``, or the
``architecture_file`` setting)::

    ```layers
    root = "src/mypkg"                      # optional: where the packages live
    layers = [["foundation"], ["graph"], ["repo", "coord"], ["cli"]]   # lowest first
    packages = ["tools"]                    # optional: packages named without a rank
    ```

A package is a directory with an ``__init__.py`` directly under the source root; the modules
directly in the root (when the root is itself a package, as ``src/mypkg``) form the unit
``foundation``, the lowest layer unless ``layers`` ranks it. Without ``root`` (or the
``source_root`` setting) the root is found: ``src/<pkg>`` when ``src/`` holds one package,
``src`` when it holds several, else the repo's top-level packages.

Finding kinds: ``architecture_not_updated`` (a package in the code the declaration does not name;
the message says when the diff range added it), ``layer_violation`` (a module importing a package
of a higher or equal layer: one finding per importing file and imported package), ``missing_architecture``
(info: two or more packages and nothing declared) and ``invalid_architecture`` (the block is not
what is described above; the message names the line).

Incremental: the imports of each Python file are read by the lanes' shared import walker
(_pyimports.py) and cached per blob (``imports.json`` in the lane's state directory), so a rerun
parses only the files that changed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from speedrift.errors import InvalidValue
from speedrift.gates.testdetect import PRUNED
from speedrift.lanes import fences
from speedrift.lanes.builtin import _pyimports as pyimports
from speedrift.lanes.context import LaneContext
from speedrift.lanes.model import LaneFinding, LaneScope, Severity
from speedrift.lanes.spec import Lane, LaneOutput

NAME = "archdrift"
FENCE = "layers"
FOUNDATION = "foundation"  # the unit of the modules directly in a package root
CACHE_FILE = "imports.json"
# top-level folders that hold Python but are not the product's packages
NOT_PACKAGES = frozenset({"tests", "test", "docs", "doc", "examples", "scripts", "benchmarks", "src"})
ENTRY_MODULES = frozenset({"__init__.py", "__main__.py"})  # a root package's own entry points: not a unit
KEYS = frozenset({"layers", "packages", "root"})


class Kind(StrEnum):
    ARCHITECTURE_NOT_UPDATED = "architecture_not_updated"
    LAYER_VIOLATION = "layer_violation"
    MISSING_ARCHITECTURE = "missing_architecture"
    INVALID_ARCHITECTURE = "invalid_architecture"


DEFAULTS: dict[str, Any] = {
    "architecture_file": "docs/architecture.md",
    "source_root": "",  # where the packages live; "" = the block's root, else found (see above)
    "ignore_packages": [],  # packages neither reported nor checked
}


class Invalid(InvalidValue):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Architecture:
    ranks: dict[str, int]  # package -> layer index (0 = lowest)
    declared: frozenset[str]  # every package the block names (ranked or not)
    root: str | None  # the block's root, if it sets one


_OPEN = re.compile(rf"^[ \t]{{0,3}}(`{{3,}}|~{{3,}})[ \t]*{FENCE}[ \t]*$")


def parse_architecture(text: str) -> Architecture | None:
    """The ```` ```layers ```` block of ``text`` (None without one); :class:`Invalid` naming the
    line (of the file) when it is not a table of the keys described in the module docstring."""
    try:
        table = fences.fence(text, FENCE)
    except fences.FenceError as error:
        raise Invalid(error.line, error.problem) from None
    if table is None:
        return None
    lines = text.splitlines()
    opening = next((i + 1 for i, line in enumerate(lines) if _OPEN.match(line)), 0)

    def line_of(key: str) -> int:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for index in range(opening, len(lines)):
            if pattern.match(lines[index]):
                return index + 1
        return opening

    for key in table:
        if key not in KEYS:
            raise Invalid(line_of(key), f"unknown key {key!r} (the block takes {', '.join(sorted(KEYS))})")
    ranks: dict[str, int] = {}
    raw_layers = table.get("layers", [])
    if not isinstance(raw_layers, list):
        raise Invalid(line_of("layers"), "layers must be a list of layers, lowest first")
    for index, layer in enumerate(raw_layers):
        names = [layer] if isinstance(layer, str) else layer
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise Invalid(line_of("layers"), f"layer {index + 1} must be a package name or a list of them")
        for name in names:
            if name in ranks:
                raise Invalid(
                    line_of("layers"), f"{name!r} is in two layers ({ranks[name] + 1} and {index + 1})"
                )
            ranks[name] = index
    packages = table.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) and p for p in packages):
        raise Invalid(line_of("packages"), "packages must be a list of package names")
    root = table.get("root")
    if root is not None and (not isinstance(root, str) or root.startswith("/") or ".." in root.split("/")):
        raise Invalid(line_of("root"), 'root must be a repo-relative folder such as "src/mypkg"')
    if not ranks and not packages:
        raise Invalid(opening, "the block declares no packages (set layers or packages)")
    return Architecture(ranks, frozenset(ranks) | frozenset(packages), root.strip("/") if root else None)


# --- the code -------------------------------------------------------------------------------------
@dataclass
class Layout:
    root: str  # "" (the repo), "src", "src/mypkg"
    prefix: str  # the dotted import name of the root ("" when the root is not itself a package)
    packages: dict[str, list[str]] = field(default_factory=dict)  # package -> its Python files
    foundation: list[str] = field(default_factory=list)  # Python files directly in a package root


def _packages_under(root: str, paths: set[str], ignore: set[str]) -> dict[str, list[str]]:
    base = f"{root}/" if root else ""
    inits = {
        p[len(base) :].split("/")[0]
        for p in paths
        if p.startswith(base) and p[len(base) :].count("/") == 1 and p.endswith("/__init__.py")
    }
    names = {
        n
        for n in inits
        if not n.startswith(".") and n not in PRUNED and n not in ignore and (root or n not in NOT_PACKAGES)
    }
    found: dict[str, list[str]] = {n: [] for n in sorted(names)}
    for path in sorted(paths):
        if path.startswith(base) and path.endswith(".py"):
            top = path[len(base) :].split("/")[0]
            if top in found:
                found[top].append(path)
    return found


def find_layout(paths: Sequence[str], root: str | None, ignore: set[str]) -> Layout:
    every = set(paths)
    if root is None:
        under_src = _packages_under("src", every, ignore)
        if len(under_src) == 1:
            root = f"src/{next(iter(under_src))}"
        elif under_src:
            root = "src"
        else:
            root = ""
    is_package = bool(root) and f"{root}/__init__.py" in every
    layout = Layout(root, posixpath.basename(root) if is_package else "")
    layout.packages = _packages_under(root, every, ignore)
    if is_package:
        layout.foundation = sorted(
            p
            for p in every
            if posixpath.dirname(p) == root
            and p.endswith(".py")
            and posixpath.basename(p) not in ENTRY_MODULES
        )
    return layout


def _targets(path: str, layout: Layout, level: int, module: str, names: Sequence[str]) -> list[str]:
    """The dotted modules one import statement names (relative ones resolved against ``path``)."""
    if level < 0:
        return list(names)
    if level == 0:
        base: str | None = module
    else:
        folder = pyimports.relative_base(path, level, module)
        base = None if folder is None else _dotted(folder, layout)
        if base is None:
            return []
    if base == layout.prefix or (not layout.prefix and not base):
        return [f"{base}.{n}" if base else n for n in names]
    return [base] if base is not None else []


def _dotted(folder: str, layout: Layout) -> str | None:
    """The import name of a slash path under the layout's root (None: outside it)."""
    if not layout.root:
        relative = folder
    elif folder == layout.root:
        relative = ""
    elif folder.startswith(f"{layout.root}/"):
        relative = folder[len(layout.root) + 1 :]
    else:
        return None
    parts = [layout.prefix] if layout.prefix else []
    return ".".join([*parts, *(relative.split("/") if relative else [])])


def unit_of_module(dotted: str, layout: Layout, foundation: set[str]) -> str | None:
    parts = dotted.split(".")
    if layout.prefix:
        if parts[0] != layout.prefix or len(parts) < 2:
            return None
        parts = parts[1:]
    if parts[0] in layout.packages:
        return parts[0]
    return FOUNDATION if parts[0] in foundation else None


def unit_of_path(path: str, layout: Layout) -> str | None:
    if path in layout.foundation:
        return FOUNDATION
    relative = path[len(layout.root) + 1 :] if layout.root else path
    top = relative.split("/")[0]
    return top if top in layout.packages else None


# --- the lane -------------------------------------------------------------------------------------
def run(ctx: LaneContext) -> LaneOutput:
    settings = {**DEFAULTS, **ctx.settings}
    arch_path = str(settings["architecture_file"]).strip("/")
    ignore = {str(p) for p in settings["ignore_packages"]}
    text = ctx.view.text(arch_path)
    architecture: Architecture | None = None
    if text is not None:
        try:
            architecture = parse_architecture(text)
        except Invalid as error:
            return LaneOutput(
                findings=[_invalid(arch_path, error)], summary="invalid architecture declaration"
            )
    configured = str(settings["source_root"]).strip("/")
    root = ("" if configured == "." else configured) if configured else None
    if root is None and architecture is not None:
        root = architecture.root
    layout = find_layout(ctx.view.paths(), root, ignore)
    units = sorted(layout.packages)
    if architecture is None:
        if len(units) < 2:
            return LaneOutput(findings=[], summary=f"{len(units)} package(s): no architecture needed")
        return LaneOutput(
            findings=[_missing(arch_path, text is not None, layout)],
            summary=f"{len(units)} packages and no declared architecture",
        )
    findings = _not_updated(ctx, arch_path, architecture, layout)
    findings += _violations(ctx, arch_path, architecture, layout)
    counts = ", ".join(f"{n} {k}" for k in Kind if (n := sum(f.kind == k for f in findings)))
    where = layout.root or "the repo root"
    return LaneOutput(
        findings=findings, summary=f"{len(units)} package(s) under {where}: {counts or 'clean'}"
    )


def _invalid(arch_path: str, error: Invalid) -> LaneFinding:
    return LaneFinding(
        lane=NAME,
        kind=Kind.INVALID_ARCHITECTURE,
        message=f"{arch_path}:{error.line}: the ```{FENCE} block is invalid: {error.problem}",
        severity=Severity.ERROR,
        file=arch_path,
        line=error.line,
        tags=("architecture",),
        evidence=(f"line {error.line}: {error.problem}",),
        fix=(
            f"Correct the ```{FENCE} block in {arch_path}: TOML with layers = [[...], ...] (package names, "
            'lowest layer first), optionally packages = [...] and root = "src/<pkg>".'
        ),
    )


def _missing(arch_path: str, exists: bool, layout: Layout) -> LaneFinding:
    units = sorted(layout.packages)
    where = f"{arch_path} has no ```{FENCE} block" if exists else f"there is no {arch_path}"
    example = ", ".join(f'["{u}"]' for u in units[:4])
    return LaneFinding(
        lane=NAME,
        kind=Kind.MISSING_ARCHITECTURE,
        message=f"{len(units)} packages ({', '.join(units[:6])}) and no declared architecture: {where}",
        severity=Severity.INFO,
        file=arch_path,
        tags=("architecture",),
        evidence=(f"packages under {layout.root or 'the repo root'}: {', '.join(units)}",),
        fix=(
            f"Declare the layers in {arch_path}: a ```{FENCE} block with layers = [{example}] (lowest "
            "first, peers in one list), so archdrift can hold imports to it."
        ),
    )


def _not_updated(
    ctx: LaneContext, arch_path: str, architecture: Architecture, layout: Layout
) -> list[LaneFinding]:
    changes = ctx.view.changes()
    added = {c.path for c in changes if c.status == "A"}
    arch_changed = any(c.path == arch_path for c in changes)
    findings = []
    for package, files in sorted(layout.packages.items()):
        if package in architecture.declared:
            continue
        folder = posixpath.join(layout.root, package)
        evidence = [f"{folder}/ holds {len(files)} Python file(s)", f"{arch_path} does not name {package!r}"]
        new = bool(files) and all(f in added for f in files)
        if new:
            evidence.append(
                "added by this range; "
                + (f"{arch_path} changed in it" if arch_changed else f"{arch_path} did not change in it")
            )
        findings.append(
            LaneFinding(
                lane=NAME,
                kind=Kind.ARCHITECTURE_NOT_UPDATED,
                message=f"package {package} ({folder}/)"
                + (
                    " was added without the architecture being updated"
                    if new
                    else " is not in the architecture"
                )
                + f": {arch_path} does not name it",
                severity=Severity.WARNING,
                file=arch_path,
                tags=("architecture",),
                key=package,
                evidence=tuple(evidence),
                fix=(
                    f"Give {package} its place in the ```{FENCE} block of {arch_path} (the layer whose "
                    "packages it may import from below it), and say what it does in the prose."
                ),
            )
        )
    return findings


def _imports(ctx: LaneContext, files: Sequence[str]) -> dict[str, list[list[Any]]]:
    """Each file's import statements, from the per-blob cache or parsed now (and cached)."""
    reader = pyimports.Reader(ctx.view, ctx.state_dir / CACHE_FILE if ctx.state_dir else None)
    facts = reader.facts(files)
    reader.save()
    return {path: list(fact.get("imports", [])) for path, fact in facts.items()}


def _violations(
    ctx: LaneContext, arch_path: str, architecture: Architecture, layout: Layout
) -> list[LaneFinding]:
    ranks = dict(architecture.ranks)
    ranks.setdefault(FOUNDATION, -1)  # unranked, the root's own modules are below every layer
    foundation = {posixpath.basename(p)[: -len(".py")] for p in layout.foundation}
    files = [*layout.foundation, *(f for fs in layout.packages.values() for f in fs)]
    imports = _imports(ctx, files)
    edges: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for path in files:
        source = unit_of_path(path, layout)
        if source is None or source not in ranks:
            continue
        for line, level, module, names, statement in imports.get(path, []):
            for dotted in _targets(path, layout, int(level), str(module), [str(n) for n in names]):
                target = unit_of_module(dotted, layout, foundation)
                if target is None or target == source or target not in ranks:
                    continue
                if ranks[target] >= ranks[source]:
                    edges.setdefault((source, target, path), []).append((int(line), str(statement)))
    findings = []
    for (source, target, path), lines in sorted(edges.items()):
        unique = list(dict.fromkeys(lines))
        how = "a peer" if ranks[target] == ranks[source] else "a higher layer"
        findings.append(
            LaneFinding(
                lane=NAME,
                kind=Kind.LAYER_VIOLATION,
                message=f"{path} ({source}) imports {target}, {how} in {arch_path}",
                severity=Severity.ERROR,
                file=path,
                line=unique[0][0],
                tags=("architecture", "layers"),
                key=f"{source}->{target}:{path}",
                evidence=(
                    *(f"line {n}: {statement}" for n, statement in unique[:8]),
                    f"{source} is layer {ranks[source] + 1}, {target} is layer {ranks[target] + 1} "
                    f"({arch_path}; imports go only to lower layers)",
                ),
                fix=(
                    f"Remove {path}'s dependency on {target}: move what it needs down to a layer below "
                    f"{source}, or have the caller above pass it in; if the design changed, update the "
                    f"```{FENCE} block in {arch_path}."
                ),
            )
        )
    return findings


LANE = Lane(
    name=NAME,
    scope=LaneScope.TREE,
    summary="packages and imports against the layers declared in docs/architecture.md",
    run=run,
    defaults=DEFAULTS,
    fence=None,
)
