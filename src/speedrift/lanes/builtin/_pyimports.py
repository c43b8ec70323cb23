"""Python imports read statically — the one import walker of the lanes: archdrift holds the imports
between packages to the declared layers, qadrift follows them back from a change to the tests it
can reach.

What one file says (:func:`facts_of`, a JSON value that is a function of the file's text only, so
:class:`Reader` caches it per blob in the lane's state directory):

* ``ok`` — the file parses;
* ``imports`` — ``[line, level, module, [names], statement]`` per import statement at any depth
  (``level`` -1 for ``import a.b``, 0 for ``from a import b``, n for ``from ..a import b``);
* ``dynamic`` — the constant names given to ``importlib.import_module`` / ``__import__``;
* ``opaque`` — one of those calls names its module with something other than a string constant;
* ``walks`` — it lists Python files or modules (``glob``/``rglob`` of a ``.py`` pattern,
  ``pkgutil.iter_modules``/``walk_packages``): what it loads or reads is not in its imports;
* ``refs`` — string constants that name a module (``"app.mod"``, ``"app.mod.attr"``, as
  ``python -m`` and ``mock.patch`` take them) or a ``.py`` path.

:class:`ModuleIndex` resolves those to repo files: an absolute name under each import root (the
repo, ``src/``, the folders pytest puts on ``sys.path`` for the tests), else — a layout it does
not know — every file whose path ends with the name; a relative import by the importing file's
folder.

Invariant: reading never runs the code; a file that does not parse has no imports (``ok`` false)
and the caller decides what that means.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from speedrift.lanes.builtin._blobcache import BlobCache, source_of, version_of
from speedrift.lanes.context import RepoView

VERSION = version_of("pyimports-1", source_of(__file__))
DYNAMIC_CALLS = frozenset({"import_module", "__import__"})
LISTING_CALLS = frozenset({"iter_modules", "walk_packages"})
GLOB_CALLS = frozenset({"glob", "iglob", "rglob"})
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_PY_PATH = re.compile(r"[\w./-]+\.py")
MAX_REFS = 200  # string references kept per file
REGULAR = ("100644", "100755")


def facts_of(text: str) -> dict[str, Any]:
    """What one Python file imports (see the module docstring)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return {"ok": False, "imports": [], "dynamic": [], "opaque": False, "walks": False, "refs": []}
    lines = text.splitlines()
    imports: list[list[Any]] = []
    dynamic: set[str] = set()
    refs: set[str] = set()
    opaque = walks = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not walks:
            walks = _lists_modules(node)
        if isinstance(node, ast.Import | ast.ImportFrom):
            statement = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else ""
            if isinstance(node, ast.Import):
                level, module = -1, ""
            else:
                level, module = node.level, node.module or ""
            imports.append([node.lineno, level, module, [a.name for a in node.names], statement[:200]])
        elif isinstance(node, ast.Call) and _call_name(node) in DYNAMIC_CALLS:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value[:1] != ".":
                dynamic.add(first.value)
            else:
                opaque = True
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(refs) < MAX_REFS:
            value = node.value.strip()
            if len(value) <= 200 and (_DOTTED.fullmatch(value) or _PY_PATH.fullmatch(value)):
                refs.add(value)
    return {
        "ok": True,
        "imports": sorted(imports, key=lambda item: int(item[0])),
        "dynamic": sorted(dynamic),
        "opaque": opaque,
        "walks": walks,
        "refs": sorted(refs),
    }


def _lists_modules(call: ast.Call) -> bool:
    name = _call_name(call)
    if name in LISTING_CALLS:
        return True
    return name in GLOB_CALLS and any(
        isinstance(a, ast.Constant) and isinstance(a.value, str) and ".py" in a.value for a in call.args
    )


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


