"""qadrift's incremental suite: at a new head, run only the test files a change can reach and carry
the earlier head's outcomes for the rest — or say why the whole suite must run.

:func:`choose` builds on the most recent cached outcome (``suite.json``) of an earlier head that
is an ancestor of the new one, was complete, and ran the same pytest command. Every file changed
since must be a ``.py`` file that is not ``conftest.py`` (nor ``setup.py``/``sitecustomize.py``),
not in a fixture folder, that parses, and that the pytest configuration does not load as a
plugin; no test file or conftest may import modules by a computed name. Anything else — and
``incremental_tests`` off, or ``full_suite_every`` selected runs in a row — runs the full suite.

The selection: the changed files plus, transitively, every file importing one of them (static
imports of the tree at the new head, _pyimports.py; a module importing by a computed name, and a
file that lists Python files or modules (a ``*.py`` glob, ``pkgutil.iter_modules``), are taken
to depend on every change; a package's ``__init__`` and a folder's ``conftest.py`` reach every
file under them), restricted to test files (pytest's default names, or files that held
tests at the earlier head). A file can import a module only if its text holds the module's name
as a word, so only those files are parsed.

The selected run is the same pytest command narrowed by a plugin (_qaplugin.py, :func:`plugin`):
pytest collects what the full suite would (its testpaths, file patterns, ignores), minus every file
outside the selection — rather than naming files on the command line, which would bypass those.

:func:`merge` keeps the earlier per-test outcomes of the files not selected (minus deleted files)
and takes the selected run's for the rest. Invariant: a test's outcome is carried only from a
head whose outcome covered the whole suite, and only when nothing it can import changed.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from speedrift import fsutil
from speedrift.gates import testrun
from speedrift.gates.changes import ChangedFile, collect, is_ancestor
from speedrift.lanes.builtin import _pyimports as pyimports
from speedrift.lanes.builtin import _qaplugin
from speedrift.lanes.context import RepoView, ignored

ENTRIES_KEPT = 8  # suite outcomes of this many recent heads are kept
COMPLETE_CODES = frozenset({0, 1, testrun.PYTEST_NO_TESTS})  # the suite ran to its end
IMPORTS_FILE = "imports.json"
SPECIAL_PY = frozenset({"conftest.py", "setup.py", "sitecustomize.py", "usercustomize.py"})
FIXTURE_DIRS = frozenset(
    {
        "fixtures",
        "fixture",
        "testdata",
        "test_data",
        "data",
        "snapshots",
        "__snapshots__",
        "cassettes",
        "golden",
    }
)
CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", "setup.py")
STOPS_EARLY = ("--exitfirst", "--maxfail", "--sw", "--stepwise", "--lf", "--last-failed")
SHORT_WITH_VALUE = frozenset("kmpocWrn")  # pytest (and xdist) short options whose value may follow
_DYNAMIC_WORD = re.compile(r"import_module|__import__|iter_modules|walk_packages|glob")
_COLLECTS_MORE = re.compile(r"python_files|doctest")


class Mode(StrEnum):
    FULL = "full"
    SELECTED = "selected"


@dataclass(frozen=True, slots=True)
class Selection:
    mode: Mode
    why: str = ""  # a full run: the reason
    base: Mapping[str, Any] = field(default_factory=dict)  # the earlier head's entry (selected)
    allow: tuple[str, ...] = ()  # what pytest may collect in the selected run
    tests: tuple[str, ...] = ()  # the test files among them
    dropped: frozenset[str] = frozenset()  # files whose earlier outcomes go (deleted, renamed away)

    @property
    def selected(self) -> bool:
        return self.mode is Mode.SELECTED


def full(why: str) -> Selection:
    return Selection(Mode.FULL, why)


# --- suite.json -----------------------------------------------------------------------------------
def load(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    entries = document.get("entries") if isinstance(document, dict) else None
    return {k: v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}


def save(path: Path | None, entries: Mapping[str, Any]) -> None:
    if path is None:
        return
    recent = sorted(entries.items(), key=lambda kv: int(kv[1].get("seq", 0)))[-ENTRIES_KEPT:]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fsutil.write_atomic(path, orjson.dumps({"entries": dict(recent)}), durable=False)
    except OSError:
        return


def next_seq(entries: Mapping[str, Any]) -> int:
    return 1 + max((int(e.get("seq", 0)) for e in entries.values()), default=0)


# --- choosing -------------------------------------------------------------------------------------
def pytest_named(path: str) -> bool:
    """pytest's default test file names (``python_files``)."""
    name = posixpath.basename(path)
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def choose(
    view: RepoView,
    entries: Mapping[str, Any],
    command_key: str,
    settings: Mapping[str, Any],
    state_dir: Path | None,
) -> Selection:
    """What to run at ``view.head`` (see the module docstring)."""
    if not settings["incremental_tests"]:
        return full("incremental_tests is off")
    bases = [
        e
        for e in entries.values()
        if e.get("command_key") == command_key and e.get("complete") and e.get("head") != view.head
    ]
    if not bases:
        return full("no earlier outcome to build on")
    base = next(
        (
            e
            for e in sorted(bases, key=lambda e: -int(e.get("seq", 0)))
            if is_ancestor(view.repo, e["head"], view.head)
        ),
        None,
    )
    if base is None:
        return full("no earlier outcome on this head's history (a rewritten branch, or another branch)")
    every = int(settings["full_suite_every"])
    if every > 0 and int(base.get("streak", 0)) >= every:
        return full(f"full_suite_every {every}: {every} selected run(s) in a row")
    command = [str(a) for a in base.get("command", [])]
    if not testrun.is_pytest(command):
        return full("the test command is not pytest")
    if any(_stops_early(a) for a in command[1:]):
        return full("the test command stops early or picks tests by history (-x, --maxfail, --lf, --sw)")
    changes = [c for c in collect(view.repo, str(base["head"]), view.head) if not ignored(c.path)]
    for change in changes:
        problem = _untrusted(change)
        if problem:
            return full(problem)
    return _select(view, base, changes, state_dir)


