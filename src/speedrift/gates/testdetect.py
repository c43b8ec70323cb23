"""Which test suite a repo has, from its files alone (nothing is run here).

The layouts, in the order the first one found is chosen:

* **pytest** — ``test_*.py`` or ``*_test.py`` anywhere (dependency, virtualenv, build and hidden
  directories excepted), or a ``tests/`` / ``test/`` directory holding Python files, or pytest
  configuration next to such a directory; with or without configuration;
* **npm** — ``package.json`` whose ``scripts.test`` is set and is not npm's placeholder
  (``echo "Error: no test specified" && exit 1``): ``npm test``;
* **go** — ``go.mod``: ``go test ./...``;
* **cargo** — ``Cargo.toml``: ``cargo test``;
* **make** — a ``Makefile`` (``makefile``, ``GNUmakefile``) with a ``test`` target: ``make test``.

A repo with several is tested with the first; ``[gates.tests] command`` chooses another.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from speedrift.gates.lint import pyproject_has

LAYOUTS = ("pytest", "npm", "go", "cargo", "make")
NPM_PLACEHOLDER = "no test specified"
# directories a test search never enters: dependencies, environments, build output, VCS
PRUNED = frozenset(
    {
        "node_modules",
        "venv",
        "env",
        "site-packages",
        "__pycache__",
        "build",
        "dist",
        "target",
        "vendor",
        "third_party",
    }
)
MAX_ENTRIES = 50_000  # a search stops after this many directory entries (a huge monorepo)
_MAKE_TEST_TARGET = re.compile(r"^(?:[^\s:#=]+[ \t]+)*test(?:[ \t]+[^\s:#=]+)*[ \t]*::?(?!=)", re.MULTILINE)
_PYTEST_FILES = ("test_*.py", "*_test.py")


@dataclass(frozen=True, slots=True)
class Detected:
    layout: str  # pytest | npm | go | cargo | make
    tool: str  # the executable that runs it
    args: tuple[str, ...]  # what follows the executable
    found: str  # what showed the suite is there, e.g. "test_calc.py", "go.mod"

    @property
    def label(self) -> str:
        """How a person would type it: "pytest", "npm test", "go test ./...", …"""
        return " ".join((self.tool, *self.args))


def detect(root: Path) -> list[Detected]:
    """Every layout found at ``root``, in the order of :data:`LAYOUTS`."""
    found: list[Detected] = []
    pytest_file = pytest_evidence(root)
    if pytest_file:
        found.append(Detected("pytest", "pytest", (), pytest_file))
    if npm_test_script(root):
        found.append(Detected("npm", "npm", ("test",), "package.json scripts.test"))
    if (root / "go.mod").is_file():
        found.append(Detected("go", "go", ("test", "./..."), "go.mod"))
    if (root / "Cargo.toml").is_file():
        found.append(Detected("cargo", "cargo", ("test",), "Cargo.toml"))
    makefile = make_test_target(root)
    if makefile:
        found.append(Detected("make", "make", ("test",), f"{makefile} test target"))
    return found


def pytest_configured(root: Path) -> bool:
    if (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        return True
    if pyproject_has(root, "tool.pytest"):
        return True
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        parser = configparser.ConfigParser()
        try:
            parser.read(root / name, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        if parser.has_section(section):
            return True
    return False


def pytest_evidence(root: Path) -> str | None:
    """The first file showing the repo has pytest tests (repo-relative), or None."""
    for folder in ("tests", "test"):
        directory = root / folder
        if directory.is_dir() and not directory.is_symlink():
            first = _first_python(directory, root)
            if first:
                return first
            if pytest_configured(root):
                return f"{folder}/ with pytest configuration"
    return _first_test_file(root)


def _first_python(directory: Path, root: Path) -> str | None:
    return _walk(directory, root, lambda name: name.endswith(".py"))


def _first_test_file(root: Path) -> str | None:
    return _walk(root, root, lambda name: any(fnmatch.fnmatchcase(name, p) for p in _PYTEST_FILES))


def _walk(start: Path, root: Path, wanted: Callable[[str], bool]) -> str | None:
    seen = 0
    for current, dirs, files in os.walk(start):
        dirs[:] = sorted(d for d in dirs if not (d.startswith(".") or d in PRUNED or d.endswith(".egg-info")))
        seen += len(dirs) + len(files)
        for name in sorted(files):
            if wanted(name):
                return Path(current, name).relative_to(root).as_posix()
        if seen > MAX_ENTRIES:
            return None
    return None


def npm_test_script(root: Path) -> str | None:
    """package.json's ``scripts.test`` when it is a real test command, else None."""
    try:
        document = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    scripts = document.get("scripts") if isinstance(document, dict) else None
    script = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(script, str) or not script.strip() or NPM_PLACEHOLDER in script:
        return None
    return script


def make_test_target(root: Path) -> str | None:
    """The makefile's name when it has a ``test`` target (GNU make's lookup order), else None."""
    for name in ("GNUmakefile", "makefile", "Makefile"):
        path = root / name
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        return name if _MAKE_TEST_TARGET.search(text) else None
    return None
