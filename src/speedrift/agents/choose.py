"""Which runtime runs a task, following workgraph's conventions.

A task with `exec` is a shell task. Otherwise a `model` prefixed with a runtime name
(`claude:sonnet`, `codex:gpt-5.5`, `opencode:anthropic/claude-sonnet-4`) picks that CLI and the
rest is the model; an unprefixed model goes to the repo's default runtime. Other prefixes wg
knows (`openrouter:`, `ollama:` …) name wg's in-process agents, which speedrift does not run:
such a model is handed to the default runtime unchanged, where the CLI reports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from speedrift.agents.claude import ClaudeRuntime
from speedrift.agents.codex import CodexRuntime
from speedrift.agents.opencode import OpenCodeRuntime
from speedrift.agents.protocol import Runtime
from speedrift.agents.shell import ShellRuntime
from speedrift.errors import InvalidValue

_RUNTIMES: dict[str, Runtime] = {
    "claude": ClaudeRuntime(),
    "codex": CodexRuntime(),
    "opencode": OpenCodeRuntime(),
    "shell": ShellRuntime(),
}
RUNTIME_NAMES = tuple(_RUNTIMES)
MODEL_RUNTIMES = ("claude", "codex", "opencode")  # the ones a model prefix may name


def runtime_for(name: str) -> Runtime:
    try:
        return _RUNTIMES[name]
    except KeyError:
        raise InvalidValue(f"unknown agent runtime {name!r}; known: {', '.join(RUNTIME_NAMES)}") from None


def select_runtime(task: Mapping[str, Any], default: str) -> tuple[str, str | None]:
    """(runtime name, model without its runtime prefix) for `task`; `default` is the repo's."""
    if default not in _RUNTIMES:
        raise InvalidValue(f"unknown default agent runtime {default!r}; known: {', '.join(RUNTIME_NAMES)}")
    command = task.get("exec")
    if isinstance(command, str) and command.strip():
        return "shell", None
    model = task.get("model")
    if not isinstance(model, str) or not model.strip():
        return default, None
    model = model.strip()
    prefix, sep, rest = model.partition(":")
    if sep and prefix in MODEL_RUNTIMES:
        return prefix, rest.strip() or None
    return default, model


def declared_runtime(task: Mapping[str, Any]) -> str | None:
    """The runtime ``task`` names itself (``exec`` → shell, a ``claude:``/``codex:``/``opencode:``
    model prefix → that CLI); None when it runs on the repo's default runtime."""
    command = task.get("exec")
    if isinstance(command, str) and command.strip():
        return "shell"
    model = task.get("model")
    if isinstance(model, str):
        prefix, sep, _rest = model.strip().partition(":")
        if sep and prefix in MODEL_RUNTIMES:
            return prefix
    return None
