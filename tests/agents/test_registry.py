"""Runtime selection: workgraph's `exec` and model-prefix conventions."""

from __future__ import annotations

from typing import Any

import pytest

from speedrift.agents.choose import RUNTIME_NAMES, runtime_for, select_runtime
from speedrift.agents.claude import ClaudeRuntime


def test_every_runtime_is_registered_under_its_own_name() -> None:
    assert RUNTIME_NAMES == ("claude", "codex", "opencode", "shell", "demo")
    for name in RUNTIME_NAMES:
        runtime = runtime_for(name)
        assert runtime.name == name
        assert runtime.executable and runtime.install_hint
    assert isinstance(runtime_for("claude"), ClaudeRuntime)


def test_unknown_runtime_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="claude, codex, opencode, shell"):
        runtime_for("gemini")


@pytest.mark.parametrize(
    ("task", "default", "expected"),
    [
        ({"exec": "make test", "model": "claude:opus"}, "claude", ("shell", None)),  # exec wins
        ({"exec": "   ", "model": "sonnet"}, "claude", ("claude", "sonnet")),  # a blank exec is none
        ({"model": "claude:sonnet"}, "codex", ("claude", "sonnet")),
        ({"model": "codex:gpt-5.5"}, "claude", ("codex", "gpt-5.5")),
        (
            {"model": "opencode:anthropic/claude-sonnet-4"},
            "claude",
            ("opencode", "anthropic/claude-sonnet-4"),
        ),
        ({"model": "claude:"}, "codex", ("claude", None)),
        ({"model": "sonnet"}, "claude", ("claude", "sonnet")),
        ({"model": "openrouter:qwen/qwen3"}, "opencode", ("opencode", "openrouter:qwen/qwen3")),
        ({"model": " codex:o4 "}, "claude", ("codex", "o4")),
        ({}, "opencode", ("opencode", None)),
        ({"model": None, "exec": None}, "codex", ("codex", None)),
        ({"model": 42}, "claude", ("claude", None)),
    ],
)
def test_select_runtime(task: dict[str, Any], default: str, expected: tuple[str, str | None]) -> None:
    assert select_runtime(task, default) == expected


def test_an_unknown_default_is_refused() -> None:
    with pytest.raises(ValueError, match="default"):
        select_runtime({"model": "sonnet"}, "gemini")