def _stops_early(argument: str) -> bool:
    """``-x`` (alone or in a cluster such as ``-xq``), ``--maxfail=1``, ``--lf``, ``--sw``…: the
    run covers only part of the suite."""
    if argument.startswith("--"):
        return argument.split("=")[0] in STOPS_EARLY
    if not argument.startswith("-"):
        return False
    for flag in argument[1:]:
        if flag == "x":
            return True
        if flag in SHORT_WITH_VALUE:
            return False
    return False


def _untrusted(change: ChangedFile) -> str:
    for path in dict.fromkeys(p for p in (change.path, change.old_path) if p):
        parts = path.split("/")
        if not path.endswith(".py"):
            return f"{path} changed (not a Python module)"
        if parts[-1] in SPECIAL_PY:
            return f"{path} changed ({parts[-1]})"
        if FIXTURE_DIRS.intersection(parts[:-1]):
            return f"{path} changed (in a fixture folder)"
    if change.exists and not change.regular:
        return f"{change.path} changed into a link or submodule"
    return ""


def _select(
    view: RepoView, base: Mapping[str, Any], changes: Sequence[ChangedFile], state_dir: Path | None
) -> Selection:
    earlier: dict[str, Any] = base.get("tests") or {}
    now = [e.path for e in view.tree() if e.path.endswith(".py") and e.mode in pyimports.REGULAR]
    here = set(now)
    gone = {c.path for c in changes if not c.exists} | {
        c.old_path for c in changes if c.status == "R" and c.old_path
    }
    gone -= here
    changed = {c.path for c in changes if c.exists}
    tests = {p for p in now if pytest_named(p) or p in earlier}
    infra = tests | {p for p in now if posixpath.basename(p) == "conftest.py"}
    roots = ["", "src", *sorted({pyimports.import_root(p, here) for p in infra})]
    index = pyimports.ModuleIndex([*now, *gone], roots)
    reader = pyimports.Reader(view, state_dir / IMPORTS_FILE if state_dir else None)
    texts = {p: raw.decode("utf-8", "replace") for p, raw in view.read_many(now).items()}
    try:
        for path, facts in sorted(reader.facts(sorted(changed)).items()):
            if not facts["ok"]:
                return full(f"{path} does not parse, so what it imports is unknown")
        dynamic = reader.facts(p for p in now if _DYNAMIC_WORD.search(texts.get(p, "")))
        opaque = {p for p, f in dynamic.items() if f["opaque"]}
        blocked = sorted(opaque & infra)
        if blocked:
            return full(
                f"{blocked[0]} imports modules by a computed name (importlib.import_module / __import__)"
            )
        opaque |= {p for p, f in dynamic.items() if f.get("walks")}  # lists modules: reached by any change
        config = {p: t for p in CONFIG_FILES if (t := view.text(p)) is not None}
        plugin = _loaded_by_config(changed | gone, config)
        if plugin:
            return full(plugin)
        reached = _dependents(changed | gone | opaque, now, texts, index, reader, infra)
    finally:
        reader.save()
    selected = sorted(reached & tests)
    allow = set(selected)
    if any(_COLLECTS_MORE.search(t) for t in config.values()):
        allow |= changed  # doctests or other file names: pytest decides what these hold
    return Selection(
        Mode.SELECTED,
        base=base,
        allow=tuple(sorted(allow)),
        tests=tuple(selected),
        dropped=frozenset(gone),
    )


def _stem(path: str) -> str:
    name = posixpath.basename(path)[: -len(".py")]
    return posixpath.basename(posixpath.dirname(path)) if name == "__init__" else name


def _words(names: Iterable[str]) -> re.Pattern[str] | None:
    wanted = sorted({n for n in names if n})
    if not wanted:
        return None
    return re.compile(r"(?<![\w])(?:" + "|".join(re.escape(n) for n in wanted) + r")(?![\w])")