class Reader:
    """Facts per file at the view's head, from the per-blob cache at ``path`` or parsed now."""

    def __init__(self, view: RepoView, path: Path | None) -> None:
        self.view = view
        self.cache = BlobCache(path, VERSION)
        self.known: dict[str, dict[str, Any]] = {}
        self.parsed = 0
        self.cached = 0

    def facts(self, paths: Iterable[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        todo: list[str] = []
        for path in dict.fromkeys(paths):
            if path in self.known:
                found[path] = self.known[path]
                continue
            entry = self.view.entry(path)
            if entry is None or entry.mode not in REGULAR:
                continue
            cached = self.cache.get(entry.blob)
            if isinstance(cached, dict) and "imports" in cached:
                found[path] = self.known[path] = cached
                self.cached += 1
            else:
                todo.append(path)
        for path, raw in self.view.read_many(todo).items():
            entry = self.view.entry(path)
            facts = facts_of(raw.decode("utf-8", "replace"))
            if entry is not None:
                self.cache.put(entry.blob, facts)
            found[path] = self.known[path] = facts
            self.parsed += 1
        return found

    def save(self) -> None:
        self.cache.save({"files": self.parsed + self.cached, "parsed": self.parsed, "cached": self.cached})


# --- resolving names to files ---------------------------------------------------------------------
def relative_base(path: str, level: int, module: str) -> str | None:
    """The slash path (no suffix) a relative import in ``path`` names: ``from ..core import x`` in
    ``src/app/api/routes.py`` -> ``src/app/core``; None when it climbs above the repo."""
    folder = posixpath.dirname(path)
    for _ in range(level - 1):
        if not folder:
            return None
        folder = posixpath.dirname(folder)
    tail = module.replace(".", "/")
    return posixpath.join(folder, tail) if folder and tail else (folder or tail)


def package_inits(path: str, files: set[str] | frozenset[str]) -> list[str]:
    """The ``__init__.py`` files of the packages ``path`` sits in (importing it runs them)."""
    found = []
    folder = posixpath.dirname(path)
    while folder:
        init = f"{folder}/__init__.py"
        if init not in files:
            break
        if init != path:
            found.append(init)
        folder = posixpath.dirname(folder)
    return found


def import_root(path: str, files: set[str] | frozenset[str]) -> str:
    """The folder pytest puts on ``sys.path`` to import a test file (or conftest): the first folder
    above it that is not a package."""
    folder = posixpath.dirname(path)
    while folder and f"{folder}/__init__.py" in files:
        folder = posixpath.dirname(folder)
    return folder


class ModuleIndex:
    """Which repo files a module name can be, over ``files`` (paths ending in ``.py``; deleted ones
    may be included, so that an import of a deleted module still leads to it)."""

    def __init__(self, files: Iterable[str], roots: Sequence[str]) -> None:
        self.files = frozenset(files)
        self.roots = tuple(dict.fromkeys(r.strip("/") for r in roots))
        self._suffixes: dict[str, list[str]] | None = None

    def at(self, base: str) -> set[str]:
        """The module file or package ``__init__`` at a slash path without suffix."""
        candidates = (f"{base}.py", f"{base}/__init__.py") if base else ("__init__.py",)
        return {c for c in candidates if c in self.files}

    def resolve(self, dotted: str, *, anywhere: bool = True) -> set[str]:
        """The files ``dotted`` names under the import roots; with ``anywhere``, when no root
        holds it, every file whose path ends with it (a layout the roots do not describe)."""
        tail = dotted.replace(".", "/")
        found: set[str] = set()
        for root in self.roots:
            found |= self.at(f"{root}/{tail}" if root else tail)
        if found or not anywhere:
            return found
        if self._suffixes is None:
            self._suffixes = {}
            for path in self.files:
                parts = path.split("/")
                for index in range(1, len(parts)):
                    self._suffixes.setdefault("/".join(parts[index:]), []).append(path)
        return {*self._suffixes.get(f"{tail}.py", ()), *self._suffixes.get(f"{tail}/__init__.py", ())}

    def targets(self, path: str, facts: dict[str, Any]) -> set[str]:
        """Every repo file ``path``'s imports, dynamic imports and module references can load."""
        found: set[str] = set()
        for _line, level, module, names, _statement in facts.get("imports", []):
            level, module = int(level), str(module)
            if level < 0:
                for name in names:
                    found |= self.resolve(str(name))
            elif level == 0:
                found |= self.resolve(module)
                found.update(f for n in names if n != "*" for f in self.resolve(f"{module}.{n}"))
            else:
                base = relative_base(path, level, module)
                if base is None:
                    continue
                found |= self.at(base)
                found.update(f for n in names if n != "*" for f in self.at(posixpath.join(base, str(n))))
        for name in facts.get("dynamic", []):
            found |= self.resolve(str(name))
        for ref in facts.get("refs", []):
            text = str(ref)
            if text.endswith(".py"):
                found.update({text.lstrip("./")} & self.files)
                continue
            parts = text.split(".")
            for end in range(len(parts), 0, -1):  # "app.mod.attr": the longest prefix that is a module
                hit = self.resolve(".".join(parts[:end]), anywhere=False)
                if hit:
                    found |= hit
                    break
        found.discard(path)
        return found
