"""``.speedrift/`` and ``.speedrift-hub/`` have one owner each: nothing else spells their names.

``speedrift/layout.py`` owns the per-repo state directory and its record and lock names,
``speedrift/hubdir.py`` the hub's. Every other module asks them. The walk looks at the string
constants of the code (f-string parts included) that are one path-like token; docstrings and prose
(help texts, messages with spaces) may still describe the paths.
"""

from __future__ import annotations

import ast
from pathlib import Path

import speedrift

ROOT = Path(speedrift.__file__).parent
OWNERS = {"layout.py", "hubdir.py"}
# names only the owners spell: the state directories, and the record, lock and mark files in them
OWNED_NAMES = (
    ".speedrift",  # and .speedrift-hub
    "attempt.json",
    "evidence.json",
    "heartbeat.json",
    "events.jsonl",
    "result.json",
    "prompt.md",
    "stderr.log",
    "control.json",
    "control.lock",
    "merge.lock",
    "outcomes.jsonl",
    "service.log",
    "service.out",
    "started-by-hub",
    "retries-resumed",
    "hub-worktrees",
    "hub.pid",
    "hub.log",
    "register.db",
    "cycles.jsonl",
)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def spelled_names(source: str) -> list[tuple[int, str]]:
    """(line, constant) for every code string constant that spells an owned name."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
            continue
        text = node.value
        if any(ch.isspace() for ch in text):
            continue  # prose: a message or help text may describe where things are
        if any(name in text for name in OWNED_NAMES):
            hits.append((node.lineno, text))
    return hits


def test_only_layout_and_hubdir_spell_the_state_directories_and_their_record_names() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in sorted(ROOT.rglob("*.py"))
        if str(path.relative_to(ROOT)) not in OWNERS
        for line, text in spelled_names(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "ask speedrift.layout / speedrift.hubdir for these paths:\n" + "\n".join(offenders)


def test_the_walk_sees_constants_and_f_string_parts_but_not_docstrings_or_prose() -> None:
    source = '''
"""Lives in ``.speedrift/attempt.json``."""
A = ".speedrift"
B = f"{root}/evidence.json"
C = "see .speedrift/runs/ for the attempts"


def f() -> None:
    """Reads heartbeat.json."""
    return root / "merge.lock"
'''
    assert [text for _line, text in spelled_names(source)] == [".speedrift", "/evidence.json", "merge.lock"]
