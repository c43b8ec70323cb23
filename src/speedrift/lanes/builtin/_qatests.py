"""qadrift's reading of a tree's Python tests, without running anything: which files are tests and
which are source modules, which test functions assert nothing, which assert only on mocks, which
identifiers the tests mention (a module no test mentions has no tests), and whether the repo has
integration or end-to-end tests at all.

A heuristic, made precise where it can be: a test *asserts* when its body holds an ``assert``, a
``raise``, a call named ``assert*``/``expect*``/``verify*``/``check*``, ``pytest.raises``/``warns``/
``fail``, or a call to a helper in the same file that itself asserts. A test is *mock-only* when
it uses ``unittest.mock`` (``Mock``, ``MagicMock``, ``patch``, ``mocker``…) and every assertion it
makes is about a mock (``assert_called*``, ``call_count``, ``call_args``…).

Pure: functions of paths and file texts; :func:`analyse` is a function of one file's text, so its
result is cached per blob.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from speedrift.gates.testdetect import PRUNED

TEST_DIRS = frozenset({"tests", "test", "testing"})
# folders whose Python files are not the product's modules
NOT_SOURCE_DIRS = frozenset({"docs", "doc", "examples", "example", "scripts", "benchmarks", "migrations"})
NOT_SOURCE_FILES = frozenset({"__init__.py", "__main__.py", "conftest.py", "setup.py", "noxfile.py"})
INTEGRATION_WORDS = ("integration", "e2e", "end_to_end", "end-to-end")
SOURCE_SUFFIXES = (".py", ".js", ".jsx", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".rb")
JS_TEST = re.compile(r"\.(?:test|spec)\.[jt]sx?$")

_ASSERT_PREFIXES = ("assert", "expect", "verify", "check")
_ASSERT_NAMES = frozenset({"raises", "warns", "fail", "deprecated_call", "fails"})
_MOCK_NAMES = frozenset(
    {
        "Mock",
        "MagicMock",
        "AsyncMock",
        "NonCallableMock",
        "PropertyMock",
        "patch",
        "create_autospec",
        "mocker",
    }
)
_MOCK_ATTRS = frozenset(
    {
        "called",
        "call_count",
        "call_args",
        "call_args_list",
        "mock_calls",
        "method_calls",
        "await_count",
        "await_args",
        "await_args_list",
        "awaited",
    }
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINES = re.compile(r"(?m)^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]")


def _hidden_or_pruned(parts: list[str]) -> bool:
    return any(p.startswith(".") or p in PRUNED or p.endswith(".egg-info") for p in parts)


def is_test_file(path: str) -> bool:
    """A Python test file: ``test_*.py``, ``*_test.py``, or any Python file under a tests folder."""
    parts = path.split("/")
    name = parts[-1]
    if not name.endswith(".py") or _hidden_or_pruned(parts[:-1]):
        return False
    return name.startswith("test_") or name.endswith("_test.py") or bool(TEST_DIRS.intersection(parts[:-1]))


def is_source_module(path: str) -> bool:
    """A Python module of the product (not a test, not packaging, docs or scripts)."""
    parts = path.split("/")
    if not path.endswith(".py") or is_test_file(path) or _hidden_or_pruned(parts[:-1]):
        return False
    return parts[-1] not in NOT_SOURCE_FILES and not NOT_SOURCE_DIRS.intersection(parts[:-1])


def is_integration_test(path: str) -> bool:
    """A test path that says integration or end-to-end (a folder or the file's name)."""
    lowered = path.lower()
    parts = lowered.split("/")
    if not any(word in part for part in parts for word in INTEGRATION_WORDS):
        return False
    name = parts[-1]
    return (
        is_test_file(path)
        or bool(JS_TEST.search(name))
        or name.endswith("_test.go")
        or any(word in part for part in parts[:-1] for word in INTEGRATION_WORDS)
    )


def counts_as_source(path: str) -> bool:
    """A source file of any language, for the "enough modules to need integration tests" count."""
    parts = path.split("/")
    name = parts[-1]
    if not name.endswith(SOURCE_SUFFIXES) or _hidden_or_pruned(parts[:-1]):
        return False
    if name.endswith(".py"):
        return is_source_module(path)
    return not (JS_TEST.search(name) or name.endswith("_test.go") or TEST_DIRS.intersection(parts[:-1]))


def defines_something(text: str) -> bool:
    """The module defines a function or a class (a file of constants needs no test of its own)."""
    return _DEFINES.search(text) is not None


def identifiers(text: str) -> list[str]:
    """Every identifier-shaped word in a test file (sorted, once each)."""
    return sorted(set(_IDENTIFIER.findall(text)))


@dataclass(frozen=True, slots=True)
class TestFunction:
    __test__ = False  # not a pytest test class

    name: str  # "test_add", or "TestCalc::test_add"
    line: int
    asserts: bool
    mock_only: bool


def analyse(text: str) -> list[TestFunction]:
    """The test functions of one test file's text ([] when it does not parse)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return []
    helpers = _asserting_helpers(tree)
    found: list[TestFunction] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            found.append(_judge(node, node.name, helpers))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test"):
                    found.append(_judge(item, f"{node.name}::{item.name}", helpers))
    return found


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_assertion_call(name: str, helpers: frozenset[str]) -> bool:
    return name.lower().startswith(_ASSERT_PREFIXES) or name in _ASSERT_NAMES or name in helpers


def _functions(tree: ast.AST) -> Iterable[ast.FunctionDef | ast.AsyncFunctionDef]:
    return (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def _asserting_helpers(tree: ast.Module) -> frozenset[str]:
    """Names of the file's non-test functions that assert, directly or through one another."""
    bodies = {f.name: f for f in _functions(tree) if not f.name.startswith("test")}
    asserting: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, function in bodies.items():
            if name not in asserting and _assertions(function, frozenset(asserting)):
                asserting.add(name)
                changed = True
    return frozenset(asserting)


def _assertions(function: ast.AST, helpers: frozenset[str]) -> list[ast.AST]:
    found: list[ast.AST] = []
    for node in ast.walk(function):
        called = isinstance(node, ast.Call) and _is_assertion_call(_call_name(node), helpers)
        if called or isinstance(node, ast.Assert | ast.Raise):
            found.append(node)
    return found


def _mentions_mock(node: ast.AST) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Attribute) and inner.attr in _MOCK_ATTRS:
            return True
        if isinstance(inner, ast.Call):
            name = _call_name(inner)
            if name.startswith(("assert_called", "assert_not_called", "assert_any_call", "assert_has_calls")):
                return True
            if name.startswith("assert_awaited") or name == "assert_not_awaited":
                return True
    return False


def _uses_mock(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    arguments = [a.arg for a in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs)]
    if "mocker" in arguments:
        return True
    for node in [*function.decorator_list, *function.body]:
        for inner in ast.walk(node):
            if isinstance(inner, ast.Name) and inner.id in _MOCK_NAMES:
                return True
            if isinstance(inner, ast.Attribute) and inner.attr in _MOCK_NAMES:
                return True
    return False


def _judge(
    function: ast.FunctionDef | ast.AsyncFunctionDef, name: str, helpers: frozenset[str]
) -> TestFunction:
    assertions = _assertions(function, helpers)
    mock_only = (
        bool(assertions)
        and _uses_mock(function)
        and all(not isinstance(a, ast.Raise) and _mentions_mock(a) for a in assertions)
    )
    return TestFunction(name, function.lineno, bool(assertions), mock_only)


def module_name(path: str) -> str:
    """``pkg/foo.py`` -> ``foo``: the name a test imports or mentions."""
    return posixpath.basename(path)[: -len(".py")]
