"""Every exception speedrift defines is a ``SpeedriftError``: the CLI and the dashboard map that one
hierarchy (exit codes, HTTP statuses) and nothing else. Checked on the source, so a new module
with its own ``class Oops(Exception)`` fails here before anything imports it.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path
from typing import Any

import pytest

import speedrift
from speedrift.agents.choose import runtime_for
from speedrift.agents.claude import ClaudeRuntime
from speedrift.agents.codex import CodexRuntime
from speedrift.agents.protocol import RunRequest
from speedrift.errors import InvalidValue, SpeedriftError

ROOT = Path(speedrift.__file__).parent
ROOT_ERROR = "SpeedriftError"
BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)


def _request(**kwargs: Any) -> RunRequest:
    return RunRequest(task_id="t", attempt=1, prompt="p", prompt_file=Path("p.md"), cwd=Path("."), **kwargs)


def _base_name(node: ast.expr) -> str | None:
    """``Refused`` -> Refused, ``errors.Refused`` -> Refused, ``Generic[T]`` -> Generic."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _classes() -> dict[str, list[tuple[str, list[str]]]]:
    """Class name -> every (where, base names) defining a class of that name in the package."""
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [name for name in map(_base_name, node.bases) if name]
                where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                found.setdefault(node.name, []).append((where, bases))
    return found


def test_the_walk_sees_the_hierarchy_and_its_members() -> None:
    classes = _classes()
    assert ROOT_ERROR in classes and "NotFound" in classes and "GraphFormatError" in classes


def test_every_exception_class_derives_from_speedrift_error() -> None:
    classes = _classes()

    def bases_of(name: str) -> list[str]:
        return [base for _where, bases in classes.get(name, []) for base in bases]

    def is_exception(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in BUILTIN_EXCEPTIONS or name.endswith(("Error", "Exception")):
            return True
        return name not in seen and any(is_exception(b, seen | {name}) for b in bases_of(name))

    def is_ours(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name == ROOT_ERROR:
            return True
        return name not in seen and any(is_ours(b, seen | {name}) for b in bases_of(name))

    outside = [
        f"{where}: class {name}({', '.join(bases)})"
        for name, definitions in classes.items()
        for where, bases in definitions
        if name != ROOT_ERROR
        and any(is_exception(base) for base in bases)
        and not any(is_ours(base) for base in bases)
    ]
    assert not outside, "exception classes outside the SpeedriftError hierarchy:\n" + "\n".join(outside)


def test_the_cli_keeps_its_own_words_for_a_line_wg_could_not_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from speedrift.cli import app, query_cmds
    from speedrift.graph.wgcompat import WgCompatError

    def refuse(args: object) -> int:
        raise WgCompatError("task 'a' would not load in wg: status 'exploded'")

    monkeypatch.setattr(query_cmds, "ready", refuse)
    assert issubclass(WgCompatError, SpeedriftError) and issubclass(WgCompatError, ValueError)
    assert app.main(["ready"]) == 1
    assert capsys.readouterr().err == (
        "error: refusing to write a line wg could not read: "
        "task 'a' would not load in wg: status 'exploded'\n"
    )


@pytest.mark.parametrize(
    "raise_it",
    [
        lambda: ClaudeRuntime().build_argv(_request(options={"permission_mode": "yolo"})),
        lambda: CodexRuntime().build_argv(_request(options={"sandbox": "none"})),
        lambda: runtime_for("nope"),
    ],
)
def test_bad_runtime_options_are_speedrift_errors_and_still_value_errors(raise_it: Any) -> None:
    with pytest.raises(InvalidValue) as caught:
        raise_it()
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, SpeedriftError)