def _loaded_by_config(modules: Iterable[str], config: Mapping[str, str]) -> str:
    """A changed module the pytest configuration loads as a plugin (``-p name``, a ``pytest11``
    entry point): every test depends on it."""
    for path in sorted(modules):
        name = re.escape(_stem(path))
        loaded = re.compile(rf"-p\s*[\w.]*(?<![\w]){name}(?![\w])")
        for config_file, text in config.items():
            if loaded.search(text) or ("pytest11" in text and re.search(rf"(?<![\w]){name}(?![\w])", text)):
                return f"{path} may be a pytest plugin {config_file} loads"
    return ""


def _under(path: str, folder: str) -> bool:
    return not folder or path.startswith(f"{folder}/")


def _dependents(
    seeds: set[str],
    files: Sequence[str],
    texts: Mapping[str, str],
    index: pyimports.ModuleIndex,
    reader: pyimports.Reader,
    infra: set[str],
) -> set[str]:
    """``seeds`` and every file that imports one of them, transitively. A candidate is a file whose
    text names a module of the frontier (an import of a module always names it), confirmed by its
    parsed imports; a package's ``__init__`` reaches the files under it, a folder's conftest the
    test files under it."""
    reached = set(seeds)
    frontier = set(seeds)
    while frontier:
        packages = [posixpath.dirname(f) for f in frontier if posixpath.basename(f) == "__init__.py"]
        conftests = [posixpath.dirname(f) for f in frontier if posixpath.basename(f) == "conftest.py"]
        pattern = _words(_stem(f) for f in frontier)
        found: set[str] = set()
        candidates: list[str] = []
        for path in files:
            if path in reached:
                continue
            if any(_under(path, d) for d in packages) or (
                path in infra and any(_under(path, d) for d in conftests)
            ):
                found.add(path)
            elif pattern is not None and pattern.search(texts.get(path, "")):
                candidates.append(path)
        for path, facts in reader.facts(candidates).items():
            if index.targets(path, facts) & frontier:
                found.add(path)
        reached |= found
        frontier = found
    return reached


# --- merging --------------------------------------------------------------------------------------
def by_file(run: testrun.SuiteRun) -> dict[str, dict[str, str]]:
    """A run's per-test outcomes grouped by the file pytest collected them from."""
    grouped: dict[str, dict[str, str]] = {}
    for test, outcome in sorted((run.outcomes or {}).items()):
        grouped.setdefault(run.places.get(test, ("", None))[0], {})[test] = outcome
    return grouped


def merge(
    selection: Selection, run: testrun.SuiteRun | None, carried_from: Mapping[str, Any]
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The outcomes at the new head: the earlier ones for files neither selected nor deleted, the
    selected run's for the rest; and the failure messages that go with them."""
    allow = set(selection.allow)
    earlier: Mapping[str, Any] = carried_from.get("tests") or {}
    tests = {
        f: dict(t)
        for f, t in earlier.items()
        if f not in allow and f not in selection.dropped and isinstance(t, dict)
    }
    old_messages: Mapping[str, Any] = carried_from.get("messages") or {}
    messages = {t: str(old_messages[t]) for group in tests.values() for t in group if t in old_messages}
    if run is not None:
        for path, group in by_file(run).items():
            tests[path] = group
        messages.update({t: m for t, m in run.messages.items() if t in run.failing})
    return tests, messages


def flat(tests: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    return {t: o for group in tests.values() for t, o in group.items()}


def mappable(tests: Mapping[str, Any], view: RepoView) -> bool:
    """Every test's file is a file of the tree (pytest's rootdir is the checkout)."""
    return all(path and view.entry(path) is not None for path in tests)


# --- running a selection --------------------------------------------------------------------------
@contextlib.contextmanager
def plugin(
    root: Path, allow: Sequence[str], env: Mapping[str, str]
) -> Iterator[tuple[dict[str, str], list[str]]]:
    """The environment and the pytest arguments that narrow a run in the checkout at ``root`` to
    ``allow`` (_qaplugin.py, copied to a private folder put on the suite's ``PYTHONPATH``)."""
    folder = Path(tempfile.mkdtemp(prefix="speedrift-qaselect-"))
    try:
        shutil.copyfile(_qaplugin.__file__, folder / f"{_qaplugin.MODULE_NAME}.py")
        listing = folder / "selection"
        listing.write_bytes(b"\0".join(os.fsencode(p) for p in [str(root), *allow]))
        inherited = env.get("PYTHONPATH", "")
        narrowed = {
            **env,
            "PYTHONPATH": os.pathsep.join([str(folder), *([inherited] if inherited else [])]),
            _qaplugin.SELECTION_VARIABLE: str(listing),
        }
        yield narrowed, ["-p", _qaplugin.MODULE_NAME]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
