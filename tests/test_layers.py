"""The layers are real: every import in the package points down the stack, and no package cycle exists.

foundation (the modules directly in ``speedrift/``: errors, fsutil, times, layout, hubdir, redact,
procs, serialize, …) → graph → repo → agents, gates → lanes → fleet, register → plans → control →
web, demo → cli.
Every import counts — module level, inside a function, or under ``TYPE_CHECKING`` — because a lazy
import hides an edge without removing it. A new package must be given its place here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import speedrift

ROOT = Path(speedrift.__file__).parent
FOUNDATION = 0
RANK = {
    "graph": 1,
    "repo": 2,
    "coord": 2,
    "agents": 3,
    "gates": 3,
    "fleet": 5,
    "register": 5,
    "lanes": 4,
    "plans": 6,
    "fleetops": 6,
    "control": 7,
    "web": 8,
    "demo": 8,
    "cli": 9,
}
ENTRY_POINT = {"__main__": 10}  # `python -m speedrift` sits on top of everything


def _unit(module: str) -> str:
    """``speedrift.graph.store`` -> ``graph``; ``speedrift.times`` -> ``times`` (a foundation module)."""
    return module.split(".")[1]


def _rank(unit: str) -> int:
    return RANK.get(unit, ENTRY_POINT.get(unit, FOUNDATION))


def _targets(path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: resolve against the importing module's package
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts[: -node.level])
        base = ".".join(parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base == "speedrift":  # `from speedrift import times` names a module
        return [f"speedrift.{alias.name}" for alias in node.names]
    return [base]


def imports() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, where) for every import between two units of the package."""
    found: list[tuple[str, str, str]] = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        source = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(path, node):
                if target.startswith("speedrift.") and target.count(".") >= 1:
                    unit = _unit(target)
                    if unit != source and unit != "__version__":
                        found.append((source, unit, f"{relative}:{node.lineno} imports {target}"))
    return found


def test_the_layer_table_names_every_package() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(RANK), "give each new package its place in RANK (and in docs/architecture.md)"


def test_every_import_points_down_the_layers() -> None:
    upward = [
        where
        for source, target, where in imports()
        if _rank(source) != FOUNDATION and _rank(target) >= _rank(source)
    ]
    upward += [where for source, target, where in imports() if _rank(source) == FOUNDATION and _rank(target)]
    assert upward == []


def test_no_cycle_between_units_of_the_package() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for source, target, _ in imports():
        edges[source].add(target)

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            unit = stack.pop()
            for nxt in edges[unit]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in list(edges) for b in edges[a] if reaches(b, a)})
    assert cycles == []


def test_the_checker_sees_lazy_and_package_level_imports(tmp_path: Path) -> None:
    """The walk must not miss the forms that hid edges before: a function-level import and
    ``from speedrift import <module>``."""
    sample = ROOT / "control" / "cycle.py"
    tree = ast.parse("def f():\n    from speedrift.web import server\nfrom speedrift import layout\n")
    targets = [t for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for t in _targets(sample, n)]
    assert sorted(targets) == ["speedrift.layout", "speedrift.web"]


def test_the_layers_block_of_the_architecture_doc_is_the_rank_table() -> None:
    """docs/architecture.md declares the layers for the archdrift lane; it must say what RANK says."""
    import tomllib

    doc = (ROOT.parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = doc.split("```layers\n", 1)[1].split("```", 1)[0]
    layers = tomllib.loads(block)["layers"]
    declared = {name: rank for rank, names in enumerate(layers) for name in names}
    assert declared.pop("foundation") == FOUNDATION
    by_rank = sorted(set(RANK.values()))
    assert {name: by_rank.index(rank) + 1 for name, rank in RANK.items()} == declared
